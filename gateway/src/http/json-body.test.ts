import { connect } from 'node:net';
import { expect } from 'chai';
import type { FastifyInstance } from 'fastify';
import { PrintableTextPattern } from '@keyfleet/protocol';
import { ApiRole } from '../auth/bearer';
import { GatewayError, GatewayErrorCode } from '../errors';
import { newBaseServer } from './base';

interface Row {
  readonly name: string;
  readonly payload: string | Buffer;
  readonly headers?: Record<string, string>;
  readonly status: number;
  readonly code: string;
  readonly detail?: string;
}

const utf8 = (text: string) => Buffer.from(text, 'utf8');
const ok = '{"name":"probe","note":"hall 2"}';

/** What every keyfleet service does with a body before a route sees it (base.ts, json-body.ts). */
const rows: Row[] = [
  {
    name: 'a member twice',
    payload: '{"name":"a","name":"b"}',
    status: 400,
    code: 'BAD_REQUEST',
    detail: 'JSON_DUPLICATE_MEMBER',
  },
  {
    name: 'a member twice, once escaped',
    payload: '{"name":"a","\\u006eame":"b"}',
    status: 400,
    code: 'BAD_REQUEST',
    detail: 'JSON_DUPLICATE_MEMBER',
  },
  {
    name: 'a nested member twice',
    payload: '{"name":"a","note":"b","x":{"k":1,"k":2}}',
    status: 400,
    code: 'BAD_REQUEST',
    detail: 'JSON_DUPLICATE_MEMBER',
  },
  {
    name: '__proto__',
    payload: '{"name":"a","__proto__":{"admin":true}}',
    status: 400,
    code: 'BAD_REQUEST',
    detail: 'JSON_FORBIDDEN_MEMBER',
  },
  {
    name: 'constructor.prototype',
    payload: '{"name":"a","constructor":{"prototype":{"admin":true}}}',
    status: 400,
    code: 'BAD_REQUEST',
    detail: 'JSON_FORBIDDEN_MEMBER',
  },
  {
    name: 'a UTF-8 BOM',
    payload: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), utf8(ok)]),
    status: 400,
    code: 'BAD_REQUEST',
    detail: 'JSON_BYTE_ORDER_MARK',
  },
  {
    name: 'UTF-16LE with BOM',
    payload: Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(ok, 'utf16le')]),
    status: 400,
    code: 'BAD_REQUEST',
    detail: 'JSON_BYTE_ORDER_MARK',
  },
  {
    name: 'UTF-16BE with BOM',
    payload: Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(ok, 'utf16le').swap16()]),
    status: 400,
    code: 'BAD_REQUEST',
    detail: 'JSON_BYTE_ORDER_MARK',
  },
  {
    name: 'UTF-16LE without BOM',
    payload: Buffer.from(ok, 'utf16le'),
    status: 400,
    code: 'BAD_REQUEST',
    detail: 'JSON_MALFORMED',
  },
  {
    name: 'charset=utf-16',
    payload: ok,
    headers: { 'content-type': 'application/json; charset=utf-16' },
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
    detail: 'UNSUPPORTED_CHARSET',
  },
  {
    name: 'charset="UTF-16LE"',
    payload: ok,
    headers: { 'content-type': 'application/json; charset="UTF-16LE"' },
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
    detail: 'UNSUPPORTED_CHARSET',
  },
  {
    name: 'charset=iso-8859-1',
    payload: ok,
    headers: { 'content-type': 'application/json;charset=iso-8859-1' },
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
    detail: 'UNSUPPORTED_CHARSET',
  },
  {
    name: 'an overlong UTF-8 encoding',
    payload: Buffer.concat([utf8('{"name":"'), Buffer.from([0xc0, 0xaf]), utf8('"}')]),
    status: 400,
    code: 'BAD_REQUEST',
    detail: 'JSON_NOT_UTF8',
  },
  {
    name: 'a UTF-8 encoded surrogate',
    payload: Buffer.concat([utf8('{"name":"'), Buffer.from([0xed, 0xa0, 0x80]), utf8('"}')]),
    status: 400,
    code: 'BAD_REQUEST',
    detail: 'JSON_NOT_UTF8',
  },
  {
    name: 'a truncated sequence',
    payload: Buffer.concat([utf8('{"name":"'), Buffer.from([0xe2, 0x82]), utf8('"}')]),
    status: 400,
    code: 'BAD_REQUEST',
    detail: 'JSON_NOT_UTF8',
  },
  { name: 'single quotes', payload: "{'name':'a'}", status: 400, code: 'BAD_REQUEST', detail: 'JSON_MALFORMED' },
  { name: 'a comment', payload: '{"name":"a"/* x */}', status: 400, code: 'BAD_REQUEST', detail: 'JSON_MALFORMED' },
  { name: 'a trailing comma', payload: '{"name":"a",}', status: 400, code: 'BAD_REQUEST', detail: 'JSON_MALFORMED' },
  { name: 'NaN', payload: '{"name":NaN}', status: 400, code: 'BAD_REQUEST', detail: 'JSON_MALFORMED' },
  {
    name: 'arrays nested 2000 deep',
    payload: `${'['.repeat(2000)}${']'.repeat(2000)}`,
    status: 400,
    code: 'BAD_REQUEST',
  },
  {
    name: 'a member twice, 600 objects deep',
    payload: `${'{"a":'.repeat(600)}{"k":1,"k":2}${'}'.repeat(600)}`,
    status: 400,
    code: 'BAD_REQUEST',
    detail: 'JSON_DUPLICATE_MEMBER',
  },
  { name: 'whitespace only', payload: '   ', status: 400, code: 'BAD_REQUEST' },
  { name: 'an unknown field', payload: '{"name":"a","admin":true}', status: 400, code: 'BAD_REQUEST' },
  { name: 'a number for a string', payload: '{"name":7}', status: 400, code: 'BAD_REQUEST' },
  { name: 'an array', payload: '[{"name":"a"}]', status: 400, code: 'BAD_REQUEST' },
  {
    name: 'text/plain',
    payload: ok,
    headers: { 'content-type': 'text/plain' },
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
  },
  {
    name: 'application/x-www-form-urlencoded',
    payload: 'name=a',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
  },
  { name: 'over the body limit', payload: `{"name":"${'a'.repeat(5000)}"}`, status: 413, code: 'BODY_TOO_LARGE' },
  {
    name: 'no token and a body with a member twice',
    payload: '{"name":"a","name":"b"}',
    headers: { authorization: '' },
    status: 401,
    code: 'UNAUTHENTICATED',
  },
  {
    name: 'no token and text/plain',
    payload: 'x',
    headers: { authorization: '', 'content-type': 'text/plain' },
    status: 401,
    code: 'UNAUTHENTICATED',
  },
  {
    name: 'no token and over the body limit',
    payload: 'x'.repeat(5000),
    headers: { authorization: '' },
    status: 401,
    code: 'UNAUTHENTICATED',
  },
  {
    name: 'the wrong role and a malformed body',
    payload: '{',
    headers: { authorization: 'Bearer auditor' },
    status: 403,
    code: 'FORBIDDEN',
  },
  ...[
    ['NEL (C1)', '\u0085'],
    ['CSI (C1)', '\u009b'],
    ['RLO', '\u202e'],
    ['LRI', '\u2066'],
    ['lone surrogate', '\ud800'],
    ['BOM', '\ufeff'],
  ].map(([what, c]): Row => ({
    name: `text with ${what ?? ''}`,
    payload: JSON.stringify({ name: 'a', note: `x${c ?? ''}y` }),
    status: 400,
    code: 'BAD_REQUEST',
  })),
];

