import { HsmError, HsmErrorCode } from './hsm-error.js';

/** The object types of RFC 7512 §2.3 (`type=`). */
export type Pkcs11ObjectType = 'public' | 'private' | 'cert' | 'secret-key' | 'data';

/** A parsed PKCS#11 URI (RFC 7512). Only attributes present in the URI are set. */
export interface Pkcs11Uri {
  readonly token?: string;
  readonly manufacturer?: string;
  readonly serial?: string;
  readonly model?: string;
  readonly object?: string;
  readonly type?: Pkcs11ObjectType;
  /** CKA_ID, raw bytes (RFC 7512 §2.3: `id` is percent-encoded binary). */
  readonly id?: Uint8Array;
  readonly slotId?: number;
  readonly slotDescription?: string;
  readonly slotManufacturer?: string;
  readonly libraryManufacturer?: string;
  readonly libraryDescription?: string;
  readonly libraryVersion?: string;
  /** Query `module-path`: absolute path of the PKCS#11 library. */
  readonly modulePath?: string;
  /** Query `module-name`. */
  readonly moduleName?: string;
  /** Query `pin-source`: a file holding the PIN (`file:` URI or absolute path). */
  readonly pinSource?: string;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const maxUriLength = 4096;

// RFC 7512 §2.3 pk11-path-res-avoid and pk11-query-res-avoid on top of RFC 3986 unreserved.
const pathChars = /^[A-Za-z0-9\-._~:[\]@!$'()*+,=&;%]*$/;
const queryChars = /^[A-Za-z0-9\-._~:[\]@!$'()*+,=/?|&%]*$/;

const textPathAttrs = {
  token: 'token',
  manufacturer: 'manufacturer',
  serial: 'serial',
  model: 'model',
  object: 'object',
  'slot-description': 'slotDescription',
  'slot-manufacturer': 'slotManufacturer',
  'library-manufacturer': 'libraryManufacturer',
  'library-description': 'libraryDescription',
} as const satisfies Record<string, keyof Pkcs11Uri>;

// CK_TOKEN_INFO and CK_SLOT_INFO fields are fixed-width, blank-padded (PKCS#11 v2.40 §3.2).
const maxBytes: Readonly<Record<string, number>> = {
  token: 32,
  manufacturer: 32,
  serial: 16,
  model: 16,
  'slot-description': 64,
  'slot-manufacturer': 32,
  'library-manufacturer': 32,
  'library-description': 32,
  object: 256,
};

const objectTypes: ReadonlySet<string> = new Set<Pkcs11ObjectType>(['public', 'private', 'cert', 'secret-key', 'data']);

function fail(message: string): never {
  throw new HsmError(HsmErrorCode.InvalidUri, `invalid PKCS#11 URI: ${message}`);
}

/** Percent-decodes (RFC 3986 §2.1) to bytes; rejects malformed escapes. */
function percentDecode(raw: string, attr: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c !== 0x25) {
      out.push(c);
      continue;
    }
    const hex = raw.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) fail(`malformed percent-encoding in "${attr}"`);
    out.push(parseInt(hex, 16));
    i += 2;
  }
  return Buffer.from(out);
}

/** Decodes a text attribute: UTF-8, no control characters (a NUL would truncate a C string). */
function decodeText(raw: string, attr: string): string {
  const bytes = percentDecode(raw, attr);
  if (bytes.length === 0) fail(`"${attr}" is empty`);
  const limit = maxBytes[attr];
  if (limit !== undefined && bytes.length > limit) fail(`"${attr}" is longer than ${limit} bytes`);
  const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let value: string;
  try {
    value = text.decode(bytes);
  } catch {
    return fail(`"${attr}" is not valid UTF-8`);
  }
  // eslint-disable-next-line no-control-regex -- rejecting control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(value)) fail(`"${attr}" contains a control character`);
  return value;
}

function splitAttr(part: string, where: string): [string, string] {
  const eq = part.indexOf('=');
  if (eq <= 0) fail(`${where} attribute "${part.slice(0, 32)}" has no name=value form`);
  return [part.slice(0, eq), part.slice(eq + 1)];
}

/**
 * Parses a PKCS#11 URI (RFC 7512) strictly: unknown standard attributes, duplicates, fragments,
 * malformed escapes, control characters and `pin-value` are all rejected. A PIN never belongs in
 * a URI here: URIs are logged and written to the ledger.
 *
 * @throws HsmError `HSM_INVALID_URI`
 */
