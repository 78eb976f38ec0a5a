/**
 * @keyfleet/agent: the edge device's side of keyfleet. A keystore (one 0600 JSON file), enrolment
 * (own P-256 key, PKCS#10 request, operator's enrolment token), and device-key rotation
 * (docs/protocol-rotation.md). It stands alone: it shares formats with the gateway, not code.
 *
 * @packageDocumentation
 */
export { newAgent } from './agent.js';
export type {
  Agent,
  AgentOptions,
  AttestOptions,
  AttestationOutcome,
  CheckInResult,
  DataKey,
  EnrolmentResult,
  RotationOutcome,
} from './agent.js';
export * from './attestation/index.js';
export { AgentError, AgentErrorCode, isAgentError } from './errors.js';
export * from './key-client.js';
// The one HTTP client and bearer-token minter of keyfleet's clients (the CLI uses them too).
export { HttpError, HttpErrorCode, newHttpClient } from './http/client.js';
export type { HttpClient, HttpClientOptions, RequestOptions } from './http/client.js';
export { newTlsFetch, tlsTrustFromEnv, TlsEnv, type TlsTrust } from './http/tls.js';
export { issueBearerToken, newBearerMinter, readCredentialsFile } from './http/bearer.js';
export type { BearerMinterOptions, BearerTokenOptions, CredentialsFile } from './http/bearer.js';
export { KeystoreFormat, newFileKeystore } from './keystore.js';
export type { Keystore, KeystoreData, StoredKey } from './keystore.js';
export {
  RotationLabel,
  RotationMessageType,
  deriveDeviceMasterKey,
  deriveKek,
  kekDerivationData,
  keyCheckValue,
  nextKeyCommitment,
  rotationAckDigest,
  rotationNonceDigest,
  unwrapKey,
  wrapKey,
} from './protocol.js';
