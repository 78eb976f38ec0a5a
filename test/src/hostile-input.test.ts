import { KeyObject, randomBytes, sign as nodeSign, webcrypto, X509Certificate } from 'node:crypto';
import { connect } from 'node:tls';
import { expect } from 'chai';
import type { DeviceRecord, KeyRecord } from '@keyfleet/protocol';
import { hostileCharacters } from '@keyfleet/chaincode/testing';
import { hsmSigningKey, signCompactJws } from '@keyfleet/gateway';
import {
  customToken,
  newDeviceCsr,
  unsignedToken,
  AUDIENCE,
  startGatewayFixture,
  type Caller,
  type GatewayFixture,
} from './support/gateway-fixture';
import { callService, type Answer, type CallOptions } from './support/http';
import { application, keyRegistration, Org1Operators } from './support/keys';

interface Case {
  readonly name: string;
  readonly send: () => Promise<Answer>;
  readonly status: number;
  readonly code: string;
  readonly detail?: string;
}

const b64 = (text: string | Uint8Array) => Buffer.from(text).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

/** Ids that are not ids: controls, look-alikes, traversal, overlong. */
const hostileIds: readonly (readonly [string, string])[] = [
  ['Cyrillic a', 'hx-dev-1\u0430'],
  ['fullwidth digit', 'hx-dev-\uff11'],
  ['RLO', 'hx-\u202edev'],
  ['NUL', 'hx-dev\u00001'],
  ['space', 'hx dev'],
  ['slash', 'hx/dev'],
  ['dot-dot', '../hx'],
  ['leading dash', '-hx'],
  ['zero-width space', 'hx\u200bdev'],
  ['129 characters', `h${'x'.repeat(128)}`],
];

/**
 * Issue 14, item 3: hostile input against the real gateway on SoftHSM and the real Fabric network.
 * Every row asserts its status and coded error, no 5xx, nothing internal in the body (no stack,
 * path or PIN), and the ledger's height, read as Org2's auditor through Org2's peer, unchanged;
 * after the table, an Org2 snapshot of the records the rows aimed at is unchanged.
 */
