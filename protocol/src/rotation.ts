/**
 * The device-key rotation protocol's fixed parts (docs/protocol-rotation.md): names, digests,
 * derivation inputs and claim shapes. Pure: no HSM, no ledger, no clock.
 */
import { createHash } from 'node:crypto';
import { isId } from './ids.js';
import { nextKeyCommitment } from './lifecycle.js';
import type { KeyRecord } from './types.js';

/** JWS `typ` of each message (RFC 8725 §3.11: explicit typing, so one message cannot pass for another). */
export const RotationMessageType = {
  Request: 'keyfleet-rotation-request+jwt',
  Response: 'keyfleet-rotation-response+jwt',
  Ack: 'keyfleet-rotation-ack+jwt',
  /** A device's signed "here I am" (claims `device_id`, `iat`): answered with its due keys. */
  CheckIn: 'keyfleet-check-in+jwt',
} as const;

/** Domain labels: every digest and derivation input starts with one, so no two can coincide. */
export const RotationLabel = {
  Kek: 'keyfleet/rotation-kek/v1',
  Nonce: 'keyfleet/rotation-nonce/v1',
  Ack: 'keyfleet/rotation-ack/v1',
} as const;

/** CKM_AES_CBC_ENCRYPT_DATA IV for the KEK: zero, as in CBC-MAC (the data is a fixed-length hash). */
export const KekIv: Uint8Array = new Uint8Array(16);

/** Shortest nonce accepted: 22 base64url characters carry 128 bits. */
export const MinNonceLength = 22;
export const MaxNonceLength = 128;

/** SHA-256 over `label`, then each part, joined by U+0000 (ids never contain it), UTF-8. */
export function labelledDigest(label: string, ...parts: readonly string[]): Buffer {
  return createHash('sha256')
    .update([label, ...parts].join('\0'), 'utf8')
    .digest();
}

/**
 * The 32-byte CKM_AES_CBC_ENCRYPT_DATA input that binds a KEK to one device, key and version:
 * SHA-256("keyfleet/rotation-kek/v1" ‖ 0 ‖ deviceId ‖ 0 ‖ keyId ‖ 0 ‖ decimal version).
 */
export function kekDerivationData(deviceId: string, keyId: string, version: number): Buffer {
  return labelledDigest(RotationLabel.Kek, deviceId, keyId, String(version));
}

/** What the ledger records as the request's NonceDigest (lowercase hex). */
export function rotationNonceDigest(nonce: string): string {
  return labelledDigest(RotationLabel.Nonce, nonce).toString('hex');
}

/**
 * The NonceDigest under which a device's acknowledgement of `version` is recorded (ConsumeNonce,
 * purpose `rotation`): one per key version, so a repeated acknowledgement is recognised.
 */
export function rotationAckDigest(keyId: string, version: number): string {
  return labelledDigest(RotationLabel.Ack, keyId, String(version)).toString('hex');
}

/**
 * Whether the ledger accounts for a version object whose fingerprint (for AES, its KCV) is
 * `fingerprint`: a committed version that is not destroyed and has that Fingerprint, or version
 * LatestVersion+1 when the fingerprint hashes to the NextKeyCommitment.
 */
export function isAccountedFor(key: KeyRecord | null, version: number, fingerprint: string | null): boolean {
  if (key === null || fingerprint === null) return false;
  if (version <= key.LatestVersion) {
    const record = key.Versions.find((v) => v.Version === version);
    return record !== undefined && record.State !== 'destroyed' && record.Fingerprint === fingerprint;
  }
  return (
    version === key.LatestVersion + 1 &&
    key.NextKeyCommitment !== null &&
    nextKeyCommitment(fingerprint) === key.NextKeyCommitment
  );
}

/** The HSM label of a device key version: how reconcile() finds what a crash left behind. */
export function versionLabel(keyId: string, version: number): string {
  return `key:${keyId}:v${version}`;
}

const versionLabelPattern = /^key:(.+):v([1-9]\d{0,6})$/;

/** Inverse of {@link versionLabel}, or null for any other label. */
export function parseVersionLabel(label: string): { keyId: string; version: number } | null {
  const match = versionLabelPattern.exec(label);
  if (match?.[1] === undefined || match[2] === undefined) return null;
  return { keyId: match[1], version: Number(match[2]) };
}

