import { expect } from 'chai';
import { createHash, verify } from 'node:crypto';
import { readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ensureKeys, gatewayKeys, HsmError, type ReplicaHsm } from '../index.js';
import { openPkcs11Hsm } from '../pkcs11-hsm.js';
import { createSoftHsmStore, softHsmModule, type SoftHsmStore } from '../../testing/softhsm.js';
import { clusterKekLabel, provisionClusterKek } from './ceremony.js';
import { openHsmCluster, type FailoverEvent, type HsmCluster, type ReplicationEvent } from './cluster-hsm.js';
import { checkValueOf } from './replication.js';

async function rejection(promise: Promise<unknown>): Promise<HsmError> {
  try {
    await promise;
  } catch (err) {
    expect(err).to.be.instanceOf(HsmError);
    return err as HsmError;
  }
  throw new Error('expected a rejection');
}

/**
 * Pulls a token out of the store at once, as a removed device would go: its directory (found by
 * the blank-padded label in its token.object) is renamed out of the token directory, then deleted.
 * Not `softhsm2-util --delete-token`, which first reads the whole store and fails ("Could not find
 * a token") when it meets a token file that is being written right then.
 */
function deleteToken(store: SoftHsmStore, label: string): void {
  const tokens = join(store.dir, 'tokens');
  const padded = Buffer.from(label.padEnd(32));
  const dirs = readdirSync(tokens).filter((d) => readFileSync(join(tokens, d, 'token.object')).includes(padded));
  if (dirs.length !== 1) throw new Error(`${dirs.length} token directories hold ${label}`);
  const pulled = join(store.dir, `pulled-${label}`);
  renameSync(join(tokens, dirs[0] ?? ''), pulled);
  rmSync(pulled, { recursive: true, force: true });
}

const sha256 = (data: Uint8Array): Buffer => createHash('sha256').update(data).digest();

