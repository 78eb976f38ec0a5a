import { expect } from 'chai';
import type { KeyRecord } from '@keyfleet/protocol';
import { newRotationScheduler, type RotationScheduler } from '@keyfleet/gateway';
import { newKeyWorld, type KeyGateway, type KeyWorld } from './support/key-world';

const KeyCount = 200;
const keyIds = Array.from({ length: KeyCount }, (_, i) => `app-${String(i).padStart(4, '0')}`);

/**
 * Two gateways, one SoftHSM token, one ledger, both schedulers on: every due key is rotated
 * exactly once, as the ledger's history and events show.
 */
describe('rotation scheduler with two gateways on SoftHSM', function () {
  this.timeout(300_000);
  let w: KeyWorld;
  let gateways: KeyGateway[];
  let schedulers: RotationScheduler[];

  before(async () => {
    w = await newKeyWorld();
    gateways = [w.gateway, await w.addGateway('gateway-2')];
    for (const keyId of keyIds) await w.register(keyId, { rotationIntervalSeconds: 60 });
    await w.gateway.ledger.write('EnrolDevice', {
      DeviceID: 'dev-0001',
      Group: 'edge',
      Location: 'lab',
      Function: 'sensor',
      Shard: 0,
      CertFingerprint: 'ab'.repeat(32),
    });
    await w.register('dev-0001-data', { rotationIntervalSeconds: 60, owner: { type: 'device', id: 'dev-0001' } });
    schedulers = gateways.map((g) =>
      newRotationScheduler({
        ledger: g.ledger,
        rotateApplicationKey: (keyId, options) => g.rotation.rotateApplicationKey(keyId, options),
        intervalMs: 10,
        batchSize: 50,
        now: w.clock.now,
      }),
    );
  });
  after(async () => {
    for (const s of schedulers) await s.stop();
    await w.close();
  });

  it('finds nothing due before the interval has passed', async () => {
    const run = await schedulers[0]?.runOnce();
    expect(run?.due).to.equal(0);
  });

  it('rotates each of 200 due keys exactly once, and leaves the device key to its device', async () => {
    w.clock.advance(61);
    const eventsBefore = w.local.events().length;
    for (const s of schedulers) s.start();
    const deadline = Date.now() + 150_000;
    const rotations = () =>
      w.local
        .events()
        .slice(eventsBefore)
        .filter((e) => e.name === 'KeyRotated').length;
    while (rotations() < KeyCount && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    const pending = new Set<string>();
    for (const keyId of keyIds) {
      if ((await w.gateway.ledger.read<KeyRecord>('GetKey', keyId)).LatestVersion < 2) pending.add(keyId);
    }
    // Let every pass in flight finish, then check the ledger: one rotation per key, no more.
    for (const s of schedulers) await s.stop();
    expect([...pending]).to.deep.equal([]);
    const rotated = w.local
      .events()
      .slice(eventsBefore)
      .filter((e) => e.name === 'KeyRotated')
      .map((e) => (JSON.parse(Buffer.from(e.payload).toString('utf8')) as { KeyID: string }).KeyID);
    expect(rotated.length).to.equal(KeyCount);
    expect(new Set(rotated).size).to.equal(KeyCount);
    for (const keyId of keyIds) {
      const key = await w.gateway.ledger.read<KeyRecord>('GetKey', keyId);
      expect(key.LatestVersion, keyId).to.equal(2);
      expect(key.Versions.map((v) => v.State)).to.deep.equal(['deactivated', 'active']);
      const history = await w.gateway.ledger.read<unknown[]>('GetKeyHistory', keyId);
      expect(history, keyId).to.have.length(2); // RegisterKey, RotateKey
    }
    // Losers destroyed what they generated: one object per version label, v3 pre-generated.
    const labels = (await w.gateway.hsm.findKeys({ kind: 'secret' })).map((k) => k.label);
    for (const keyId of keyIds) {
      for (const v of [1, 2, 3])
        expect(
          labels.filter((l) => l === `key:${keyId}:v${v}`),
          `${keyId} v${v}`,
        ).to.have.length(1);
      expect(labels).to.not.include(`key:${keyId}:v4`);
    }
    const device = await w.gateway.ledger.read<KeyRecord>('GetKey', 'dev-0001-data');
    expect(device.LatestVersion).to.equal(1);
  });

  it('tells the device at check-in that its key is due', async () => {
    const run = await schedulers[1]?.runOnce();
    expect(run?.deviceOwned).to.deep.equal(['dev-0001-data']);
    expect(run?.rotated).to.deep.equal([]);
    expect(schedulers[1]?.dueForDevice('dev-0001').map((d) => d.keyId)).to.deep.equal(['dev-0001-data']);
    expect(schedulers[1]?.dueForDevice('dev-0002')).to.deep.equal([]);
  });
});
