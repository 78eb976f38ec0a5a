/**
 * The closed set of error codes the contract throws. Fabric forwards only an error's message to the
 * client, so every message is `CODE: human text` and clients switch on the code ({@link errorCodeOf}).
 */
export const ErrorCode = {
  MalformedJson: 'MALFORMED_JSON',
  InvalidArgument: 'INVALID_ARGUMENT',
  AccessDenied: 'ACCESS_DENIED',
  PrincipalInvalid: 'PRINCIPAL_INVALID',
  PrincipalNotAllowed: 'PRINCIPAL_NOT_ALLOWED',
  SignatureMissing: 'SIGNATURE_MISSING',
  SignatureInvalid: 'SIGNATURE_INVALID',
  RequestReplayed: 'REQUEST_REPLAYED',
  AnchorNotFound: 'ANCHOR_NOT_FOUND',
  AnchorExists: 'ANCHOR_EXISTS',
  AnchorInactive: 'ANCHOR_INACTIVE',
  AnchorKindMismatch: 'ANCHOR_KIND_MISMATCH',
  DeviceNotFound: 'DEVICE_NOT_FOUND',
  DeviceExists: 'DEVICE_EXISTS',
  DeviceRevoked: 'DEVICE_REVOKED',
  KeyNotFound: 'KEY_NOT_FOUND',
  KeyExists: 'KEY_EXISTS',
  VersionNotFound: 'VERSION_NOT_FOUND',
  StaleVersion: 'STALE_VERSION',
  IllegalTransition: 'ILLEGAL_TRANSITION',
  NextKeyMismatch: 'NEXT_KEY_MISMATCH',
  RetentionNotElapsed: 'RETENTION_NOT_ELAPSED',
  KeyNotUsable: 'KEY_NOT_USABLE',
  NonceReplayed: 'NONCE_REPLAYED',
  NonceNotFound: 'NONCE_NOT_FOUND',
  AttestationNotFound: 'ATTESTATION_NOT_FOUND',
  BatchNotFound: 'BATCH_NOT_FOUND',
  BatchExists: 'BATCH_EXISTS',
  ProofInvalid: 'PROOF_INVALID',
  ReferenceValuesNotFound: 'REFERENCE_VALUES_NOT_FOUND',
  ShardMapNotFound: 'SHARD_MAP_NOT_FOUND',
  /** The device is frozen by a prepared shard move: writes are refused until it commits or aborts. */
  DeviceMoving: 'DEVICE_MOVING',
  /** The device moved to another shard channel, which the message names. */
  DeviceMoved: 'DEVICE_MOVED',
  ShardMoveNotFound: 'SHARD_MOVE_NOT_FOUND',
  /** A move step that does not fit the move's state on this channel (wrong end, phase or move). */
  ShardMoveConflict: 'SHARD_MOVE_CONFLICT',
  /** The moved state does not hash to the digest the source froze. */
  ShardMoveMismatch: 'SHARD_MOVE_MISMATCH',
  UnknownTransaction: 'UNKNOWN_TRANSACTION',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const knownCodes: ReadonlySet<string> = new Set(Object.values(ErrorCode));

/** The one error class of the chaincode; `message` is `CODE: detail`. */
export class LedgerError extends Error {
  readonly code: ErrorCode;
  readonly detail: string;

  constructor(code: ErrorCode, detail: string) {
    super(`${code}: ${detail}`);
    this.name = 'LedgerError';
    this.code = code;
    this.detail = detail;
  }
}

/** The code at the start of an error message forwarded by Fabric, or undefined if there is none. */
export function errorCodeOf(message: string): ErrorCode | undefined {
  const match = /([A-Z][A-Z_]+[A-Z]): /.exec(message);
  const code = match?.[1];
  return code !== undefined && knownCodes.has(code) ? (code as ErrorCode) : undefined;
}

export function isLedgerError(err: unknown): err is LedgerError {
  return err instanceof LedgerError;
}
