/**
 * The error codes of keyfleet's HTTP API: what the gateway and the verifier answer in
 * `{"error":{"code":…}}`, and what their clients (the keyfleet CLI, the agent, the key client)
 * switch on. Written once here so that a server and its clients cannot drift apart; which HTTP
 * status each code is answered with is the gateway's business (gateway/src/http/errors.ts).
 */

/**
 * The codes of the gateway's own errors, as its HTTP answers carry them (`{error:{code}}`); the
 * gateway's statuses for them are in gateway/src/http/errors.ts.
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

/**
 * Why evidence was refused, as the gateway's and the verifier's HTTP answers carry it. Every refusal
 * writes nothing to the ledger; infrastructure faults (ledger unreachable, HSM failure) carry a
 * {@link GatewayErrorCode}.
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

/** Every code an error answer of keyfleet's HTTP API carries: a closed set. */
export type ApiErrorCode = GatewayErrorCode | AttestationErrorCode;

const apiErrorCodes: ReadonlySet<string> = new Set([
  ...Object.values(GatewayErrorCode),
  ...Object.values(AttestationErrorCode),
]);

export function isApiErrorCode(value: unknown): value is ApiErrorCode {
  return typeof value === 'string' && apiErrorCodes.has(value);
}