describe('hostile input (issue 14): coded refusals, nothing written', function () {
  this.timeout(120_000);
  let f: GatewayFixture;
  let port: number;
  let device: { keys: webcrypto.CryptoKeyPair; x5c: string; certificatePem: string };
  let ciphertext: string;
  let snapshot: () => Promise<unknown>;
  let initial: unknown;

  const call = (method: string, path: string, options: CallOptions = {}) => callService(f.url, method, path, options);
  /** Bytes straight onto a socket, for what fetch would refuse to send. */
  const raw = (payload: string): Promise<Answer> =>
    new Promise((resolve, reject) => {
      // TLS 1.3 to the gateway's HTTPS listener, trusting its CA, then bytes no fetch would send.
      const socket = connect({ port, host: '127.0.0.1', ca: f.caCertificate, minVersion: 'TLSv1.3' });
      let out = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        out += chunk;
      });
      socket.on('error', reject);
      socket.on('close', () => {
        const [head = '', ...rest] = out.split('\r\n\r\n');
        const text = rest.join('\r\n\r\n');
        let body: Answer['body'] = {};
        try {
          body = JSON.parse(text) as Answer['body'];
        } catch {
          body = {};
        }
        resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), text: out, body });
      });
      socket.end(payload);
    });
  const as = (caller: () => Caller) => f.bearer(caller());
  const op = () => f.callers.operator;
  const app = () => f.callers.application;

  /** A compact JWS over exactly these header and payload texts (so members can repeat), ES256. */
  const signDevice = async (header: string, payload: string, key = device.keys.privateKey) => {
    const input = `${b64(header)}.${b64(payload)}`;
    const signature = await webcrypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key, Buffer.from(input));
    return `${input}.${b64(new Uint8Array(signature))}`;
  };
  const signBearer = (caller: Caller, header: string, payload: string) => {
    const input = `${b64(header)}.${b64(payload)}`;
    const key = caller.key instanceof KeyObject ? caller.key : KeyObject.from(caller.key as webcrypto.CryptoKey);
    return `Bearer ${input}.${b64(nodeSign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }))}`;
  };
  const deviceHeader = (typ: string, extra = '') =>
    `{"alg":"ES256","typ":"${typ}","x5c":[${JSON.stringify(device.x5c)}]${extra}}`;
  const rotationClaims = (extra = '') =>
    `{"device_id":"hx-dev-1","key_id":"hx-dev-key","current_version":0,"nonce":"${b64(randomBytes(24))}","iat":${String(now())}${extra}}`;
  const ackClaims = (extra = '') =>
    `{"device_id":"hx-dev-1","key_id":"hx-dev-key","version":1,"kcv":"abcdef","nonce_digest":"${'ab'.repeat(32)}","iat":${String(now())}${extra}}`;
  const checkInClaims = (extra = '') => `{"device_id":"hx-dev-1","iat":${String(now())}${extra}}`;

  const RequestTyp = 'keyfleet-rotation-request+jwt';
  const AckTyp = 'keyfleet-rotation-ack+jwt';
  const CheckInTyp = 'keyfleet-check-in+jwt';
  const rotate = (jws: string) =>
    call('POST', '/v1/devices/hx-dev-1/keys/hx-dev-key/rotate', { body: { request: jws } });
  const acknowledge = (jws: string) =>
    call('POST', '/v1/devices/hx-dev-1/keys/hx-dev-key/rotate/ack', { body: { ack: jws } });
  const checkIn = (jws: string) => call('POST', '/v1/devices/hx-dev-1/check-in', { body: { checkIn: jws } });

  before(async () => {
    f = await startGatewayFixture();
    port = Number(new URL(f.url).port);
    const operator = await as(op);
    const ok = async (answer: Promise<Answer>) => {
      const a = await answer;
      expect(a.status, a.text).to.be.below(300);
      return a.body;
    };
    for (const id of ['hx-dev-1', 'hx-dev-2']) {
      const { token } = (await ok(
        call('POST', '/v1/enrolment-tokens', {
          auth: operator,
          body: { deviceId: id, group: 'hx-lab', location: 'bench 4', function: 'probe' },
        }),
      )) as { token: string };
      const { csr, keys } = await newDeviceCsr(id);
      const enrolled = (await ok(call('POST', '/v1/devices', { body: { enrolmentToken: token, csr } }))) as {
        certificate: string;
      };
      if (id === 'hx-dev-1') {
        device = {
          keys,
          certificatePem: enrolled.certificate,
          x5c: new X509Certificate(enrolled.certificate).raw.toString('base64'),
        };
      }
    }
    await ok(call('POST', '/v1/devices/hx-dev-1/keys', { auth: operator, body: { keyId: 'hx-dev-key' } }));
    const billing = [application('billing')];
    const register = (
      keyId: string,
      algorithm: string,
      purpose: string,
      use: unknown[],
      admins: unknown[] = [Org1Operators],
    ) =>
      ok(
        call('POST', '/v1/keys', {
          auth: operator,
          body: keyRegistration(keyId, {
            algorithm,
            purpose,
            accessPolicy: { read: use, use, rotate: [], administer: admins },
          }),
        }),
      );
    await register('hx-app', 'AES-256', 'encrypt', billing);
    await register('hx-ops', 'AES-256', 'encrypt', []);
    await register('hx-sign', 'EC-P256', 'sign', billing);
    await register('hx-bob', 'AES-256', 'encrypt', [], [{ mspId: 'Org1MSP', role: 'operator', id: 'bob' }] as never);
    await ok(
      call('PUT', '/v1/reference-values/hx-lab', {
        auth: operator,
        body: {
          policyId: 'hx-policy',
          measurements: [{ name: 'firmware', algorithm: 'sha-256', digest: 'ab'.repeat(32) }],
        },
      }),
    );
    ({ ciphertext } = (await ok(
      call('POST', '/v1/keys/hx-app/encrypt', { auth: await as(app), body: { plaintext: b64('secret') } }),
    )) as { ciphertext: string });
    snapshot = async () => ({
      devices: await Promise.all(
        ['hx-dev-1', 'hx-dev-2'].map((id) => f.ledger.evaluate<DeviceRecord>('GetDevice', id)),
      ),
      keys: await Promise.all(
        ['hx-dev-key', 'hx-app', 'hx-ops', 'hx-sign', 'hx-bob'].map((id) => f.ledger.evaluate<KeyRecord>('GetKey', id)),
      ),
      referenceValues: await f.ledger.evaluate('GetReferenceValues', 'hx-lab'),
      page: await f.ledger.evaluate('ListDevicesByGroup', 'hx-lab', '10', ''),
    });
    initial = await snapshot();
  });
  after(async () => {
    await f.close();
  });

  // ---- every route that takes a body: the JSON text itself --------------------------------------
  interface Route {
    readonly method: string;
    readonly path: string;
    readonly auth?: () => Caller;
    readonly body: () => string;
  }
  const routes: readonly Route[] = [
    {
      method: 'POST',
      path: '/v1/enrolment-tokens',
      auth: op,
      body: () => '{"deviceId":"hx-dev-9","group":"hx-lab","location":"x","function":"y"}',
    },
    { method: 'POST', path: '/v1/devices', body: () => '{"enrolmentToken":"a.b.c","csr":"x"}' },
    { method: 'POST', path: '/v1/devices/hx-dev-2/suspend', auth: op, body: () => '{"reason":"maintenance"}' },
    { method: 'POST', path: '/v1/devices/hx-dev-2/reinstate', auth: op, body: () => '{"reason":"done"}' },
    { method: 'POST', path: '/v1/devices/hx-dev-2/revoke', auth: op, body: () => '{"reason":"superseded"}' },
    { method: 'POST', path: '/v1/devices/hx-dev-2/keys', auth: op, body: () => '{"keyId":"hx-dev-2-key"}' },
    { method: 'POST', path: '/v1/devices/hx-dev-1/keys/hx-dev-key/rotate', body: () => '{"request":"a.b.c"}' },
    { method: 'POST', path: '/v1/devices/hx-dev-1/keys/hx-dev-key/rotate/ack', body: () => '{"ack":"a.b.c"}' },
    { method: 'POST', path: '/v1/devices/hx-dev-1/check-in', body: () => '{"checkIn":"a.b.c"}' },
    { method: 'POST', path: '/v1/attestation/challenges', body: () => '{"deviceId":"hx-dev-1"}' },
    { method: 'POST', path: '/v1/attestation/evidence', body: () => '{"evidence":"a.b.c"}' },
    {
      method: 'PUT',
      path: '/v1/reference-values/hx-lab',
      auth: op,
      body: () =>
        `{"policyId":"p2","measurements":[{"name":"fw","algorithm":"sha-256","digest":"${'cd'.repeat(32)}"}]}`,
    },
    {
      method: 'POST',
      path: '/v1/keys',
      auth: op,
      body: () =>
        '{"keyId":"hx-new","algorithm":"AES-256","purpose":"encrypt","owner":{"type":"application","id":"billing"},"rotationIntervalSeconds":86400,"accessPolicy":{"read":[],"use":[],"rotate":[],"administer":[{"mspId":"Org1MSP","role":"operator"}]}}',
    },
    { method: 'POST', path: '/v1/keys/hx-app/encrypt', auth: app, body: () => `{"plaintext":"${b64('hello')}"}` },
    { method: 'POST', path: '/v1/keys/decrypt', auth: app, body: () => JSON.stringify({ ciphertext }) },
    { method: 'POST', path: '/v1/keys/hx-sign/sign', auth: app, body: () => `{"data":"${b64('hello')}"}` },
    { method: 'POST', path: '/v1/keys/hx-sign/verify', auth: app, body: () => `{"data":"aGk","signature":"aGk"}` },
    {
      method: 'POST',
      path: '/v1/keys/hx-sign/export',
      auth: app,
      body: () => JSON.stringify({ deviceId: 'hx-dev-1', certificate: device.certificatePem }),
    },
    { method: 'POST', path: '/v1/keys/hx-app/versions/1/compromise', auth: op, body: () => '{"reason":"leak"}' },
    { method: 'POST', path: '/v1/hsm/cluster/members', auth: op, body: () => '{"token":"hx-token"}' },
  ];
  /** `{"<first member>":<a different value>,` + the body: its first member given twice. */
  const repeatFirst = (body: string, escaped = false) => {
    const name = /^\{"([^"]+)"/.exec(body)?.[1] ?? 'x';
    const spelled = escaped ? `\\u${name.charCodeAt(0).toString(16).padStart(4, '0')}${name.slice(1)}` : name;
    return body.replace('{', `{"${spelled}":"hx-other",`);
  };
  const send = (route: Route, raw: () => string | Buffer, contentType?: string, auth?: () => Caller) => async () =>
    call(route.method, route.path, {
      raw: raw(),
      ...(contentType === undefined ? {} : { contentType }),
      ...((auth ?? route.auth) === undefined ? {} : { auth: await as((auth ?? route.auth) as () => Caller) }),
    });
  const bad = (detail: string, status = 400, code = 'BAD_REQUEST') => ({ status, code, detail });

  const bodyCases: Case[] = routes.flatMap((route): Case[] => {
    const where = `${route.method} ${route.path}`;
    return [
      {
        name: `${where}: a member twice`,
        send: send(route, () => repeatFirst(route.body())),
        ...bad('JSON_DUPLICATE_MEMBER'),
      },
      {
        name: `${where}: a member twice, once escaped`,
        send: send(route, () => repeatFirst(route.body(), true)),
        ...bad('JSON_DUPLICATE_MEMBER'),
      },
      {
        name: `${where}: a UTF-8 byte order mark`,
        send: send(route, () => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(route.body())])),
        ...bad('JSON_BYTE_ORDER_MARK'),
      },
      {
        name: `${where}: UTF-16 with its byte order mark`,
        send: send(route, () => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(route.body(), 'utf16le')])),
        ...bad('JSON_BYTE_ORDER_MARK'),
      },
      {
        name: `${where}: charset=utf-16`,
        send: send(route, () => route.body(), 'application/json; charset=utf-16'),
        ...bad('UNSUPPORTED_CHARSET', 415, 'UNSUPPORTED_MEDIA_TYPE'),
      },
      {
        name: `${where}: bytes that are not UTF-8`,
        send: send(route, () => Buffer.concat([Buffer.from('{"x":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')])),
        ...bad('JSON_NOT_UTF8'),
      },
      {
        name: `${where}: a __proto__ member`,
        send: send(route, () => route.body().replace('{', '{"__proto__":{"role":"operator"},')),
        ...bad('JSON_FORBIDDEN_MEMBER'),
      },
      {
        name: `${where}: constructor.prototype`,
        send: send(route, () => route.body().replace('{', '{"constructor":{"prototype":{"isAdmin":true}},')),
        ...bad('JSON_FORBIDDEN_MEMBER'),
      },
      { name: `${where}: not JSON`, send: send(route, () => "{'a': 1}"), ...bad('JSON_MALFORMED') },
      {
        name: `${where}: text/plain`,
        send: send(route, () => route.body(), 'text/plain'),
        status: 415,
        code: 'UNSUPPORTED_MEDIA_TYPE',
      },
      {
        name: `${where}: 70 KB`,
        send: send(route, () => `{"x":"${'a'.repeat(70_000)}"}`),
        status: 413,
        code: 'BODY_TOO_LARGE',
      },
      {
        name: `${where}: nested 5000 deep`,
        send: send(route, () => `${'['.repeat(5000)}${']'.repeat(5000)}`),
        status: 400,
        code: 'BAD_REQUEST',
      },
      {
        name: `${where}: an unknown field`,
        send: send(route, () => route.body().replace('{', '{"isAdmin":true,')),
        status: 400,
        code: 'BAD_REQUEST',
      },
    ];
  });

  // ---- credentials before the body: 401 (no token) and 403 (wrong role) whatever the body -----
  const secured = routes.filter((route) => route.auth !== undefined);
  const authFirstCases: Case[] = secured.flatMap((route): Case[] => {
    const where = `${route.method} ${route.path}`;
    return [
      {
        name: `${where}: no token and a bad body`,
        send: () => call(route.method, route.path, { raw: '{"x":1,"x":2' }),
        status: 401,
        code: 'UNAUTHENTICATED',
      },
      {
        name: `${where}: no token and text/html`,
        send: () => call(route.method, route.path, { raw: '<p>', contentType: 'text/html' }),
        status: 401,
        code: 'UNAUTHENTICATED',
      },
      {
        name: `${where}: an auditor's token and a bad body`,
        send: async () => call(route.method, route.path, { raw: '[', auth: await as(() => f.callers.auditor) }),
        status: 403,
        code: 'FORBIDDEN',
      },
    ];
  });

  // ---- authentication and authorisation -------------------------------------------------------
  const tokenRoute = routes[0] as Route;
  const withAuth = (auth: () => Promise<string> | string) => async () =>
    call('POST', '/v1/enrolment-tokens', { raw: tokenRoute.body(), auth: await auth() });
  const claims = (extra: Record<string, unknown> = {}) => ({ sub: 'alice', role: 'operator', aud: AUDIENCE, ...extra });
  const unauth = (name: string, auth: () => Promise<string> | string): Case => ({
    name: `bearer: ${name}`,
    send: withAuth(auth),
    status: 401,
    code: 'UNAUTHENTICATED',
  });
  const authCases: Case[] = [
    unauth('missing scheme', () => 'not-a-token'),
    unauth('Basic', () => 'Basic YWxpY2U6cHc='),
    unauth('empty Bearer', () => 'Bearer '),
    unauth('two tokens', async () => `${await as(op)} ${(await as(op)).slice(7)}`),
    unauth('garbage', () => 'Bearer a.b.c'),
    unauth('alg none', () => `Bearer ${unsignedToken({ ...claims(), iat: now(), exp: now() + 60 })}`),
    unauth('expired', async () => `Bearer ${await customToken(op(), claims(), now() - 600, now() - 300)}`),
    unauth(
      'issued in the future',
      async () => `Bearer ${await customToken(op(), claims(), now() + 3600, now() + 3700)}`,
    ),
    unauth('lifetime of two hours', () => f.bearer(op(), { ttlSeconds: 7200 })),
    unauth('another audience', () => f.bearer(op(), { audience: 'elsewhere' })),
    unauth('a key not in the JWKS', () => f.bearer(f.callers.stranger)),
    unauth(
      'an unknown kid',
      async () => `Bearer ${await customToken(op(), claims(), now(), now() + 60, { kid: 'nobody' })}`,
    ),
    unauth(
      'an application key claiming operator',
      async () => `Bearer ${await customToken(app(), claims({ sub: 'billing' }), now(), now() + 60)}`,
    ),
    unauth(
      'an operator key claiming another operator',
      async () => `Bearer ${await customToken(op(), claims({ sub: 'bob' }), now(), now() + 60)}`,
    ),
    unauth('a signature of another key', async () => {
      const [h, p] = (await as(op)).slice(7).split('.');
      const [, , s] = (await as(app)).slice(7).split('.');
      return `Bearer ${h ?? ''}.${p ?? ''}.${s ?? ''}`;
    }),
    unauth('a modified payload', async () => {
      const [h, , s] = (await as(app)).slice(7).split('.');
      return `Bearer ${h ?? ''}.${b64(JSON.stringify({ ...claims({ sub: 'billing' }), iat: now(), exp: now() + 60 }))}.${s ?? ''}`;
    }),
    unauth('role given twice (the last would be operator)', () =>
      signBearer(
        app(),
        `{"alg":"ES256","kid":"${app().kid}"}`,
        `{"sub":"billing","role":"application","role":"operator","aud":"${AUDIENCE}","iat":${String(now())},"exp":${String(now() + 60)}}`,
      ),
    ),
    unauth('sub given twice', () =>
      signBearer(
        op(),
        `{"alg":"ES256","kid":"${op().kid}"}`,
        `{"sub":"bob","sub":"alice","role":"operator","aud":"${AUDIENCE}","iat":${String(now())},"exp":${String(now() + 60)}}`,
      ),
    ),
    unauth('kid given twice', () =>
      signBearer(
        op(),
        `{"alg":"ES256","kid":"nobody","kid":"${op().kid}"}`,
        `{"sub":"alice","role":"operator","aud":"${AUDIENCE}","iat":${String(now())},"exp":${String(now() + 60)}}`,
      ),
    ),
    unauth('alg given twice', () =>
      signBearer(
        op(),
        `{"alg":"none","alg":"ES256","kid":"${op().kid}"}`,
        `{"sub":"alice","role":"operator","aud":"${AUDIENCE}","iat":${String(now())},"exp":${String(now() + 60)}}`,
      ),
    ),
    unauth('8 KB of token', () => `Bearer ${'a'.repeat(8000)}.b.c`),
    {
      name: 'application on an operator route',
      send: withAuth(() => as(app)),
      status: 403,
      code: 'FORBIDDEN',
    },
    {
      name: 'auditor suspends a device',
      send: async () =>
        call('POST', '/v1/devices/hx-dev-2/suspend', {
          body: { reason: 'x' },
          auth: await as(() => f.callers.auditor),
        }),
      status: 403,
      code: 'FORBIDDEN',
    },
    {
      name: 'application lists devices',
      send: async () => call('GET', '/v1/devices?group=hx-lab', { auth: await as(app) }),
      status: 403,
      code: 'FORBIDDEN',
    },
    {
      name: 'application encrypts with a key its policy does not grant',
      send: async () => call('POST', '/v1/keys/hx-ops/encrypt', { body: { plaintext: 'aGk' }, auth: await as(app) }),
      status: 403,
      code: 'FORBIDDEN',
      detail: 'ACCESS_DENIED',
    },
    {
      name: 'another application decrypts billing data',
      send: async () =>
        call('POST', '/v1/keys/decrypt', { body: { ciphertext }, auth: await as(() => f.callers.payroll) }),
      status: 403,
      code: 'FORBIDDEN',
      detail: 'ACCESS_DENIED',
    },
    {
      name: 'an operator compromises a key whose policy names another administrator',
      send: async () =>
        call('POST', '/v1/keys/hx-bob/versions/1/compromise', { body: { reason: 'leak' }, auth: await as(op) }),
      status: 403,
      code: 'FORBIDDEN',
      detail: 'ACCESS_DENIED',
    },
    {
      name: 'an application compromises a key',
      send: async () =>
        call('POST', '/v1/keys/hx-app/versions/1/compromise', { body: { reason: 'leak' }, auth: await as(app) }),
      status: 403,
      code: 'FORBIDDEN',
    },
    {
      name: 'no token compromises a key',
      send: () => call('POST', '/v1/keys/hx-app/versions/1/compromise', { body: { reason: 'leak' } }),
      status: 401,
      code: 'UNAUTHENTICATED',
    },
  ];

  // ---- free text and ids: controls, bidi overrides, lone surrogates, look-alikes --------------
  const textCases: Case[] = hostileCharacters.flatMap(([what, c]): Case[] => {
    const token = (field: string) => async () =>
      call('POST', '/v1/enrolment-tokens', {
        auth: await as(op),
        body: { deviceId: 'hx-dev-9', group: 'hx-lab', location: 'bench', function: 'probe', [field]: `a${c}b` },
      });
    const reason = (path: string) => async () => call('POST', path, { auth: await as(op), body: { reason: `x${c}y` } });
    return [
      { name: `location with ${what}`, send: token('location'), status: 400, code: 'BAD_REQUEST' },
      { name: `function with ${what}`, send: token('function'), status: 400, code: 'BAD_REQUEST' },
      {
        name: `suspension reason with ${what}`,
        send: reason('/v1/devices/hx-dev-2/suspend'),
        status: 400,
        code: 'BAD_REQUEST',
      },
      {
        name: `compromise reason with ${what}`,
        send: reason('/v1/keys/hx-app/versions/1/compromise'),
        status: 400,
        code: 'BAD_REQUEST',
      },
    ];
  });
  const idCases: Case[] = hostileIds.flatMap(([what, id]): Case[] => [
    {
      name: `device id in a token: ${what}`,
      send: async () =>
        call('POST', '/v1/enrolment-tokens', {
          auth: await as(op),
          body: { deviceId: id, group: 'hx-lab', location: 'bench', function: 'probe' },
        }),
      status: 400,
      code: 'BAD_REQUEST',
    },
    {
      name: `device id in a path: ${what}`,
      send: async () => call('GET', `/v1/devices/${encodeURIComponent(id)}`, { auth: await as(op) }),
      status: 400,
      code: 'BAD_REQUEST',
    },
    {
      name: `challenge for device ${what}`,
      send: () => call('POST', '/v1/attestation/challenges', { body: { deviceId: id } }),
      status: 400,
      code: 'BAD_REQUEST',
    },
  ]);

  // ---- device JWS: a closed protected header, no member twice ---------------------------------
  const extraHeaders: readonly (readonly [string, string])[] = [
    ['kid', ',"kid":"device-ca"'],
    ['jku', ',"jku":"https://attacker.example/jwks.json"'],
    ['x5u', ',"x5u":"https://attacker.example/cert.pem"'],
    ['jwk', ',"jwk":{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}'],
    ['cty', ',"cty":"JWT"'],
    ['crit', ',"crit":["exp"],"exp":1'],
    ['b64', ',"b64":false'],
    ['x5t', ',"x5t":"AAAA"'],
    ['__proto__', ',"__proto__":{"alg":"none"}'],
    ['zip', ',"zip":"DEF"'],
  ];
  const deviceMessages = [
    ['rotation request', RequestTyp, rotationClaims, rotate],
    ['acknowledgement', AckTyp, ackClaims, acknowledge],
    ['check-in', CheckInTyp, checkInClaims, checkIn],
  ] as const;
  const malformed = (name: string, sendJws: () => Promise<Answer>): Case => ({
    name,
    send: sendJws,
    status: 400,
    code: 'BAD_REQUEST',
    detail: 'ROTATION_REQUEST_MALFORMED',
  });
  const jwsCases: Case[] = deviceMessages.flatMap(([what, typ, body, post]): Case[] => [
    ...extraHeaders.map(([member, extra]) =>
      malformed(`${what} whose header carries ${member}`, async () =>
        post(await signDevice(deviceHeader(typ, extra), body())),
      ),
    ),
    malformed(`${what} whose header names alg twice`, async () =>
      post(await signDevice(deviceHeader(typ, ',"alg":"ES256"'), body())),
    ),
    malformed(`${what} whose header names typ twice`, async () =>
      post(await signDevice(deviceHeader(typ, `,"typ":"${typ}"`), body())),
    ),
    malformed(`${what} whose header names x5c twice`, async () =>
      post(await signDevice(deviceHeader(typ, `,"x5c":[${JSON.stringify(device.x5c)}]`), body())),
    ),
    malformed(`${what} whose claims name device_id twice`, async () =>
      post(await signDevice(deviceHeader(typ), body(',"device_id":"hx-dev-2"'))),
    ),
    malformed(`${what} whose claims name iat twice`, async () =>
      post(await signDevice(deviceHeader(typ), body(`,"iat":${String(now())}`))),
    ),
    malformed(`${what} whose claims name device_id twice, once escaped`, async () =>
      post(await signDevice(deviceHeader(typ), body(',"\\u0064evice_id":"hx-dev-1"'))),
    ),
  ]);
  const rotationCases: Case[] = [
    malformed('rotation request naming key_id twice', async () =>
      rotate(await signDevice(deviceHeader(RequestTyp), rotationClaims(',"key_id":"hx-app"'))),
    ),
    malformed('rotation request naming nonce twice (a replayed nonce last)', async () =>
      rotate(await signDevice(deviceHeader(RequestTyp), rotationClaims(`,"nonce":"${b64(randomBytes(24))}"`))),
    ),
    malformed('rotation request naming current_version twice', async () =>
      rotate(await signDevice(deviceHeader(RequestTyp), rotationClaims(',"current_version":1'))),
    ),
    malformed('rotation request typed as a check-in', async () =>
      rotate(await signDevice(deviceHeader(CheckInTyp), rotationClaims())),
    ),
    malformed('rotation request with alg none', async () => {
      const jws = await signDevice(deviceHeader(RequestTyp), rotationClaims());
      return rotate(
        `${b64(`{"alg":"none","typ":"${RequestTyp}","x5c":[${JSON.stringify(device.x5c)}]}`)}.${jws.split('.')[1] ?? ''}.AA`,
      );
    }),
    malformed('rotation request with no x5c', async () =>
      rotate(await signDevice(`{"alg":"ES256","typ":"${RequestTyp}"}`, rotationClaims())),
    ),
    malformed('rotation request with an unknown claim', async () =>
      rotate(await signDevice(deviceHeader(RequestTyp), rotationClaims(',"role":"operator"'))),
    ),
    {
      name: 'rotation request signed by another key',
      send: async () => {
        const other = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign']);
        return rotate(await signDevice(deviceHeader(RequestTyp), rotationClaims(), other.privateKey));
      },
      status: 401,
      code: 'UNAUTHENTICATED',
      detail: 'ROTATION_SIGNATURE_INVALID',
    },
    {
      name: 'rotation request with a modified payload',
      send: async () => {
        const [h, , s] = (await signDevice(deviceHeader(RequestTyp), rotationClaims())).split('.');
        return rotate(
          `${h ?? ''}.${b64(rotationClaims().replace('"current_version":0', '"current_version":5'))}.${s ?? ''}`,
        );
      },
      status: 401,
      code: 'UNAUTHENTICATED',
      detail: 'ROTATION_SIGNATURE_INVALID',
    },
    {
      name: 'rotation request for another device than the signer',
      send: async () =>
        call('POST', '/v1/devices/hx-dev-2/keys/hx-dev-key/rotate', {
          body: {
            request: await signDevice(
              deviceHeader(RequestTyp),
              rotationClaims().replace('"device_id":"hx-dev-1"', '"device_id":"hx-dev-2"'),
            ),
          },
        }),
      status: 401,
      code: 'UNAUTHENTICATED',
      detail: 'DEVICE_MISMATCH',
    },
    {
      name: 'rotation request from an hour ago',
      send: async () =>
        rotate(
          await signDevice(
            deviceHeader(RequestTyp),
            rotationClaims().replace(/"iat":\d+/, `"iat":${String(now() - 3600)}`),
          ),
        ),
      status: 401,
      code: 'UNAUTHENTICATED',
      detail: 'ROTATION_REQUEST_STALE',
    },
  ];

  // ---- enrolment tokens and evidence with members twice ---------------------------------------
  const grantClaims = (extra: string) =>
    `{"aud":"keyfleet-enrolment","exp":${String(now() + 600)},"fn":"probe","grp":"hx-lab","iat":${String(now())},"iss":"alice","jti":"${b64(randomBytes(16))}","loc":"bench","shard":0,"sub":"hx-dev-8"${extra}}`;
  const forgedToken = async (extra: string) =>
    signCompactJws(
      await hsmSigningKey(f.gateway.hsm, 'metadata-signing'),
      { kid: 'metadata-signing', typ: 'keyfleet-enrolment+jwt' },
      Buffer.from(grantClaims(extra)),
    );
  const enrolWith = (extra: string) => async () =>
    call('POST', '/v1/devices', {
      body: { enrolmentToken: await forgedToken(extra), csr: (await newDeviceCsr('hx-dev-8')).csr },
    });
  const tokenCases: Case[] = [',"sub":"hx-dev-7"', ',"grp":"other"', ',"exp":9999999999', ',"jti":"again"'].map(
    (extra): Case => ({
      name: `enrolment token whose claims repeat ${extra.slice(2, extra.indexOf('":'))}`,
      send: enrolWith(extra),
      status: 401,
      code: 'ENROLMENT_TOKEN_INVALID',
    }),
  );
  const evidenceHeader = (extra = '') =>
    `{"alg":"ES256","typ":"eat+jwt","x5c":[${JSON.stringify(device.x5c)}]${extra}}`;
  const evidenceClaims = (extra = '') =>
    `{"eat_profile":"tag:github.com,2026:keyfleet/eat/v1","eat_nonce":"${b64(randomBytes(32))}","ueid":"${b64(Buffer.concat([Buffer.from([1]), randomBytes(16)]))}","iat":${String(now())},"hwmodel":"${b64('m')}","swname":"a","swversion":["1"],"dbgstat":3,"measurements":[[50,"${b64('[]')}"]]${extra}}`;
  const evidence = (header: () => string, payload: () => string) => async () =>
    call('POST', '/v1/attestation/evidence', { body: { evidence: await signDevice(header(), payload()) } });
  const evidenceCases: Case[] = [
    [
      'header names alg twice',
      evidence(
        () => evidenceHeader(',"alg":"ES256"'),
        () => evidenceClaims(),
      ),
    ],
    [
      'header names x5c twice',
      evidence(
        () => evidenceHeader(`,"x5c":[${JSON.stringify(device.x5c)}]`),
        () => evidenceClaims(),
      ),
    ],
    [
      'claims name eat_nonce twice',
      evidence(
        () => evidenceHeader(),
        () => evidenceClaims(`,"eat_nonce":"${b64(randomBytes(32))}"`),
      ),
    ],
    [
      'claims name measurements twice',
      evidence(
        () => evidenceHeader(),
        () => evidenceClaims(',"measurements":[]'),
      ),
    ],
    [
      'claims name dbgstat twice',
      evidence(
        () => evidenceHeader(),
        () => evidenceClaims(',"dbgstat":0'),
      ),
    ],
  ].map(([name, run]) => ({
    name: `evidence whose ${name as string}`,
    send: run as () => Promise<Answer>,
    status: 400,
    code: 'EVIDENCE_MALFORMED',
  }));

  // ---- ciphertexts: JWE headers with members twice, tampering ----------------------------------
  const envelope = (change: (parts: string[]) => string[]) => async () =>
    call('POST', '/v1/keys/decrypt', {
      body: { ciphertext: change(ciphertext.split('.')).join('.') },
      auth: await as(app),
    });
  const header = (json: string) => envelope(([, ...rest]) => [b64(json), ...rest]);
  const flip = (index: number) =>
    envelope((parts) => {
      const bytes = Buffer.from(parts[index] ?? '', 'base64url');
      bytes[0] = (bytes[0] ?? 0) ^ 1;
      return parts.map((part, i) => (i === index ? b64(bytes) : part));
    });
  const cipher = (name: string, send: () => Promise<Answer>, status: number, code: string, detail: string): Case => ({
    name: `ciphertext ${name}`,
    send,
    status,
    code,
    detail,
  });
  const jweCases: Case[] = [
    cipher(
      'header naming kid twice',
      header('{"alg":"dir","enc":"A256GCM","kid":"hx-ops","kfv":1,"ver":1,"kid":"hx-app"}'),
      400,
      'BAD_REQUEST',
      'CIPHERTEXT_MALFORMED',
    ),
    cipher(
      'header naming kid twice, the other way',
      header('{"alg":"dir","enc":"A256GCM","kid":"hx-app","kfv":1,"ver":1,"kid":"hx-ops"}'),
      400,
      'BAD_REQUEST',
      'CIPHERTEXT_MALFORMED',
    ),
    cipher(
      'header naming ver twice',
      header('{"alg":"dir","enc":"A256GCM","kid":"hx-app","kfv":1,"ver":2,"ver":1}'),
      400,
      'BAD_REQUEST',
      'CIPHERTEXT_MALFORMED',
    ),
    cipher(
      'header naming alg twice',
      header('{"alg":"none","enc":"A256GCM","kid":"hx-app","kfv":1,"ver":1,"alg":"dir"}'),
      400,
      'BAD_REQUEST',
      'CIPHERTEXT_MALFORMED',
    ),
    cipher(
      'header naming kid twice, once escaped',
      header('{"alg":"dir","enc":"A256GCM","\\u006bid":"hx-ops","kfv":1,"ver":1,"kid":"hx-app"}'),
      400,
      'BAD_REQUEST',
      'CIPHERTEXT_MALFORMED',
    ),
    cipher(
      'header with an extra member',
      header('{"alg":"dir","enc":"A256GCM","kid":"hx-app","kfv":1,"ver":1,"zip":"DEF"}'),
      400,
      'BAD_REQUEST',
      'CIPHERTEXT_MALFORMED',
    ),
    cipher(
      'header with alg A256KW',
      header('{"alg":"A256KW","enc":"A256GCM","kid":"hx-app","kfv":1,"ver":1}'),
      400,
      'BAD_REQUEST',
      'CIPHERTEXT_MALFORMED',
    ),
    cipher(
      'relabelled to a key the caller may not use',
      header('{"alg":"dir","enc":"A256GCM","kid":"hx-ops","kfv":1,"ver":1}'),
      403,
      'FORBIDDEN',
      'ACCESS_DENIED',
    ),
    cipher(
      'relabelled to an unknown key',
      header('{"alg":"dir","enc":"A256GCM","kid":"hx-none","kfv":1,"ver":1}'),
      404,
      'NOT_FOUND',
      'KEY_NOT_FOUND',
    ),
    cipher(
      'relabelled to version 2',
      header('{"alg":"dir","enc":"A256GCM","kid":"hx-app","kfv":1,"ver":2}'),
      404,
      'NOT_FOUND',
      'VERSION_NOT_FOUND',
    ),
    cipher('with a flipped IV bit', flip(2), 400, 'BAD_REQUEST', 'CIPHERTEXT_INVALID'),
    cipher('with a flipped ciphertext bit', flip(3), 400, 'BAD_REQUEST', 'CIPHERTEXT_INVALID'),
    cipher('with a flipped tag bit', flip(4), 400, 'BAD_REQUEST', 'CIPHERTEXT_INVALID'),
    cipher(
      'with a short tag',
      envelope((p) => [...p.slice(0, 4), b64(Buffer.alloc(12))]),
      400,
      'BAD_REQUEST',
      'CIPHERTEXT_MALFORMED',
    ),
    cipher(
      'with four parts',
      envelope((p) => p.slice(0, 4)),
      400,
      'BAD_REQUEST',
      'CIPHERTEXT_MALFORMED',
    ),
    cipher(
      'with an encrypted key',
      envelope((p) => [p[0] ?? '', 'AAAA', ...p.slice(2)]),
      400,
      'BAD_REQUEST',
      'CIPHERTEXT_MALFORMED',
    ),
    {
      name: 'ciphertext with another AAD',
      send: async () =>
        call('POST', '/v1/keys/decrypt', { body: { ciphertext, aad: b64('other') }, auth: await as(app) }),
      status: 400,
      code: 'BAD_REQUEST',
      detail: 'CIPHERTEXT_INVALID',
    },
  ];

  // ---- reference values: digests that match no evidence --------------------------------------
  const referenceCases: Case[] = (
    [
      ['sha-512', 'ab'.repeat(32)],
      ['sha-512', 'ab'.repeat(48)],
      ['sha-384', 'ab'.repeat(32)],
      ['sha-384', 'ab'.repeat(64)],
      ['sha-256', 'ab'.repeat(48)],
      ['sha-256', 'ab'.repeat(64)],
      ['sha-256', 'AB'.repeat(32)],
      ['sha-256', 'abc'],
      ['md5', 'ab'.repeat(16)],
    ] as const
  ).map(([algorithm, digest]): Case => ({
    name: `reference value ${algorithm} of ${digest.length} characters${digest === 'AB'.repeat(32) ? ' (uppercase)' : ''}`,
    send: async () =>
      call('PUT', '/v1/reference-values/hx-lab', {
        auth: await as(op),
        body: { policyId: 'hx-policy-2', measurements: [{ name: 'firmware', algorithm, digest }] },
      }),
    status: 400,
    code: 'BAD_REQUEST',
  }));

  // ---- bookmarks ----------------------------------------------------------------------------
  const page = (bookmark: string) => async () =>
    call('GET', `/v1/devices?group=hx-lab&bookmark=${encodeURIComponent(bookmark)}`, { auth: await as(op) });
  const bookmarkCases: Case[] = (
    [
      ['garbage', 'zzzz'],
      ['not canonical base64url', 'QR'],
      ['bytes that are not UTF-8', '_w'],
      ['another group', b64('\u0000device~group\u0000other\u0000hx-dev-1\u0000')],
      ['another record type', b64('\u0000key\u0000hx-app\u0000')],
      ['a NUL', b64('\u0000')],
      ['1025 characters', 'A'.repeat(1025)],
      ['a plus sign', 'ab+c'],
    ] as const
  ).map(([what, mark]): Case => ({ name: `bookmark: ${what}`, send: page(mark), status: 400, code: 'BAD_REQUEST' }));

  // ---- the compromise route's own input ---------------------------------------------------------
  const compromiseRows: readonly (readonly [string, string, unknown, number, string, string?])[] = [
    ['version 0', 'hx-app/versions/0', { reason: 'x' }, 400, 'BAD_REQUEST'],
    ['version -1', 'hx-app/versions/-1', { reason: 'x' }, 400, 'BAD_REQUEST'],
    ['version 1e3', 'hx-app/versions/1e3', { reason: 'x' }, 400, 'BAD_REQUEST'],
    ['version 99999999', 'hx-app/versions/99999999', { reason: 'x' }, 400, 'BAD_REQUEST'],
    ['a version that does not exist', 'hx-app/versions/7', { reason: 'x' }, 404, 'NOT_FOUND', 'VERSION_NOT_FOUND'],
    ['an unknown key', 'hx-none/versions/1', { reason: 'x' }, 404, 'NOT_FOUND'],
    ['no reason', 'hx-app/versions/1', {}, 400, 'BAD_REQUEST'],
    ['an empty reason', 'hx-app/versions/1', { reason: '' }, 400, 'BAD_REQUEST'],
    ['a numeric reason', 'hx-app/versions/1', { reason: 7 }, 400, 'BAD_REQUEST'],
    ['a 257-character reason', 'hx-app/versions/1', { reason: 'x'.repeat(257) }, 400, 'BAD_REQUEST'],
    ['a version in the body', 'hx-app/versions/1', { reason: 'x', version: 2 }, 400, 'BAD_REQUEST'],
    ['an array body', 'hx-app/versions/1', [{ reason: 'x' }], 400, 'BAD_REQUEST'],
  ];
  const compromiseCases: Case[] = [
    ...compromiseRows.map(([what, path, body, status, code, detail]): Case => ({
      name: `compromise: ${what}`,
      send: async () => call('POST', `/v1/keys/${path}/compromise`, { body, auth: await as(op) }),
      status,
      code,
      ...(detail === undefined ? {} : { detail }),
    })),
    {
      name: 'compromise with GET',
      send: async () => call('GET', '/v1/keys/hx-app/versions/1/compromise', { auth: await as(op) }),
      status: 404,
      code: 'NOT_FOUND',
    },
  ];

  // ---- framework-level refusals: same shape, nothing echoed ----------------------------------
  const request = (line: string, headers: string, body = '') =>
    raw(`${line}\r\nHost: 127.0.0.1\r\nConnection: close\r\n${headers}\r\n${body}`);
  const frameworkCases: Case[] = [
    {
      name: 'a 40 KB header',
      send: () => request('GET /healthz HTTP/1.1', `X-Big: ${'a'.repeat(40_000)}\r\n`),
      status: 431,
      code: 'HEADERS_TOO_LARGE',
    },
    {
      name: '200 headers of 300 bytes',
      send: () =>
        request(
          'GET /healthz HTTP/1.1',
          Array.from({ length: 200 }, (_, i) => `X-H${String(i)}: ${'b'.repeat(300)}\r\n`).join(''),
        ),
      status: 431,
      code: 'HEADERS_TOO_LARGE',
    },
    {
      name: 'a body longer than its Content-Length',
      send: () =>
        request(
          'POST /v1/attestation/challenges HTTP/1.1',
          'Content-Type: application/json\r\nContent-Length: 2\r\n',
          '{}GARBAGE /etc/passwd\r\n\r\n',
        ),
      status: 400,
      code: 'BAD_REQUEST',
    },
    {
      name: 'a request line that is not HTTP',
      send: () => raw('HELLO /etc/passwd\r\n\r\n'),
      status: 400,
      code: 'BAD_REQUEST',
    },
    {
      name: 'a header without a colon',
      send: () => request('GET /healthz HTTP/1.1', 'NoColonHere\r\n'),
      status: 400,
      code: 'BAD_REQUEST',
    },
    ...['/v1/devices/%zz', '/v1/devices/%E0%A4%A', '/v1/%', '/v1/keys/%c0%af/encrypt', '/v1/devices/%ff%fe'].map(
      (path): Case => ({
        name: `invalid percent-encoding: ${path}`,
        send: () => request(`GET ${path} HTTP/1.1`, ''),
        status: 400,
        code: 'BAD_REQUEST',
      }),
    ),
    {
      name: 'an unknown route whose path is markup',
      send: () => request('GET /v1/%3Cscript%3Ealert(1)%3C/script%3E HTTP/1.1', ''),
      status: 404,
      code: 'NOT_FOUND',
    },
    {
      name: 'an unknown method on a known path',
      send: () => request('DELETE /v1/devices/hx-dev-1 HTTP/1.1', ''),
      status: 404,
      code: 'NOT_FOUND',
    },
    {
      name: 'a Content-Length that is not a number',
      send: () =>
        request(
          'POST /v1/attestation/challenges HTTP/1.1',
          'Content-Type: application/json\r\nContent-Length: abc\r\n',
          '{}',
        ),
      status: 400,
      code: 'BAD_REQUEST',
    },
    {
      name: 'two Content-Lengths that differ',
      send: () =>
        request(
          'POST /v1/attestation/challenges HTTP/1.1',
          'Content-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n',
          '{}',
        ),
      status: 400,
      code: 'BAD_REQUEST',
    },
    {
      name: 'an empty JSON body',
      send: () =>
        request('POST /v1/attestation/challenges HTTP/1.1', 'Content-Type: application/json\r\nContent-Length: 0\r\n'),
      status: 400,
      code: 'BAD_REQUEST',
    },
  ];

  const cases: Case[] = [
    ...bodyCases,
    ...authFirstCases,
    ...authCases,
    ...textCases,
    ...idCases,
    ...jwsCases,
    ...rotationCases,
    ...tokenCases,
    ...evidenceCases,
    ...jweCases,
    ...referenceCases,
    ...bookmarkCases,
    ...compromiseCases,
    ...frameworkCases,
  ];

  it('has at least 300 cases', () => {
    expect(cases.length).to.be.at.least(300);
  });

  for (const c of cases) {
    it(c.name, async () => {
      const height = await f.ledger.height();
      const answer = await c.send();
      expect(answer.status, answer.text.slice(0, 400)).to.equal(c.status);
      expect(answer.status).to.be.below(500);
      expect(answer.body.error?.code, answer.text.slice(0, 400)).to.equal(c.code);
      if (c.detail !== undefined) expect(answer.body.error?.detail, answer.text.slice(0, 400)).to.equal(c.detail);
      expect(answer.body.error?.message).to.be.a('string');
      // Nothing internal: no stack frame, no file path, no PIN, nothing of the request's path echoed.
      expect(answer.text).not.to.match(/\n\s+at |\.ts:\d|\.js:\d|node_modules|\/tmp\/|\/home\/|\/work\//);
      expect(answer.text).not.to.include(f.store.pin);
      expect(answer.text).not.to.match(/%zz|%3Cscript|<script|\/etc\/passwd/i);
      expect(await f.ledger.height(), 'ledger height').to.equal(height);
    });
  }

  it('left every record the rows aimed at as it was (Org2 snapshot)', async () => {
    expect(await snapshot()).to.deep.equal(initial);
  });

  it('the same device messages, closed and without repeats, are accepted (the rows failed for their defect alone)', async () => {
    const fetched = await rotate(await signDevice(deviceHeader(RequestTyp), rotationClaims()));
    expect(fetched.status, fetched.text).to.equal(200);
    const checked = await checkIn(await signDevice(deviceHeader(CheckInTyp), checkInClaims()));
    expect(checked.status, checked.text).to.equal(200);
  });

  it('pages devices with the bookmark a page handed out', async () => {
    const auth = await as(op);
    const first = await call('GET', '/v1/devices?group=hx-lab&pageSize=1', { auth });
    expect(first.status, first.text).to.equal(200);
    const second = await call('GET', `/v1/devices?group=hx-lab&pageSize=1&bookmark=${String(first.body.bookmark)}`, {
      auth,
    });
    expect(second.status, second.text).to.equal(200);
    const ids = [first, second].flatMap((a) => (a.body.items as DeviceRecord[]).map((d) => d.DeviceID));
    expect(ids).to.deep.equal(['hx-dev-1', 'hx-dev-2']);
  });

  describe('marking a key version compromised (KMIP)', () => {
    it('records it once, with who asked and why; a repeat writes nothing', async () => {
      const auth = await as(op);
      const height = await f.ledger.height();
      const marked = await call('POST', '/v1/keys/hx-app/versions/1/compromise', {
        auth,
        body: { reason: 'key file found on a laptop' },
      });
      expect(marked.status, marked.text).to.equal(200);
      expect(marked.body).to.include({ outcome: 'compromised', keyId: 'hx-app', version: 1 });
      await f.ledger.committed(String(marked.body.transactionId));
      const key = await f.ledger.evaluate<KeyRecord>('GetKey', 'hx-app');
      expect(key.Versions[0]).to.include({ State: 'compromised', CompromisedAt: marked.body.compromisedAt });
      expect(key.Proof.TxID).to.equal(marked.body.transactionId);
      expect(key.Proof.Principal).to.deep.equal({ Kind: 'operator', ID: 'alice' });
      expect(key.NextRotationDue).to.equal(marked.body.nextRotationDue);
      const [tx] = (await f.ledger.transactions()).filter((t) => t.method === 'MarkKeyCompromised');
      expect(tx?.transactionId).to.equal(marked.body.transactionId);
      const afterFirst = await f.ledger.height();
      expect(afterFirst).to.be.above(height);

      const again = await call('POST', '/v1/keys/hx-app/versions/1/compromise', { auth, body: { reason: 'again' } });
      expect(again.status, again.text).to.equal(200);
      expect(again.body).to.deep.include({
        outcome: 'already-compromised',
        transactionId: null,
        compromisedAt: marked.body.compromisedAt,
      });
      expect(await f.ledger.height()).to.equal(afterFirst);
    });

    const refusedCases: Case[] = [
      {
        name: 'encrypt with the compromised version',
        send: async () => call('POST', '/v1/keys/hx-app/encrypt', { body: { plaintext: 'aGk' }, auth: await as(app) }),
        status: 403,
        code: 'FORBIDDEN',
        detail: 'KEY_COMPROMISED',
      },
      {
        name: 'decrypt with the compromised version, not asked for',
        send: async () => call('POST', '/v1/keys/decrypt', { body: { ciphertext }, auth: await as(app) }),
        status: 403,
        code: 'FORBIDDEN',
        detail: 'KEY_COMPROMISED',
      },
      {
        name: 'decrypt with allowCompromised "yes" (not a boolean)',
        send: async () =>
          call('POST', '/v1/keys/decrypt', { body: { ciphertext, allowCompromised: 'yes' }, auth: await as(app) }),
        status: 400,
        code: 'BAD_REQUEST',
      },
      {
        name: 'allowCompromised on encrypt',
        send: async () =>
          call('POST', '/v1/keys/hx-app/encrypt', {
            body: { plaintext: 'aGk', allowCompromised: true },
            auth: await as(app),
          }),
        status: 400,
        code: 'BAD_REQUEST',
      },
      {
        name: 'a stranger application recovering with allowCompromised',
        send: async () =>
          call('POST', '/v1/keys/decrypt', {
            body: { ciphertext, allowCompromised: true },
            auth: await as(() => f.callers.payroll),
          }),
        status: 403,
        code: 'FORBIDDEN',
        detail: 'ACCESS_DENIED',
      },
    ];
    for (const c of refusedCases) {
      it(`refuses: ${c.name}`, async () => {
        const height = await f.ledger.height();
        const answer = await c.send();
        expect(answer.status, answer.text).to.equal(c.status);
        expect(answer.body.error?.code).to.equal(c.code);
        if (c.detail !== undefined) expect(answer.body.error?.detail).to.equal(c.detail);
        expect(await f.ledger.height()).to.equal(height);
      });
    }

    it('a compromised signing version never signs or exports; it verifies only when asked', async () => {
      const auth = await as(app);
      const signed = await call('POST', '/v1/keys/hx-sign/sign', { body: { data: b64('invoice 7') }, auth });
      expect(signed.status, signed.text).to.equal(200);
      const marked = await call('POST', '/v1/keys/hx-sign/versions/1/compromise', {
        body: { reason: 'signing host breached' },
        auth: await as(op),
      });
      expect(marked.body.outcome, marked.text).to.equal('compromised');
      const height = await f.ledger.height();
      const refusals = [
        await call('POST', '/v1/keys/hx-sign/sign', { body: { data: b64('invoice 8') }, auth }),
        await call('POST', '/v1/keys/hx-sign/verify', {
          body: { data: b64('invoice 7'), signature: signed.body.signature },
          auth,
        }),
        await call('POST', '/v1/keys/hx-sign/export', {
          body: { deviceId: 'hx-dev-1', certificate: device.certificatePem, version: 1 },
          auth,
        }),
      ];
      expect(refusals.map((r) => [r.status, r.body.error?.detail])).to.deep.equal([
        [403, 'KEY_COMPROMISED'],
        [403, 'KEY_COMPROMISED'],
        [403, 'KEY_COMPROMISED'],
      ]);
      const verified = await call('POST', '/v1/keys/hx-sign/verify', {
        // A recovery names the version: with none active, there is no default to fall back on.
        body: { data: b64('invoice 7'), signature: signed.body.signature, version: 1, allowCompromised: true },
        auth,
      });
      expect(verified.status, verified.text).to.equal(200);
      expect(verified.body).to.include({ valid: true, version: 1, state: 'compromised' });
      expect(await f.ledger.height()).to.equal(height);
    });

    it('decrypts with it only when the caller asks to recover, and says so', async () => {
      const recovered = await call('POST', '/v1/keys/decrypt', {
        body: { ciphertext, allowCompromised: true },
        auth: await as(app),
      });
      expect(recovered.status, recovered.text).to.equal(200);
      expect(recovered.body).to.include({
        plaintext: b64('secret'),
        keyId: 'hx-app',
        version: 1,
        state: 'compromised',
      });
    });
  });
});
