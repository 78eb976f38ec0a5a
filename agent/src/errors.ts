import type { EvidenceErrorCode } from './attestation/evidence';
import type { HttpCode } from './http/client';
import type { KeyClientErrorCode } from './key-client';

/**
 * The agent's coded errors: callers switch on `code`, never on the message. {@link AgentError} is
 * the agent's one error base; evidence errors (attestation/evidence.ts), the key client's
 * (key-client.ts) and the HTTP client's (http/client.ts) are AgentErrors with codes of their own,
 * all in {@link AgentCode}.
 */
export const AgentErrorCode = {
  /** Options or arguments are missing or malformed. */
  InvalidArgument: 'AGENT_INVALID_ARGUMENT',
  /** The keystore file is unreadable, malformed, or readable by others than its owner. */
  KeystoreInvalid: 'AGENT_KEYSTORE_INVALID',
  KeystoreInsecure: 'AGENT_KEYSTORE_INSECURE',
  AlreadyEnrolled: 'AGENT_ALREADY_ENROLLED',
  NotEnrolled: 'AGENT_NOT_ENROLLED',
  /** No pinned metadata-signing key to verify gateway responses with. */
  NoTrustAnchor: 'AGENT_NO_TRUST_ANCHOR',
  /** The gateway answered with an error; `detail` carries its code. */
  GatewayRejected: 'AGENT_GATEWAY_REJECTED',
  /** The gateway could not be reached, or answered something that is not the protocol. */
  GatewayUnavailable: 'AGENT_GATEWAY_UNAVAILABLE',
  /** The enrolment answer does not fit our request (key, name, issuer). */
  EnrolmentInvalid: 'AGENT_ENROLMENT_INVALID',
  /** The rotation response does not verify with the pinned metadata-signing key. */
  ResponseSignatureInvalid: 'AGENT_RESPONSE_SIGNATURE_INVALID',
  /** The response is well signed but for another device, key or version. */
  ResponseMismatch: 'AGENT_RESPONSE_MISMATCH',
  /** The response is bound to another request's nonce. */
  NonceMismatch: 'AGENT_NONCE_MISMATCH',
  /** RFC 5649 integrity check failed: the wrapped key was altered or wrapped under another KEK. */
  UnwrapFailed: 'AGENT_UNWRAP_FAILED',
  /** The unwrapped key does not have the announced key check value. */
  KcvMismatch: 'AGENT_KCV_MISMATCH',
} as const;
export type AgentErrorCode = (typeof AgentErrorCode)[keyof typeof AgentErrorCode];

/** The closed set of codes an agent error carries. */
export type AgentCode = AgentErrorCode | EvidenceErrorCode | KeyClientErrorCode | HttpCode;

export class AgentError extends Error {
  override readonly name: string = 'AgentError';

  /**
   * @param code what went wrong, for machines
   * @param detail a further code, e.g. the gateway's `NONCE_REPLAYED`
   */
  constructor(
    readonly code: AgentCode,
    message: string,
    readonly detail?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export function isAgentError(err: unknown): err is AgentError {
  return err instanceof AgentError;
}
