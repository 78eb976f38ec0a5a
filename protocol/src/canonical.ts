import { createHash } from 'node:crypto';

import { ErrorCode, LedgerError } from './errors.js';
import { duplicateMember } from './json-text.js';

/** Deepest nesting accepted in a request; deeper documents are hostile, not useful. */
export const MaxJsonDepth = 16;

/**
 * Canonical JSON: object keys sorted by UTF-16 code units, no whitespace, numbers and strings as
 * `JSON.stringify` writes them (the RFC 8785 JCS rules for the values this ledger stores).
 * Every record is written with it, and every JWS payload must be exactly these bytes.
 */
export function canonicalJson(value: unknown): string {
  return encode(value, 0);
}

function encode(value: unknown, depth: number): string {
  if (depth > MaxJsonDepth) {
    throw new LedgerError(ErrorCode.InvalidArgument, `JSON nested deeper than ${MaxJsonDepth} levels`);
  }
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) {
        throw new LedgerError(ErrorCode.InvalidArgument, 'non-finite number in JSON');
      }
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) {
        return `[${value.map((item: unknown) => encode(item, depth + 1)).join(',')}]`;
      }
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record).sort();
      const members: string[] = [];
      for (const key of keys) {
        const member = record[key];
        if (member === undefined) continue;
        members.push(`${JSON.stringify(key)}:${encode(member, depth + 1)}`);
      }
      return `{${members.join(',')}}`;
    }
    default:
      throw new LedgerError(ErrorCode.InvalidArgument, `value of type ${typeof value} cannot be written as JSON`);
  }
}

/** UTF-8 bytes of the canonical JSON. */
export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), 'utf8');
}

/**
 * Parses untrusted JSON text: MALFORMED_JSON on a syntax error or a repeated member name (I-JSON,
 * RFC 7493 §2.3), INVALID_ARGUMENT when too large or deep.
 */
export function parseJson(text: unknown, what: string, maxBytes: number): unknown {
  if (typeof text !== 'string') {
    throw new LedgerError(ErrorCode.InvalidArgument, `${what} must be a string`);
  }
  if (Buffer.byteLength(text, 'utf8') > maxBytes) {
    throw new LedgerError(ErrorCode.InvalidArgument, `${what} is larger than ${maxBytes} bytes`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new LedgerError(ErrorCode.MalformedJson, `${what} is not valid JSON`);
  }
  const repeated = duplicateMember(text);
  if (repeated !== null) {
    throw new LedgerError(ErrorCode.MalformedJson, `${what} has the member ${JSON.stringify(repeated)} more than once`);
  }
  // Encoding once checks depth and finiteness before any validator walks the value.
  encode(value, 0);
  return value;
}

/** Lowercase hex SHA-256. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
