import { GatewayError } from '../errors.js';

/**
 * The HSM layer's coded errors. Callers switch on `code`; `ckr` names the PKCS#11 return value
 * when there was one. Messages never carry a PIN, key material or mechanism parameters.
 */
export const HsmErrorCode = {
  /** The PKCS#11 URI is malformed or uses an attribute this layer refuses (RFC 7512). */
  InvalidUri: 'HSM_INVALID_URI',
  /** An argument failed validation before any PKCS#11 call was made. */
  InvalidArgument: 'HSM_INVALID_ARGUMENT',
  /** The PKCS#11 library could not be loaded or initialised. */
  ModuleFailed: 'HSM_MODULE_FAILED',
  /** The PIN source (environment variable or file) is missing, unreadable or empty. */
  PinUnavailable: 'HSM_PIN_UNAVAILABLE',
  /** C_Login rejected the PIN (CKR_PIN_INCORRECT, CKR_PIN_INVALID, CKR_PIN_LEN_RANGE). */
  PinIncorrect: 'HSM_PIN_INCORRECT',
  /** The token has locked or expired the user PIN. */
  PinLocked: 'HSM_PIN_LOCKED',
  /** No token, or more than one, matches the URI. */
  TokenNotFound: 'HSM_TOKEN_NOT_FOUND',
  /** No object matches the key reference. */
  KeyNotFound: 'HSM_KEY_NOT_FOUND',
  /** More than one object matches a key reference that must be unique. */
  KeyAmbiguous: 'HSM_KEY_AMBIGUOUS',
  /** An object with that label already exists. */
  KeyExists: 'HSM_KEY_EXISTS',
  /** The key's attributes forbid the operation (not extractable, wrong type, no CKA_SIGN…). */
  KeyNotPermitted: 'HSM_KEY_NOT_PERMITTED',
  /** Authenticated decryption or unwrapping found the input altered or not made by this key. */
  IntegrityFailed: 'HSM_INTEGRITY_FAILED',
  /** Sessions could not be opened or recovered within the retry bound. */
  SessionFailed: 'HSM_SESSION_FAILED',
  /** Any other failure of a PKCS#11 call. */
  MechanismFailed: 'HSM_MECHANISM_FAILED',
  /** The Hsm was closed. */
  Closed: 'HSM_CLOSED',
} as const;

export type HsmErrorCode = (typeof HsmErrorCode)[keyof typeof HsmErrorCode];

/**
 * The only error type the HSM layer throws: a {@link GatewayError} with one of the
 * {@link HsmErrorCode}s. An HTTP answer names none of them: the HSM is the gateway's own fault,
 * answered as HSM_FAILURE (http/errors.ts).
 */
export class HsmError extends GatewayError {
  override readonly name: string = 'HsmError';
  declare readonly code: HsmErrorCode;
  /** The PKCS#11 return value name (e.g. `CKR_PIN_INCORRECT`), when one caused this. */
  readonly ckr: string | undefined;

  /**
   * @param code what went wrong, for machines
   * @param message what went wrong, for people; never contains a PIN or key material
   * @param ckr the PKCS#11 return value name, when one caused this
   */
  constructor(code: HsmErrorCode, message: string, ckr?: string, options?: ErrorOptions) {
    super(code, ckr === undefined ? message : `${message} (${ckr})`, undefined, options);
    this.ckr = ckr;
  }
}

/** True for errors thrown by this layer. */
export function isHsmError(err: unknown): err is HsmError {
  return err instanceof HsmError;
}

/** What the CKR value says about where to recover, PKCS#11 v2.40 §5.1. */
export const Recovery = {
  /** Not a session or token fault: report it. */
  None: 'none',
  /** This session is gone: drop it and retry on a fresh one. */
  Session: 'session',
  /** Every session is suspect: close all, find the token again, log in again, retry. */
  Token: 'token',
  /** A cached object handle went stale: look the object up again and retry. */
  Handle: 'handle',
} as const;
export type Recovery = (typeof Recovery)[keyof typeof Recovery];

