import type { Signer as FabricSigner } from '@hyperledger/fabric-gateway';
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, createECDH, createHash, createHmac, randomBytes, verify } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import type { Handle } from 'pkcs11js';
import { derToRs, isLowS } from './ec-p256.js';
import { ensureKeys, gatewayKeys, HsmError, newHsm, type Hsm, type HsmOptions } from './index.js';
import { acquireModule, ckrOf, releaseModule, type LoadedModule } from './pkcs11-module.js';
import { createSoftHsmStore, softHsmModule, type SoftHsmStore } from '../testing/softhsm.js';

async function rejection(promise: Promise<unknown>): Promise<HsmError> {
  try {
    await promise;
  } catch (err) {
    expect(err).to.be.instanceOf(HsmError);
    return err as HsmError;
  }
  throw new Error('expected a rejection');
}

function sha256(data: Uint8Array | string): Buffer {
  return createHash('sha256').update(data).digest();
}

/** AES-ECB of one zero block, first 3 bytes: the AES key check value (PKCS#11 v2.40 §4.10). */
function kcv(key: Uint8Array): Buffer {
  const c = createCipheriv('aes-256-ecb', key, null);
  return c.update(Buffer.alloc(16)).subarray(0, 3);
}

describe('Hsm on SoftHSM2', function () {
  this.timeout(60_000);
  let store: SoftHsmStore;
  let hsm: Hsm;
  let options: HsmOptions;

  before(async () => {
    store = createSoftHsmStore();
    options = { uri: store.uri, modulePath: softHsmModule, pin: store.pin, sessions: 4 };
    hsm = await newHsm(options);
  });

  after(async () => {
    await hsm.close();
    store.remove();
  });

  /** Direct PKCS#11 access to the same token, as an attacker inside the process would have. */
  function withRawSession<T>(fn: (m: LoadedModule, session: Handle, slot: Handle) => T): T {
    const m = acquireModule(softHsmModule);
    try {
      const slot = m.lib.C_GetSlotList(true).find((s) => m.lib.C_GetTokenInfo(s).label.trimEnd() === store.label);
      if (slot === undefined) throw new Error('test token not found');
      const session = m.lib.C_OpenSession(slot, m.js.CKF_SERIAL_SESSION);
      try {
        return fn(m, session, slot);
      } finally {
        try {
          m.lib.C_CloseSession(session);
        } catch {
          // fn may have closed every session, this one included
        }
      }
    } finally {
      releaseModule(m);
    }
  }

  describe('key generation', () => {
    it('makes P-256 private keys sensitive and non-extractable, CKA_VALUE unreadable', async () => {
      const key = await hsm.generateEcKeyPair({ label: 'gen-ec' });
      const attrs = await hsm.getKeyAttributes({ label: 'gen-ec' }, 'private');
      expect(attrs).to.include({
        keyType: 'ec',
        sensitive: true,
        extractable: false,
        alwaysSensitive: true,
        neverExtractable: true,
        token: true,
        private: true,
      });
      expect(attrs.usage).to.deep.equal(['sign']);
      // Fabric's convention: CKA_ID = SHA-256(uncompressed point), on both halves.
      expect(Buffer.from(key.id).equals(sha256(key.point))).to.equal(true);
      expect(Buffer.from((await hsm.getKeyAttributes({ id: key.id }, 'public')).id).equals(sha256(key.point))).to.equal(
        true,
      );

      const ckr = withRawSession((m, session) => {
        m.lib.C_FindObjectsInit(session, [
          { type: m.js.CKA_CLASS, value: m.js.CKO_PRIVATE_KEY },
          { type: m.js.CKA_LABEL, value: 'gen-ec' },
        ]);
        const [handle] = m.lib.C_FindObjects(session, 1);
        m.lib.C_FindObjectsFinal(session);
        if (handle === undefined) throw new Error('key not visible');
        try {
          m.lib.C_GetAttributeValue(session, handle, [{ type: m.js.CKA_VALUE }]);
          return 'readable';
        } catch (err) {
          return ckrOf(err);
        }
      });
      expect(ckr).to.equal('CKR_ATTRIBUTE_SENSITIVE');
    });

    it('makes AES keys sensitive and non-extractable unless asked', async () => {
      const info = await hsm.generateSecretKey({ label: 'gen-aes', type: 'aes-256', usage: ['encrypt', 'decrypt'] });
      expect(info.checkValue).to.have.length(3);
      expect(await hsm.getKeyAttributes({ label: 'gen-aes' }, 'secret')).to.include({
        keyType: 'aes',
        sensitive: true,
        extractable: false,
        valueLength: 32,
      });
      const wrapped = await hsm.generateSecretKey({
        label: 'gen-aes-x',
        type: 'aes-256',
        usage: ['encrypt'],
        extractable: true,
      });
      expect(await hsm.getKeyAttributes({ id: wrapped.id }, 'secret')).to.include({
        sensitive: true,
        extractable: true,
      });
    });

    it('refuses a second key with the same label, even when asked at once', async () => {
      const results = await Promise.allSettled([
        hsm.generateEcKeyPair({ label: 'dup' }),
        hsm.generateEcKeyPair({ label: 'dup' }),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled')).to.have.length(1);
      expect((await rejection(hsm.generateEcKeyPair({ label: 'dup' }))).code).to.equal('HSM_KEY_EXISTS');
      expect(await hsm.findKeys({ label: 'dup' })).to.have.length(2);
    });

    it('reports an unknown key with a code', async () => {
      expect((await rejection(hsm.signDigest({ label: 'nope' }, sha256('x')))).code).to.equal('HSM_KEY_NOT_FOUND');
    });

    it('destroys both halves of a pair', async () => {
      await hsm.generateEcKeyPair({ label: 'doomed' });
      expect(await hsm.destroyKey({ label: 'doomed' })).to.equal(2);
      expect(await hsm.findKeys({ label: 'doomed' })).to.deep.equal([]);
    });
  });

  describe('signing', () => {
    let signKey: Awaited<ReturnType<Hsm['generateEcKeyPair']>>;
    before(async () => {
      signKey = await hsm.generateEcKeyPair({ label: 'signer' });
    });

    it('10 000 concurrent signs all succeed, verify with node:crypto and have low S', async () => {
      const messages = Array.from({ length: 10_000 }, (_, i) => `message ${i}`);
      const signatures = await Promise.all(messages.map((m) => hsm.signDigest({ label: 'signer' }, sha256(m))));
      let highS = 0;
      let bad = 0;
      signatures.forEach((sig, i) => {
        if (!verify('sha256', Buffer.from(messages[i] ?? ''), { key: signKey.keyObject, dsaEncoding: 'der' }, sig))
          bad++;
        if (!isLowS(derToRs(sig).s)) highS++;
      });
      expect({ bad, highS }).to.deep.equal({ bad: 0, highS: 0 });
      expect(hsm.stats().sessions).to.be.at.most(4);
    });

    it('is a fabric-gateway Signer', async () => {
      const signer: FabricSigner = hsm.newSigner({ id: signKey.id });
      const digest = sha256('proposal');
      const sig = await signer(digest);
      expect(verify('sha256', Buffer.from('proposal'), { key: signKey.keyObject, dsaEncoding: 'der' }, sig)).to.equal(
        true,
      );
    });

    it('gives IEEE P1363 r||s for JWS', async () => {
      const sig = await hsm.signDigest({ label: 'signer' }, sha256('jws'), 'ieee-p1363');
      expect(sig).to.have.length(64);
      expect(verify('sha256', Buffer.from('jws'), { key: signKey.keyObject, dsaEncoding: 'ieee-p1363' }, sig)).to.equal(
        true,
      );
    });

    it('exports the public key as SPKI, PEM and JWK', async () => {
      const pub = await hsm.getPublicKey({ label: 'signer' });
      expect(pub.pem).to.match(/^-----BEGIN PUBLIC KEY-----/);
      expect(pub.jwk).to.include({ kty: 'EC', crv: 'P-256' });
      expect(Buffer.from(pub.spki).equals(signKey.keyObject.export({ format: 'der', type: 'spki' }))).to.equal(true);
      expect(pub.uri).to.match(/^pkcs11:token=keyfleet-test;object=signer;id=.*;type=public$/);
    });

    const badDigests: [string, Uint8Array][] = [
      ['empty', new Uint8Array(0)],
      ['19 bytes', new Uint8Array(19)],
      ['65 bytes', new Uint8Array(65)],
    ];
    for (const [name, digest] of badDigests) {
      it(`refuses a ${name} digest before calling the token`, async () => {
        expect((await rejection(hsm.signDigest({ label: 'signer' }, digest))).code).to.equal('HSM_INVALID_ARGUMENT');
      });
    }

    it('refuses to sign with a key without CKA_SIGN', async () => {
      await hsm.generateEcKeyPair({ label: 'kex-only', sign: false, derive: true });
      expect((await rejection(hsm.signDigest({ label: 'kex-only' }, sha256('x')))).code).to.equal(
        'HSM_KEY_NOT_PERMITTED',
      );
    });
  });

  describe('wrapping (RFC 5649)', () => {
    before(async () => {
      await hsm.generateSecretKey({ label: 'kek', type: 'aes-256', usage: ['wrap', 'unwrap'] });
      await hsm.generateSecretKey({ label: 'data', type: 'aes-256', usage: ['encrypt', 'decrypt'], extractable: true });
    });

    it('round-trips a key: what the unwrapped key decrypts, the original encrypted', async () => {
      const wrapped = await hsm.wrapKey({ label: 'kek' }, { label: 'data' });
      expect(wrapped).to.have.length(40);
      const unwrapped = await hsm.unwrapKey({ label: 'kek' }, wrapped, {
        label: 'data-copy',
        type: 'aes-256',
        usage: ['decrypt'],
      });
      const original = await hsm.getKeyAttributes({ label: 'data' }, 'secret');
      // SoftHSM 2.6.1 leaves CKA_VALUE_LEN at 0 on unwrapped keys; the decryption below proves the value.
      expect(await hsm.getKeyAttributes({ label: 'data-copy' }, 'secret')).to.include({
        extractable: false,
        sensitive: true,
      });
      expect(original.valueLength).to.equal(32);
      const ct = await hsm.encryptAesGcm({ label: 'data' }, Buffer.from('payload'));
      expect(Buffer.from(await hsm.decryptAesGcm({ id: unwrapped.id }, ct)).toString()).to.equal('payload');
    });

    const tamper: [string, (w: Buffer) => Buffer][] = [
      ['a flipped bit', (w) => Buffer.from(w.map((b, i) => (i === 12 ? b ^ 1 : b)))],
      ['a flipped integrity block', (w) => Buffer.from(w.map((b, i) => (i === 0 ? b ^ 0x80 : b)))],
      ['a dropped block', (w) => w.subarray(0, w.length - 8)],
      ['an appended block', (w) => Buffer.concat([w, Buffer.alloc(8)])],
      ['a ragged length', (w) => w.subarray(0, w.length - 3)],
    ];
    for (const [name, change] of tamper) {
      it(`rejects wrapped bytes with ${name}`, async () => {
        const wrapped = Buffer.from(await hsm.wrapKey({ label: 'kek' }, { label: 'data' }));
        const err = await rejection(
          hsm.unwrapKey({ label: 'kek' }, change(wrapped), { label: `t-${name}`, type: 'aes-256', usage: ['decrypt'] }),
        );
        expect(err.code).to.equal('HSM_INTEGRITY_FAILED');
        expect(await hsm.findKeys({ label: `t-${name}` })).to.deep.equal([]);
      });
    }

    it('will not wrap a non-extractable key', async () => {
      await hsm.generateSecretKey({ label: 'stay', type: 'aes-256', usage: ['encrypt'] });
      expect((await rejection(hsm.wrapKey({ label: 'kek' }, { label: 'stay' }))).code).to.equal(
        'HSM_KEY_NOT_PERMITTED',
      );
    });
  });

  describe('ECDH and derivation (the device protocol)', () => {
    let hsmPoint: Uint8Array;
    before(async () => {
      hsmPoint = (await hsm.generateEcKeyPair({ label: 'kex', sign: false, derive: true })).point;
    });

    it('HMAC with an ECDH-derived key matches the device computing it in software', async () => {
      const device = createECDH('prime256v1');
      device.generateKeys();
      await hsm.deriveEcdh({ label: 'kex' }, device.getPublicKey(), {
        label: 'mac-dev-1',
        type: 'hmac-sha256',
        usage: ['sign'],
        token: false,
      });
      const z = device.computeSecret(Buffer.from(hsmPoint));
      const data = Buffer.from('attestation nonce');
      const mac = await hsm.hmacSha256({ label: 'mac-dev-1' }, data);
      expect(Buffer.from(mac).equals(createHmac('sha256', z).update(data).digest())).to.equal(true);
    });

    it('rotation: ECDH master → per-version KEK → RFC 5649 wrap; the device unwraps the same key', async () => {
      const device = createECDH('prime256v1');
      device.generateKeys();
      // Gateway side, all inside the HSM.
      await hsm.deriveEcdh({ label: 'kex' }, device.getPublicKey(), {
        label: 'master-dev-2',
        type: 'aes-256',
        usage: ['derive'],
      });
      const iv = Buffer.alloc(16);
      const data = sha256('dev-2|key-7|v3');
      await hsm.deriveAesCbc(
        { label: 'master-dev-2' },
        { iv, data },
        {
          label: 'kek-dev-2-v3',
          type: 'aes-256',
          usage: ['wrap'],
          token: false,
        },
      );
      const newKey = await hsm.generateSecretKey({
        label: 'key-7-v3',
        type: 'aes-256',
        usage: ['encrypt', 'decrypt'],
        extractable: true,
      });
      const wrapped = await hsm.wrapKey({ label: 'kek-dev-2-v3' }, { label: 'key-7-v3' });
      expect(await hsm.destroyKey({ label: 'kek-dev-2-v3' })).to.equal(1);

      // Device side, in software.
      const master = device.computeSecret(Buffer.from(hsmPoint));
      const cbc = createCipheriv('aes-256-cbc', master, iv).setAutoPadding(false);
      const kek = Buffer.concat([cbc.update(data), cbc.final()]);
      const unwrap = createDecipheriv('id-aes256-wrap-pad', kek, Buffer.from('A65959A6', 'hex'));
      const key = Buffer.concat([unwrap.update(wrapped), unwrap.final()]);
      expect(kcv(key).equals(Buffer.from(newKey.checkValue ?? []))).to.equal(true);

      const sealed = await hsm.encryptAesGcm({ label: 'key-7-v3' }, Buffer.from('for the device'), Buffer.from('aad'));
      const gcm = createDecipheriv('aes-256-gcm', key, sealed.iv);
      gcm.setAAD(Buffer.from('aad'));
      gcm.setAuthTag(Buffer.from(sealed.ciphertext.subarray(-16)));
      const plain = Buffer.concat([gcm.update(sealed.ciphertext.subarray(0, -16)), gcm.final()]);
      expect(plain.toString()).to.equal('for the device');
    });

    it('refuses a peer point that is not on P-256', async () => {
      const device = createECDH('prime256v1');
      device.generateKeys();
      const point = device.getPublicKey();
      point[64] = (point[64] ?? 0) ^ 1;
      const err = await rejection(
        hsm.deriveEcdh({ label: 'kex' }, point, { label: 'bad-peer', type: 'aes-256', usage: ['derive'] }),
      );
      expect(err.code).to.equal('HSM_INVALID_ARGUMENT');
    });

    it('AES derivation is deterministic, input-sensitive, and matches software (first 32 bytes)', async () => {
      // A base key whose value software knows too: ECDH with a local P-256 key.
      const peer = createECDH('prime256v1');
      peer.generateKeys();
      await hsm.deriveEcdh({ label: 'kex' }, peer.getPublicKey(), {
        label: 'base',
        type: 'aes-256',
        usage: ['derive'],
      });
      const base = peer.computeSecret(Buffer.from(hsmPoint));
      const iv = randomBytes(16);
      const data = randomBytes(48);
      const target = (label: string) => ({ label, type: 'aes-256' as const, usage: ['encrypt', 'decrypt'] as const });
      const a = await hsm.deriveAesCbc({ label: 'base' }, { iv, data }, target('d-a'));
      const b = await hsm.deriveAesCbc({ label: 'base' }, { iv, data }, target('d-b'));
      const c = await hsm.deriveAesCbc({ label: 'base' }, { iv, data: flipFirstBit(data) }, target('d-c'));
      expect([a.id, b.id, c.id].map((id) => Buffer.from(id).toString('hex'))).to.have.length(3);
      const ct = await hsm.encryptAesGcm({ label: 'd-a' }, Buffer.from('same key'));
      expect(Buffer.from(await hsm.decryptAesGcm({ label: 'd-b' }, ct)).toString()).to.equal('same key');
      expect((await rejection(hsm.decryptAesGcm({ label: 'd-c' }, ct))).code).to.equal('HSM_INTEGRITY_FAILED');

      const cbc = createCipheriv('aes-256-cbc', base, iv).setAutoPadding(false);
      const derived = Buffer.concat([cbc.update(data), cbc.final()]).subarray(0, 32);
      const gcm = createDecipheriv('aes-256-gcm', derived, ct.iv);
      gcm.setAuthTag(Buffer.from(ct.ciphertext.subarray(-16)));
      expect(Buffer.concat([gcm.update(ct.ciphertext.subarray(0, -16)), gcm.final()]).toString()).to.equal('same key');
    });

    it('refuses derivation data that is not whole AES blocks', async () => {
      const err = await rejection(
        hsm.deriveAesCbc(
          { label: 'base' },
          { iv: Buffer.alloc(16), data: Buffer.alloc(40) },
          {
            label: 'x',
            type: 'aes-256',
            usage: ['encrypt'],
          },
        ),
      );
      expect(err.code).to.equal('HSM_INVALID_ARGUMENT');
    });
  });

  describe('AES-GCM', () => {
    before(async () => {
      await hsm.generateSecretKey({ label: 'app', type: 'aes-256', usage: ['encrypt', 'decrypt'] });
    });

    it('round-trips with AAD and uses a fresh IV every time', async () => {
      const a = await hsm.encryptAesGcm({ label: 'app' }, Buffer.from('x'), Buffer.from('ctx'));
      const b = await hsm.encryptAesGcm({ label: 'app' }, Buffer.from('x'), Buffer.from('ctx'));
      expect(Buffer.from(a.iv).equals(Buffer.from(b.iv))).to.equal(false);
      expect(Buffer.from(await hsm.decryptAesGcm({ label: 'app' }, a, Buffer.from('ctx'))).toString()).to.equal('x');
    });

    const tamper: [string, (c: { iv: Uint8Array; ciphertext: Uint8Array }) => Parameters<Hsm['decryptAesGcm']>][] = [
      ['wrong AAD', (c) => [{ label: 'app' }, c, Buffer.from('other')]],
      ['missing AAD', (c) => [{ label: 'app' }, c]],
      [
        'flipped ciphertext',
        (c) => [
          { label: 'app' },
          { iv: c.iv, ciphertext: c.ciphertext.map((v, i) => (i === 0 ? v ^ 1 : v)) },
          Buffer.from('ctx'),
        ],
      ],
      [
        'flipped tag',
        (c) => [
          { label: 'app' },
          { iv: c.iv, ciphertext: c.ciphertext.map((v, i, all) => (i === all.length - 1 ? v ^ 1 : v)) },
          Buffer.from('ctx'),
        ],
      ],
      ['other IV', (c) => [{ label: 'app' }, { iv: randomBytes(12), ciphertext: c.ciphertext }, Buffer.from('ctx')]],
    ];
    for (const [name, change] of tamper) {
      it(`rejects ${name}`, async () => {
        const sealed = await hsm.encryptAesGcm({ label: 'app' }, Buffer.from('secret data'), Buffer.from('ctx'));
        expect((await rejection(hsm.decryptAesGcm(...change(sealed)))).code).to.equal('HSM_INTEGRITY_FAILED');
      });
    }
  });

  describe('PIN and token', () => {
    it('reads the PIN from an environment variable or a file', async () => {
      const fromEnv = await newHsm({ ...options, pin: { env: 'TEST_PIN' }, env: { TEST_PIN: store.pin } });
      await fromEnv.close();
      const file = join(store.dir, 'pin');
      writeFileSync(file, `${store.pin}\n`, { mode: 0o600 });
      const fromFile = await newHsm({ ...options, pin: { file } });
      await fromFile.close();
      const fromUri = await newHsm({ uri: `${store.uri}?pin-source=file:${file}`, modulePath: softHsmModule });
      await fromUri.close();
    });

    const unavailable: [string, HsmOptions['pin']][] = [
      ['an unset variable', { env: 'KEYFLEET_TEST_UNSET_PIN' }],
      ['a missing file', { file: '/nonexistent/keyfleet/pin' }],
      ['an empty string', ''],
      ['no source at all', undefined],
    ];
    for (const [name, pin] of unavailable) {
      it(`reports ${name} as HSM_PIN_UNAVAILABLE`, async () => {
        const rest: HsmOptions = { uri: options.uri, modulePath: softHsmModule };
        const err = await rejection(newHsm(pin === undefined ? rest : { ...rest, pin, env: {} }));
        expect(err.code).to.equal('HSM_PIN_UNAVAILABLE');
      });
    }

    it('reports a token that is not there', async () => {
      const err = await rejection(newHsm({ ...options, uri: 'pkcs11:token=absent' }));
      expect(err.code).to.equal('HSM_TOKEN_NOT_FOUND');
    });

    it('reports a URI it refuses', async () => {
      const err = await rejection(newHsm({ ...options, uri: 'pkcs11:token=keyfleet-test?pin-value=1234' }));
      expect(err.code).to.equal('HSM_INVALID_URI');
    });
  });

  describe('recovery', () => {
    before(async () => {
      await hsm.generateEcKeyPair({ label: 'survivor' });
    });

    it('recovers when every session is closed behind its back (and the login with them)', async () => {
      await hsm.signDigest({ label: 'survivor' }, sha256('warm'));
      withRawSession((m, _session, slot) => {
        m.lib.C_CloseAllSessions(slot);
      });
      const sigs = await Promise.all(
        Array.from({ length: 50 }, (_, i) => hsm.signDigest({ label: 'survivor' }, sha256(`after ${i}`))),
      );
      expect(sigs).to.have.length(50);
    });

    it('recovers when the library is finalised and initialised again under it', async () => {
      await hsm.signDigest({ label: 'survivor' }, sha256('warm'));
      const m = acquireModule(softHsmModule);
      m.lib.C_Finalize();
      m.lib.C_Initialize({ flags: m.js.CKF_OS_LOCKING_OK });
      releaseModule(m);
      const pub = await hsm.getPublicKey({ label: 'survivor' });
      const sig = await hsm.signDigest({ label: 'survivor' }, sha256('after reinit'));
      expect(verify('sha256', Buffer.from('after reinit'), { key: pub.keyObject, dsaEncoding: 'der' }, sig)).to.equal(
        true,
      );
    });
  });

  describe('handle cache and session objects', () => {
    const aes = (label: string, token = true) =>
      hsm.generateSecretKey({ label, type: 'aes-256', usage: ['encrypt', 'decrypt'], token });

    it('forgets the handle of a key it destroys: a new key under the label is the one used', async () => {
      await aes('cache-a');
      const old = await hsm.encryptAesGcm({ label: 'cache-a' }, Buffer.from('old'));
      expect(await hsm.destroyKey({ label: 'cache-a' })).to.equal(1);
      await aes('cache-a');
      const fresh = await hsm.encryptAesGcm({ label: 'cache-a' }, Buffer.from('new'));
      expect(Buffer.from(await hsm.decryptAesGcm({ label: 'cache-a' }, fresh)).toString()).to.equal('new');
      expect((await rejection(hsm.decryptAesGcm({ label: 'cache-a' }, old))).code).to.equal('HSM_INTEGRITY_FAILED');
    });

    it('a cached key destroyed behind its back is reported missing, not used', async () => {
      const made = await aes('cache-b');
      await hsm.encryptAesGcm({ id: made.id }, Buffer.from('cached now'));
      withRawSession((m, _session, slot) => {
        const session = m.lib.C_OpenSession(slot, m.js.CKF_SERIAL_SESSION | m.js.CKF_RW_SESSION);
        m.lib.C_FindObjectsInit(session, [{ type: m.js.CKA_ID, value: Buffer.from(made.id) }]);
        const found = m.lib.C_FindObjects(session, 2);
        m.lib.C_FindObjectsFinal(session);
        expect(found).to.have.length(1);
        for (const handle of found) m.lib.C_DestroyObject(session, handle);
        m.lib.C_CloseSession(session);
      });
      const err = await rejection(hsm.encryptAesGcm({ id: made.id }, Buffer.from('stale')));
      expect(err.code).to.equal('HSM_KEY_NOT_FOUND');
    });

    it('session objects: never on the token, one per label while they live, the label free again after', async () => {
      await aes('session-x', false);
      const [listed, ...more] = await hsm.findKeys({ label: 'session-x' });
      expect(more).to.deep.equal([]);
      expect(listed).to.include({ token: false, sensitive: true, extractable: false });
      expect((await rejection(aes('session-x', false))).code).to.equal('HSM_KEY_EXISTS');
      const sealed = await hsm.encryptAesGcm({ label: 'session-x' }, Buffer.from('x'));
      expect(Buffer.from(await hsm.decryptAesGcm({ label: 'session-x' }, sealed)).toString()).to.equal('x');
      expect(await hsm.destroyKey({ label: 'session-x' }, ['secret'])).to.equal(1);
      expect(await hsm.findKeys({ label: 'session-x' })).to.deep.equal([]);
      expect((await rejection(hsm.encryptAesGcm({ label: 'session-x' }, Buffer.from('x')))).code).to.equal(
        'HSM_KEY_NOT_FOUND',
      );
      await aes('session-x', false);
      expect(await hsm.destroyKey({ label: 'session-x' }, ['secret'])).to.equal(1);
    });

    it('session objects that went with their sessions are reported missing, and the label is free', async () => {
      await aes('session-y', false);
      withRawSession((m, _session, slot) => {
        m.lib.C_CloseAllSessions(slot);
      });
      const err = await rejection(hsm.encryptAesGcm({ label: 'session-y' }, Buffer.from('gone')));
      expect(err.code).to.equal('HSM_KEY_NOT_FOUND');
      await aes('session-y', false);
      expect(await hsm.destroyKey({ label: 'session-y' }, ['secret'])).to.equal(1);
    });
  });

  describe('key inventory', () => {
    it('ensureKeys creates the gateway keys once, then only checks them', async () => {
      const first = await ensureKeys(hsm);
      expect(first.created).to.deep.equal(gatewayKeys.map((k) => k.label));
      const second = await ensureKeys(hsm);
      expect(second.created).to.deep.equal([]);
      expect(second.existing).to.deep.equal(gatewayKeys.map((k) => k.label));
      const kex = await hsm.getKeyAttributes({ label: 'device-kex' }, 'private');
      expect(kex.usage).to.deep.equal(['derive']);
      expect(second.publicKeys['device-ca']?.pem).to.equal(first.publicKeys['device-ca']?.pem);
    });

    it('refuses an existing key with unsafe attributes', async () => {
      await hsm.generateSecretKey({ label: 'weak', type: 'aes-256', usage: ['encrypt'] });
      await hsm.generateEcKeyPair({ label: 'weak', sign: false });
      const err = await rejection(ensureKeys(hsm, [{ label: 'weak', purpose: 'test', sign: true, derive: false }]));
      expect(err.code).to.equal('HSM_KEY_NOT_PERMITTED');
    });
  });

  describe('lifecycle', () => {
    it('loads no native code until newHsm is called', () => {
      const index = require.resolve('./index.js');
      const out = execFileSync(process.execPath, [
        '-e',
        `require(${JSON.stringify(index)}); process.stdout.write(String(Object.keys(require.cache).some((k) => k.includes('pkcs11js'))))`,
      ]).toString();
      expect(out).to.equal('false');
    });

    it('close waits for operations in flight, then refuses new ones', async () => {
      const other = await newHsm(options);
      const inflight = Array.from({ length: 200 }, (_, i) => other.signDigest({ label: 'survivor' }, sha256(`${i}`)));
      await other.close();
      const settled = await Promise.allSettled(inflight);
      for (const s of settled) {
        if (s.status === 'rejected') expect(s.reason).to.be.instanceOf(HsmError).with.property('code', 'HSM_CLOSED');
      }
      expect((await rejection(other.signDigest({ label: 'survivor' }, sha256('late')))).code).to.equal('HSM_CLOSED');
      // The shared library is still initialised for the suite's own Hsm.
      await hsm.signDigest({ label: 'survivor' }, sha256('still here'));
    });
  });
});

// Its own store and no other Hsm open: PKCS#11 login is shared by every session of a process
// (v2.40 §5.6), so a second C_Login on a logged-in token returns CKR_USER_ALREADY_LOGGED_IN
// without looking at the PIN.
describe('Hsm on SoftHSM2 with a wrong PIN', () => {
  let store: SoftHsmStore;
  before(() => {
    store = createSoftHsmStore('wrong-pin');
  });
  after(() => {
    store.remove();
  });

  it('fails with HSM_PIN_INCORRECT and the PIN appears nowhere in the error', async () => {
    const pin = 'Wr0ng-PIN-7f3a9c';
    const err = await rejection(newHsm({ uri: store.uri, modulePath: softHsmModule, pin }));
    expect(err.code).to.equal('HSM_PIN_INCORRECT');
    expect(err.ckr).to.equal('CKR_PIN_INCORRECT');
    const everything = [err.message, err.stack, inspect(err, { depth: 10, showHidden: true }), JSON.stringify(err)];
    for (const text of everything) expect(text ?? '').not.to.include(pin);
  });

  it('still opens with the right PIN afterwards', async () => {
    const hsm = await newHsm({ uri: store.uri, modulePath: softHsmModule, pin: { env: 'P' }, env: { P: store.pin } });
    expect(hsm.tokenLabel).to.equal('wrong-pin');
    await hsm.close();
  });
});

/** A copy of `data` that certainly differs from it: the first bit flipped. */
function flipFirstBit(data: Uint8Array): Buffer {
  const copy = Buffer.from(data);
  copy[0] = (copy[0] ?? 0) ^ 0x80;
  return copy;
}