export function parsePkcs11Uri(uri: string): Pkcs11Uri {
  if (uri.length > maxUriLength) fail(`longer than ${maxUriLength} characters`);
  if (!/^pkcs11:/i.test(uri)) fail('scheme must be "pkcs11:"');
  const rest = uri.slice('pkcs11:'.length);
  if (rest.includes('#')) fail('fragments are not allowed');
  const q = rest.indexOf('?');
  const path = q === -1 ? rest : rest.slice(0, q);
  const query = q === -1 ? undefined : rest.slice(q + 1);
  if (!pathChars.test(path)) fail('path contains a character that must be percent-encoded');
  if (query !== undefined && !queryChars.test(query)) fail('query contains a character that must be percent-encoded');

  const result: Mutable<Pkcs11Uri> = {};
  const seen = new Set<string>();

  if (path !== '') {
    for (const part of path.split(';')) {
      const [name, raw] = splitAttr(part, 'path');
      if (seen.has(name)) fail(`path attribute "${name}" appears twice`);
      seen.add(name);
      if (name in textPathAttrs) {
        result[textPathAttrs[name as keyof typeof textPathAttrs]] = decodeText(raw, name);
      } else if (name === 'id') {
        const id = percentDecode(raw, name);
        if (id.length === 0 || id.length > 256) fail('"id" must be 1 to 256 bytes');
        result.id = new Uint8Array(id);
      } else if (name === 'type') {
        const type = decodeText(raw, name);
        if (!objectTypes.has(type)) fail(`"type" must be one of ${[...objectTypes].join(', ')}`);
        result.type = type as Pkcs11ObjectType;
      } else if (name === 'slot-id') {
        const value = decodeText(raw, name);
        // CK_SLOT_ID is a CK_ULONG; a decimal without leading zeros keeps it canonical.
        if (!/^(0|[1-9][0-9]{0,9})$/.test(value) || Number(value) > 0xffffffff)
          fail('"slot-id" must be a decimal CK_ULONG');
        result.slotId = Number(value);
      } else if (name === 'library-version') {
        const value = decodeText(raw, name);
        if (!/^[0-9]{1,3}(\.[0-9]{1,3})?$/.test(value)) fail('"library-version" must be M or M.N');
        result.libraryVersion = value;
      } else if (name.startsWith('x-') && name.length > 2) {
        decodeText(raw, name); // vendor attributes are allowed (§2.3) but must still be well-formed
      } else {
        fail(`unknown path attribute "${name.slice(0, 32)}"`);
      }
    }
  }

  if (query !== undefined && query !== '') {
    for (const part of query.split('&')) {
      const [name, raw] = splitAttr(part, 'query');
      if (seen.has(`?${name}`)) fail(`query attribute "${name}" appears twice`);
      seen.add(`?${name}`);
      if (name === 'pin-value') {
        fail('"pin-value" is refused: give the PIN through an environment variable or a file');
      } else if (name === 'pin-source') {
        const value = decodeText(raw, name);
        const filePath = value.startsWith('file:') ? fileUriPath(value) : value;
        if (!filePath.startsWith('/')) fail('"pin-source" must be an absolute path or a file: URI');
        result.pinSource = filePath;
      } else if (name === 'module-path') {
        const value = decodeText(raw, name);
        if (!value.startsWith('/') || value.split('/').includes('..')) fail('"module-path" must be an absolute path');
        result.modulePath = value;
      } else if (name === 'module-name') {
        const value = decodeText(raw, name);
        if (!/^[A-Za-z0-9._+-]+$/.test(value)) fail('"module-name" must be a bare library name');
        result.moduleName = value;
      } else if (name.startsWith('x-') && name.length > 2) {
        decodeText(raw, name);
      } else {
        fail(`unknown query attribute "${name.slice(0, 32)}"`);
      }
    }
  }
  return result;
}

function fileUriPath(value: string): string {
  // file:/abs, file:///abs and file://localhost/abs (RFC 8089 §2); other hosts are refused.
  const m = /^file:(?:\/\/(?:localhost)?(?=\/)|(?!\/\/))(\/.*)$/.exec(value);
  if (m?.[1] === undefined) return fail('"pin-source" file: URI must name a local absolute path');
  return m[1];
}

function encode(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-._~]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * Formats the URI of an object on a token, e.g. for the ledger's key-version record.
 * Everything outside RFC 3986 `unreserved` is percent-encoded, so the result always parses back.
 */
export function formatPkcs11Uri(parts: {
  readonly token?: string;
  readonly object?: string;
  readonly id?: Uint8Array;
  readonly type?: Pkcs11ObjectType;
}): string {
  const attrs: string[] = [];
  const utf8 = (s: string): Uint8Array => Buffer.from(s, 'utf8');
  if (parts.token !== undefined) attrs.push(`token=${encode(utf8(parts.token))}`);
  if (parts.object !== undefined) attrs.push(`object=${encode(utf8(parts.object))}`);
  if (parts.id !== undefined) attrs.push(`id=${encode(parts.id)}`);
  if (parts.type !== undefined) attrs.push(`type=${parts.type}`);
  return `pkcs11:${attrs.join(';')}`;
}
