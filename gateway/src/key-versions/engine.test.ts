import { Msp, nextKeyCommitment, Role, rotationNonceDigest, sha256Hex } from '@keyfleet/protocol';
import { expect } from 'chai';
import { GatewayError, GatewayErrorCode } from '../errors';
import type { Hsm } from '../hsm';
import type { LedgerClient } from '../ledger/ledger-client';
import { asPrincipal } from '../ledger/principal-context';
import { ledgerPort } from '../ledger/port';
import { enrolTestDevice, newRotationWorld, type RotationWorld } from '../testing/rotation-fixture';
import { newKeyVersionEngine, type KeyRegistrationFields, type KeyVersionEngine } from './engine';
import { generateVersionKey } from './objects';

const alice = { Kind: 'operator', ID: 'alice' } as const;
const operator = { MSPID: Msp.Operator, Role: Role.Operator, ID: null };
const hex = (data: Uint8Array): string => Buffer.from(data).toString('hex');

/** A device key (delivered, pre-rotated from the start) or an application key (neither). */
function fields(keyId: string, kind: 'device' | 'application' | 'ec'): KeyRegistrationFields {
  return {
    KeyID: keyId,
    Owner: kind === 'device' ? { Type: 'device', ID: 'dev-1' } : { Type: 'application', ID: 'billing' },
    Algorithm: kind === 'ec' ? 'EC-P256' : 'AES-256',
    Purpose: kind === 'ec' ? 'sign' : 'encrypt',
    RotationPolicy: { IntervalSeconds: 86_400, GraceSeconds: 0, RetentionSeconds: 86_400, Triggers: ['compromise'] },
    AccessPolicy: { Read: [operator], Use: [operator], Rotate: [operator], Administer: [operator] },
    InitialState: 'active',
  };
}
/** A delivery hook that "wraps" to these bytes. */
const wrapTo = (bytes: number[]) => () => Promise.resolve(new Uint8Array(bytes));
const deviceKey = { preRotate: true, delivered: true } as const;
const applicationKey = { preRotate: false, delivered: false } as const;

/** Resolves never: what a process killed mid-step leaves is exactly what it did before the step. */
const never = new Promise<never>(() => undefined);

async function rejection(promise: Promise<unknown>): Promise<GatewayError> {
  try {
    await promise;
  } catch (err) {
    expect(err).to.be.instanceOf(GatewayError);
    return err as GatewayError;
  }
  throw new Error('expected a rejection');
}

