import { X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { calculateJwkThumbprint, compactVerify, exportJWK, generateKeyPair } from 'jose';
import type { DeviceRecord, TrustAnchorRecord } from '@keyfleet/protocol';
import { hsmSigningKey } from '@keyfleet/gateway';
import { issueEnrolmentToken } from '@keyfleet/gateway';
import {
  customToken,
  newDeviceCsr,
  sha256Hex,
  startGatewayFixture,
  unsignedToken,
  AUDIENCE,
  type Caller,
  type GatewayFixture,
} from './support/gateway-fixture';
import { callService, type Answer, type CallOptions } from './support/http';

/**
 * The gateway end to end on real SoftHSM: it starts from an empty token, makes its keys there,
 * registers them as trust anchors, and serves the REST API over real HTTP. The ledger is the
 * test run's Fabric network (a chaincode namespace of this suite's own), read back as Org2's auditor.
 */
describe('gateway on SoftHSM', function () {
  this.timeout(60_000);
  let f: GatewayFixture;

  const call = (method: string, path: string, options: CallOptions = {}) => callService(f.url, method, path, options);
  const as = (caller: Caller) => f.bearer(caller);
  const enrolmentToken = async (deviceId: string, extra: Record<string, unknown> = {}) => {
    const answer = await call('POST', '/v1/enrolment-tokens', {
      auth: await as(f.callers.operator),
      body: { deviceId, group: 'lab', location: 'bench 4', function: 'thermometer', ...extra },
    });
    expect(answer.status, JSON.stringify(answer.body)).to.equal(201);
    return answer.body.token as string;
  };
  const enrol = async (deviceId: string) => {
    const { csr } = await newDeviceCsr(deviceId);
    return call('POST', '/v1/devices', { body: { enrolmentToken: await enrolmentToken(deviceId), csr } });
  };

  before(async () => {
    f = await startGatewayFixture();
  });
  after(async () => {
    await f.close();
  });

  it('starts from a token alone and keeps every private key in it, non-extractable', async () => {
    const keys = await f.gateway.hsm.findKeys({ kind: 'private' });
    expect(keys.map((k) => k.label).sort()).to.deep.equal([
      'device-ca',
      'device-kex',
      'fabric-identity',
      'metadata-signing',
    ]);
    for (const key of keys) expect(key).to.include({ sensitive: true, extractable: false });
    // Org2's verifier key, Fabric identity and TLS CA live in Org2's own token, never in the operator's.
    const verifierKeys = await f.verifier.hsm.findKeys({ kind: 'private' });
    expect(verifierKeys.map((k) => k.label).sort()).to.deep.equal(['fabric-identity', 'tls-ca', 'verifier']);
    for (const key of verifierKeys) expect(key).to.include({ sensitive: true, extractable: false });
    // The data directory holds certificates and the test's JWKS, never key material.
    const files = readdirSync(f.dataDir).map(String).sort();
    expect(files).to.deep.equal([
      'auth',
      'device-ca.pem',
      'events', // the event checkpoint and the deny set (ids and statuses): no key material
      'fabric-identity-keyfleet-gateway.pem',
      'verifier',
    ]);
    expect(readdirSync(join(f.dataDir, 'auth'))).to.deep.equal(['jwks.json']);
  });

  it('answers /healthz, /metrics and /openapi.json', async () => {
    expect(await call('GET', '/healthz')).to.deep.include({
      status: 200,
      body: { status: 'ok', hsm: true, ledger: true },
    });
    const metrics = await fetch(`${f.url}/metrics`).then((r) => r.text());
    expect(metrics).to.match(/^keyfleet_http_requests_total\{route="\/healthz",status="200"\} 1$/m);
    const openapi = await call('GET', '/openapi.json');
    expect(openapi.body.openapi).to.equal('3.1.0');
    expect(Object.keys(openapi.body.paths as object)).to.include.members(['/v1/devices', '/v1/enrolment-tokens']);
  });

  it('registers its HSM public keys as the ledger trust anchors, once', async () => {
    const anchors = await f.ledger.evaluate<TrustAnchorRecord[]>('ListTrustAnchors');
    for (const [hsm, label] of [
      [f.gateway.hsm, 'metadata-signing'],
      [f.gateway.hsm, 'device-ca'],
      [f.verifier.hsm, 'verifier'],
    ] as const) {
      const jwk = await exportJWK((await hsm.getPublicKey({ label })).keyObject);
      const thumbprint = await calculateJwkThumbprint(jwk);
      expect(
        anchors.filter((a) => a.Thumbprint === thumbprint),
        label,
      ).to.have.length(1);
    }
    const registrations = async () =>
      (await f.ledger.transactions()).filter((t) => t.method === 'RegisterTrustAnchor').length;
    expect(await registrations()).to.equal(3);
    const caBefore = await readCa();
    await f.restart();
    expect(await registrations()).to.equal(3);
    expect(await readCa()).to.equal(caBefore);
  });

  it('enrols a device: certificate from the HSM CA, record on the ledger signed by the HSM, HSM-held creator', async () => {
    const { csr, keys } = await newDeviceCsr('sensor-001');
    const answer = await call('POST', '/v1/devices', {
      body: { enrolmentToken: await enrolmentToken('sensor-001'), csr },
    });
    expect(answer.status, JSON.stringify(answer.body)).to.equal(201);

    const hsm = f.gateway.hsm;
    const certificate = new X509Certificate(answer.body.certificate as string);
    expect(certificate.verify((await hsm.getPublicKey({ label: 'device-ca' })).keyObject)).to.be.true;
    expect(certificate.subject).to.equal('CN=sensor-001\nO=keyfleet devices');
    const devicePublic = await crypto.subtle.exportKey('spki', keys.publicKey);
    expect(certificate.publicKey.export({ type: 'spki', format: 'der' })).to.deep.equal(Buffer.from(devicePublic));
    expect(answer.body.keyExchangePublicKey).to.equal((await hsm.getPublicKey({ label: 'device-kex' })).pem);

    // The ledger record, read back through the API as an auditor.
    const read = await call('GET', '/v1/devices/sensor-001', { auth: await as(f.callers.auditor) });
    expect(read.status).to.equal(200);
    const record = read.body.record as DeviceRecord;
    expect(record).to.include({ DeviceID: 'sensor-001', Group: 'lab', Status: 'active' });
    expect(record.CertFingerprint).to.equal(sha256Hex(certificate.raw));

    // Anyone can check the record against the pinned metadata-signing key, without the gateway.
    const metadataKey = (await hsm.getPublicKey({ label: 'metadata-signing' })).keyObject;
    const { payload } = await compactVerify(read.body.signature as string, metadataKey);
    const signed = JSON.parse(Buffer.from(payload).toString()) as Record<string, unknown>;
    expect(signed).to.include({
      Action: 'EnrolDevice',
      DeviceID: 'sensor-001',
      CertFingerprint: record.CertFingerprint,
    });

    // The transaction's creator is the gateway identity whose key lives in the HSM.
    const tx = (await f.ledger.transactions()).find((t) => t.transactionId === answer.body.transactionId);
    expect(tx?.method).to.equal('EnrolDevice');
    expect(tx?.creator.mspId).to.equal('Org1MSP');
    const creatorKey = new X509Certificate(tx?.creator.certificatePem ?? '').publicKey;
    const identityKey = (await hsm.getPublicKey({ label: 'fabric-identity' })).keyObject;
    expect(creatorKey.equals(identityKey)).to.be.true;
  });

  it('runs the device lifecycle and keeps its history', async () => {
    expect((await enrol('sensor-002')).status).to.equal(201);
    const operator = await as(f.callers.operator);
    for (const [action, status] of [
      ['suspend', 'suspended'],
      ['reinstate', 'active'],
      ['revoke', 'revoked'],
    ] as const) {
      const answer = await call('POST', `/v1/devices/sensor-002/${action}`, {
        auth: operator,
        body: { reason: action },
      });
      expect(answer.status, JSON.stringify(answer.body)).to.equal(200);
      expect((answer.body.record as DeviceRecord).Status).to.equal(status);
    }
    const history = await call('GET', '/v1/audit/devices/sensor-002', { auth: await as(f.callers.auditor) });
    const entries = history.body.entries as { value: DeviceRecord; transactionId: string }[];
    expect(entries.map((e) => e.value.Status)).to.deep.equal(['revoked', 'active', 'suspended', 'active']);
    const list = await call('GET', '/v1/devices?group=lab&pageSize=1', { auth: operator });
    expect((list.body.items as unknown[]).length).to.equal(1);
    expect(list.body.bookmark).to.match(/^[A-Za-z0-9_-]+$/);
    const next = await call('GET', `/v1/devices?group=lab&pageSize=1&bookmark=${list.body.bookmark as string}`, {
      auth: operator,
    });
    const [first] = list.body.items as DeviceRecord[];
    const [second] = next.body.items as DeviceRecord[];
    expect(second?.DeviceID).to.be.a('string').and.not.equal(first?.DeviceID);
  });

  it('registers keys generated in the HSM and reads them back with their signature', async () => {
    const operator = await as(f.callers.operator);
    const policy = {
      read: [{ mspId: 'Org1MSP', role: 'application', id: 'billing' }],
      use: [{ mspId: 'Org1MSP', role: 'application', id: 'billing' }],
      rotate: [{ mspId: 'Org1MSP', role: 'operator' }],
      administer: [{ mspId: 'Org1MSP', role: 'operator' }],
    };
    for (const [keyId, algorithm, purpose] of [
      ['billing-data', 'AES-256', 'encrypt'],
      ['billing-sign', 'EC-P256', 'sign'],
    ] as const) {
      const answer = await call('POST', '/v1/keys', {
        auth: operator,
        body: {
          keyId,
          algorithm,
          purpose,
          owner: { type: 'application', id: 'billing' },
          rotationIntervalSeconds: 86400,
          accessPolicy: policy,
        },
      });
      expect(answer.status, JSON.stringify(answer.body)).to.equal(201);
      const objects = await f.gateway.hsm.findKeys({ label: `key:${keyId}:v1` });
      expect(objects.length, keyId).to.be.greaterThan(0);
      for (const o of objects.filter((k) => k.kind !== 'public')) expect(o).to.include({ extractable: false });
    }
    const read = await call('GET', '/v1/keys/billing-data', { auth: await as(f.callers.application) });
    expect(read.status).to.equal(200);
    expect((read.body.record as { Algorithm: string }).Algorithm).to.equal('AES-256');
    const { payload } = await compactVerify(
      read.body.signature as string,
      (await f.gateway.hsm.getPublicKey({ label: 'metadata-signing' })).keyObject,
    );
    expect(JSON.parse(Buffer.from(payload).toString())).to.include({ Action: 'RegisterKey', KeyID: 'billing-data' });
  });

  it('accepts a credential added to the JWKS while it runs, for its own subject and role only', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const dave = { subject: 'dave', role: 'auditor' as const, kid: 'dave-key', key: privateKey };
    const file = join(f.dataDir, 'auth', 'jwks.json');
    const before = await call('GET', '/v1/audit/trust-anchors', { auth: await f.bearer(dave) });
    expect(before.status).to.equal(401);
    const jwks = JSON.parse(readFileSync(file, 'utf8')) as { keys: object[] };
    jwks.keys.push({ ...(await exportJWK(publicKey)), kid: 'dave-key', alg: 'ES256', sub: 'dave', role: 'auditor' });
    writeFileSync(file, JSON.stringify(jwks));
    const after = await call('GET', '/v1/audit/trust-anchors', { auth: await f.bearer(dave) });
    expect(after.status, JSON.stringify(after.body)).to.equal(200);
    const asOperator = await call('POST', '/v1/enrolment-tokens', {
      auth: await f.bearer({ ...dave, role: 'operator' }),
      body: { deviceId: 'x-1', group: 'lab', location: 'l', function: 'f' },
    });
    expect(asOperator.status).to.equal(401);
  });

  it('encrypts and decrypts by Key ID over HTTP; an operator rotation keeps old ciphertexts readable', async () => {
    const app = await as(f.callers.application);
    const plaintext = Buffer.from('meter reading 42').toString('base64url');
    const sealed = await call('POST', '/v1/keys/billing-data/encrypt', { auth: app, body: { plaintext } });
    expect(sealed.status, JSON.stringify(sealed.body)).to.equal(200);
    expect(sealed.body).to.include({ keyId: 'billing-data', version: 1 });

    const rotated = await call('POST', '/v1/keys/billing-data/rotate', { auth: await as(f.callers.operator) });
    expect(rotated.status, JSON.stringify(rotated.body)).to.equal(200);
    const resealed = await call('POST', '/v1/keys/billing-data/encrypt', { auth: app, body: { plaintext } });
    expect(resealed.body.version).to.equal(2);

    for (const ciphertext of [sealed.body.ciphertext, resealed.body.ciphertext]) {
      const opened = await call('POST', '/v1/keys/decrypt', { auth: app, body: { ciphertext } });
      expect(opened.status, JSON.stringify(opened.body)).to.equal(200);
      expect(opened.body.plaintext).to.equal(plaintext);
    }
    // The ciphertext is bound to its key and version: one changed byte and it is refused.
    const parts = (sealed.body.ciphertext as string).split('.');
    const body = parts[3] ?? '';
    parts[3] = (body.startsWith('A') ? 'B' : 'A') + body.slice(1);
    const tampered = await call('POST', '/v1/keys/decrypt', { auth: app, body: { ciphertext: parts.join('.') } });
    expect(tampered.status).to.be.within(400, 499);
    // Another application is refused by the key's policy.
    const stranger = await f.bearer(f.callers.payroll);
    const refused = await call('POST', '/v1/keys/billing-data/encrypt', { auth: stranger, body: { plaintext } });
    expect(refused.status).to.equal(403);
  });

  describe('refuses hostile requests with a coded error and writes nothing', () => {
    interface Case {
      name: string;
      send: () => Promise<Answer>;
      status: number;
      code: string;
    }
    let used: { token: string; csr: string };
    const now = () => Math.floor(Date.now() / 1000);

    before(async () => {
      // Preconditions for some rows: a token already used, an active device, a key.
      const { csr } = await newDeviceCsr('sensor-100');
      used = { token: await enrolmentToken('sensor-100'), csr };
      expect((await call('POST', '/v1/devices', { body: { enrolmentToken: used.token, csr } })).status).to.equal(201);
      const opsOnly = await call('POST', '/v1/keys', {
        auth: await as(f.callers.operator),
        body: key({ keyId: 'ops-only' }),
      });
      expect(opsOnly.status).to.equal(201);
      // The gateway waits for its own (Org1) peer to commit; Org2's peer, whose height the rows
      // compare, can take a moment longer: a row must not see that block arrive.
      for (let attempt = 0; ; attempt++) {
        try {
          await f.ledger.evaluate('GetKey', 'ops-only');
          break;
        } catch (err) {
          if (attempt >= 50) throw err;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    });

    const validToken = { deviceId: 'sensor-200', group: 'lab', location: 'bench', function: 'probe' };
    const post = (path: string, body: unknown, caller?: () => Caller) => async () =>
      call('POST', path, { body, ...(caller ? { auth: await as(caller()) } : {}) });
    const postWith = (auth: () => Promise<string>) => async () =>
      call('POST', '/v1/enrolment-tokens', { body: validToken, auth: await auth() });
    const op = () => f.callers.operator;
    const key = (overrides: Record<string, unknown>) => ({
      keyId: 'hostile-key',
      algorithm: 'AES-256',
      purpose: 'encrypt',
      owner: { type: 'application', id: 'billing' },
      rotationIntervalSeconds: 86400,
      accessPolicy: { read: [], use: [], rotate: [], administer: [{ mspId: 'Org1MSP', role: 'operator' }] },
      ...overrides,
    });
    const enrolWith =
      (token: () => Promise<string>, csrFor = 'sensor-300') =>
      async () =>
        call('POST', '/v1/devices', { body: { enrolmentToken: await token(), csr: (await newDeviceCsr(csrFor)).csr } });
    const signedByHsm = async (grant: Record<string, unknown>, issuedAt: Date, ttl: number) =>
      (
        await issueEnrolmentToken(
          await hsmSigningKey(f.gateway.hsm, 'metadata-signing'),
          { deviceId: 'sensor-300', group: 'lab', location: 'x', function: 'y', ...grant },
          'alice',
          ttl,
          issuedAt,
        )
      ).token;

    const cases: Case[] = [
      // credentials
      { name: 'no credentials', send: post('/v1/enrolment-tokens', validToken), status: 401, code: 'UNAUTHENTICATED' },
      {
        name: 'Basic instead of Bearer',
        send: postWith(() => Promise.resolve('Basic YWxpY2U6cHc=')),
        status: 401,
        code: 'UNAUTHENTICATED',
      },
      {
        name: 'bearer garbage',
        send: postWith(() => Promise.resolve('Bearer not.a.token')),
        status: 401,
        code: 'UNAUTHENTICATED',
      },
      {
        name: 'key not in the JWKS',
        send: post('/v1/enrolment-tokens', validToken, () => f.callers.stranger),
        status: 401,
        code: 'UNAUTHENTICATED',
      },
      {
        name: 'unsigned token (alg none)',
        send: postWith(() =>
          Promise.resolve(
            `Bearer ${unsignedToken({ sub: 'alice', role: 'operator', aud: AUDIENCE, iat: now(), exp: now() + 60 })}`,
          ),
        ),
        status: 401,
        code: 'UNAUTHENTICATED',
      },
      {
        name: 'expired token',
        send: postWith(
          async () =>
            `Bearer ${await customToken(op(), { sub: 'alice', role: 'operator', aud: AUDIENCE }, now() - 600, now() - 300)}`,
        ),
        status: 401,
        code: 'UNAUTHENTICATED',
      },
      {
        name: 'token for another audience',
        send: postWith(() => f.bearer(op(), { audience: 'someone-else' })),
        status: 401,
        code: 'UNAUTHENTICATED',
      },
      {
        name: 'unknown role',
        send: postWith(
          async () =>
            `Bearer ${await customToken(op(), { sub: 'alice', role: 'admin', aud: AUDIENCE }, now(), now() + 60)}`,
        ),
        status: 401,
        code: 'UNAUTHENTICATED',
      },
      {
        name: 'lifetime over an hour',
        send: postWith(() => f.bearer(op(), { ttlSeconds: 7200 })),
        status: 401,
        code: 'UNAUTHENTICATED',
      },
      {
        name: "an application's key claiming the operator role",
        send: postWith(
          async () =>
            `Bearer ${await customToken(f.callers.application, { sub: 'billing', role: 'operator', aud: AUDIENCE }, now(), now() + 60)}`,
        ),
        status: 401,
        code: 'UNAUTHENTICATED',
      },
      {
        name: "an operator's key claiming another operator",
        send: postWith(
          async () =>
            `Bearer ${await customToken(op(), { sub: 'bob', role: 'operator', aud: AUDIENCE }, now(), now() + 60)}`,
        ),
        status: 401,
        code: 'UNAUTHENTICATED',
      },
      {
        name: 'issued an hour in the future (a lifetime that never starts)',
        send: postWith(
          async () =>
            `Bearer ${await customToken(op(), { sub: 'alice', role: 'operator', aud: AUDIENCE }, now() + 3600, now() + 7000)}`,
        ),
        status: 401,
        code: 'UNAUTHENTICATED',
      },
      {
        name: 'no kid in the header',
        send: postWith(
          async () =>
            `Bearer ${await customToken(op(), { sub: 'alice', role: 'operator', aud: AUDIENCE }, now(), now() + 60, {})}`,
        ),
        status: 401,
        code: 'UNAUTHENTICATED',
      },
      {
        name: 'no subject',
        send: postWith(
          async () => `Bearer ${await customToken(op(), { role: 'operator', aud: AUDIENCE }, now(), now() + 60)}`,
        ),
        status: 401,
        code: 'UNAUTHENTICATED',
      },
      {
        name: 'auditor issues an enrolment token',
        send: post('/v1/enrolment-tokens', validToken, () => f.callers.auditor),
        status: 403,
        code: 'FORBIDDEN',
      },
      {
        name: 'application suspends a device',
        send: async () =>
          call('POST', '/v1/devices/sensor-100/suspend', {
            body: { reason: 'x' },
            auth: await as(f.callers.application),
          }),
        status: 403,
        code: 'FORBIDDEN',
      },
      {
        name: 'auditor registers a key',
        send: async () => call('POST', '/v1/keys', { body: key({}), auth: await as(f.callers.auditor) }),
        status: 403,
        code: 'FORBIDDEN',
      },
      {
        name: 'application lists devices',
        send: async () => call('GET', '/v1/devices?group=lab', { auth: await as(f.callers.application) }),
        status: 403,
        code: 'FORBIDDEN',
      },
      // bodies
      {
        name: 'malformed JSON',
        send: async () => call('POST', '/v1/enrolment-tokens', { raw: '{"deviceId": ', auth: await as(op()) }),
        status: 400,
        code: 'BAD_REQUEST',
      },
      { name: 'an array body', send: post('/v1/enrolment-tokens', [validToken], op), status: 400, code: 'BAD_REQUEST' },
      {
        name: 'unknown field',
        send: post('/v1/enrolment-tokens', { ...validToken, admin: true }, op),
        status: 400,
        code: 'BAD_REQUEST',
      },
      {
        name: 'missing deviceId',
        send: post('/v1/enrolment-tokens', { ...validToken, deviceId: undefined }, op),
        status: 400,
        code: 'BAD_REQUEST',
      },
      {
        name: 'deviceId a number',
        send: post('/v1/enrolment-tokens', { ...validToken, deviceId: 42 }, op),
        status: 400,
        code: 'BAD_REQUEST',
      },
      {
        name: 'deviceId with a slash',
        send: post('/v1/enrolment-tokens', { ...validToken, deviceId: 'a/b' }, op),
        status: 400,
        code: 'BAD_REQUEST',
      },
      {
        name: 'deviceId of 65 characters',
        send: post('/v1/enrolment-tokens', { ...validToken, deviceId: 'd'.repeat(65) }, op),
        status: 400,
        code: 'BAD_REQUEST',
      },
      {
        name: 'location of 257 characters',
        send: post('/v1/enrolment-tokens', { ...validToken, location: 'l'.repeat(257) }, op),
        status: 400,
        code: 'BAD_REQUEST',
      },
      {
        name: 'location with a control character',
        send: post('/v1/enrolment-tokens', { ...validToken, location: 'a\u0007b' }, op),
        status: 400,
        code: 'BAD_REQUEST',
      },
      {
        // The shard map places a device at enrolment; a token names no shard.
        name: 'a shard chosen by the caller',
        send: post('/v1/enrolment-tokens', { ...validToken, shard: 1 }, op),
        status: 400,
        code: 'BAD_REQUEST',
      },
      {
        name: 'ttl below a minute',
        send: post('/v1/enrolment-tokens', { ...validToken, ttlSeconds: 5 }, op),
        status: 400,
        code: 'BAD_REQUEST',
      },
      {
        name: 'body over the limit',
        send: post('/v1/enrolment-tokens', { ...validToken, location: 'x'.repeat(100_000) }, op),
        status: 413,
        code: 'BODY_TOO_LARGE',
      },
      {
        name: 'text/plain body',
        send: async () =>
          call('POST', '/v1/enrolment-tokens', {
            raw: JSON.stringify(validToken),
            contentType: 'text/plain',
            auth: await as(op()),
          }),
        status: 415,
        code: 'UNSUPPORTED_MEDIA_TYPE',
      },
      {
        name: 'empty JSON body',
        send: async () => call('POST', '/v1/enrolment-tokens', { raw: '', auth: await as(op()) }),
        status: 400,
        code: 'BAD_REQUEST',
      },
      // enrolment
      {
        name: 'replayed enrolment token',
        send: async () => call('POST', '/v1/devices', { body: { enrolmentToken: used.token, csr: used.csr } }),
        status: 409,
        code: 'ENROLMENT_TOKEN_USED',
      },
      {
        name: 'enrolment token signed by another key',
        send: enrolWith(async () => {
          const stranger = await customToken(
            f.callers.stranger,
            {
              sub: 'sensor-300',
              aud: 'keyfleet-enrolment',
              jti: 'x',
              iss: 'm',
              grp: 'lab',
              loc: 'x',
              fn: 'y',
            },
            now(),
            now() + 60,
          );
          return stranger;
        }),
        status: 401,
        code: 'ENROLMENT_TOKEN_INVALID',
      },
      {
        name: 'enrolment token with its payload changed',
        send: enrolWith(async () => {
          const [h, , s] = (await enrolmentToken('sensor-300')).split('.');
          const forged = Buffer.from(JSON.stringify({ sub: 'sensor-300', grp: 'admin' })).toString('base64url');
          return `${h ?? ''}.${forged}.${s ?? ''}`;
        }),
        status: 401,
        code: 'ENROLMENT_TOKEN_INVALID',
      },
      {
        name: 'expired enrolment token',
        send: enrolWith(() => signedByHsm({}, new Date(Date.now() - 7200_000), 3600)),
        status: 401,
        code: 'ENROLMENT_TOKEN_INVALID',
      },
      {
        name: 'a bearer token as enrolment token',
        send: enrolWith(async () => (await as(op())).slice('Bearer '.length)),
        status: 401,
        code: 'ENROLMENT_TOKEN_INVALID',
      },
      {
        name: 'token for one device, CSR for another',
        send: enrolWith(() => enrolmentToken('sensor-300'), 'sensor-301'),
        status: 400,
        code: 'CSR_INVALID',
      },
      {
        name: 'CSR that is not PEM',
        send: async () =>
          call('POST', '/v1/devices', { body: { enrolmentToken: await enrolmentToken('sensor-300'), csr: 'hello' } }),
        status: 400,
        code: 'CSR_INVALID',
      },
      {
        name: 'CSR with an RSA key',
        send: async () =>
          call('POST', '/v1/devices', {
            body: {
              enrolmentToken: await enrolmentToken('sensor-300'),
              csr: (
                await newDeviceCsr('sensor-300', {
                  name: 'RSASSA-PKCS1-v1_5',
                  modulusLength: 2048,
                  publicExponent: new Uint8Array([1, 0, 1]),
                  hash: 'SHA-256',
                })
              ).csr,
            },
          }),
        status: 400,
        code: 'CSR_INVALID',
      },
      {
        name: 'CSR missing',
        send: async () => call('POST', '/v1/devices', { body: { enrolmentToken: await enrolmentToken('sensor-300') } }),
        status: 400,
        code: 'BAD_REQUEST',
      },
      {
        name: 'enrolment token not a string',
        send: post('/v1/devices', { enrolmentToken: 7, csr: 'x' }),
        status: 400,
        code: 'BAD_REQUEST',
      },
      // devices
      {
        name: 'unknown device',
        send: async () => call('GET', '/v1/devices/nobody', { auth: await as(op()) }),
        status: 404,
        code: 'NOT_FOUND',
      },
      {
        name: 'suspend an unknown device',
        send: post('/v1/devices/nobody/suspend', { reason: 'x' }, op),
        status: 404,
        code: 'NOT_FOUND',
      },
      {
        name: 'reinstate an active device',
        send: post('/v1/devices/sensor-100/reinstate', { reason: 'x' }, op),
        status: 409,
        code: 'LEDGER_REJECTED',
      },
      {
        name: 'revoke with an empty reason',
        send: post('/v1/devices/sensor-100/revoke', { reason: '' }, op),
        status: 400,
        code: 'BAD_REQUEST',
      },
      {
        name: 'list without a group',
        send: async () => call('GET', '/v1/devices', { auth: await as(op()) }),
        status: 400,
        code: 'BAD_REQUEST',
      },
      {
        name: 'list with page size 0',
        send: async () => call('GET', '/v1/devices?group=lab&pageSize=0', { auth: await as(op()) }),
        status: 400,
        code: 'BAD_REQUEST',
      },
      {
        name: 'unknown route',
        send: async () => call('GET', '/v1/secrets', { auth: await as(op()) }),
        status: 404,
        code: 'NOT_FOUND',
      },
      {
        name: 'DELETE a device',
        send: async () => call('DELETE', '/v1/devices/sensor-100', { auth: await as(op()) }),
        status: 404,
        code: 'NOT_FOUND',
      },
      // keys
      {
        name: 'key with an unknown algorithm',
        send: post('/v1/keys', key({ algorithm: 'DES' }), op),
        status: 400,
        code: 'BAD_REQUEST',
      },
      {
        name: 'key policy without an operator administrator',
        send: post('/v1/keys', key({ accessPolicy: { read: [], use: [], rotate: [], administer: [] } }), op),
        status: 400,
        code: 'LEDGER_REJECTED',
      },
      {
        name: 'key registered twice',
        send: post('/v1/keys', key({ keyId: 'billing-data' }), op),
        status: 409,
        code: 'LEDGER_REJECTED',
      },
      {
        name: 'application reads a key it is not granted',
        send: async () => call('GET', '/v1/keys/ops-only', { auth: await as(f.callers.application) }),
        status: 403,
        code: 'FORBIDDEN',
      },
      {
        name: 'unknown key',
        send: async () => call('GET', '/v1/keys/nothing-here', { auth: await as(op()) }),
        status: 404,
        code: 'NOT_FOUND',
      },
    ];

    it('has at least 40 cases', () => {
      expect(cases.length).to.be.at.least(40);
    });

    for (const c of cases) {
      it(c.name, async () => {
        const ledgerBefore = await f.ledger.height();
        const keysBefore = (await f.gateway.hsm.findKeys()).length;
        const answer = await c.send();
        expect(answer.status, JSON.stringify(answer.body)).to.equal(c.status);
        expect(answer.body.error?.code).to.equal(c.code);
        expect(await f.ledger.height(), 'ledger height').to.equal(ledgerBefore);
        expect((await f.gateway.hsm.findKeys()).length, 'HSM objects').to.equal(keysBefore);
      });
    }
  });

  async function readCa(): Promise<string> {
    const { readFile } = await import('node:fs/promises');
    return readFile(join(f.dataDir, 'device-ca.pem'), 'utf8');
  }
});
