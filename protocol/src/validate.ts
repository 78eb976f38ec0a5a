import { ErrorCode, LedgerError } from './errors.js';
import { IdMaxLength, IdPattern, IdRuleText } from './ids.js';

/** A check turns an untrusted value into a typed one or throws INVALID_ARGUMENT naming the path. */
export type Check<T> = (value: unknown, path: string) => T;
export type Checked<C> = C extends Check<infer T> ? T : never;

/** Size limits on inputs, so no single request can bloat the world state. */
export const Limits = {
  RequestBytes: 64 * 1024,
  JwsBytes: 96 * 1024,
  ProofBytes: 16 * 1024,
  IdLength: IdMaxLength,
  TextLength: 256,
  Pkcs11UriLength: 512,
  PrincipalsPerPermission: 64,
  Measurements: 256,
  BatchContraindicated: 1000,
  BatchCount: 1_000_000,
  /** Members named one by one in a batch request (nonces, acknowledgements): ~220 bytes each at most. */
  BatchMembers: 256,
  PageSize: 200,
} as const;

function fail(path: string, message: string): never {
  throw new LedgerError(ErrorCode.InvalidArgument, `${path} ${message}`);
}

export function str(options: { min?: number; max: number; pattern?: RegExp; what?: string }): Check<string> {
  const min = options.min ?? 1;
  return (value, path) => {
    if (typeof value !== 'string') fail(path, 'must be a string');
    if (value.length < min) fail(path, `must have at least ${min} characters`);
    if (value.length > options.max) fail(path, `must have at most ${options.max} characters`);
    if (options.pattern !== undefined && !options.pattern.test(value)) {
      fail(path, `must be ${options.what ?? `a string matching ${options.pattern.source}`}`);
    }
    return value;
  };
}

export function int(min: number, max: number): Check<number> {
  return (value, path) => {
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) fail(path, 'must be an integer');
    if (value < min || value > max) fail(path, `must be between ${min} and ${max}`);
    return value;
  };
}

export function literal<T extends string>(expected: T): Check<T> {
  return (value, path) => {
    if (value !== expected) fail(path, `must be "${expected}"`);
    return expected;
  };
}

export function oneOf<T extends string>(values: readonly T[]): Check<T> {
  return (value, path) => {
    if (typeof value !== 'string' || !(values as readonly string[]).includes(value)) {
      fail(path, `must be one of ${values.join(', ')}`);
    }
    return value as T;
  };
}

export function arrayOf<T>(item: Check<T>, options: { min?: number; max: number; unique?: boolean }): Check<T[]> {
  return (value, path) => {
    if (!Array.isArray(value)) fail(path, 'must be an array');
    const items: unknown[] = value;
    if (items.length < (options.min ?? 0)) fail(path, `must have at least ${options.min ?? 0} items`);
    if (items.length > options.max) fail(path, `must have at most ${options.max} items`);
    const out = items.map((element, index) => item(element, `${path}[${index}]`));
    if (options.unique === true && new Set(out.map((element) => JSON.stringify(element))).size !== out.length) {
      fail(path, 'must not repeat an item');
    }
    return out;
  };
}

/** A field that may be absent or null; both read as null. */
export function nullable<T>(check: Check<T>): Check<T | null> {
  return (value, path) => (value === undefined || value === null ? null : check(value, path));
}

/** A plain object with exactly these fields: unknown fields are rejected, missing ones too unless nullable. */
export function object<S extends Record<string, Check<unknown>>>(shape: S): Check<{ [K in keyof S]: Checked<S[K]> }> {
  const allowed = new Set(Object.keys(shape));
  return (value, path) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(path, 'must be an object');
    const input = value as Record<string, unknown>;
    for (const key of Object.keys(input)) {
      if (!allowed.has(key)) fail(path, `has unknown field ${JSON.stringify(key)}`);
    }
    const out: Record<string, unknown> = {};
    for (const [key, check] of Object.entries(shape)) {
      const field = Object.prototype.hasOwnProperty.call(input, key) ? input[key] : undefined;
      const checked = check(field, `${path}.${key}`);
      out[key] = checked;
    }
    return out as { [K in keyof S]: Checked<S[K]> };
  };
}

/** Runs a check on a request, with `request` as the root of error paths. */
export function validate<T>(check: Check<T>, value: unknown, root = 'request'): T {
  return check(value, root);
}

// ---- field formats -------------------------------------------------------------------------

/** The one id grammar (ids.ts). */
export const id = str({ max: Limits.IdLength, pattern: IdPattern, what: IdRuleText });
/**
 * Free text (device metadata, reasons, descriptions) goes into records, events, logs and consoles,
 * so what could change how it or its neighbours read is refused: C0 and C1 controls and DEL
 * (U+0000-U+001F, U+007F-U+009F), the bidirectional formatting characters that "Trojan Source"
 * (CVE-2021-42574) uses (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069), line and paragraph
 * separators (U+2028, U+2029), the byte order mark (U+FEFF), and lone surrogates (a `u` pattern
 * matches U+D800-U+DFFF only unpaired), which no UTF-8 encoder can write. One rule: the gateway's
 * JSON schemas use its `source` (Ajv compiles patterns with the `u` flag, as here).
 */
export const PrintableTextPattern =
  // eslint-disable-next-line no-control-regex -- matching control characters is the point of this pattern
  /^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]*$/u;
export const text = str({ max: Limits.TextLength, pattern: PrintableTextPattern, what: 'printable text' });
export const sha256HexField = str({ min: 64, max: 64, pattern: /^[0-9a-f]{64}$/, what: '64 lowercase hex digits' });
export const hexDigest = str({ min: 64, max: 128, pattern: /^(?:[0-9a-f]{2})+$/, what: 'a lowercase hex digest' });
export const fingerprint = str({
  min: 6,
  max: 128,
  pattern: /^(?:[0-9a-f]{2})+$/,
  what: 'lowercase hex, 6-128 digits',
});
/** ISO 8601 UTC with milliseconds, as `Date.prototype.toISOString` writes it. */
export const isoTime: Check<string> = (value, path) => {
  const checked = str({ min: 24, max: 24, pattern: /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/ })(value, path);
  const parsed = Date.parse(checked);
  if (Number.isNaN(parsed) || new Date(parsed).toISOString() !== checked) fail(path, 'must be a valid UTC time');
  return checked;
};
/** RFC 7512 PKCS#11 URI; a PIN must never reach the ledger. */
export const pkcs11Uri: Check<string> = (value, path) => {
  const uri = str({ min: 8, max: Limits.Pkcs11UriLength, pattern: /^pkcs11:[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]*$/ })(
    value,
    path,
  );
  if (/(?:^|[;?&:])pin-(?:value|source)=/i.test(uri)) fail(path, 'must not carry a PIN (pin-value / pin-source)');
  return uri;
};
export const base64url = (length: number): Check<string> =>
  str({ min: length, max: length, pattern: /^[A-Za-z0-9_-]+$/, what: `${length} base64url characters` });
