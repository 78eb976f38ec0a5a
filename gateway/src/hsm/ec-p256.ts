import { createHash, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { HsmError, HsmErrorCode } from './hsm-error.js';

/** DER of the P-256 OID 1.2.840.10045.3.1.7, the CKA_EC_PARAMS value (PKCS#11 v2.40 §2.3.3). */
export const p256EcParams = Buffer.from('06082a8648ce3d030107', 'hex');

/** P-256 group order n (SEC 2 §2.4.2). */
const n = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const halfN = n >> 1n;

// SubjectPublicKeyInfo prefix for id-ecPublicKey + prime256v1 with a 65-byte BIT STRING (RFC 5480 §2).
const spkiPrefix = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');

function bytesToBigInt(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt(`0x${Buffer.from(bytes).toString('hex')}`);
}

function bigIntTo32(value: bigint): Buffer {
  return Buffer.from(value.toString(16).padStart(64, '0'), 'hex');
}

/** DER INTEGER of a non-negative big-endian magnitude (X.690 §8.3: minimal, sign bit clear). */
function derInteger(magnitude: Buffer): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  let body = magnitude.subarray(i);
  if ((body[0] ?? 0) & 0x80) body = Buffer.concat([Buffer.of(0), body]);
  return Buffer.concat([Buffer.of(0x02, body.length), body]);
}

/** True when s ≤ n/2, the form Fabric requires (BIP-62-style malleability rule). */
export function isLowS(s: bigint): boolean {
  return s <= halfN;
}

/**
 * Turns CKM_ECDSA's raw `r||s` (PKCS#11 v2.40 §2.3.6: two 32-byte big-endian integers for P-256)
 * into the low-S form: s > n/2 becomes n − s, which verifies the same.
 *
 * @returns `r||s` with low S, 64 bytes (IEEE P1363, what JWS ES256 uses)
 */
export function normalizeP256Signature(raw: Uint8Array): Buffer {
  if (raw.length !== 64) {
    throw new HsmError(HsmErrorCode.MechanismFailed, `CKM_ECDSA returned ${raw.length} bytes, expected 64 for P-256`);
  }
  const r = bytesToBigInt(raw.subarray(0, 32));
  let s = bytesToBigInt(raw.subarray(32));
  if (r === 0n || r >= n || s === 0n || s >= n) {
    throw new HsmError(HsmErrorCode.MechanismFailed, 'CKM_ECDSA returned r or s outside [1, n-1]');
  }
  if (!isLowS(s)) s = n - s;
  return Buffer.concat([Buffer.from(raw.subarray(0, 32)), bigIntTo32(s)]);
}

/** `r||s` (64 bytes) → DER `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` (SEC 1 §C.5). */
export function p1363ToDer(rs: Uint8Array): Buffer {
  const r = derInteger(Buffer.from(rs.subarray(0, 32)));
  const s = derInteger(Buffer.from(rs.subarray(32, 64)));
  // At most 2 × 35 bytes, so the short length form always fits (X.690 §8.1.3.4).
  return Buffer.concat([Buffer.of(0x30, r.length + s.length), r, s]);
}

/** Reads r and s from a DER ECDSA signature; for tests and checks, not for untrusted parsing. */
export function derToRs(der: Uint8Array): { r: bigint; s: bigint } {
  const b = Buffer.from(der);
  if (b[0] !== 0x30 || b[1] !== b.length - 2 || b[2] !== 0x02) throw new Error('not a DER ECDSA signature');
  const rLen = b[3] ?? 0;
  const r = b.subarray(4, 4 + rLen);
  if (b[4 + rLen] !== 0x02) throw new Error('not a DER ECDSA signature');
  const sLen = b[5 + rLen] ?? 0;
  const s = b.subarray(6 + rLen, 6 + rLen + sLen);
  if (6 + rLen + sLen !== b.length) throw new Error('not a DER ECDSA signature');
  return { r: bytesToBigInt(r), s: bytesToBigInt(s) };
}

/**
 * CKA_EC_POINT is a DER OCTET STRING wrapping the SEC 1 §2.3.3 point (PKCS#11 v2.40 §2.3.3);
 * some modules return the bare point. Returns the 65-byte uncompressed point either way.
 */
export function uncompressedPointFromEcPoint(ecPoint: Uint8Array): Buffer {
  const b = Buffer.from(ecPoint);
  if (b.length === 67 && b[0] === 0x04 && b[1] === 0x41 && b[2] === 0x04) return b.subarray(2);
  if (b.length === 65 && b[0] === 0x04) return b;
  throw new HsmError(HsmErrorCode.MechanismFailed, 'CKA_EC_POINT is not an uncompressed P-256 point');
}

/** Fabric's CKA_ID convention (bccsp/pkcs11): SHA-256 of the uncompressed EC point. */
export function fabricKeyId(point: Uint8Array): Buffer {
  return createHash('sha256').update(point).digest();
}

/** Public key material in the forms callers need. */
export interface PublicKeyForms {
  /** Uncompressed SEC 1 point, 65 bytes. */
  readonly point: Uint8Array;
  /** DER SubjectPublicKeyInfo. */
  readonly spki: Uint8Array;
  /** PEM `PUBLIC KEY`. */
  readonly pem: string;
  /** RFC 7517 JWK (`kty: EC`, `crv: P-256`). */
  readonly jwk: JsonWebKey;
  /** A node:crypto key for `crypto.verify`, X.509 and JOSE. */
  readonly keyObject: KeyObject;
}

/**
 * Builds the public-key forms from an uncompressed point. node:crypto (OpenSSL) checks that the
 * point lies on the curve, so a hostile peer key is refused here (SEC 1 §3.2.2.1).
 */
export function publicKeyForms(point: Uint8Array): PublicKeyForms {
  if (point.length !== 65 || point[0] !== 0x04) {
    throw new HsmError(HsmErrorCode.InvalidArgument, 'a P-256 public key must be a 65-byte uncompressed point');
  }
  let keyObject: KeyObject;
  const spki = Buffer.concat([spkiPrefix, point]);
  try {
    keyObject = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch (err) {
    throw new HsmError(HsmErrorCode.InvalidArgument, 'the point is not on P-256', undefined, { cause: err });
  }
  return {
    point: Buffer.from(point),
    spki,
    pem: keyObject.export({ format: 'pem', type: 'spki' }).toString(),
    jwk: keyObject.export({ format: 'jwk' }),
    keyObject,
  };
}

/** The uncompressed point of a P-256 node:crypto public key (via its JWK coordinates). */
export function pointFromKeyObject(keyObject: KeyObject): Buffer {
  const key = keyObject.type === 'private' ? createPublicKey(keyObject) : keyObject;
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new HsmError(HsmErrorCode.InvalidArgument, 'the peer key must be a P-256 EC key');
  }
  const jwk = key.export({ format: 'jwk' });
  if (jwk.x === undefined || jwk.y === undefined) {
    throw new HsmError(HsmErrorCode.InvalidArgument, 'the peer key has no coordinates');
  }
  return Buffer.concat([Buffer.of(0x04), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]);
}
