import {
  kekDerivationData,
  type KeyRecord,
  nextKeyCommitment,
  type NonceRecord,
  rotationAckDigest,
  RotationMessageType,
  rotationNonceDigest,
  type RotationResponseClaims,
  type TransactionName,
} from '@keyfleet/protocol';
import { expect } from 'chai';
import { asPrincipal } from '../ledger/principal-context';
import { execFileSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, createHash, createPublicKey, diffieHellman, randomBytes } from 'node:crypto';
import { compactVerify, decodeProtectedHeader } from 'jose';
import { newDeviceCa } from '../ca/device-ca';
import { GatewayError } from '../errors';
import { parsePkcs11Uri } from '../hsm';
import { softHsmModule } from '../testing/softhsm';
import { newSoftwareKey } from '../testing/software-key';
import { findVersionKey, generateVersionKey } from '../key-versions/objects';
import { newRotationService, type RotationService } from './service';
import {
  deviceJws,
  enrolTestDevice,
  newRotationWorld,
  type RotationWorld,
  type TestDevice,
} from '../testing/rotation-fixture';

const hex = (data: Uint8Array): string => Buffer.from(data).toString('hex');
const sha256Hex = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');
const kcvOf = (key: Uint8Array): string =>
  createCipheriv('aes-256-ecb', key, null)
    .setAutoPadding(false)
    .update(Buffer.alloc(16))
    .subarray(0, 3)
    .toString('hex');

async function rejection(promise: Promise<unknown>): Promise<GatewayError> {
  try {
    await promise;
  } catch (err) {
    expect(err).to.be.instanceOf(GatewayError);
    return err as GatewayError;
  }
  throw new Error('expected a rejection');
}