describe('JSON bodies and framework refusals (every keyfleet service)', () => {
  let app: FastifyInstance;
  let port: number;

  before(async () => {
    app = await newBaseServer({
      authenticator: {
        authenticate: (authorization) => {
          if (authorization === 'Bearer operator') return Promise.resolve({ subject: 'alice', role: ApiRole.Operator });
          if (authorization === 'Bearer auditor') return Promise.resolve({ subject: 'audrey', role: ApiRole.Auditor });
          return Promise.reject(new GatewayError(GatewayErrorCode.Unauthenticated, 'no valid bearer token'));
        },
      },
      health: () => Promise.resolve({ hsm: true, ledger: true }),
      bodyLimit: 4096,
      logger: false,
      service: { title: 'test', metricsPrefix: 'test_' },
    });
    app.post(
      '/v1/things/:id',
      {
        config: { roles: [ApiRole.Operator] },
        schema: {
          params: { type: 'object', properties: { id: { type: 'string', pattern: '^[a-z0-9-]{1,128}$' } } },
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['name'],
            properties: {
              name: { type: 'string', pattern: PrintableTextPattern.source },
              note: { type: 'string', pattern: PrintableTextPattern.source },
            },
          },
        },
      },
      (request) => ({ got: request.body }),
    );
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as { port: number }).port;
  });
  after(async () => {
    await app.close();
  });

  it('takes a well-formed body, with a paired surrogate and charset=utf-8', async () => {
    const answer = await app.inject({
      method: 'POST',
      url: '/v1/things/t-1',
      headers: { authorization: 'Bearer operator', 'content-type': 'application/json; charset=UTF-8' },
      payload: JSON.stringify({ name: 'probe 😀', note: 'hall 2' }),
    });
    expect(answer.statusCode, answer.body).to.equal(200);
  });

  for (const row of rows) {
    it(`${row.name} -> ${String(row.status)} ${row.code}`, async () => {
      const answer = await app.inject({
        method: 'POST',
        url: '/v1/things/t-1',
        headers: { authorization: 'Bearer operator', 'content-type': 'application/json', ...row.headers },
        payload: row.payload,
      });
      const body = answer.json<{ error: { code: string; message: string; detail?: string } }>();
      expect(answer.statusCode, answer.body).to.equal(row.status);
      expect(body.error.code).to.equal(row.code);
      if (row.detail !== undefined) expect(body.error.detail).to.equal(row.detail);
    });
  }

  const socket = (payload: string) =>
    new Promise<string>((resolve, reject) => {
      const s = connect(port, '127.0.0.1');
      let out = '';
      s.setEncoding('utf8');
      s.on('data', (chunk: string) => (out += chunk));
      s.on('error', reject);
      s.on('close', () => {
        resolve(out);
      });
      s.end(payload);
    });
  for (const [name, payload, status, code] of [
    [
      'a 40 KB header',
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`,
      431,
      'HEADERS_TOO_LARGE',
    ],
    [
      'invalid percent-encoding',
      'GET /v1/things/%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      400,
      'BAD_REQUEST',
    ],
    ['an unknown route', 'GET /v1/%3Cscript%3E HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 404, 'NOT_FOUND'],
    [
      'a body longer than its Content-Length',
      'POST /v1/things/t-1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer operator\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{"name":"abc"}%zz /etc/passwd\r\n\r\n',
      400,
      'BAD_REQUEST',
    ],
    ['not HTTP', 'HELLO\r\n\r\n', 400, 'BAD_REQUEST'],
  ] as const) {
    it(`${name} -> ${String(status)} ${code}, the request not echoed`, async () => {
      const out = await socket(payload);
      const last = out.lastIndexOf('HTTP/1.1 ');
      const [head = '', text = ''] = out.slice(last).split('\r\n\r\n');
      expect(head.split(' ')[1]).to.equal(String(status));
      expect(JSON.parse(text)).to.have.nested.property('error.code', code);
      expect(out).not.to.match(/%zz|script|passwd|aaaa/i);
    });
  }
});