const sessionCkrs = new Set(['CKR_SESSION_HANDLE_INVALID', 'CKR_SESSION_CLOSED', 'CKR_OPERATION_ACTIVE']);
const tokenCkrs = new Set([
  'CKR_DEVICE_REMOVED',
  'CKR_DEVICE_ERROR',
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_TOKEN_NOT_RECOGNIZED',
  'CKR_USER_NOT_LOGGED_IN',
  'CKR_CRYPTOKI_NOT_INITIALIZED',
  'CKR_SLOT_ID_INVALID',
]);
const handleCkrs = new Set(['CKR_OBJECT_HANDLE_INVALID', 'CKR_KEY_HANDLE_INVALID']);

/** Classifies a CKR name for the retry loop. */
export function recoveryFor(ckr: string | undefined): Recovery {
  if (ckr === undefined) return Recovery.None;
  if (sessionCkrs.has(ckr)) return Recovery.Session;
  if (tokenCkrs.has(ckr)) return Recovery.Token;
  if (handleCkrs.has(ckr)) return Recovery.Handle;
  return Recovery.None;
}

const codeByCkr: Readonly<Record<string, HsmErrorCode>> = {
  CKR_PIN_INCORRECT: HsmErrorCode.PinIncorrect,
  CKR_PIN_INVALID: HsmErrorCode.PinIncorrect,
  CKR_PIN_LEN_RANGE: HsmErrorCode.PinIncorrect,
  CKR_PIN_LOCKED: HsmErrorCode.PinLocked,
  CKR_PIN_EXPIRED: HsmErrorCode.PinLocked,
  CKR_USER_PIN_NOT_INITIALIZED: HsmErrorCode.PinLocked,
  CKR_TOKEN_NOT_PRESENT: HsmErrorCode.TokenNotFound,
  CKR_TOKEN_NOT_RECOGNIZED: HsmErrorCode.TokenNotFound,
  CKR_DEVICE_REMOVED: HsmErrorCode.TokenNotFound,
  CKR_SLOT_ID_INVALID: HsmErrorCode.TokenNotFound,
  CKR_SESSION_HANDLE_INVALID: HsmErrorCode.SessionFailed,
  CKR_SESSION_CLOSED: HsmErrorCode.SessionFailed,
  CKR_SESSION_COUNT: HsmErrorCode.SessionFailed,
  CKR_USER_NOT_LOGGED_IN: HsmErrorCode.SessionFailed,
  CKR_OBJECT_HANDLE_INVALID: HsmErrorCode.KeyNotFound,
  CKR_KEY_HANDLE_INVALID: HsmErrorCode.KeyNotFound,
  CKR_KEY_UNEXTRACTABLE: HsmErrorCode.KeyNotPermitted,
  CKR_KEY_NOT_WRAPPABLE: HsmErrorCode.KeyNotPermitted,
  CKR_KEY_FUNCTION_NOT_PERMITTED: HsmErrorCode.KeyNotPermitted,
  CKR_KEY_TYPE_INCONSISTENT: HsmErrorCode.KeyNotPermitted,
  CKR_ATTRIBUTE_SENSITIVE: HsmErrorCode.KeyNotPermitted,
  CKR_WRAPPING_KEY_TYPE_INCONSISTENT: HsmErrorCode.KeyNotPermitted,
  CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT: HsmErrorCode.KeyNotPermitted,
  CKR_ENCRYPTED_DATA_INVALID: HsmErrorCode.IntegrityFailed,
  CKR_ENCRYPTED_DATA_LEN_RANGE: HsmErrorCode.IntegrityFailed,
  CKR_WRAPPED_KEY_INVALID: HsmErrorCode.IntegrityFailed,
  CKR_WRAPPED_KEY_LEN_RANGE: HsmErrorCode.IntegrityFailed,
  CKR_SIGNATURE_INVALID: HsmErrorCode.IntegrityFailed,
};

/** The error code for a CKR name that ended an operation. */
export function codeForCkr(ckr: string): HsmErrorCode {
  return codeByCkr[ckr] ?? HsmErrorCode.MechanismFailed;
}