describe('rotation service on SoftHSM and the in-process contract', function () {
  this.timeout(60_000);
  // Every test gets its own token, ledger and devices (beforeEach), and brings them to the state it
  // needs with the helpers below: no test depends on another having run, or having passed. Titles
  // hold no regex metacharacters, so `mocha -g '<title>'` selects each one.
  let world: RotationWorld;
  let service: RotationService;
  let dev1: TestDevice;
  let dev2: TestDevice;
  let dev3: TestDevice;

  beforeEach(async () => {
    world = await newRotationWorld();
    service = newRotationService({
      hsm: world.hsm,
      ledger: world.ledger,
      responseKey: world.metadataKey,
      deviceCaCertificatePem: world.ca.certificatePem,
    });
    dev1 = await enrolTestDevice(world, 'dev-1');
    dev2 = await enrolTestDevice(world, 'dev-2');
    dev3 = await enrolTestDevice(world, 'dev-3');
    await asPrincipal({ Kind: 'operator', ID: 'alice' }, () =>
      service.provisionDeviceKey({ deviceId: 'dev-1', keyId: 'dev-1-data' }),
    );
    await asPrincipal({ Kind: 'operator', ID: 'alice' }, () =>
      service.provisionDeviceKey({ deviceId: 'dev-2', keyId: 'dev-2-data' }),
    );
    await asPrincipal({ Kind: 'operator', ID: 'alice' }, () =>
      service.provisionDeviceKey({ deviceId: 'dev-3', keyId: 'dev-3-data' }),
    );
  });

  afterEach(async () => {
    await world.close();
  });

  function request(device: TestDevice, keyId: string, current: number, nonce = randomBytes(32).toString('base64url')) {
    const claims = {
      device_id: device.id,
      key_id: keyId,
      current_version: current,
      nonce,
      iat: Math.floor(Date.now() / 1000),
    };
    return {
      nonce,
      claims,
      jws: (overrides = {}) => deviceJws(device, RotationMessageType.Request, claims, overrides),
    };
  }

  /** The device side of §6, in software: verify with the pinned key, check the binding, derive, unwrap, check. */
  async function open(
    device: TestDevice,
    response: string,
    nonce: string,
  ): Promise<RotationResponseClaims & { key: Buffer }> {
    expect(decodeProtectedHeader(response).typ).to.equal(RotationMessageType.Response);
    const { payload } = await compactVerify(response, world.metadataKey.publicKey, { algorithms: ['ES256'] });
    const claims = JSON.parse(Buffer.from(payload).toString('utf8')) as RotationResponseClaims;
    expect(claims.nonce_digest).to.equal(rotationNonceDigest(nonce));
    const masterKey = diffieHellman({
      privateKey: device.privateKey,
      publicKey: createPublicKey(world.keyExchangePublicKeyPem),
    });
    const cbc = createCipheriv('aes-256-cbc', masterKey, Buffer.alloc(16)).setAutoPadding(false);
    const kek = Buffer.concat([
      cbc.update(kekDerivationData(claims.device_id, claims.key_id, claims.version)),
      cbc.final(),
    ]);
    const unwrap = createDecipheriv('id-aes256-wrap-pad', kek, Buffer.from('a65959a6', 'hex'));
    const key = Buffer.concat([unwrap.update(Buffer.from(claims.wrapped_key, 'base64url')), unwrap.final()]);
    expect(kcvOf(key)).to.equal(claims.kcv);
    return { ...claims, key };
  }

  const getKey = (keyId: string) => world.ledger.read<KeyRecord>('GetKey', keyId);

  /** What device 1 holds after {@link rotateDev1To}, as the spec's device would store it. */
  interface Held {
    readonly version: number;
    readonly key: Buffer;
    /** The last request the gateway accepted (for a replay). */
    readonly acceptedRequest: string;
  }

  /** Device 1 fetches version 1 of dev-1-data and rotates it up to `version`, as a device would. */
  async function rotateDev1To(version: number): Promise<Held> {
    let held: Held = { version: 0, key: Buffer.alloc(0), acceptedRequest: '' };
    while (held.version < version) {
      const r = request(dev1, 'dev-1-data', held.version);
      const jws = await r.jws();
      const opened = await open(dev1, (await service.rotateDeviceKey(jws)).response, r.nonce);
      expect(opened.version).to.equal(held.version + 1);
      held = { version: opened.version, key: opened.key, acceptedRequest: jws };
    }
    return held;
  }

  /** The committed next version of `keyId` replaced in the HSM by another key under the same label. */
  async function substituteVersionKey(keyId: string, version: number): Promise<void> {
    await world.hsm.destroyKey({ label: `key:${keyId}:v${String(version)}` }, ['secret']);
    await generateVersionKey(world.hsm, keyId, version);
  }

  it('delivers version 1 to a device that holds none, current_version 0, recording the nonce', async () => {
    const r = request(dev1, 'dev-1-data', 0);
    const result = await service.rotateDeviceKey(await r.jws(), { deviceId: 'dev-1', keyId: 'dev-1-data' });
    expect(result).to.include({ version: 1, redelivered: true });
    const opened = await open(dev1, result.response, r.nonce);
    const key = await getKey('dev-1-data');
    expect(key.LatestVersion).to.equal(1);
    expect(key.Versions[0]?.Fingerprint).to.equal(opened.kcv);
    const nonce = await world.ledger.read<NonceRecord>('GetNonce', rotationNonceDigest(r.nonce));
    expect(nonce).to.include({ Purpose: 'rotation', Subject: 'dev-1-data', TxID: result.transactionId });
  });

  it('rotates three times: each version committed before delivery, old one deactivated, next one committed', async () => {
    const held = { ...(await rotateDev1To(1)) };
    for (let round = 0; round < 3; round++) {
      const before = await getKey('dev-1-data');
      const r = request(dev1, 'dev-1-data', held.version);
      const result = await service.rotateDeviceKey(await r.jws());
      const opened = await open(dev1, result.response, r.nonce);
      expect(opened).to.include({
        version: held.version + 1,
        previous_version: held.version,
        transaction_id: result.transactionId,
      });
      expect(opened.key.equals(held.key)).to.equal(false);

      const after = await getKey('dev-1-data');
      expect(after.LatestVersion).to.equal(held.version + 1);
      expect(after.ActiveVersion).to.equal(held.version + 1);
      const version = after.Versions.find((x) => x.Version === held.version + 1);
      expect(version).to.include({ State: 'active', Fingerprint: opened.kcv, FingerprintType: 'kcv' });
      expect(version?.WrappedKeyDigest).to.equal(sha256Hex(Buffer.from(opened.wrapped_key, 'base64url')));
      expect(version?.Proof.TxID).to.equal(result.transactionId);
      expect(after.Versions.find((x) => x.Version === held.version)?.State).to.equal('deactivated');
      // Pre-rotation: the version delivered is the one committed before; the next is already in the HSM.
      expect(before.NextKeyCommitment).to.equal(nextKeyCommitment(opened.kcv));
      const next = await findVersionKey(world.hsm, 'dev-1-data', held.version + 2, world.hsm.tokenLabel);
      expect(after.NextKeyCommitment).to.equal(nextKeyCommitment(next?.kcv ?? 'none'));

      held.version = opened.version;
      held.key = opened.key;
    }
    expect(held.version).to.equal(4);
    // The device's key is the HSM's version 4: what the HSM encrypts, the device decrypts.
    const sealed = await world.hsm.encryptAesGcm({ label: 'key:dev-1-data:v4' }, Buffer.from('for dev-1'));
    const gcm = createDecipheriv('aes-256-gcm', held.key, sealed.iv);
    gcm.setAuthTag(Buffer.from(sealed.ciphertext.subarray(-16)));
    expect(Buffer.concat([gcm.update(sealed.ciphertext.subarray(0, -16)), gcm.final()]).toString()).to.equal(
      'for dev-1',
    );
    // No master key or KEK outlives a rotation.
    const labels = (await world.hsm.findKeys({ kind: 'secret' })).map((k) => k.label);
    expect(labels.filter((l) => /^(dmk|kek|transport|new):/.test(l))).to.deep.equal([]);
  });

  it('redelivers the committed version to a device that lost the answer', async () => {
    const held = await rotateDev1To(4);
    const r = request(dev1, 'dev-1-data', 3);
    const result = await service.rotateDeviceKey(await r.jws());
    const opened = await open(dev1, result.response, r.nonce);
    expect(result.redelivered).to.equal(true);
    expect(opened.version).to.equal(4);
    expect(opened.key.equals(held.key)).to.equal(true);
    expect((await getKey('dev-1-data')).LatestVersion).to.equal(4);
  });

  it('records the acknowledgement once per version, and answers a repeat with the first transaction', async () => {
    const held = await rotateDev1To(4);
    const ack = await deviceJws(dev1, RotationMessageType.Ack, {
      device_id: 'dev-1',
      key_id: 'dev-1-data',
      version: 4,
      kcv: kcvOf(held.key),
      nonce_digest: rotationNonceDigest('x'.repeat(22)),
      iat: Math.floor(Date.now() / 1000),
    });
    const first = await service.acknowledgeRotation(ack);
    expect(first).to.include({ version: 4, alreadyRecorded: false });
    const nonce = await world.ledger.read<NonceRecord>('GetNonce', rotationAckDigest('dev-1-data', 4));
    expect(nonce.TxID).to.equal(first.transactionId);
    const again = await service.acknowledgeRotation(ack);
    expect(again).to.include({ alreadyRecorded: true, transactionId: first.transactionId });
  });

  it('a rotation is one ledger transaction, RotateKey, which consumes the request nonce', async () => {
    await rotateDev1To(1);
    const before = world.local.transactions().length;
    const r = request(dev1, 'dev-1-data', 1);
    const result = await service.rotateDeviceKey(await r.jws());
    const written = world.local.transactions().slice(before);
    expect(written.map((t) => t.method)).to.deep.equal(['RotateKey']);
    const nonce = await world.ledger.read<NonceRecord>('GetNonce', rotationNonceDigest(r.nonce));
    expect(nonce).to.include({ Purpose: 'rotation', Subject: 'dev-1-data', TxID: result.transactionId });
  });

  it('a replayed nonce that slips past the early check is refused by RotateKey itself, writing nothing', async () => {
    const held = await rotateDev1To(2);
    // A ledger on which the gateway's early GetNonce check never sees a used nonce: the race in which
    // another gateway consumed it between that check and this commit.
    const blind: typeof world.ledger = {
      write: (action, fields) => world.ledger.write(action, fields),
      read: async <T>(transaction: TransactionName, ...args: string[]): Promise<T> => {
        if (transaction === 'GetNonce') {
          throw new GatewayError('LEDGER_REJECTED', 'not found', 'NONCE_NOT_FOUND');
        }
        return world.ledger.read<T>(transaction, ...args);
      },
    };
    const racing = newRotationService({
      hsm: world.hsm,
      ledger: blind,
      responseKey: world.metadataKey,
      deviceCaCertificatePem: world.ca.certificatePem,
    });
    const replayed = request(dev2, 'dev-2-data', 0);
    await service.rotateDeviceKey(await replayed.jws()); // dev-2 fetches version 1 with this nonce
    const reused = request(dev1, 'dev-1-data', held.version, replayed.nonce);
    const ledgerBefore = world.local.snapshot();
    const labelsBefore = (await world.hsm.findKeys({ kind: 'secret' })).map((k) => hex(k.id)).sort();
    const err = await rejection(racing.rotateDeviceKey(await reused.jws()));
    expect([err.code, err.detail]).to.deep.equal(['LEDGER_REJECTED', 'NONCE_REPLAYED']);
    expect(world.local.snapshot()).to.equal(ledgerBefore);
    expect((await world.hsm.findKeys({ kind: 'secret' })).map((k) => hex(k.id)).sort()).to.deep.equal(labelsBefore);
    expect((await getKey('dev-1-data')).LatestVersion).to.equal(held.version);
  });

  it('group-commits acknowledgements: those that arrive while one is written share one transaction', async () => {
    const helds = await Promise.all(
      [
        [dev1, 'dev-1-data'],
        [dev2, 'dev-2-data'],
        [dev3, 'dev-3-data'],
      ].map(async ([device, keyId]) => {
        const d = device as TestDevice;
        const r = request(d, keyId as string, 0);
        const opened = await open(d, (await service.rotateDeviceKey(await r.jws())).response, r.nonce);
        return { device: d, keyId: keyId as string, opened };
      }),
    );
    const acks = await Promise.all(
      helds.map(({ device, keyId, opened }) =>
        deviceJws(device, RotationMessageType.Ack, {
          device_id: device.id,
          key_id: keyId,
          version: opened.version,
          kcv: opened.kcv,
          nonce_digest: opened.nonce_digest,
          iat: Math.floor(Date.now() / 1000),
        }),
      ),
    );
    // Hold the first write until the others have queued behind it.
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let writes = 0;
    const gated = newRotationService({
      hsm: world.hsm,
      ledger: {
        read: (transaction, ...args) => world.ledger.read(transaction, ...args),
        write: async (action, fields) => {
          if (writes++ === 0) await gate;
          return world.ledger.write(action, fields);
        },
      },
      responseKey: world.metadataKey,
      deviceCaCertificatePem: world.ca.certificatePem,
    });
    const before = world.local.transactions().length;
    const first = gated.acknowledgeRotation(acks[0] as string);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const rest = [gated.acknowledgeRotation(acks[1] as string), gated.acknowledgeRotation(acks[2] as string)];
    // Repeated while waiting: shares its first copy's record.
    rest.push(gated.acknowledgeRotation(acks[2] as string));
    await new Promise((resolve) => setTimeout(resolve, 200));
    release();
    const results = await Promise.all([first, ...rest]);
    const written = world.local.transactions().slice(before);
    expect(written.map((t) => t.method)).to.deep.equal(['RecordRotationAcks', 'RecordRotationAcks']);
    expect(results.map((r) => r.transactionId)).to.deep.equal([
      written[0]?.transactionId,
      written[1]?.transactionId,
      written[1]?.transactionId,
      written[1]?.transactionId,
    ]);
    for (const { keyId, opened } of helds) {
      const nonce = await world.ledger.read<NonceRecord>('GetNonce', rotationAckDigest(keyId, opened.version));
      expect(nonce).to.include({ Purpose: 'rotation', Subject: keyId });
    }
  });

  it('refuses an acknowledgement whose check value is not the ledger’s', async () => {
    await rotateDev1To(4);
    const ack = await deviceJws(dev1, RotationMessageType.Ack, {
      device_id: 'dev-1',
      key_id: 'dev-1-data',
      version: 4,
      kcv: 'abcdef',
      nonce_digest: rotationNonceDigest('y'.repeat(22)),
      iat: Math.floor(Date.now() / 1000),
    });
    const err = await rejection(service.acknowledgeRotation(ack));
    expect([err.code, err.detail]).to.deep.equal(['BAD_REQUEST', 'ROTATION_ACK_MISMATCH']);
  });

  describe('hostile requests: refused with their code, nothing written to the ledger or the HSM', () => {
    const now = () => Math.floor(Date.now() / 1000);
    /** dev-1-data is at version 4 (version 5 committed as next); this request took it there. */
    let acceptedRequest: string;
    beforeEach(async () => {
      ({ acceptedRequest } = await rotateDev1To(4));
    });
    const cases: {
      name: string;
      setup?: () => Promise<void>;
      jws: () => Promise<string>;
      route?: { deviceId: string; keyId: string };
      code: string;
      detail: string;
    }[] = [
      {
        name: 'a replayed request',
        jws: () => Promise.resolve(acceptedRequest),
        code: 'LEDGER_REJECTED',
        detail: 'NONCE_REPLAYED',
      },
      {
        name: 'a request signed by another device’s key',
        jws: () => request(dev1, 'dev-1-data', 4).jws({ signingKey: dev2.privateKey }),
        code: 'UNAUTHENTICATED',
        detail: 'ROTATION_SIGNATURE_INVALID',
      },
      {
        name: 'another device’s certificate with this device’s claims',
        jws: () => request(dev2, 'dev-1-data', 4).jws({ claims: { device_id: 'dev-1' } }),
        code: 'UNAUTHENTICATED',
        detail: 'DEVICE_MISMATCH',
      },
      {
        name: 'a certificate from another CA',
        jws: async () => {
          const rogueCa = await newDeviceCa({ key: newSoftwareKey('rogue-ca') });
          const rogue = await enrolTestDevice(world, 'dev-1', rogueCa);
          return request(rogue, 'dev-1-data', 4).jws();
        },
        code: 'UNAUTHENTICATED',
        detail: 'DEVICE_CERTIFICATE_INVALID',
      },
      {
        name: 'a stale request, iat an hour ago',
        jws: () => request(dev1, 'dev-1-data', 4).jws({ claims: { iat: now() - 3600 } }),
        code: 'UNAUTHENTICATED',
        detail: 'ROTATION_REQUEST_STALE',
      },
      {
        name: 'a nonce shorter than 128 bits',
        jws: () => request(dev1, 'dev-1-data', 4, 'c2hvcnQ').jws(),
        code: 'BAD_REQUEST',
        detail: 'ROTATION_REQUEST_MALFORMED',
      },
      {
        name: 'a route that names another key than the signed claims',
        jws: () => request(dev1, 'dev-1-data', 4).jws(),
        route: { deviceId: 'dev-1', keyId: 'dev-2-data' },
        code: 'BAD_REQUEST',
        detail: 'ROTATION_REQUEST_MALFORMED',
      },
      {
        name: 'a revoked device',
        setup: async () => {
          await asPrincipal({ Kind: 'operator', ID: 'alice' }, () =>
            world.ledger.write('RevokeDevice', { DeviceID: 'dev-3', Reason: 'keyCompromise', Comment: null }),
          );
        },
        jws: () => request(dev3, 'dev-3-data', 1).jws(),
        code: 'FORBIDDEN',
        detail: 'DEVICE_REVOKED',
      },
      {
        name: 'a key the device does not own',
        jws: () => request(dev2, 'dev-1-data', 4).jws(),
        code: 'FORBIDDEN',
        detail: 'KEY_NOT_OWNED',
      },
      {
        name: 'a current version ahead of the ledger',
        jws: () => request(dev1, 'dev-1-data', 9).jws(),
        code: 'LEDGER_REJECTED',
        detail: 'STALE_VERSION',
      },
      {
        name: 'a next version that does not match the pre-rotation commitment',
        setup: () => substituteVersionKey('dev-2-data', 2),
        jws: () => request(dev2, 'dev-2-data', 1).jws(),
        // The gateway looks for the object whose check value the ledger committed to, finds none,
        // and stops before the ledger (which would refuse it with NEXT_KEY_MISMATCH).
        code: 'HSM_FAILURE',
        detail: 'KEY_MATERIAL_MISSING',
      },
    ];

    for (const c of cases) {
      it(`${c.name}: ${c.code} / ${c.detail}`, async () => {
        await c.setup?.();
        const jws = await c.jws();
        const ledgerBefore = world.local.snapshot();
        const hsmBefore = (await world.hsm.findKeys()).map((k) => `${k.kind}:${k.label}`).sort();
        const err = await rejection(service.rotateDeviceKey(jws, c.route));
        expect([err.code, err.detail], err.message).to.deep.equal([c.code, c.detail]);
        expect(world.local.snapshot(), 'ledger state').to.equal(ledgerBefore);
        expect((await world.hsm.findKeys()).map((k) => `${k.kind}:${k.label}`).sort(), 'HSM objects').to.deep.equal(
          hsmBefore,
        );
      });
    }
  });

  /** The token's objects labelled `label`, as `id:kcv`. */
  async function objectsOf(label: string): Promise<string[]> {
    return (await world.hsm.findKeys({ label, kind: 'secret' })).map(
      (k) => `${hex(k.id)}:${hex(k.checkValue ?? new Uint8Array())}`,
    );
  }

  /**
   * A second AES object under a taken label, as another process on the token can make it (the
   * Hsm layer refuses duplicates only within one process): pkcs11-tool, with its own CKA_ID.
   */
  function duplicateLabel(label: string, idHex: string): void {
    execFileSync(
      'pkcs11-tool',
      ['--module', softHsmModule, '--token-label', world.store.label, '--login', '--pin', world.store.pin].concat([
        '--keygen',
        '--key-type',
        'AES:32',
        '--label',
        label,
        '--id',
        idHex,
      ]),
      { stdio: 'ignore', env: { ...process.env, SOFTHSM2_CONF: world.store.conf } },
    );
  }

  /** Rotates `keyId` from the ledger's latest version; returns the opened response. */
  async function rotateFromLatest(
    device: TestDevice,
    keyId: string,
  ): Promise<RotationResponseClaims & { key: Buffer }> {
    const latest = (await getKey(keyId)).LatestVersion;
    const r = request(device, keyId, latest);
    const result = await service.rotateDeviceKey(await r.jws());
    expect(result).to.include({ version: latest + 1, redelivered: false });
    return open(device, result.response, r.nonce);
  }

  describe('after a crash', () => {
    let dev4: TestDevice;
    beforeEach(async () => {
      dev4 = await enrolTestDevice(world, 'dev-4');
      await asPrincipal({ Kind: 'operator', ID: 'alice' }, () =>
        service.provisionDeviceKey({ deviceId: 'dev-4', keyId: 'dev-4-data' }),
      );
    });

    it('reconcile destroys version keys the ledger does not account for, keeps the others and the version after next', async () => {
      // dev-1-data is at version 4, version 5 committed as next.
      await rotateDev1To(4);
      // dev-2-data's committed next version replaced by another key under its label.
      await substituteVersionKey('dev-2-data', 2);
      const inFlight = await generateVersionKey(world.hsm, 'dev-1-data', 6); // a rotation in flight elsewhere, or an ambiguous failure
      await generateVersionKey(world.hsm, 'dev-1-data', 7); // no rotation ever makes v7 while the ledger is at 4
      await generateVersionKey(world.hsm, 'ghost-key', 1); // provisioning that never reached the ledger
      const result = await service.reconcile();
      expect([...result.destroyed].sort()).to.deep.equal([
        'key:dev-1-data:v7',
        'key:dev-2-data:v2', // the substituted key: not the committed one
        'key:ghost-key:v1',
      ]);
      const labels = (await world.hsm.findKeys({ kind: 'secret' })).map((k) => k.label);
      for (let v = 1; v <= 5; v++) expect(labels).to.include(`key:dev-1-data:v${v}`);
      expect(await objectsOf('key:dev-1-data:v6')).to.deep.equal([`${hex(inFlight.id)}:${inFlight.kcv}`]);
      expect(labels).to.include('key:dev-2-data:v1');
      expect(result.kept).to.equal(labels.filter((l) => l.startsWith('key:')).length);
      expect((await service.reconcile()).destroyed).to.deep.equal([]);
    });

    it('the next rotation adopts a leftover version after next instead of refusing, and the key keeps rotating', async () => {
      // An ambiguous failure (LEDGER_UNAVAILABLE, not committed) of a rotation 1 → 2 left its version 3.
      const leftover = await generateVersionKey(world.hsm, 'dev-4-data', 3);
      const second = await rotateFromLatest(dev4, 'dev-4-data');
      expect(second.version).to.equal(2);
      expect((await getKey('dev-4-data')).NextKeyCommitment).to.equal(nextKeyCommitment(leftover.kcv));
      const third = await rotateFromLatest(dev4, 'dev-4-data');
      expect(third.kcv).to.equal(leftover.kcv);
      // The HSM holds exactly the ledger's versions and the pre-generated next one, one object each.
      const key = await getKey('dev-4-data');
      expect(key.LatestVersion).to.equal(3);
      for (const record of key.Versions) {
        expect(await objectsOf(`key:dev-4-data:v${String(record.Version)}`)).to.have.length(1);
        expect(await findVersionKey(world.hsm, 'dev-4-data', record.Version, world.hsm.tokenLabel)).to.include({
          kcv: record.Fingerprint,
        });
      }
      const next = await findVersionKey(world.hsm, 'dev-4-data', 4, world.hsm.tokenLabel);
      expect(key.NextKeyCommitment).to.equal(nextKeyCommitment(next?.kcv ?? 'none'));
      expect(await objectsOf('key:dev-4-data:v5')).to.deep.equal([]);
      expect((await service.reconcile()).destroyed).to.deep.equal([]);
    });

    it('a duplicated label of the active version: reconcile destroys only the copy the ledger does not know', async () => {
      await rotateDev1To(4);
      const key = await getKey('dev-1-data');
      const active = key.Versions.find((v) => v.Version === key.LatestVersion);
      const label = `key:dev-1-data:v${String(key.LatestVersion)}`;
      duplicateLabel(label, 'd4d4d4d4');
      expect(await objectsOf(label)).to.have.length(2);
      const result = await service.reconcile();
      expect(result.destroyed).to.deep.equal([label]);
      // The survivor is the object the ledger names (its Pkcs11URI's CKA_ID), not the copy.
      const ledgerId = parsePkcs11Uri(active?.Pkcs11URI ?? '').id ?? new Uint8Array();
      expect(await objectsOf(label)).to.deep.equal([`${hex(ledgerId)}:${active?.Fingerprint ?? ''}`]);
      // Still deliverable: a device that lost the answer gets the committed version again.
      const r = request(dev1, 'dev-1-data', key.LatestVersion - 1);
      const opened = await open(dev1, (await service.rotateDeviceKey(await r.jws())).response, r.nonce);
      expect(opened).to.include({ version: key.LatestVersion, kcv: active?.Fingerprint });
    });

    it('a duplicated label of the committed next version: the rotation delivers the committed object', async () => {
      await rotateDev1To(4);
      const before = await getKey('dev-1-data');
      const label = `key:dev-1-data:v${String(before.LatestVersion + 1)}`;
      duplicateLabel(label, 'd5d5d5d5');
      const opened = await rotateFromLatest(dev1, 'dev-1-data');
      expect(nextKeyCommitment(opened.kcv)).to.equal(before.NextKeyCommitment);
      expect((await service.reconcile()).destroyed).to.deep.equal([label]);
      expect(await objectsOf(label)).to.have.length(1);
    });
  });
});
