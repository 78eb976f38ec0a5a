import { ErrorCode } from '@keyfleet/protocol';
import { GatewayError } from '../errors';
import { ledgerRefusalCode } from '../ledger/port';

/**
 * Why evidence was refused. Every refusal writes nothing to the ledger; callers switch on
 * `code`. Infrastructure faults (ledger unreachable, HSM failure) stay `GatewayError`s.
 */
export const AttestationErrorCode = {
  /** The device id of a challenge request is not a valid device id. */
  DeviceIdInvalid: 'DEVICE_ID_INVALID',
  /** Not a compact JWS, undecodable header or payload, unsupported header parameter or algorithm. */
  EvidenceMalformed: 'EVIDENCE_MALFORMED',
  /** The JWS signature does not verify with the key of the `x5c` leaf certificate. */
  EvidenceSignatureInvalid: 'EVIDENCE_SIGNATURE_INVALID',
  /** The `x5c` chain does not lead to the device CA, or the certificate is expired or not a device's. */
  CertificateUntrusted: 'CERTIFICATE_UNTRUSTED',
  /** A claim is missing, of the wrong type or size, unknown, or names another profile. */
  ClaimsInvalid: 'CLAIMS_INVALID',
  /** `iat` is too old or in the future, or `exp` has passed. */
  EvidenceNotFresh: 'EVIDENCE_NOT_FRESH',
  /** `eat_nonce` was not issued by this verifier's challenge key. */
  NonceInvalid: 'NONCE_INVALID',
  /** `eat_nonce` was issued but its time to live has passed. */
  NonceExpired: 'NONCE_EXPIRED',
  /** `eat_nonce` was issued to another device. */
  NonceWrongDevice: 'NONCE_WRONG_DEVICE',
  /** `eat_nonce` was already consumed on the ledger, by this or any other verifier. */
  NonceReplayed: 'NONCE_REPLAYED',
  /** No device with the certificate's id is enrolled on the ledger. */
  DeviceUnknown: 'DEVICE_UNKNOWN',
  /** The device is enrolled, but with another certificate: the signing key is not the enrolled one. */
  KeyNotEnrolled: 'KEY_NOT_ENROLLED',
  /** The device is revoked on the ledger. */
  DeviceRevoked: 'DEVICE_REVOKED',
  /** The device's group has no reference values on the ledger: nothing to appraise against. */
  ReferenceValuesMissing: 'REFERENCE_VALUES_MISSING',
  /** The batch could not be anchored; the results it held were not recorded. */
  BatchFailed: 'BATCH_FAILED',
} as const;
export type AttestationErrorCode = (typeof AttestationErrorCode)[keyof typeof AttestationErrorCode];

/** A refusal of attestation: a {@link GatewayError} with one of the {@link AttestationErrorCode}s. */
export class AttestationError extends GatewayError {
  override readonly name: string = 'AttestationError';
  declare readonly code: AttestationErrorCode;

  constructor(code: AttestationErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, undefined, options);
  }
}

export function isAttestationError(err: unknown): err is AttestationError {
  return err instanceof AttestationError;
}

/** Ledger refusals that are the evidence's fault, as attestation codes. */
const ledgerRefusals: Readonly<Partial<Record<ErrorCode, AttestationErrorCode>>> = {
  [ErrorCode.DeviceNotFound]: AttestationErrorCode.DeviceUnknown,
  [ErrorCode.DeviceRevoked]: AttestationErrorCode.DeviceRevoked,
  [ErrorCode.NonceReplayed]: AttestationErrorCode.NonceReplayed,
  [ErrorCode.ReferenceValuesNotFound]: AttestationErrorCode.ReferenceValuesMissing,
};

/** The AttestationError a ledger refusal stands for, or null when it is not the evidence's fault. */
export function attestationRefusalOf(err: unknown): AttestationError | null {
  const refusal = ledgerRefusalCode(err);
  const code = refusal === undefined ? undefined : ledgerRefusals[refusal];
  return code === undefined
    ? null
    : new AttestationError(code, err instanceof Error ? err.message : code, { cause: err });
}
