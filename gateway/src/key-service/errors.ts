import { GatewayError, GatewayErrorCode } from '../errors';
import { KeyVersionErrorDetail } from '../key-versions/engine';

/**
 * Why the key service refused, carried in `GatewayError.detail`; `code` stays the HTTP-facing class
 * (BAD_REQUEST, FORBIDDEN, NOT_FOUND, LEDGER_REJECTED, HSM_FAILURE), as in rotation/.
 */
export const KeyServiceErrorDetail = {
  /** The ciphertext is not a keyfleet envelope (shape, header, encoding). */
  CiphertextMalformed: 'CIPHERTEXT_MALFORMED',
  /** The GCM tag does not verify: altered bytes, relabelled KeyID/version, or another AAD. */
  CiphertextInvalid: 'CIPHERTEXT_INVALID',
  KeyNotFound: 'KEY_NOT_FOUND',
  VersionNotFound: 'VERSION_NOT_FOUND',
  /** The key's access policy does not give the caller this permission. */
  AccessDenied: 'ACCESS_DENIED',
  /** The key's algorithm or purpose does not allow this operation (sign with an encrypt key…). */
  PurposeMismatch: 'KEY_PURPOSE_MISMATCH',
  /** The version is compromised: no operation of any kind from the moment it was marked. */
  KeyCompromised: 'KEY_COMPROMISED',
  /** The version is destroyed: its ciphertexts and signatures are refused. */
  VersionDestroyed: 'KEY_VERSION_DESTROYED',
  /** No active version (encrypt, sign), or a pre-active one. */
  KeyNotUsable: 'KEY_NOT_USABLE',
  /** The key belongs to a device: the device rotates it (docs/protocol-rotation.md). */
  KeyDeviceOwned: 'KEY_DEVICE_OWNED',
  /** The key's algorithm cannot be rotated or served here. */
  AlgorithmUnsupported: 'ALGORITHM_UNSUPPORTED',
  /** Another rotation of this key holds the next version's HSM label. */
  RotationInProgress: KeyVersionErrorDetail.RotationInProgress,
  /** The ledger's version is not in the HSM (or does not match its fingerprint). */
  KeyMaterialMissing: KeyVersionErrorDetail.KeyMaterialMissing,
  DeviceNotFound: 'DEVICE_NOT_FOUND',
  DeviceNotActive: 'DEVICE_NOT_ACTIVE',
  /** The certificate given for the receiving device is not the one on the ledger. */
  DeviceCertificateNotEnrolled: 'DEVICE_CERTIFICATE_NOT_ENROLLED',
} as const;
export type KeyServiceErrorDetail = (typeof KeyServiceErrorDetail)[keyof typeof KeyServiceErrorDetail];

export function fail(code: GatewayErrorCode, detail: KeyServiceErrorDetail, message: string, cause?: unknown): never {
  throw new GatewayError(code, message, detail, cause === undefined ? undefined : { cause });
}
