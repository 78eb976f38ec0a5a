import { createHash, X509Certificate, type KeyObject } from 'node:crypto';
import { compactVerify } from 'jose';
import {
  type DigestAlgorithm,
  DigestHexLength,
  duplicateMember,
  EvidenceProfile,
  EvidenceType,
  type FileMeasurement,
  isDeviceId,
  isId,
  MeasurementsContentFormat,
  PrintableTextPattern,
} from '@keyfleet/protocol';
import { AttestationError, AttestationErrorCode } from './errors';

/** Largest evidence accepted, in bytes: room for 256 measured files. */
export const MaxEvidenceBytes = 128 * 1024;

const digestLength = DigestHexLength;

/** Evidence whose signature, certificate chain, shape and freshness were checked. */
export interface VerifiedEvidence {
  /** From the certificate's `urn:keyfleet:device:` subjectAltName. */
  readonly deviceId: string;
  /** SHA-256 of the device certificate's DER, hex: compared with the ledger's CertFingerprint. */
  readonly certificateFingerprint: string;
  /** SHA-256 of the evidence JWT's ASCII bytes, hex: the ledger's EvidenceDigest. */
  readonly evidenceDigest: string;
  readonly nonce: string;
  readonly ueid: Buffer;
  readonly iat: number;
  readonly hwmodel: Buffer;
  readonly swname: string;
  readonly swversion: readonly [string] | readonly [string, number];
  readonly dbgstat: number;
  readonly measurements: readonly FileMeasurement[];
}

export interface EvidenceVerifierOptions {
  readonly deviceCaCertificatePem: string;
  readonly now: () => Date;
  /** Oldest acceptable `iat`, seconds before now; default 300. */
  readonly maxAgeSeconds?: number;
  /** Tolerated clock skew for `iat` in the future, seconds; default 60. */
  readonly skewSeconds?: number;
}

const compactJws = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/;
const base64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const base64url = /^[A-Za-z0-9_-]*$/;
const allowedHeader = new Set(['alg', 'typ', 'x5c']);
const requiredClaims = [
  'eat_profile',
  'eat_nonce',
  'ueid',
  'iat',
  'hwmodel',
  'swname',
  'swversion',
  'dbgstat',
  'measurements',
] as const;
const allowedClaims = new Set<string>([...requiredClaims, 'exp']);

const malformed = (message: string): never => {
  throw new AttestationError(AttestationErrorCode.EvidenceMalformed, message);
};
const invalidClaim = (message: string): never => {
  throw new AttestationError(AttestationErrorCode.ClaimsInvalid, message);
};
const untrusted = (message: string): never => {
  throw new AttestationError(AttestationErrorCode.CertificateUntrusted, message);
};