describe('key-version engine on SoftHSM and the in-process contract', function () {
  this.timeout(60_000);
  let world: RotationWorld;
  let engine: KeyVersionEngine;
  const ledger = () => ledgerPort(world.ledger);
  const key = (keyId: string) => ledger().keys.require(keyId);
  /** Every object on the token, as `kind:label:id`. */
  const hsmObjects = async () => (await world.hsm.findKeys()).map((k) => `${k.kind}:${k.label}:${hex(k.id)}`).sort();
  /** The versions of `keyId` on the token (secret objects or private keys), sorted. */
  const versionsOnToken = async (keyId: string) =>
    (await world.hsm.findKeys())
      .filter((k) => k.kind !== 'public' && k.label.startsWith(`key:${keyId}:v`))
      .map((k) => Number(k.label.slice(`key:${keyId}:v`.length)))
      .sort((a, b) => a - b);
  const test = (title: string, fn: () => Promise<void>) => it(title, () => asPrincipal(alice, fn));
  const advanceFromLedger = async (keyId: string, e = engine) => e.advance(await key(keyId));

  beforeEach(async () => {
    world = await newRotationWorld();
    engine = newKeyVersionEngine({ hsm: world.hsm, ledger: world.ledger });
    await enrolTestDevice(world, 'dev-1');
  });
  afterEach(() => world.close());

  test('registers a device key: versions 1 and 2 extractable, version 2 committed as next', async () => {
    const { record } = await engine.register(fields('dev-key', 'device'), deviceKey);
    const [v1] = await world.hsm.findKeys({ label: 'key:dev-key:v1', kind: 'secret' });
    const [v2] = await world.hsm.findKeys({ label: 'key:dev-key:v2', kind: 'secret' });
    expect([v1?.extractable, v2?.extractable]).to.deep.equal([true, true]);
    expect(record.Versions[0]).to.include({
      Fingerprint: hex(v1?.checkValue ?? new Uint8Array()),
      FingerprintType: 'kcv',
    });
    expect(record.NextKeyCommitment).to.equal(nextKeyCommitment(hex(v2?.checkValue ?? new Uint8Array())));
  });

  test('registers application keys: version 1 only, AES never extractable, EC by its SPKI digest', async () => {
    const aes = await engine.register(fields('app-aes', 'application'), applicationKey);
    const ec = await engine.register(fields('app-ec', 'ec'), applicationKey);
    expect([aes.record.NextKeyCommitment, ec.record.NextKeyCommitment]).to.deep.equal([null, null]);
    const [secret] = await world.hsm.findKeys({ label: 'key:app-aes:v1', kind: 'secret' });
    expect(secret?.extractable).to.equal(false);
    const pub = await world.hsm.getPublicKey({ label: 'key:app-ec:v1' });
    expect(ec.record.Versions[0]).to.include({ Fingerprint: sha256Hex(pub.spki), FingerprintType: 'spki-sha256' });
    expect(await versionsOnToken('app-aes')).to.deep.equal([1]);
  });

  for (const kind of ['device', 'application', 'ec'] as const) {
    test(`advances a ${kind} key three times: each commits the pre-generated version, the one after is made`, async () => {
      await engine.register(fields(`${kind}-k`, kind), kind === 'device' ? deviceKey : applicationKey);
      const deliver = kind === 'device' ? wrapTo([1, 2, 3]) : undefined;
      for (let n = 1; n <= 3; n++) {
        const before = await key(`${kind}-k`);
        const done = await engine.advance(before, deliver === undefined ? {} : { deliver });
        expect(done.record).to.include({ LatestVersion: n + 1, ActiveVersion: n + 1 });
        if (before.NextKeyCommitment !== null) {
          expect(nextKeyCommitment(done.committed.fingerprint)).to.equal(before.NextKeyCommitment);
        }
        const committed = done.record.Versions.find((v) => v.Version === n + 1);
        expect(committed).to.include({ Fingerprint: done.committed.fingerprint, Pkcs11URI: done.committed.uri });
        expect(committed?.WrappedKeyDigest).to.equal(
          deliver === undefined ? null : sha256Hex(new Uint8Array([1, 2, 3])),
        );
        expect(await versionsOnToken(`${kind}-k`)).to.deep.equal([1, 2, 3, 4, 5].slice(0, n + 2));
      }
      expect((await engine.reconcile()).destroyed).to.deep.equal([]);
    });
  }

  test('one lock per key: two advances of one key queue, each reads the record the other left', async () => {
    await engine.register(fields('busy', 'device'), deviceKey);
    const inLock = () => engine.exclusively('busy', () => advanceFromLedger('busy'));
    const results = await Promise.all([inLock(), inLock()]);
    expect(results.map((r) => r.record.LatestVersion)).to.deep.equal([2, 3]);
  });

  describe('refusals: the code, and nothing left in the HSM or on the ledger', () => {
    const cases: {
      name: string;
      /** Brings the world to the case; returns the call to refuse. */
      arrange: () => Promise<() => Promise<unknown>>;
      code: GatewayErrorCode;
      detail: string;
    }[] = [
      {
        name: 'registering a key whose version 1 the HSM holds',
        arrange: async () => {
          await generateVersionKey(world.hsm, 'taken', 1, { extractable: false });
          return () => engine.register(fields('taken', 'application'), applicationKey);
        },
        code: GatewayErrorCode.LedgerRejected,
        detail: 'HSM_KEY_EXISTS',
      },
      {
        name: 'registering a key the ledger refuses (its device is not enrolled)',
        arrange: () => {
          const request = { ...fields('orphan', 'device'), Owner: { Type: 'device', ID: 'dev-none' } } as const;
          return Promise.resolve(() => engine.register(request, deviceKey));
        },
        code: GatewayErrorCode.LedgerRejected,
        detail: 'DEVICE_NOT_FOUND',
      },
      {
        name: 'a committed next version that is not in the HSM',
        arrange: async () => {
          await engine.register(fields('swapped', 'device'), deviceKey);
          await world.hsm.destroyKey({ label: 'key:swapped:v2' }, ['secret']);
          await generateVersionKey(world.hsm, 'swapped', 2); // another key under the label
          return () => advanceFromLedger('swapped');
        },
        code: GatewayErrorCode.HsmFailure,
        detail: 'KEY_MATERIAL_MISSING',
      },
      {
        name: 'no commitment, and the next version label is taken',
        arrange: async () => {
          await engine.register(fields('raced', 'application'), applicationKey);
          await generateVersionKey(world.hsm, 'raced', 2, { extractable: false });
          return () => advanceFromLedger('raced');
        },
        code: GatewayErrorCode.LedgerRejected,
        detail: 'ROTATION_IN_PROGRESS',
      },
      {
        name: 'an EC version after next whose label is taken (EC pairs are never adopted)',
        arrange: async () => {
          await engine.register(fields('ec-raced', 'ec'), applicationKey);
          await world.hsm.generateEcKeyPair({ label: 'key:ec-raced:v3' });
          return () => advanceFromLedger('ec-raced');
        },
        code: GatewayErrorCode.LedgerRejected,
        detail: 'ROTATION_IN_PROGRESS',
      },
      {
        name: 'another gateway advanced first (a stale record)',
        arrange: async () => {
          await engine.register(fields('stale', 'application'), applicationKey);
          await advanceFromLedger('stale');
          const old = await key('stale');
          await advanceFromLedger('stale', newKeyVersionEngine({ hsm: world.hsm, ledger: world.ledger }));
          return () => engine.advance(old);
        },
        code: GatewayErrorCode.LedgerRejected,
        detail: 'STALE_VERSION',
      },
      {
        name: 'a nonce already consumed',
        arrange: async () => {
          await engine.register(fields('replay', 'device'), deviceKey);
          const nonceDigest = rotationNonceDigest('bm9uY2Utbm9uY2Utbm9uY2U');
          await ledger().nonces.consume({ NonceDigest: nonceDigest, Purpose: 'rotation', Subject: 'replay' });
          const deliver = wrapTo([7]);
          return async () => engine.advance(await key('replay'), { deliver, nonceDigest });
        },
        code: GatewayErrorCode.LedgerRejected,
        detail: 'NONCE_REPLAYED',
      },
      {
        name: 'the delivery hook fails (the device key cannot be wrapped)',
        arrange: async () => {
          await engine.register(fields('unwrappable', 'device'), deviceKey);
          const deliver = () =>
            Promise.reject(new GatewayError(GatewayErrorCode.HsmFailure, 'no KEK', 'HSM_MODULE_FAILED'));
          return async () => engine.advance(await key('unwrappable'), { deliver });
        },
        code: GatewayErrorCode.HsmFailure,
        detail: 'HSM_MODULE_FAILED',
      },
    ];

    for (const c of cases) {
      test(`${c.name}: ${c.code} / ${c.detail}`, async () => {
        const act = await c.arrange();
        const ledgerBefore = world.local.snapshot();
        const hsmBefore = await hsmObjects();
        const err = await rejection(act());
        expect([err.code, err.detail], err.message).to.deep.equal([c.code, c.detail]);
        expect(world.local.snapshot(), 'ledger state').to.equal(ledgerBefore);
        expect(await hsmObjects(), 'HSM objects').to.deep.equal(hsmBefore);
      });
    }

    test('an unknown outcome (LEDGER_UNAVAILABLE) leaves the new versions for reconcile', async () => {
      await engine.register(fields('unsure', 'application'), applicationKey);
      const down: LedgerClient = {
        read: (transaction, ...args) => world.ledger.read(transaction, ...args),
        write: () => Promise.reject(new GatewayError(GatewayErrorCode.LedgerUnavailable, 'no peer answered')),
      };
      const cut = newKeyVersionEngine({ hsm: world.hsm, ledger: down });
      const err = await rejection(advanceFromLedger('unsure', cut));
      expect(err.code).to.equal(GatewayErrorCode.LedgerUnavailable);
      expect(await versionsOnToken('unsure')).to.deep.equal([1, 2, 3]);
      // Nothing committed: v2 is unaccounted for and goes; v3 (latest + 2) stays for adoption.
      expect(await engine.reconcile()).to.deep.include({ destroyed: ['key:unsure:v2'], missing: [] });
      expect(await versionsOnToken('unsure')).to.deep.equal([1, 3]);
    });
  });

  describe('crash points: killed mid-step, restarted, reconciled, and the key advances again', () => {
    /** Resolved when the doomed process reaches its crash point. */
    let died: () => void = () => undefined;
    let death = Promise.resolve();
    beforeEach(() => {
      death = new Promise((resolve) => (died = resolve));
    });
    const die = (): Promise<never> => {
      died();
      return never;
    };
    /** An HSM in a process that dies once the nth (0-based) call of `method` is done. */
    function dyingHsm(method: 'generateSecretKey' | 'generateEcKeyPair', nth: number): Hsm {
      let calls = 0;
      return new Proxy(world.hsm, {
        get(target, property) {
          const value: unknown = Reflect.get(target, property);
          if (property !== method || typeof value !== 'function')
            return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
          return async (...args: unknown[]) => {
            const made: unknown = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
            return calls++ === nth ? die() : made;
          };
        },
      });
    }
    /** A ledger whose RotateKey/RegisterKey is written, or not, and then the process dies. */
    function dyingLedger(written: boolean): LedgerClient {
      return {
        read: (transaction, ...args) => world.ledger.read(transaction, ...args),
        write: async (action, request) => {
          if (written) await world.ledger.write(action, request);
          return die();
        },
      };
    }

    const cases: {
      name: string;
      kind: 'device' | 'application' | 'ec';
      /** Before the crash: registered (true) or the crash is in registration (false). */
      registered: boolean;
      dying: () => { hsm?: Hsm; ledger?: LedgerClient };
      destroyed: string[];
      latestAfterCrash: number;
    }[] = [
      {
        name: 'registration, after version 1 was generated',
        kind: 'device',
        registered: false,
        dying: () => ({ hsm: dyingHsm('generateSecretKey', 0) }),
        destroyed: ['key:k:v1'],
        latestAfterCrash: 0,
      },
      {
        name: 'rotation without a commitment, after n+1 was generated',
        kind: 'application',
        registered: true,
        dying: () => ({ hsm: dyingHsm('generateSecretKey', 0) }),
        destroyed: ['key:k:v2'],
        latestAfterCrash: 1,
      },
      {
        name: 'rotation, after n+2 was generated (rotation-before-commit)',
        kind: 'device',
        registered: true,
        dying: () => ({ hsm: dyingHsm('generateSecretKey', 0) }),
        destroyed: [], // v3 is latest + 2: kept, and adopted by the next rotation
        latestAfterCrash: 1,
      },
      {
        name: 'rotation, before the commit reached the ledger',
        kind: 'application',
        registered: true,
        dying: () => ({ ledger: dyingLedger(false) }),
        destroyed: ['key:k:v2'],
        latestAfterCrash: 1,
      },
      {
        name: 'rotation, after the commit and before the answer (rotation-after-commit)',
        kind: 'device',
        registered: true,
        dying: () => ({ ledger: dyingLedger(true) }),
        destroyed: [],
        latestAfterCrash: 2,
      },
      {
        name: 'rotation of an EC key, after the commit and before the answer',
        kind: 'ec',
        registered: true,
        dying: () => ({ ledger: dyingLedger(true) }),
        destroyed: [],
        latestAfterCrash: 2,
      },
    ];

    for (const c of cases) {
      test(`${c.kind} key, ${c.name}`, async () => {
        const options = c.kind === 'device' ? deviceKey : applicationKey;
        if (c.registered) await engine.register(fields('k', c.kind), options);
        const dying = c.dying();
        const doomed = newKeyVersionEngine({ hsm: dying.hsm ?? world.hsm, ledger: dying.ledger ?? world.ledger });
        const deliver = c.kind === 'device' ? { deliver: wrapTo([1]) } : {};
        const crashed = c.registered
          ? doomed.advance(await key('k'), deliver)
          : doomed.register(fields('k', c.kind), options);
        // The process is gone: the call never settles, and nothing it would have done afterwards happens.
        const outcome = await Promise.race([
          death.then(() => 'died'),
          crashed.then(
            () => 'answered',
            (err: unknown) => err,
          ),
        ]);
        expect(outcome, 'the doomed call reached its crash point').to.equal('died');

        const restarted = newKeyVersionEngine({ hsm: world.hsm, ledger: world.ledger });
        const reconciled = await restarted.reconcile();
        expect([...reconciled.destroyed].sort()).to.deep.equal(c.destroyed);
        expect(reconciled.missing).to.deep.equal([]);
        const latest = (await ledger().keys.get('k'))?.LatestVersion ?? 0;
        expect(latest, 'what the ledger committed').to.equal(c.latestAfterCrash);

        // The key goes on: registered again if it never was, then advanced once.
        if (latest === 0) await restarted.register(fields('k', c.kind), options);
        const done = await restarted.advance(await key('k'), deliver);
        const committed = Math.max(latest, 1) + 1;
        expect(done.record.LatestVersion).to.equal(committed);
        // Every committed version and the one pre-generated next version, one object each.
        expect(await versionsOnToken('k')).to.deep.equal(Array.from({ length: committed + 1 }, (_, i) => i + 1));
        expect(await restarted.reconcile()).to.deep.include({ destroyed: [], missing: [] });
      });
    }
  });

  test('reconcile reports a ledger version and a committed next version the HSM lacks, and repairs nothing', async () => {
    await engine.register(fields('lost', 'device'), deviceKey);
    await engine.advance(await key('lost'), { deliver: wrapTo([1]) });
    await world.hsm.destroyKey({ label: 'key:lost:v1' }, ['secret']);
    await world.hsm.destroyKey({ label: 'key:lost:v3' }, ['secret']);
    const result = await engine.reconcile();
    expect(result).to.deep.include({ destroyed: [], kept: 1 });
    expect(result.missing).to.deep.equal([
      { keyId: 'lost', version: 1 },
      { keyId: 'lost', version: 3 },
    ]);
  });

  test('destroyExpired destroys versions past retention on the ledger, then in the HSM; a refusal keeps them', async () => {
    const retention = (seconds: number) => ({
      ...fields('x', 'application').RotationPolicy,
      RetentionSeconds: seconds,
    });
    await engine.register({ ...fields('old', 'application'), RotationPolicy: retention(0) }, applicationKey);
    await engine.register({ ...fields('kept', 'application'), RotationPolicy: retention(86_400) }, applicationKey);
    await engine.advance(await key('old'));
    const { record } = await engine.advance(await key('kept'));
    const deactivatedAt = Date.parse(record.Versions.find((v) => v.Version === 1)?.DeactivatedAt ?? '');
    expect((await engine.destroyExpired(new Date(deactivatedAt))).refused).to.deep.equal([]);
    expect(await versionsOnToken('old')).to.deep.equal([2, 3]);
    expect((await key('old')).Versions.find((v) => v.Version === 1)?.State).to.equal('destroyed');
    // The gateway's clock says a day has passed, the ledger's does not: the ledger decides.
    const { destroyed, refused } = await engine.destroyExpired(new Date(deactivatedAt + 86_400_000));
    expect(destroyed).to.deep.equal([]);
    expect(refused).to.deep.equal([{ keyId: 'kept', version: 1, detail: 'RETENTION_NOT_ELAPSED' }]);
    expect(await versionsOnToken('kept')).to.deep.equal([1, 2, 3]);
  });
});
