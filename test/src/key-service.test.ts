import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPublicKey,
  diffieHellman,
  verify,
  X509Certificate,
} from 'node:crypto';
import { expect } from 'chai';
import fastify, { type FastifyInstance } from 'fastify';
import type { KeyRecord } from '@keyfleet/protocol';
import { newKeyClient, KeyClientErrorCode } from '@keyfleet/agent';
import { isGatewayError, type Principal } from '@keyfleet/gateway';
import { exportKekDerivationData, parseEnvelope } from '@keyfleet/gateway';
import { x509 } from '@keyfleet/gateway';
import { handleError } from '@keyfleet/gateway';
import { registerKeyRoutes } from '@keyfleet/gateway';
import { generateVersionKey } from '@keyfleet/gateway';
import { nextKeyCommitment } from '@keyfleet/gateway';
import { newKeyWorld, type KeyWorld } from './support/key-world';

const billing: Principal = { subject: 'billing', role: 'application' };
const mallory: Principal = { subject: 'mallory', role: 'application' };
const audrey: Principal = { subject: 'audrey', role: 'auditor' };
const alice: Principal = { subject: 'alice', role: 'operator' };
const bob: Principal = { subject: 'bob', role: 'operator' };
const bytes = (text: string) => Buffer.from(text, 'utf8');

/** The refusal's code and detail, or a failure if the call succeeded. */
async function refusal(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
  } catch (err) {
    if (isGatewayError(err)) return `${err.code}/${err.detail ?? ''}`;
    throw err;
  }
  throw new Error('expected a refusal');
}

/**
 * The application key service end to end on SoftHSM and the real contract in-process: keys made
 * through the gateway's registration, rotated and destroyed through the ledger, used by Key ID.
 */
