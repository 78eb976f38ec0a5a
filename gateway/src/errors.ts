import type { ErrorCode } from '@keyfleet/protocol';
import type { AttestationErrorCode } from './attestation/errors';
import type { FabricEnrolmentFailure } from './ca/fabric-enrolment';
import type { HsmErrorCode } from './hsm/hsm-error';
import type { BodyErrorDetail } from './http/json-body';
import type { KeyServiceErrorDetail } from './key-service/errors';
import type { RotationErrorDetail } from './rotation/service';

/**
 * The gateway's coded errors. Callers switch on `code`, never on the message; the HTTP layer
 * maps each code to a status once (http/errors.ts). {@link GatewayError} is the one error base of
 * the gateway: attestation refusals (attestation/errors.ts) are GatewayErrors with codes of their
 * own, and every code an HTTP answer carries is in {@link GatewayCode}.
 */
export const GatewayErrorCode = {
  /** The request body, query or path failed validation. */
  BadRequest: 'BAD_REQUEST',
  /** No credential, or a credential that does not verify. */
  Unauthenticated: 'UNAUTHENTICATED',
  /** A valid credential whose role may not do this. */
  Forbidden: 'FORBIDDEN',
  NotFound: 'NOT_FOUND',
  /** The enrolment token is malformed, forged, expired or for another device. */
  EnrolmentTokenInvalid: 'ENROLMENT_TOKEN_INVALID',
  /** The enrolment token was already used, here or at another gateway. */
  EnrolmentTokenUsed: 'ENROLMENT_TOKEN_USED',
  /** The PKCS#10 request is malformed, has a bad signature, or a key of the wrong type. */
  CsrInvalid: 'CSR_INVALID',
  /** The ledger refused the transaction; `detail` carries the chaincode's own code. */
  LedgerRejected: 'LEDGER_REJECTED',
  /** The ledger could not be reached or did not answer in time. */
  LedgerUnavailable: 'LEDGER_UNAVAILABLE',
  /** The HSM failed; never caused by the caller. */
  HsmFailure: 'HSM_FAILURE',
  /** Configuration is missing or invalid; raised at start-up only. */
  ConfigInvalid: 'CONFIG_INVALID',
  /** The Fabric CA could not be reached or did not answer in time; a retry may succeed. */
  FabricCaUnavailable: 'FABRIC_CA_UNAVAILABLE',
  /**
   * Enrolment with the Fabric CA gave no usable identity: the CA refused it, its TLS certificate
   * does not chain to the pinned root, or the issued certificate failed our checks. `detail` says
   * which (`FabricEnrolmentFailure`). Raised at start-up only; retrying will not help.
   */
  FabricEnrolmentRefused: 'FABRIC_ENROLMENT_REFUSED',
  /**
   * The attestation verifier (Org2's own service, `KEYFLEET_VERIFIER_URL`) could not be reached,
   * did not answer in time, or failed with a fault of its own; a retry may succeed.
   */
  VerifierUnavailable: 'VERIFIER_UNAVAILABLE',
  /** The body's media type or charset is not one the route takes (JSON in UTF-8). */
  UnsupportedMediaType: 'UNSUPPORTED_MEDIA_TYPE',
  /** The request's headers are larger than the server takes (Node's HTTP parser refused them). */
  HeadersTooLarge: 'HEADERS_TOO_LARGE',
  /** The request did not arrive in time. */
  RequestTimeout: 'REQUEST_TIMEOUT',
  /** The body is larger than the route takes. */
  BodyTooLarge: 'BODY_TOO_LARGE',
  /** A fault the gateway has no code for; its answer says nothing more. */
  Internal: 'INTERNAL',
} as const;

export type GatewayErrorCode = (typeof GatewayErrorCode)[keyof typeof GatewayErrorCode];

/** The closed set of codes a gateway error carries. */
export type GatewayCode = GatewayErrorCode | AttestationErrorCode;

/**
 * The closed set of further codes in a gateway error's `detail`: the contract's own (with
 * LEDGER_REJECTED and NOT_FOUND), Fabric's validation code of a transaction that did not commit
 * (`COMMIT_<code>`), the HSM's codes, and the finer reasons of the key service, rotation, enrolment
 * and JSON bodies.
 */
export type GatewayDetail =
  | ErrorCode
  | `COMMIT_${string}`
  | KeyServiceErrorDetail
  | RotationErrorDetail
  | FabricEnrolmentFailure
  | BodyErrorDetail
  | HsmErrorCode
  | 'BOOKMARK_INVALID'
  | ShardRoutingDetail;

/**
 * Why the shard router (ledger/shard-router.ts) could not route a call: a record found on several
 * shards, a map naming a channel the network does not have, a batch whose devices are on several,
 * a shard map written to a network that has no governance channel.
 */
export type ShardRoutingDetail =
  'SHARD_AMBIGUOUS' | 'SHARD_UNKNOWN' | 'SHARDS_MIXED' | 'NOT_SHARDED' | 'SHARD_MOVE_RUNNING';

export class GatewayError extends Error {
  override readonly name: string = 'GatewayError';

  /**
   * @param code what went wrong, for machines
   * @param message what went wrong, for people; shown to callers for 4xx codes only
   * @param detail a further machine-readable code, e.g. the chaincode's `DEVICE_EXISTS`
   */
  constructor(
    readonly code: GatewayCode,
    message: string,
    readonly detail?: GatewayDetail,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export function isGatewayError(err: unknown): err is GatewayError {
  return err instanceof GatewayError;
}
