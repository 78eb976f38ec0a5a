/**
 * The application key service (docs/key-service.md): cryptographic operations inside the HSM by
 * Key ID under the ledger's access policy, the ciphertext envelope, and server-side rotation and
 * destruction of application key versions.
 *
 * @packageDocumentation
 */
export { newKeyOperations, exportKekDerivationData, ExportKekLabel } from './operations';
export type {
  DecryptResult,
  EncryptResult,
  ExportedPublicKey,
  KeyOperations,
  KeyOperationsOptions,
  ReceivingDevice,
  SignResult,
  VerifyResult,
} from './operations';
export { newApplicationKeyRotation } from './rotation';
export type {
  ApplicationKeyRotation,
  ApplicationKeyRotationOptions,
  ApplicationRotationResult,
  DestroyedVersion,
  DestroyExpiredResult,
  RotateOptions,
} from './rotation';
export { authorizeUse, callerOf, KeyUse } from './access';
export { KeyServiceErrorDetail } from './errors';
export {
  EnvelopeFormatVersion,
  encodeHeader,
  envelopeAad,
  formatEnvelope,
  parseEnvelope,
  type Envelope,
  type EnvelopeHeader,
} from './envelope';
export * as keyServiceSchemas from './schemas';
