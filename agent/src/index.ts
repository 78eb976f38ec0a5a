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
