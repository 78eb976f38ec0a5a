import { createHash, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import inspector from 'node:inspector';
import { AgentError } from '../errors';
import { SignJWT } from 'jose';
import {
  DebugStatus,
  isId,
  type EvidenceClaims,
  EvidenceProfile,
  EvidenceType,
  type FileMeasurement,
  MeasurementsContentFormat,
  SemverScheme,
  UeidTypeRand,
} from '@keyfleet/protocol';

/** Why the agent could not build evidence. */
export const EvidenceErrorCode = {
  /** An option is missing, of the wrong shape, or inconsistent (key and certificate differ). */
  InvalidOption: 'INVALID_OPTION',
  /** A file to measure could not be read. */
  FileUnreadable: 'FILE_UNREADABLE',
} as const;
export type EvidenceErrorCode = (typeof EvidenceErrorCode)[keyof typeof EvidenceErrorCode];

/** Why evidence could not be built: an {@link AgentError} with one of the {@link EvidenceErrorCode}s. */
export class EvidenceError extends AgentError {
  override readonly name: string = 'EvidenceError';
  declare readonly code: EvidenceErrorCode;

  constructor(code: EvidenceErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, undefined, options);
  }
}

/** A file to measure under a reference-value name; a bare path is measured under its base name. */
export type MeasuredFile = string | { readonly name: string; readonly path: string };

export interface EvidenceOptions {
  /** The device's certified P-256 private key. */
  readonly deviceKey: KeyObject;
  /** The device certificate, PEM, optionally followed by the device CA certificate. */
  readonly certificateChainPem: string;
  /** The challenge nonce exactly as the gateway issued it. */
  readonly nonce: string;
  readonly measuredFiles: readonly MeasuredFile[];
  /** Hardware model, at most 32 bytes of UTF-8 (RFC 9711 §4.2.5). */
  readonly hwmodel: string;
  readonly swname: string;
  readonly swversion: string;
  /** A hardware UEID (RFC 9711 §4.2.1); by default 0x01 ‖ SHA-256 of the certificate's public key. */
  readonly ueid?: Uint8Array;
  /** By default `enabled` when a Node inspector is open or requested, else `disabled`. */
  readonly dbgstat?: DebugStatus;
  readonly now?: () => Date;
}

const semver = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;
const pemBlock = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----/g;
const b64url = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');

/** SHA-256 of each file, streamed; names must be unique reference-value names. */
export async function measureFiles(files: readonly MeasuredFile[]): Promise<FileMeasurement[]> {
  if (files.length === 0 || files.length > 256) {
    throw new EvidenceError(EvidenceErrorCode.InvalidOption, 'measure between 1 and 256 files');
  }
  // Every name is checked before any file is read, so a bad list fails the same way every time.
  const named = files.map((file) => (typeof file === 'string' ? { name: basename(file), path: file } : file));
  const seen = new Set<string>();
  for (const { name } of named) {
    if (!isId(name)) {
      throw new EvidenceError(EvidenceErrorCode.InvalidOption, `measurement name ${JSON.stringify(name)} is invalid`);
    }
    if (seen.has(name)) {
      throw new EvidenceError(EvidenceErrorCode.InvalidOption, `two measured files are named ${name}`);
    }
    seen.add(name);
  }
  const out: FileMeasurement[] = [];
  for (const { name, path } of named) out.push({ name, alg: 'sha-256', digest: await sha256File(path) });
  return out;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch (err) {
    throw new EvidenceError(EvidenceErrorCode.FileUnreadable, `cannot read measured file ${path}`, { cause: err });
  }
  return hash.digest('hex');
}

/** The certificates of a PEM chain as `x5c` values (RFC 7515 §4.1.6: standard base64 DER, leaf first). */
export function x5cOf(chainPem: string): { x5c: string[]; leaf: X509Certificate } {
  const blocks = chainPem.match(pemBlock) ?? [];
  if (blocks.length === 0 || blocks.length > 2) {
    throw new EvidenceError(EvidenceErrorCode.InvalidOption, 'the chain must hold the device certificate (and CA)');
  }
  let certificates: X509Certificate[];
  try {
    certificates = blocks.map((pem) => new X509Certificate(pem));
  } catch (err) {
    throw new EvidenceError(EvidenceErrorCode.InvalidOption, 'the chain holds an unreadable certificate', {
      cause: err,
    });
  }
  return { x5c: certificates.map((cert) => cert.raw.toString('base64')), leaf: certificates[0] as X509Certificate };
}

/** Whether a debugger can attach to this process: the only debug state a Node agent can observe itself. */
export function observedDebugStatus(): DebugStatus {
  const requested = process.execArgv.some((arg) => /^--inspect(?:-brk|-port|-wait)?(?:=|$)/.test(arg));
  return requested || inspector.url() !== undefined ? DebugStatus.Enabled : DebugStatus.Disabled;
}

/**
 * Builds keyfleet evidence: an Entity Attestation Token (RFC 9711) as a JWT signed ES256 with the
 * device's certified key, the certificate chain in `x5c`, and the digests of `measuredFiles`.
 */
export async function collectEvidence(options: EvidenceOptions): Promise<string> {
  const { deviceKey, nonce } = options;
  if (deviceKey.type !== 'private' || deviceKey.asymmetricKeyType !== 'ec') {
    throw new EvidenceError(EvidenceErrorCode.InvalidOption, 'deviceKey must be an EC private key');
  }
  if (!/^[A-Za-z0-9_-]{10,74}$/.test(nonce)) {
    throw new EvidenceError(EvidenceErrorCode.InvalidOption, 'nonce must be the base64url challenge (RFC 9711 §4.1)');
  }
  const { x5c, leaf } = x5cOf(options.certificateChainPem);
  const spki = createPublicKey(deviceKey).export({ type: 'spki', format: 'der' });
  if (!spki.equals(leaf.publicKey.export({ type: 'spki', format: 'der' }))) {
    throw new EvidenceError(EvidenceErrorCode.InvalidOption, 'deviceKey is not the key of the device certificate');
  }
  const hwmodel = Buffer.from(options.hwmodel, 'utf8');
  if (hwmodel.length < 1 || hwmodel.length > 32) {
    throw new EvidenceError(EvidenceErrorCode.InvalidOption, 'hwmodel must be 1 to 32 bytes (RFC 9711 §4.2.5)');
  }
  if (options.swname === '' || options.swversion === '') {
    throw new EvidenceError(EvidenceErrorCode.InvalidOption, 'swname and swversion must not be empty');
  }
  const ueid = options.ueid ?? Buffer.concat([Buffer.of(UeidTypeRand), createHash('sha256').update(spki).digest()]);
  const measured = await measureFiles(options.measuredFiles);
  const claims: EvidenceClaims = {
    eat_profile: EvidenceProfile,
    eat_nonce: nonce,
    ueid: b64url(ueid),
    iat: Math.floor((options.now ?? (() => new Date()))().getTime() / 1000),
    hwmodel: b64url(hwmodel),
    swname: options.swname,
    swversion: semver.test(options.swversion) ? [options.swversion, SemverScheme] : [options.swversion],
    dbgstat: options.dbgstat ?? observedDebugStatus(),
    measurements: [[MeasurementsContentFormat, b64url(Buffer.from(JSON.stringify(measured), 'utf8'))]],
  };
  return new SignJWT({ ...claims }).setProtectedHeader({ alg: 'ES256', typ: EvidenceType, x5c }).sign(deviceKey);
}
