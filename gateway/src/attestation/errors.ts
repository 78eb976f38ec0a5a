import { GatewayErrorCode, isGatewayError } from '../errors';

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

export class AttestationError extends Error {
  override readonly name = 'AttestationError';

  constructor(
    readonly code: AttestationErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export function isAttestationError(err: unknown): err is AttestationError {
  return err instanceof AttestationError;
}

/** The HTTP status of each code, for the one error handler in http/. */
export const attestationHttpStatus: Readonly<Record<AttestationErrorCode, number>> = {
  DEVICE_ID_INVALID: 400,
  EVIDENCE_MALFORMED: 400,
  EVIDENCE_SIGNATURE_INVALID: 401,
  CERTIFICATE_UNTRUSTED: 401,
  CLAIMS_INVALID: 400,
  EVIDENCE_NOT_FRESH: 400,
  NONCE_INVALID: 401,
  NONCE_EXPIRED: 401,
  NONCE_WRONG_DEVICE: 401,
  NONCE_REPLAYED: 409,
  DEVICE_UNKNOWN: 403,
  KEY_NOT_ENROLLED: 403,
  DEVICE_REVOKED: 403,
  REFERENCE_VALUES_MISSING: 409,
  BATCH_FAILED: 503,
};

/** Ledger refusals that are the evidence's fault, as attestation codes. */
const ledgerRefusals: Readonly<Record<string, AttestationErrorCode>> = {
  DEVICE_NOT_FOUND: AttestationErrorCode.DeviceUnknown,
  DEVICE_REVOKED: AttestationErrorCode.DeviceRevoked,
  NONCE_REPLAYED: AttestationErrorCode.NonceReplayed,
  REFERENCE_VALUES_NOT_FOUND: AttestationErrorCode.ReferenceValuesMissing,
};

/** The AttestationError a ledger refusal stands for, or null when it is not the evidence's fault. */
export function attestationRefusalOf(err: unknown): AttestationError | null {
  const code =
    isGatewayError(err) && err.code === GatewayErrorCode.LedgerRejected && err.detail !== undefined
      ? ledgerRefusals[err.detail]
      : undefined;
  return code === undefined
    ? null
    : new AttestationError(code, err instanceof Error ? err.message : code, { cause: err });
}