describe('application key service on SoftHSM', function () {
  this.timeout(120_000);
  let w: KeyWorld;
  const ops = () => w.gateway.operations;
  const rotate = (keyId: string) => w.gateway.rotation.rotateApplicationKey(keyId);
  const getKey = (keyId: string) => w.gateway.ledger.read<KeyRecord>('GetKey', keyId);

  before(async () => {
    w = await newKeyWorld();
    await w.register('orders');
    await w.register('invoices', { algorithm: 'EC-P256', purpose: 'sign' });
    await w.register('ledger-export', { algorithm: 'EC-P256', purpose: 'sign' });
    await w.register('spare');
  });
  after(async () => {
    await w.close();
  });

  it('decrypts old ciphertexts with their version and encrypts with the newest, then refuses a destroyed version', async () => {
    const v1 = await ops().encrypt(billing, 'orders', bytes('order 1'), bytes('ctx'));
    expect(v1.version).to.equal(1);
    const env = parseEnvelope(v1.ciphertext);
    expect(env).to.not.be.a('string');
    expect(typeof env === 'string' ? null : env.header).to.deep.include({ kid: 'orders', ver: 1, alg: 'dir' });

    const rotated = await rotate('orders');
    expect(rotated).to.include({ outcome: 'rotated', version: 2, previousVersion: 1 });
    const key = await getKey('orders');
    expect(key.Versions.map((v) => v.State)).to.deep.equal(['deactivated', 'active']);
    expect(key.NextKeyCommitment).to.match(/^[0-9a-f]{64}$/);
    // Pre-rotation: version 3 already waits in the HSM.
    expect(await w.gateway.hsm.findKeys({ label: 'key:orders:v3', kind: 'secret' })).to.have.length(1);

    const v2 = await ops().encrypt(billing, 'orders', bytes('order 2'));
    expect(v2.version).to.equal(2);
    expect(Buffer.from((await ops().decrypt(billing, v1.ciphertext, bytes('ctx'))).plaintext).toString()).to.equal(
      'order 1',
    );
    expect((await ops().decrypt(billing, v1.ciphertext, bytes('ctx'))).version).to.equal(1);
    expect(Buffer.from((await ops().decrypt(billing, v2.ciphertext)).plaintext).toString()).to.equal('order 2');

    // A second rotation commits the pre-generated version 3 (its commitment matches).
    expect(await rotate('orders')).to.include({ version: 3 });
    const v3 = await ops().encrypt(billing, 'orders', bytes('order 3'));
    expect(v3.version).to.equal(3);

    // Retention (600 s) not over: nothing is destroyed.
    expect((await w.gateway.rotation.destroyExpiredVersions()).destroyed).to.deep.equal([]);
    w.clock.advance(601);
    const { destroyed } = await w.gateway.rotation.destroyExpiredVersions();
    expect(destroyed.filter((d) => d.keyId === 'orders').map((d) => d.version)).to.deep.equal([1, 2]);
    expect((await getKey('orders')).Versions.map((v) => v.State)).to.deep.equal(['destroyed', 'destroyed', 'active']);
    expect(await w.gateway.hsm.findKeys({ label: 'key:orders:v1' })).to.deep.equal([]);
    expect(await refusal(() => ops().decrypt(billing, v1.ciphertext, bytes('ctx')))).to.equal(
      'FORBIDDEN/KEY_VERSION_DESTROYED',
    );
    expect(await refusal(() => ops().decrypt(billing, v2.ciphertext))).to.equal('FORBIDDEN/KEY_VERSION_DESTROYED');
    expect(Buffer.from((await ops().decrypt(billing, v3.ciphertext)).plaintext).toString()).to.equal('order 3');
  });

  it('signs in the HSM and verifies old signatures with their version after a rotation', async () => {
    const data = bytes('invoice 42');
    const signed = await ops().sign(billing, 'invoices', data);
    const record = await getKey('invoices');
    const publicKey = await w.gateway.hsm.getPublicKey({ label: 'key:invoices:v1' });
    expect(createHash('sha256').update(publicKey.spki).digest('hex')).to.equal(record.Versions[0]?.Fingerprint);
    expect(verify('sha256', data, { key: publicKey.keyObject, dsaEncoding: 'der' }, signed.signature)).to.equal(true);
    await rotate('invoices');
    expect((await ops().sign(billing, 'invoices', data)).version).to.equal(2);
    expect(await ops().verify(billing, 'invoices', data, signed.signature, 1)).to.include({ valid: true, version: 1 });
    expect(await ops().verify(billing, 'invoices', data, signed.signature)).to.include({ valid: false, version: 2 });
    expect(await ops().verify(billing, 'invoices', bytes('invoice 43'), signed.signature, 1)).to.include({
      valid: false,
    });
  });

  describe('hostile calls: each refused with its code, nothing written', () => {
    let good: string;
    let compromisedCiphertext: string;
    const tamper = (text: string, part: number, change: (b: Buffer) => Buffer) => {
      const parts = text.split('.');
      parts[part] = change(Buffer.from(parts[part] ?? '', 'base64url')).toString('base64url');
      return parts.join('.');
    };
    const flip = (b: Buffer) => {
      const c = Buffer.from(b);
      c[0] = (c[0] ?? 0) ^ 1;
      return c;
    };
    const header = (h: Record<string, unknown>) => Buffer.from(JSON.stringify(h));

    before(async () => {
      good = (await ops().encrypt(billing, 'spare', bytes('secret'), bytes('aad'))).ciphertext;
      compromisedCiphertext = good;
      await w.register('burnt');
      compromisedCiphertext = (await ops().encrypt(billing, 'burnt', bytes('x'))).ciphertext;
      await w.gateway.ledger.write('MarkKeyCompromised', {
        KeyID: 'burnt',
        Version: null,
        Reason: 'key leaked in a log',
      });
    });

    const cases: [string, () => Promise<unknown>, string][] = [
      ['wrong application encrypts', () => ops().encrypt(mallory, 'spare', bytes('x')), 'FORBIDDEN/ACCESS_DENIED'],
      ['wrong application decrypts', () => ops().decrypt(mallory, good, bytes('aad')), 'FORBIDDEN/ACCESS_DENIED'],
      ['an auditor encrypts', () => ops().encrypt(audrey, 'spare', bytes('x')), 'FORBIDDEN/ACCESS_DENIED'],
      [
        'tampered ciphertext',
        () => ops().decrypt(billing, tamper(good, 3, flip), bytes('aad')),
        'BAD_REQUEST/CIPHERTEXT_INVALID',
      ],
      [
        'tampered tag',
        () => ops().decrypt(billing, tamper(good, 4, flip), bytes('aad')),
        'BAD_REQUEST/CIPHERTEXT_INVALID',
      ],
      ['another AAD', () => ops().decrypt(billing, good, bytes('other')), 'BAD_REQUEST/CIPHERTEXT_INVALID'],
      ['AAD left out', () => ops().decrypt(billing, good), 'BAD_REQUEST/CIPHERTEXT_INVALID'],
      [
        'relabelled to another key',
        () =>
          ops().decrypt(
            billing,
            tamper(good, 0, () => header({ alg: 'dir', enc: 'A256GCM', kid: 'orders', kfv: 1, ver: 3 })),
            bytes('aad'),
          ),
        'BAD_REQUEST/CIPHERTEXT_INVALID',
      ],
      [
        'unknown version',
        () =>
          ops().decrypt(
            billing,
            tamper(good, 0, () => header({ alg: 'dir', enc: 'A256GCM', kid: 'spare', kfv: 1, ver: 9 })),
            bytes('aad'),
          ),
        'NOT_FOUND/VERSION_NOT_FOUND',
      ],
      [
        'unknown format version',
        () =>
          ops().decrypt(
            billing,
            tamper(good, 0, () => header({ alg: 'dir', enc: 'A256GCM', kid: 'spare', kfv: 2, ver: 1 })),
            bytes('aad'),
          ),
        'BAD_REQUEST/CIPHERTEXT_MALFORMED',
      ],
      ['not an envelope', () => ops().decrypt(billing, 'hello.world'), 'BAD_REQUEST/CIPHERTEXT_MALFORMED'],
      ['unknown key', () => ops().encrypt(billing, 'no-such-key', bytes('x')), 'NOT_FOUND/KEY_NOT_FOUND'],
      [
        'destroyed version',
        () =>
          ops().decrypt(
            billing,
            tamper(good, 0, () => header({ alg: 'dir', enc: 'A256GCM', kid: 'orders', kfv: 1, ver: 1 })),
            bytes('aad'),
          ),
        'FORBIDDEN/KEY_VERSION_DESTROYED',
      ],
      ['compromised key: encrypt', () => ops().encrypt(billing, 'burnt', bytes('x')), 'FORBIDDEN/KEY_COMPROMISED'],
      ['compromised key: decrypt', () => ops().decrypt(billing, compromisedCiphertext), 'FORBIDDEN/KEY_COMPROMISED'],
      ['sign with an encrypt key', () => ops().sign(billing, 'spare', bytes('x')), 'FORBIDDEN/KEY_PURPOSE_MISMATCH'],
      [
        'encrypt with a sign key',
        () => ops().encrypt(billing, 'invoices', bytes('x')),
        'FORBIDDEN/KEY_PURPOSE_MISMATCH',
      ],
      [
        'verify with an encrypt key',
        () => ops().verify(billing, 'spare', bytes('x'), bytes('sig')),
        'FORBIDDEN/KEY_PURPOSE_MISMATCH',
      ],
      [
        'verify with an unknown version',
        () => ops().verify(billing, 'invoices', bytes('x'), bytes('sig'), 7),
        'NOT_FOUND/VERSION_NOT_FOUND',
      ],
    ];

    for (const [name, call, expected] of cases) {
      it(name, async () => {
        const ledgerBefore = w.local.snapshot();
        const hsmBefore = (await w.gateway.hsm.findKeys()).map((k) => k.label).sort();
        expect(await refusal(call)).to.equal(expected);
        expect(w.local.snapshot()).to.equal(ledgerBefore);
        expect((await w.gateway.hsm.findKeys()).map((k) => k.label).sort()).to.deep.equal(hsmBefore);
      });
    }
  });

  it('refuses a key from the moment it is marked compromised, and its rotation brings a usable version', async () => {
    await w.register('hot');
    const before = await ops().encrypt(billing, 'hot', bytes('before'));
    await w.gateway.ledger.write('MarkKeyCompromised', { KeyID: 'hot', Version: null, Reason: 'HSM audit finding' });
    expect(await refusal(() => ops().encrypt(billing, 'hot', bytes('x')))).to.equal('FORBIDDEN/KEY_COMPROMISED');
    expect(await refusal(() => ops().decrypt(billing, before.ciphertext))).to.equal('FORBIDDEN/KEY_COMPROMISED');
    // The compromise trigger made it due now: the scheduler's rotation replaces it.
    expect((await getKey('hot')).NextRotationDue).to.equal(w.clock.now().toISOString());
    expect(await w.gateway.rotation.rotateApplicationKey('hot', { ifDueBy: w.clock.now() })).to.include({
      outcome: 'rotated',
      version: 2,
    });
    expect((await ops().encrypt(billing, 'hot', bytes('after'))).version).to.equal(2);
    expect(await refusal(() => ops().decrypt(billing, before.ciphertext))).to.equal('FORBIDDEN/KEY_COMPROMISED');
  });

  it('applies an access policy change from the next call', async () => {
    await w.register('policy-test');
    await ops().encrypt(billing, 'policy-test', bytes('x'));
    const operators = { MSPID: 'Org1MSP', Role: 'operator', ID: null };
    await w.gateway.ledger.write('SetAccessPolicy', {
      KeyID: 'policy-test',
      AccessPolicy: { Read: [], Use: [], Rotate: [operators], Administer: [operators] },
    });
    expect(await refusal(() => ops().encrypt(billing, 'policy-test', bytes('x')))).to.equal('FORBIDDEN/ACCESS_DENIED');
  });

  it('does not rotate a device-owned key server-side', async () => {
    await enrolDevice('dev-0100');
    await w.register('dev-0100-data', { owner: { type: 'device', id: 'dev-0100' } });
    expect(await refusal(() => rotate('dev-0100-data'))).to.equal('FORBIDDEN/KEY_DEVICE_OWNED');
  });

  async function enrolDevice(id: string) {
    const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: `CN=${id}`,
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    });
    const certificate = await w.ca.issue(csr.toString('pem'), id);
    await w.gateway.ledger.write('EnrolDevice', {
      DeviceID: id,
      Group: 'edge',
      Location: 'lab',
      Function: 'sensor',
      Shard: 0,
      CertFingerprint: createHash('sha256').update(new X509Certificate(certificate.pem).raw).digest('hex'),
    });
    const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
    return { certificatePem: certificate.pem, pkcs8 };
  }

  it('exports a public key that only the receiving device can open', async () => {
    const device = await enrolDevice('dev-0200');
    const exported = await ops().exportPublicKey(billing, 'ledger-export', {
      deviceId: 'dev-0200',
      certificatePem: device.certificatePem,
    });
    // The device's side, in software (docs/key-service.md §5): DMK = x(ECDH), KEK = AES-CBC(DMK, 0, data).
    const { createPrivateKey } = await import('node:crypto');
    const dmk = diffieHellman({
      privateKey: createPrivateKey({ key: device.pkcs8, format: 'der', type: 'pkcs8' }),
      publicKey: createPublicKey(w.keyExchangePublicKeyPem),
    });
    const cbc = createCipheriv('aes-256-cbc', dmk, Buffer.alloc(16)).setAutoPadding(false);
    const data = exportKekDerivationData('dev-0200', 'ledger-export', exported.version);
    const kek = Buffer.concat([cbc.update(data), cbc.final()]).subarray(0, 32);
    const [h, , iv, ct, tag] = exported.wrapped.split('.') as [string, string, string, string, string];
    const gcm = createDecipheriv('aes-256-gcm', kek, Buffer.from(iv, 'base64url'));
    gcm.setAAD(Buffer.from(h, 'ascii'));
    gcm.setAuthTag(Buffer.from(tag, 'base64url'));
    const spki = Buffer.concat([gcm.update(Buffer.from(ct, 'base64url')), gcm.final()]);
    expect(createHash('sha256').update(spki).digest('hex')).to.equal(exported.fingerprint);
    expect((await getKey('ledger-export')).Versions[0]?.Fingerprint).to.equal(exported.fingerprint);

    const stranger = await enrolDevice('dev-0201');
    expect(
      await refusal(() =>
        ops().exportPublicKey(billing, 'ledger-export', {
          deviceId: 'dev-0200',
          certificatePem: stranger.certificatePem,
        }),
      ),
    ).to.equal('FORBIDDEN/DEVICE_CERTIFICATE_NOT_ENROLLED');
    expect(
      await refusal(() =>
        ops().exportPublicKey(mallory, 'ledger-export', {
          deviceId: 'dev-0200',
          certificatePem: device.certificatePem,
        }),
      ),
    ).to.equal('FORBIDDEN/ACCESS_DENIED');
  });

  it('gives applications key metadata they verify against the pinned metadata-signing key', async () => {
    const answer = async (record: unknown) =>
      Promise.resolve(
        new Response(JSON.stringify({ record, signature: (record as KeyRecord).Proof.JWS }), { status: 200 }),
      );
    let served: KeyRecord = await getKey('orders');
    const client = newKeyClient({
      gatewayUrl: 'http://127.0.0.1:1',
      bearer: () => Promise.resolve('token'),
      metadataSigningPublicKey: w.metadataKey.publicKey,
      fetch: () => answer(served),
    });
    const verified = await client.getKey('orders');
    expect(verified.versions.map((v) => v.state)).to.deep.equal(['destroyed', 'destroyed', 'active']);
    expect(verified.lastAction).to.equal('DestroyKeyVersion');

    const swapped = structuredClone(served);
    const last = swapped.Versions[2];
    if (last) last.Fingerprint = 'abcdef';
    served = swapped;
    try {
      await client.getKey('orders');
      expect.fail('a record with another fingerprint was accepted');
    } catch (err) {
      expect((err as { code: string }).code).to.equal(KeyClientErrorCode.RecordMismatch);
    }
  });

  it('adopts an uncommitted version n+2 left on the token, so the key keeps rotating', async () => {
    await w.register('orphaned');
    expect(await rotate('orphaned')).to.include({ version: 2 }); // v3 pre-generated, committed as next
    // An ambiguous failure of the next rotation (LEDGER_UNAVAILABLE, not committed) left its v4.
    const leftover = await generateVersionKey(w.gateway.hsm, 'orphaned', 4, { extractable: false });
    expect(await rotate('orphaned')).to.include({ outcome: 'rotated', version: 3 });
    expect((await getKey('orphaned')).NextKeyCommitment).to.equal(nextKeyCommitment(leftover.kcv));
    expect(await rotate('orphaned')).to.include({ outcome: 'rotated', version: 4 });
    const key = await getKey('orphaned');
    expect(key.Versions.find((v) => v.Version === 4)?.Fingerprint).to.equal(leftover.kcv);
    // The HSM holds the ledger's versions 1-4 and the pre-generated 5, one object each, nothing more.
    const labels = (await w.gateway.hsm.findKeys({ kind: 'secret' }))
      .map((k) => k.label)
      .filter((l) => l.startsWith('key:orphaned:'))
      .sort();
    expect(labels).to.deep.equal([1, 2, 3, 4, 5].map((v) => `key:orphaned:v${v}`));
    expect((await ops().encrypt(billing, 'orphaned', bytes('x'))).version).to.equal(4);
  });

  describe('POST /v1/keys/:id/rotate follows the key’s Rotate policy', () => {
    let app: FastifyInstance;
    before(async () => {
      // The real route and error mapping; the bearer check is replaced by a header naming the operator.
      app = fastify({ logger: false });
      app.setErrorHandler(handleError);
      app.addHook('preHandler', (request, _reply, done) => {
        request.principal = { subject: String(request.headers['x-test-operator']), role: 'operator' };
        done();
      });
      await app.register(
        (v1, _opts, done) => {
          registerKeyRoutes(v1, w.gateway);
          done();
        },
        { prefix: '/v1' },
      );
      const named = (id: string) => ({ mspId: 'Org1MSP', role: 'operator' as const, id });
      await w.register('guarded', {
        accessPolicy: {
          read: [],
          use: [{ mspId: 'Org1MSP', role: 'application', id: 'billing' }],
          // bob, and the gateway itself, which writes RotateKey under its own identity.
          rotate: [named('bob'), named('gateway-1')],
          administer: [{ mspId: 'Org1MSP', role: 'operator' }],
        },
      });
    });
    after(async () => {
      await app.close();
    });
    const rotateAs = (by: Principal) =>
      app.inject({ method: 'POST', url: '/v1/keys/guarded/rotate', headers: { 'x-test-operator': by.subject } });

    it('refuses an operator the policy does not name with 403, writing nothing', async () => {
      const ledgerBefore = w.local.snapshot();
      const hsmBefore = (await w.gateway.hsm.findKeys()).map((k) => `${k.kind}:${k.label}`).sort();
      const answer = await rotateAs(alice);
      expect(answer.statusCode, answer.body).to.equal(403);
      expect(answer.json()).to.deep.include({
        error: { code: 'FORBIDDEN', message: 'operator alice may not rotate key guarded', detail: 'ACCESS_DENIED' },
      });
      expect(w.local.snapshot()).to.equal(ledgerBefore);
      expect((await w.gateway.hsm.findKeys()).map((k) => `${k.kind}:${k.label}`).sort()).to.deep.equal(hsmBefore);
      expect(await refusal(() => w.gateway.rotation.rotateApplicationKey('guarded', { by: alice }))).to.equal(
        'FORBIDDEN/ACCESS_DENIED',
      );
    });

    it('rotates for the operator it names', async () => {
      const answer = await rotateAs(bob);
      expect(answer.statusCode, answer.body).to.equal(200);
      expect(answer.json()).to.include({ outcome: 'rotated', keyId: 'guarded', version: 2, previousVersion: 1 });
      expect((await getKey('guarded')).LatestVersion).to.equal(2);
    });
  });
});