describe('HSM cluster on SoftHSM2 (a cluster KEK, replication under it, failover)', function () {
  this.timeout(120_000);
  let store: SoftHsmStore;
  const open = (label: string): Promise<ReplicaHsm> =>
    openPkcs11Hsm({ uri: `pkcs11:token=${label}`, modulePath: softHsmModule, pin: store.pin, sessions: 4 });

  before(() => {
    store = createSoftHsmStore('kc-a');
    for (const label of ['kc-b', 'kc-c', 'kc-x', 'kc-y', 'kc-d', 'kc-e', 'kc-f']) store.addToken(label);
  });

  after(() => {
    store.remove();
  });

  describe('the SO ceremony', () => {
    it('makes a trusted KEK in the first token and brings the same KEK into the second; a rerun changes nothing', () => {
      const first = provisionClusterKek(softHsmModule, ['kc-a', 'kc-b'], store.soPin);
      expect(first.tokens.map((t) => t.action)).to.deep.equal(['created', 'joined']);
      expect(first.kekCheckValue).to.match(/^[0-9a-f]{6}$/);
      const again = provisionClusterKek(softHsmModule, ['kc-a', 'kc-b'], store.soPin);
      expect(again.tokens.map((t) => t.action)).to.deep.equal(['present', 'present']);
      expect(again.kekCheckValue).to.equal(first.kekCheckValue);
    });

    it('refuses a wrong SO PIN, one token, and a token that does not exist', () => {
      const cases: [readonly string[], string, string][] = [
        [['kc-x', 'kc-y'], 'not-the-pin', 'HSM_PIN_INCORRECT'],
        [['kc-x'], store.soPin, 'HSM_INVALID_ARGUMENT'],
        [['kc-x', 'kc-x'], store.soPin, 'HSM_INVALID_ARGUMENT'],
        [['kc-x', 'no-such-token'], store.soPin, 'HSM_TOKEN_NOT_FOUND'],
      ];
      for (const [tokens, pin, code] of cases) {
        expect(() => provisionClusterKek(softHsmModule, tokens, pin), tokens.join(','))
          .to.throw(HsmError)
          .with.property('code', code);
      }
    });

    it('gives the KEK the attributes only an SO can, and users cannot wrap it out under their own key', async () => {
      const hsm = await open('kc-b');
      try {
        const [kek] = await hsm.findKeys({ label: clusterKekLabel, kind: 'secret' });
        expect(kek).to.include({ private: false, sensitive: true, extractable: true, wrapWithTrusted: true });
        expect(kek?.usage).to.have.members(['wrap', 'unwrap']);
        await hsm.generateSecretKey({ label: 'mine', type: 'aes-256', usage: ['wrap'], token: false });
        const err = await rejection(hsm.wrapKey({ label: 'mine' }, { label: clusterKekLabel }));
        expect(err.code).to.equal('HSM_KEY_NOT_PERMITTED');
        // A user cannot make a trusted key of their own to wrap under: generateSecretKey has no way to ask.
      } finally {
        await hsm.close();
      }
    });
  });

  describe('the cluster', () => {
    let cluster: HsmCluster;
    let b: ReplicaHsm;
    const replications: ReplicationEvent[] = [];
    const failovers: FailoverEvent[] = [];

    before(async () => {
      const a = await open('kc-a');
      await ensureKeys(a, gatewayKeys, { replicable: true });
      b = await open('kc-b');
      cluster = await openHsmCluster({
        name: 'kc',
        members: [
          { name: 'kc-a', hsm: a },
          { name: 'kc-b', hsm: b },
        ],
        listener: { replicated: (e) => replications.push(e), failedOver: (e) => failovers.push(e) },
      });
    });

    after(async () => {
      await cluster.close();
    });

    it('replicated every gateway key to the second token, each copy with the source check value', async () => {
      const join = replications.find((r) => r.reason === 'join' && r.target === 'kc-b');
      expect(join?.keys.map((k) => k.label)).to.have.members(gatewayKeys.map((k) => k.label));
      for (const key of gatewayKeys) {
        const [copy] = await b.findKeys({ label: key.label, kind: 'private' });
        expect(copy, key.label).to.include({ extractable: true, wrapWithTrusted: true, sensitive: true, token: true });
        const pub = await cluster.getPublicKey({ label: key.label });
        expect(join?.keys.find((k) => k.label === key.label)?.checkValue).to.equal(sha256(pub.point).toString('hex'));
      }
      // The copy of a signing key signs for the original's public key.
      const pub = await cluster.getPublicKey({ label: 'device-ca' });
      const message = Buffer.from('signed by the copy');
      const signature = await b.signDigest({ label: 'device-ca' }, sha256(message), 'der');
      expect(verify('sha256', message, pub.keyObject, signature)).to.equal(true);
    });

    it('refuses to wrap a replicable key under a key the user made (CKA_WRAP_WITH_TRUSTED)', async () => {
      await b.generateSecretKey({ label: 'user-kek', type: 'aes-256', usage: ['wrap'], token: false });
      expect((await rejection(b.wrapPrivateKey({ label: 'user-kek' }, { label: 'device-ca' }))).code).to.equal(
        'HSM_KEY_NOT_PERMITTED',
      );
      const app = await cluster.generateSecretKey({ label: 'app-key', type: 'aes-256', usage: ['encrypt', 'decrypt'] });
      expect((await rejection(b.wrapKey({ label: 'user-kek' }, { id: app.id }))).code).to.equal(
        'HSM_KEY_NOT_PERMITTED',
      );
    });

    it('writes keys created later through to the other token, with equal check values, under the cluster name', async () => {
      const secret = await cluster.generateSecretKey({
        label: 'key:wt:v1',
        type: 'aes-256',
        usage: ['encrypt', 'decrypt'],
        extractable: true,
      });
      expect(secret.uri).to.contain('token=kc;');
      const [copy] = await b.findKeys({ id: secret.id, kind: 'secret' });
      expect(copy).to.include({ label: 'key:wt:v1', extractable: true, wrapWithTrusted: false });
      expect(Buffer.from(await b.aesCheckValue({ id: secret.id })).toString('hex')).to.equal(
        Buffer.from(secret.checkValue ?? []).toString('hex'),
      );
      const ec = await cluster.generateEcKeyPair({ label: 'app-ec' });
      const [ecCopy] = await b.findKeys({ id: ec.id, kind: 'private' });
      if (ecCopy === undefined) throw new Error('no copy of app-ec');
      expect(await checkValueOf(b, ecCopy)).to.equal(sha256(ec.point).toString('hex'));
      const wt = replications.filter((r) => r.reason === 'write-through').flatMap((r) => r.keys.map((k) => k.label));
      expect(wt).to.include.members(['key:wt:v1', 'app-ec']);
    });

    it('destroys a key on every member', async () => {
      const made = await cluster.generateSecretKey({ label: 'doomed', type: 'aes-256', usage: ['encrypt'] });
      expect(await b.findKeys({ id: made.id })).to.have.length(1);
      await cluster.destroyKey({ id: made.id }, ['secret']);
      expect(await b.findKeys({ id: made.id })).to.have.length(0);
    });

    it('goes on with the second token when the primary token is deleted mid-load, losing no acknowledged key', async () => {
      const aes = await cluster.generateSecretKey({
        label: 'load-aes',
        type: 'aes-256',
        usage: ['encrypt', 'decrypt'],
      });
      const acknowledged: { label: string; id: Uint8Array; kcv: string }[] = [];
      const sealed: { iv: Uint8Array; ciphertext: Uint8Array; plaintext: string }[] = [];
      const failures: unknown[] = [];
      let deleted = false;
      let stop = false;
      const deadline = Date.now() + 60_000;
      const worker = async (w: number): Promise<void> => {
        for (let i = 0; !stop; i++) {
          try {
            const label = `key:load-${w}:v${i}`;
            const made = await cluster.generateSecretKey({
              label,
              type: 'aes-256',
              usage: ['encrypt', 'decrypt'],
              extractable: true,
            });
            acknowledged.push({ label, id: made.id, kcv: Buffer.from(made.checkValue ?? []).toString('hex') });
            const plaintext = `${w}/${i}`;
            sealed.push({ ...(await cluster.encryptAesGcm({ id: aes.id }, Buffer.from(plaintext))), plaintext });
            await cluster.signDigest({ label: 'metadata-signing' }, sha256(Buffer.from(plaintext)));
          } catch (err) {
            failures.push(err);
          }
          // Enough work after the deletion, or a bound so a broken failover fails instead of spinning.
          if ((deleted && acknowledged.length > 40) || failures.length > 20 || Date.now() > deadline) stop = true;
        }
      };
      const load = Promise.all([0, 1, 2].map(worker));
      while (acknowledged.length < 10) await new Promise((r) => setTimeout(r, 20));
      try {
        // The token goes away as a removed device would: its directory deleted under the gateway.
        deleteToken(store, 'kc-a');
        deleted = true;
      } finally {
        if (!deleted) stop = true;
        await load;
      }

      expect(failures.map((e) => String(e))).to.deep.equal([]);
      expect(failovers).to.have.length(1);
      expect(failovers[0]).to.include({ from: 'kc-a', to: 'kc-b' });
      expect(cluster.status()).to.include({ primary: 'kc-b' });
      expect(cluster.status().lost).to.deep.equal(['kc-a']);
      // Every acknowledged key is on the surviving token with its check value; every ciphertext opens.
      for (const key of acknowledged) {
        expect(Buffer.from(await b.aesCheckValue({ id: key.id })).toString('hex'), key.label).to.equal(key.kcv);
        // Through the cluster, a copy reports its check value as the original did (the ledger fingerprint).
        const [found] = await cluster.findKeys({ label: key.label, kind: 'secret' });
        expect(Buffer.from(found?.checkValue ?? []).toString('hex'), key.label).to.equal(key.kcv);
      }
      for (const s of sealed) {
        expect(Buffer.from(await cluster.decryptAesGcm({ id: aes.id }, s)).toString()).to.equal(s.plaintext);
      }
    });

    it('adds a token: the KEK by ceremony, then every key by replication', async function () {
      // The SO cannot log in while this process has user sessions on the tokens: close the cluster.
      await cluster.close();
      provisionClusterKek(softHsmModule, ['kc-b', 'kc-c'], store.soPin);
      const b2 = await open('kc-b');
      const c = await open('kc-c');
      cluster = await openHsmCluster({
        name: 'kc',
        members: [
          { name: 'kc-b', hsm: b2 },
          { name: 'kc-c', hsm: c },
        ],
        listener: { replicated: (e) => replications.push(e) },
      });
      const join = replications.filter((r) => r.reason === 'join' && r.target === 'kc-c');
      expect(join).to.have.length(1);
      const onB = (await b2.findKeys()).filter((k) => k.token && k.kind !== 'public' && k.label !== clusterKekLabel);
      expect(join[0]?.keys.map((k) => k.id)).to.have.members(onB.map((k) => Buffer.from(k.id).toString('hex')));
      expect(onB.length).to.be.greaterThan(40);
    });

    it('refuses a member whose KEK is another one', async () => {
      await cluster.close();
      provisionClusterKek(softHsmModule, ['kc-x', 'kc-y'], store.soPin);
      const x = await open('kc-x');
      const c = await open('kc-c');
      const err = await rejection(
        openHsmCluster({
          name: 'kc',
          members: [
            { name: 'kc-c', hsm: c },
            { name: 'kc-x', hsm: x },
          ],
        }),
      );
      expect(err.code).to.equal('HSM_INTEGRITY_FAILED');
      await x.close();
      cluster = await openHsmCluster({ name: 'kc', members: [{ name: 'kc-c', hsm: c }] });
    });

    it('joins a lagging member and a new token on a running cluster: missed keys copied, stale ones destroyed', async () => {
      await cluster.close();
      provisionClusterKek(softHsmModule, ['kc-c', 'kc-d', 'kc-e'], store.soPin);
      // kc-d is in sync once, then away while the cluster runs on kc-c alone.
      const first = await openHsmCluster({
        name: 'kc',
        members: [
          { name: 'kc-c', hsm: await open('kc-c') },
          { name: 'kc-d', hsm: await open('kc-d') },
        ],
      });
      const old = await first.generateSecretKey({ label: 'lag-old', type: 'aes-256', usage: ['encrypt'] });
      await first.close();
      const joins: ReplicationEvent[] = [];
      cluster = await openHsmCluster({
        name: 'kc',
        members: [{ name: 'kc-c', hsm: await open('kc-c') }],
        listener: { replicated: (e) => joins.push(e) },
      });
      const missed = await cluster.generateSecretKey({ label: 'lag-new', type: 'aes-256', usage: ['encrypt'] });
      await cluster.destroyKey({ id: old.id }, ['secret']);

      const d = await open('kc-d');
      expect(await d.findKeys({ id: old.id }), 'kc-d still holds what was destroyed while it was away').to.have.length(
        1,
      );
      const lagging = await cluster.join({ name: 'kc-d', hsm: d });
      const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');
      expect(lagging.copied.map((k) => k.id)).to.deep.equal([hexOf(missed.id)]);
      expect(lagging.removed).to.deep.equal([{ label: 'lag-old', id: hexOf(old.id) }]);
      expect(await d.findKeys({ id: old.id })).to.have.length(0);
      expect(hexOf(await d.aesCheckValue({ id: missed.id }))).to.equal(hexOf(missed.checkValue ?? new Uint8Array()));
      expect(joins.filter((j) => j.reason === 'join').map((j) => [j.target, j.keys.length])).to.deep.equal([
        ['kc-d', 1],
      ]);

      // A new token: every key; then both take the next creation; a member in sync joins as a no-op.
      // Another token of the store was pulled meanwhile: it must not hide the new one.
      const f = await open('kc-f');
      await f.findKeys();
      deleteToken(store, 'kc-f');
      await f.close();
      const e = await open('kc-e');
      const added = await cluster.join({ name: 'kc-e', hsm: e });
      const onC = (await cluster.findKeys()).filter(
        (k) => k.token && k.kind !== 'public' && k.label !== clusterKekLabel,
      );
      expect(added.copied.map((k) => k.id)).to.have.members(onC.map((k) => hexOf(k.id)));
      expect(cluster.status()).to.deep.include({ primary: 'kc-c', inSync: ['kc-c', 'kc-d', 'kc-e'], lost: [] });
      const later = await cluster.generateSecretKey({ label: 'after-join', type: 'aes-256', usage: ['encrypt'] });
      for (const member of [d, e]) expect(await member.findKeys({ id: later.id })).to.have.length(1);
      expect(await cluster.join({ name: 'kc-e', hsm: e })).to.deep.equal({ copied: [], removed: [] });

      // A token holding another KEK is refused and changes nothing.
      const x = await open('kc-x');
      expect((await rejection(cluster.join({ name: 'kc-x', hsm: x }))).code).to.equal('HSM_INTEGRITY_FAILED');
      expect(cluster.status().inSync).to.deep.equal(['kc-c', 'kc-d', 'kc-e']);
      await x.close();
    });
  });
});