/** Claims of the device's request (JWS payload). */
export interface RotationRequestClaims {
  readonly device_id: string;
  readonly key_id: string;
  /** The version the device holds; 0 when it holds none yet. */
  readonly current_version: number;
  /** ≥ 128 bits of fresh randomness, base64url. */
  readonly nonce: string;
  /** Seconds since the epoch. */
  readonly iat: number;
}

/** Claims of the gateway's response (JWS by the HSM metadata-signing key). */
export interface RotationResponseClaims {
  readonly device_id: string;
  readonly key_id: string;
  /** The version delivered. */
  readonly version: number;
  /** The request's `current_version`. */
  readonly previous_version: number;
  /** {@link rotationNonceDigest} of the request's nonce: binds the response to that request. */
  readonly nonce_digest: string;
  /** RFC 5649 wrap of the key under the version's KEK, base64url (40 bytes for AES-256). */
  readonly wrapped_key: string;
  /** Key check value: first 3 bytes of AES-256-ECB(key, 0¹²⁸), lowercase hex. */
  readonly kcv: string;
  /** The ledger transaction that recorded the version (or consumed the nonce, for a redelivery). */
  readonly transaction_id: string;
  readonly iat: number;
}

/** Claims of the device's acknowledgement (JWS by the device key). */
export interface RotationAckClaims {
  readonly device_id: string;
  readonly key_id: string;
  readonly version: number;
  readonly kcv: string;
  /** The nonce digest of the response being acknowledged. */
  readonly nonce_digest: string;
  readonly iat: number;
}

const noncePattern = /^[A-Za-z0-9_-]+$/;

/** Why a claim set was refused, for the error message; null when it is well-formed. */
export function requestClaimsProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'the payload is not an object';
  const claims = value as Record<string, unknown>;
  const allowed = new Set(['device_id', 'key_id', 'current_version', 'nonce', 'iat']);
  for (const name of Object.keys(claims)) if (!allowed.has(name)) return `unknown claim ${name}`;
  if (!isId(claims.device_id)) return 'device_id is not an id';
  if (!isId(claims.key_id)) return 'key_id is not an id';
  const version = claims.current_version;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0 || version > 1_000_000) {
    return 'current_version must be an integer from 0 to 1000000';
  }
  const nonce = claims.nonce;
  if (
    typeof nonce !== 'string' ||
    nonce.length < MinNonceLength ||
    nonce.length > MaxNonceLength ||
    !noncePattern.test(nonce)
  ) {
    return `nonce must be ${MinNonceLength}-${MaxNonceLength} base64url characters (at least 128 bits)`;
  }
  if (typeof claims.iat !== 'number' || !Number.isSafeInteger(claims.iat) || claims.iat < 0) {
    return 'iat must be an integer number of seconds';
  }
  return null;
}

/** Why an acknowledgement's claims were refused; null when well-formed. */
export function ackClaimsProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'the payload is not an object';
  const claims = value as Record<string, unknown>;
  const allowed = new Set(['device_id', 'key_id', 'version', 'kcv', 'nonce_digest', 'iat']);
  for (const name of Object.keys(claims)) if (!allowed.has(name)) return `unknown claim ${name}`;
  if (!isId(claims.device_id)) return 'device_id is not an id';
  if (!isId(claims.key_id)) return 'key_id is not an id';
  const version = claims.version;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1 || version > 1_000_000) {
    return 'version must be an integer from 1 to 1000000';
  }
  if (typeof claims.kcv !== 'string' || !/^[0-9a-f]{6}$/.test(claims.kcv)) return 'kcv must be 6 lowercase hex digits';
  if (typeof claims.nonce_digest !== 'string' || !/^[0-9a-f]{64}$/.test(claims.nonce_digest)) {
    return 'nonce_digest must be 64 lowercase hex digits';
  }
  if (typeof claims.iat !== 'number' || !Number.isSafeInteger(claims.iat) || claims.iat < 0) {
    return 'iat must be an integer number of seconds';
  }
  return null;
}
