/**
 * The application ciphertext envelope (docs/key-service.md §2): a JWE compact serialization
 * (RFC 7516 §7.1) with `alg: dir`, `enc: A256GCM`, whose protected header names the KeyID and the
 * key version. The header is the GCM AAD (RFC 7516 §5.1 step 14), so a ciphertext relabelled to
 * another key or version fails its tag. Pure: no HSM, no ledger.
 */

import { isId } from '@keyfleet/protocol';
import { duplicateMember } from '@keyfleet/protocol';

/** Format version carried in the header (`kfv`); a parser refuses any other. */
export const EnvelopeFormatVersion = 1;

export interface EnvelopeHeader {
  readonly alg: 'dir';
  readonly enc: 'A256GCM';
  /** The ledger KeyID. */
  readonly kid: string;
  /** keyfleet envelope format version. */
  readonly kfv: typeof EnvelopeFormatVersion;
  /** The key version the ciphertext was made with. */
  readonly ver: number;
}

export interface Envelope {
  readonly header: EnvelopeHeader;
  /** The first compact part exactly as received: it is what the tag authenticates. */
  readonly protectedHeader: string;
  readonly iv: Uint8Array;
  readonly ciphertext: Uint8Array;
  readonly tag: Uint8Array;
}

const b64url = /^[A-Za-z0-9_-]*$/;
const headerMembers = ['alg', 'enc', 'kfv', 'kid', 'ver']; // sorted
/** Longest accepted envelope: 1 MiB of ciphertext in base64url plus the header. */
export const MaxEnvelopeLength = 1_400_000;

/** The protected header, base64url of its JSON with members in a fixed order. */
export function encodeHeader(keyId: string, version: number): string {
  const header: EnvelopeHeader = { alg: 'dir', enc: 'A256GCM', kid: keyId, kfv: EnvelopeFormatVersion, ver: version };
  return Buffer.from(JSON.stringify(header), 'utf8').toString('base64url');
}

/**
 * The GCM additional data: ASCII(protected header), and when the caller gave its own AAD,
 * `.` ‖ base64url(aad) after it — RFC 7516 §5.1 step 14 (the JSON serialization's `aad` rule).
 */
export function envelopeAad(protectedHeader: string, aad?: Uint8Array): Buffer {
  const text = aad === undefined ? protectedHeader : `${protectedHeader}.${Buffer.from(aad).toString('base64url')}`;
  return Buffer.from(text, 'ascii');
}

/** `header..iv.ciphertext.tag` (the encrypted-key part is empty for `dir`). */
export function formatEnvelope(protectedHeader: string, iv: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array) {
  const b = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');
  return `${protectedHeader}..${b(iv)}.${b(ciphertext)}.${b(tag)}`;
}

/** Parses an envelope, or returns why it is not one. Checks shape only: the HSM checks the tag. */
export function parseEnvelope(text: unknown): Envelope | string {
  if (typeof text !== 'string' || text.length === 0) return 'the ciphertext must be a non-empty string';
  if (text.length > MaxEnvelopeLength) return 'the ciphertext is too long';
  const parts = text.split('.');
  if (parts.length !== 5) return 'the ciphertext must have five dot-separated parts';
  const [protectedHeader, encryptedKey, iv, ciphertext, tag] = parts as [string, string, string, string, string];
  if (!parts.every((part) => b64url.test(part))) return 'the ciphertext parts must be base64url';
  if (encryptedKey !== '') return 'the encrypted-key part must be empty (alg dir)';
  let header: unknown;
  const headerText = Buffer.from(protectedHeader, 'base64url').toString('utf8');
  try {
    header = JSON.parse(headerText);
  } catch {
    return 'the protected header is not JSON';
  }
  // A repeated `kid` or `ver`: JSON.parse keeps the last, so the policy check and the tag's AAD
  // would name different things; refused before either runs.
  const repeated = duplicateMember(headerText);
  if (repeated !== null) return `the protected header has the member ${JSON.stringify(repeated)} more than once`;
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return 'the header is not an object';
  const h = header as Record<string, unknown>;
  const names = Object.keys(h).sort();
  if (names.length !== headerMembers.length || names.some((n, i) => n !== headerMembers[i])) {
    return `the header must have exactly ${headerMembers.join(', ')}`;
  }
  if (h.alg !== 'dir' || h.enc !== 'A256GCM') return 'only alg dir with enc A256GCM is accepted';
  if (h.kfv !== EnvelopeFormatVersion) return `unknown envelope format version ${String(h.kfv)}`;
  if (typeof h.kid !== 'string' || !isId(h.kid)) return 'kid is not a KeyID';
  if (typeof h.ver !== 'number' || !Number.isSafeInteger(h.ver) || h.ver < 1 || h.ver > 9_999_999) {
    return 'ver must be a positive integer';
  }
  const ivBytes = Buffer.from(iv, 'base64url');
  const tagBytes = Buffer.from(tag, 'base64url');
  if (ivBytes.length !== 12) return 'the IV must be 96 bits';
  if (tagBytes.length !== 16) return 'the tag must be 128 bits';
  return {
    header: { alg: 'dir', enc: 'A256GCM', kid: h.kid, kfv: EnvelopeFormatVersion, ver: h.ver },
    protectedHeader,
    iv: ivBytes,
    ciphertext: Buffer.from(ciphertext, 'base64url'),
    tag: tagBytes,
  };
}