function decodeJson(segment: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    const bytes = Buffer.from(segment, 'base64url');
    if (bytes.toString('base64url') !== segment) malformed(`the ${what} is not canonical base64url`);
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    value = JSON.parse(text);
    const repeated = duplicateMember(text);
    if (repeated !== null) malformed(`the ${what} has the member ${JSON.stringify(repeated)} more than once`);
  } catch (err) {
    if (err instanceof AttestationError) throw err;
    malformed(`the ${what} is not UTF-8 JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) malformed(`the ${what} is not an object`);
  return value as Record<string, unknown>;
}

/** A canonical base64url byte string of `min` to `max` bytes. */
function bytesClaim(value: unknown, name: string, min: number, max: number): Buffer {
  if (typeof value !== 'string' || !base64url.test(value)) invalidClaim(`${name} must be a base64url string`);
  const text = value as string;
  const bytes = Buffer.from(text, 'base64url');
  if (bytes.toString('base64url') !== text) invalidClaim(`${name} is not canonical base64url`);
  if (bytes.length < min || bytes.length > max) invalidClaim(`${name} must be ${min} to ${max} bytes`);
  return bytes;
}

function intClaim(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    invalidClaim(`${name} must be an integer from ${min} to ${max}`);
  }
  return value as number;
}

function textClaim(value: unknown, name: string, max: number): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max || !PrintableTextPattern.test(value)) {
    invalidClaim(`${name} must be printable text of 1 to ${max} characters`);
  }
  return value as string;
}

/** RFC 9711 §4.2.1: RAND (0x01) of 16, 24 or 32 bytes, EUI (0x02) of 6 or 8, IMEI (0x03) of 14. */
function ueidClaim(value: unknown): Buffer {
  const ueid = bytesClaim(value, 'ueid', 7, 33);
  const sizes: Readonly<Record<number, readonly number[]>> = { 1: [16, 24, 32], 2: [6, 8], 3: [14] };
  if (!(sizes[ueid[0] ?? 0] ?? []).includes(ueid.length - 1)) invalidClaim('ueid has an unknown type or length');
  return ueid;
}

function swversionClaim(value: unknown): readonly [string] | readonly [string, number] {
  if (!Array.isArray(value) || value.length < 1 || value.length > 2) {
    return invalidClaim('swversion must be [version] or [version, scheme]');
  }
  const items: unknown[] = value;
  const version = textClaim(items[0], 'swversion[0]', 64);
  if (items.length === 1) return [version];
  return [version, intClaim(items[1], 'swversion[1]', -256, 65535)];
}

function measurementsClaim(value: unknown): FileMeasurement[] {
  if (!Array.isArray(value) || value.length !== 1) {
    return invalidClaim('measurements must hold exactly one [content-format, content] entry');
  }
  const entry: unknown = value[0];
  if (!Array.isArray(entry) || entry.length !== 2 || entry[0] !== MeasurementsContentFormat) {
    return invalidClaim(`measurements[0] must be [${MeasurementsContentFormat}, base64url JSON]`);
  }
  const content = bytesClaim(entry[1], 'measurements[0][1]', 2, 96 * 1024);
  let files: unknown;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(content);
    files = JSON.parse(text);
  } catch {
    return invalidClaim('measurements content is not UTF-8 JSON');
  }
  const repeated = duplicateMember(text);
  if (repeated !== null) invalidClaim(`measurements content has the member ${JSON.stringify(repeated)} more than once`);
  if (!Array.isArray(files) || files.length < 1 || files.length > 256) {
    return invalidClaim('measurements content must be an array of 1 to 256 files');
  }
  const names = new Set<string>();
  return files.map((file: unknown, index): FileMeasurement => {
    const where = `measurements file ${index}`;
    if (typeof file !== 'object' || file === null || Array.isArray(file))
      return invalidClaim(`${where} is not an object`);
    const { name, alg, digest, ...rest } = file as Record<string, unknown>;
    if (Object.keys(rest).length > 0) invalidClaim(`${where} has unknown fields`);
    if (!isId(name)) invalidClaim(`${where} has an invalid name`);
    if (typeof alg !== 'string' || !Object.hasOwn(digestLength, alg)) invalidClaim(`${where} has an unknown alg`);
    const length = digestLength[alg as DigestAlgorithm];
    if (typeof digest !== 'string' || digest.length !== length || !/^[0-9a-f]+$/.test(digest)) {
      invalidClaim(`${where} digest must be ${length} lower-case hex digits`);
    }
    if (names.has(name as string)) invalidClaim(`${where} repeats the name ${name as string}`);
    names.add(name as string);
    return { name: name as string, alg: alg as DigestAlgorithm, digest: digest as string };
  });
}

/** The device certificate from `x5c`, checked against the device CA. */
function deviceCertificate(x5c: unknown, ca: X509Certificate, now: Date): { cert: X509Certificate; deviceId: string } {
  if (!Array.isArray(x5c) || x5c.length < 1 || x5c.length > 2) {
    return malformed('x5c must hold the device certificate and at most the CA certificate');
  }
  const ders = (x5c as unknown[]).map((value) => {
    if (typeof value !== 'string' || value.length > 8192 || !base64.test(value)) {
      return malformed('x5c entries must be base64 DER certificates (RFC 7515 §4.1.6)');
    }
    return Buffer.from(value, 'base64');
  });
  if (ders[1] !== undefined && !ders[1].equals(ca.raw)) untrusted('x5c[1] is not the device CA certificate');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(ders[0] as Buffer);
  } catch {
    return untrusted('x5c[0] is not an X.509 certificate');
  }
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) untrusted('the certificate was not issued by the device CA');
  if (cert.ca) untrusted('the certificate is a CA certificate');
  if (now < new Date(cert.validFrom) || now > new Date(cert.validTo)) untrusted('the certificate is not valid now');
  if (cert.publicKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') untrusted('the certificate key is not P-256');
  const san = /^URI:urn:keyfleet:device:([^,\s]+)$/.exec(cert.subjectAltName ?? '');
  const deviceId = san?.[1];
  if (!isDeviceId(deviceId)) untrusted('the certificate names no device');
  return { cert, deviceId: deviceId as string };
}

/**
 * Verifies keyfleet evidence in the order that spends least on hostile input: shape, header,
 * certificate chain to the device CA, signature, then the claims and their freshness. The nonce,
 * the ledger and the appraisal come after, in the verifier.
 */
export function newEvidenceVerifier(options: EvidenceVerifierOptions): {
  verify(evidence: unknown): Promise<VerifiedEvidence>;
} {
  const ca = new X509Certificate(options.deviceCaCertificatePem);
  const maxAge = options.maxAgeSeconds ?? 300;
  const skew = options.skewSeconds ?? 60;

  return {
    async verify(evidence) {
      if (typeof evidence !== 'string') return malformed('evidence must be a string');
      if (evidence.length > MaxEvidenceBytes) malformed(`evidence is larger than ${MaxEvidenceBytes} bytes`);
      const parts = compactJws.exec(evidence);
      if (parts === null) return malformed('evidence is not a compact JWS');
      const header = decodeJson(parts[1] as string, 'protected header');
      for (const name of Object.keys(header)) {
        if (!allowedHeader.has(name)) malformed(`header parameter ${name} is not accepted`);
      }
      if (header.alg !== 'ES256') malformed('alg must be ES256');
      if (header.typ !== EvidenceType) malformed(`typ must be ${EvidenceType}`);
      const now = options.now();
      const { cert, deviceId } = deviceCertificate(header.x5c, ca, now);
      const key: KeyObject = cert.publicKey;
      try {
        await compactVerify(evidence, key, { algorithms: ['ES256'] });
      } catch {
        throw new AttestationError(
          AttestationErrorCode.EvidenceSignatureInvalid,
          'the evidence signature does not verify',
        );
      }

      const claims = decodeJson(parts[2] as string, 'payload');
      for (const name of Object.keys(claims)) {
        if (!allowedClaims.has(name)) invalidClaim(`claim ${name} is not part of the keyfleet profile`);
      }
      for (const name of requiredClaims) {
        if (!Object.hasOwn(claims, name)) invalidClaim(`claim ${name} is missing`);
      }
      if (claims.eat_profile !== EvidenceProfile) invalidClaim(`eat_profile must be ${EvidenceProfile}`);
      if (typeof claims.eat_nonce !== 'string' || !/^[A-Za-z0-9_-]{10,74}$/.test(claims.eat_nonce)) {
        invalidClaim('eat_nonce must be 10 to 74 base64url characters (RFC 9711 §4.1)');
      }
      const nowSeconds = Math.floor(now.getTime() / 1000);
      const iat = intClaim(claims.iat, 'iat', 0, 2 ** 40);
      if (iat > nowSeconds + skew) {
        throw new AttestationError(AttestationErrorCode.EvidenceNotFresh, 'iat lies in the future');
      }
      if (iat < nowSeconds - maxAge) {
        throw new AttestationError(AttestationErrorCode.EvidenceNotFresh, `iat is older than ${maxAge} seconds`);
      }
      if (claims.exp !== undefined && intClaim(claims.exp, 'exp', 0, 2 ** 40) <= nowSeconds) {
        throw new AttestationError(AttestationErrorCode.EvidenceNotFresh, 'the evidence has expired');
      }
      return {
        deviceId,
        certificateFingerprint: createHash('sha256').update(cert.raw).digest('hex'),
        evidenceDigest: createHash('sha256').update(evidence, 'ascii').digest('hex'),
        nonce: claims.eat_nonce as string,
        ueid: ueidClaim(claims.ueid),
        iat,
        hwmodel: bytesClaim(claims.hwmodel, 'hwmodel', 1, 32),
        swname: textClaim(claims.swname, 'swname', 128),
        swversion: swversionClaim(claims.swversion),
        dbgstat: intClaim(claims.dbgstat, 'dbgstat', 0, 4),
        measurements: measurementsClaim(claims.measurements),
      };
    },
  };
}
