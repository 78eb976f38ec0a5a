import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import secureJson from 'secure-json-parse';
import { duplicateMember } from '@keyfleet/protocol';
import { GatewayError, GatewayErrorCode, type GatewayCode } from '../errors';

/** Why a JSON body was refused: the `detail` of a 400 (or 415) answer. */
export const BodyErrorDetail = {
  /** Not JSON text (RFC 8259). */
  Malformed: 'JSON_MALFORMED',
  /** An object names a member twice (I-JSON, RFC 7493 §2.3). */
  DuplicateMember: 'JSON_DUPLICATE_MEMBER',
  /** A `__proto__` or `constructor.prototype` member (prototype poisoning). */
  ForbiddenMember: 'JSON_FORBIDDEN_MEMBER',
  /** The body starts with a byte order mark: RFC 8259 §8.1 forbids sending one. */
  ByteOrderMark: 'JSON_BYTE_ORDER_MARK',
  /** The bytes are not UTF-8 (RFC 8259 §8.1: JSON exchanged between systems MUST be UTF-8). */
  NotUtf8: 'JSON_NOT_UTF8',
  /** A `charset` other than UTF-8 in the Content-Type. */
  Charset: 'UNSUPPORTED_CHARSET',
} as const;
export type BodyErrorDetail = (typeof BodyErrorDetail)[keyof typeof BodyErrorDetail];

const boms: readonly Buffer[] = [
  Buffer.from([0xef, 0xbb, 0xbf]), // UTF-8
  Buffer.from([0xfe, 0xff]), // UTF-16 BE
  Buffer.from([0xff, 0xfe]), // UTF-16 LE (and UTF-32 LE)
  Buffer.from([0x00, 0x00, 0xfe, 0xff]), // UTF-32 BE
];

function refuse(detail: BodyErrorDetail, message: string): GatewayError {
  return new GatewayError(GatewayErrorCode.BadRequest, message, detail);
}

/** The `charset` parameter of a Content-Type (RFC 9110 §8.3.1), lower-cased, or undefined. */
function charsetOf(contentType: string | undefined): string | undefined {
  for (const parameter of (contentType ?? '').split(';').slice(1)) {
    const [name, value] = parameter.split('=', 2).map((part) => part.trim());
    if (name?.toLowerCase() === 'charset') return (value ?? '').replace(/^"(.*)"$/, '$1').toLowerCase();
  }
  return undefined;
}

/**
 * Parses a request body as strict JSON: UTF-8 only (a UTF-16 charset or any byte order mark is
 * refused, not guessed at), no prototype-poisoning members (secure-json-parse, as Fastify's own
 * parser), and no member named twice in one object.
 */
export function parseJsonBody(request: FastifyRequest, body: Buffer): unknown {
  const charset = charsetOf(request.headers['content-type']);
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    throw new GatewayError(
      GatewayErrorCode.UnsupportedMediaType,
      'JSON bodies must be UTF-8 (RFC 8259 §8.1)',
      BodyErrorDetail.Charset,
    );
  }
  if (boms.some((bom) => body.subarray(0, bom.length).equals(bom))) {
    throw refuse(BodyErrorDetail.ByteOrderMark, 'the body starts with a byte order mark');
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(body);
  } catch {
    throw refuse(BodyErrorDetail.NotUtf8, 'the body is not UTF-8');
  }
  if (text.trim() === '') throw refuse(BodyErrorDetail.Malformed, 'the body is empty');
  let value: unknown;
  try {
    value = secureJson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (err) {
    const poisoned = err instanceof SyntaxError && /forbidden prototype property/.test(err.message);
    throw poisoned
      ? refuse(BodyErrorDetail.ForbiddenMember, 'the body has a __proto__ or constructor.prototype member')
      : refuse(BodyErrorDetail.Malformed, 'the body is not JSON');
  }
  const repeated = duplicateMember(text);
  if (repeated !== null) {
    throw refuse(BodyErrorDetail.DuplicateMember, `the body has the member ${JSON.stringify(repeated)} more than once`);
  }
  return value;
}

/** Replaces Fastify's JSON parser with {@link parseJsonBody}. */
export function useStrictJsonBodies(app: FastifyInstance): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    try {
      done(null, parseJsonBody(request, body as Buffer));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
}

/** Codes of Node's HTTP parser errors (`clientError`) that are the client's fault, and our answer. */
const clientErrors: Readonly<Record<string, { status: number; code: GatewayCode; message: string }>> = {
  HPE_HEADER_OVERFLOW: {
    status: 431,
    code: GatewayErrorCode.HeadersTooLarge,
    message: 'the request headers are too large',
  },
  ERR_HTTP_REQUEST_TIMEOUT: {
    status: 408,
    code: GatewayErrorCode.RequestTimeout,
    message: 'the request took too long',
  },
};

/**
 * Node's HTTP parser refuses some requests before Fastify sees them (oversized headers, bytes
 * beyond a body's Content-Length that do not parse as a next request, a malformed request line).
 * They get the same `{error: {code, message}}` body as every other refusal, nothing of the
 * request echoed, and the connection is closed.
 */
export function answerClientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const known = clientErrors[err.code ?? ''] ?? {
    status: 400,
    code: GatewayErrorCode.BadRequest,
    message: 'the request is not valid HTTP/1.1',
  };
  const body = JSON.stringify({ error: { code: known.code, message: known.message } });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${String(known.status)} ${STATUS_CODES[known.status] ?? ''}\r\n` +
        `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${String(Buffer.byteLength(body))}\r\n` +
        `Connection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}
