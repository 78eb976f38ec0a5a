import { createCipheriv, createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { newAgent, rotationAckDigest, type Agent } from '@keyfleet/agent';
import type { DeviceRecord, KeyRecord } from '@keyfleet/protocol';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture';

/**
 * A device's whole life over real HTTP: the real agent against the real gateway on SoftHSM,
 * with keyfleet's contract as the ledger. Enrol, fetch and rotate a key three times, attest
 * healthy, get caught after a measured file changes.
 */
describe('device end to end: agent → gateway → HSM → ledger → agent', function () {
  this.timeout(120_000);
  let f: GatewayFixture;
  let dir: string;
  let agent: Agent;
  let firmware: string;
  let config: string;

  const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
  const attestOptions = () => ({
    measuredFiles: [
      { name: 'firmware', path: firmware },
      { name: 'config', path: config },
    ],
    hwmodel: 'kf-sensor-v1',
    swname: 'keyfleet-agent',
    swversion: '0.1.0',
  });

  before(async () => {
    // A scheduler pass every 100 ms, so a key made due is reported at the next check-in.
    f = await startGatewayFixture({ KEYFLEET_SCHEDULER_INTERVAL_MS: '100' });
    dir = mkdtempSync(join(tmpdir(), 'keyfleet-device-'));
    firmware = join(dir, 'firmware.bin');
    config = join(dir, 'agent.json');
    writeFileSync(firmware, 'firmware image 1.0');
    writeFileSync(config, '{"interval": 60}');
    const { token } = await f.operator('POST', '/v1/enrolment-tokens', {
      deviceId: 'edge-001',
      group: 'thermo',
      location: 'hall 2',
      function: 'thermometer',
    });
    agent = newAgent({ keystorePath: join(dir, 'keystore.json'), gatewayUrl: f.url, deviceId: 'edge-001' });
    await agent.enrol(token as string);
  });
  after(async () => {
    await f.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('fetches a provisioned key and rotates it three times; the ledger keeps every version', async () => {
    await f.operator('POST', '/v1/devices/edge-001/keys', { keyId: 'edge-001-data' });
    const versions: number[] = [];
    const kcvs: string[] = [];
    for (let i = 0; i < 4; i++) {
      const outcome = await agent.rotate('edge-001-data');
      versions.push(outcome.version);
      kcvs.push(outcome.kcv);
      expect(outcome.acknowledged).to.be.true;
    }
    expect(versions).to.deep.equal([1, 2, 3, 4]);
    expect(new Set(kcvs).size).to.equal(4);

    const { record } = (await f.operator('GET', '/v1/keys/edge-001-data')) as { record: KeyRecord };
    expect(record.ActiveVersion).to.equal(4);
    expect(record.Versions.map((v) => v.State)).to.deep.equal(['deactivated', 'deactivated', 'deactivated', 'active']);
    expect(record.Versions.map((v) => v.Fingerprint)).to.deep.equal(kcvs);

    // The device holds exactly the HSM's version 4: a key check value computed from the bytes it stored.
    const stored = await agent.dataKey('edge-001-data');
    expect(stored?.version).to.equal(4);
    const cipher = createCipheriv('aes-256-ecb', stored?.key ?? Buffer.alloc(32), null).setAutoPadding(false);
    const kcv = Buffer.concat([cipher.update(Buffer.alloc(16)), cipher.final()])
      .subarray(0, 3)
      .toString('hex');
    expect(kcv).to.equal(record.Versions[3]?.Fingerprint);
  });

  it('a rotation is one RotateKey that consumes its nonce; concurrent rotations share acknowledgement transactions', async () => {
    const added = async (from: number) => (await f.ledger.transactions()).slice(from).map((t) => t.method);
    const countOf = (methods: string[], method: string) => methods.filter((m) => m === method).length;
    // One device, one rotation: the request is exactly one transaction, its acknowledgement one more.
    let from = (await f.ledger.transactions()).length;
    const one = await agent.rotate('edge-001-data');
    let methods = await added(from);
    expect(methods.filter((m) => m !== 'RecordRotationAcks')).to.deep.equal(['RotateKey']);
    expect(countOf(methods, 'RecordRotationAcks')).to.equal(1);
    const rotateTx = (await f.ledger.transactions()).find((t) => t.transactionId === one.transactionId);
    expect(rotateTx?.method).to.equal('RotateKey');

    // Eight devices rotate at once: eight RotateKey, no ConsumeNonce, and their acknowledgements
    // group-committed into fewer transactions than rotations.
    const fleet = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const deviceId = `edge-1${String(i).padStart(2, '0')}`;
        const { token } = await f.operator('POST', '/v1/enrolment-tokens', {
          deviceId,
          group: 'thermo',
          location: 'hall 3',
          function: 'thermometer',
        });
        const device = newAgent({ keystorePath: join(dir, `${deviceId}.json`), gatewayUrl: f.url, deviceId });
        await device.enrol(token as string);
        await f.operator('POST', `/v1/devices/${deviceId}/keys`, { keyId: `${deviceId}-data` });
        await device.rotate(`${deviceId}-data`); // fetches version 1
        return { device, keyId: `${deviceId}-data` };
      }),
    );
    from = (await f.ledger.transactions()).length;
    const outcomes = await Promise.all(fleet.map(({ device, keyId }) => device.rotate(keyId)));
    expect(outcomes.map((o) => [o.version, o.acknowledged])).to.deep.equal(outcomes.map(() => [2, true]));
    methods = await added(from);
    expect(countOf(methods, 'RotateKey')).to.equal(8);
    expect(countOf(methods, 'ConsumeNonce')).to.equal(0);
    const ackTransactions = countOf(methods, 'RecordRotationAcks');
    expect(ackTransactions).to.be.within(1, 7);
    // Every acknowledgement is on the ledger, under its per-version digest.
    for (const { keyId } of fleet) {
      const digest = rotationAckDigest(keyId, 2);
      expect(await f.ledger.evaluate<{ Subject: string }>('GetNonce', digest)).to.include({ Subject: keyId });
    }
  });

  it('affirms a healthy device', async () => {
    await f.operator('PUT', '/v1/reference-values/thermo', {
      policyId: 'thermo-2026-11',
      measurements: [
        { name: 'firmware', algorithm: 'sha-256', digest: sha256('firmware image 1.0') },
        { name: 'config', algorithm: 'sha-256', digest: sha256('{"interval": 60}') },
      ],
    });
    const outcome = await agent.attest(attestOptions());
    expect(outcome.status).to.equal('affirming');
    const { record } = (await f.operator('GET', '/v1/devices/edge-001')) as { record: DeviceRecord };
    expect(record.Status).to.equal('active');
    expect(record.LastAttestation?.Status).to.equal('affirming');
  });

  it('catches a modified measured file: contraindicated, device suspended on the ledger', async () => {
    writeFileSync(firmware, 'firmware image 1.0 + implant');
    const outcome = await agent.attest(attestOptions());
    expect(outcome.status).to.equal('contraindicated');
    const { record } = (await f.operator('GET', '/v1/devices/edge-001')) as { record: DeviceRecord };
    expect(record.Status).to.equal('suspended');
    // A suspended device's rotations are refused, and nothing is written.
    const before = await f.ledger.height();
    let refused: unknown;
    await agent.rotate('edge-001-data').catch((err: unknown) => (refused = err));
    expect(refused).to.have.property('code');
    expect(await f.ledger.height()).to.equal(before);
  });

  it('reinstates the device once it attests healthy again', async () => {
    writeFileSync(firmware, 'firmware image 1.0');
    expect((await agent.attest(attestOptions())).status).to.equal('affirming');
    const { record } = (await f.operator('GET', '/v1/devices/edge-001')) as { record: DeviceRecord };
    expect(record.Status).to.equal('active');
  });

  it('learns at check-in that its key is due after the failed attestation, and rotates it', async () => {
    const before = ((await f.operator('GET', '/v1/keys/edge-001-data')) as { record: KeyRecord }).record;
    expect(Date.parse(before.NextRotationDue ?? ''), 'the contraindicated result made the key due').to.be.at.most(
      Date.now(),
    );
    let rotated: readonly { version: number }[] = [];
    // Each try is a real check-in; the scheduler reports due keys after its next pass.
    for (let attempt = 0; attempt < 50 && rotated.length === 0; attempt++) {
      ({ rotated } = await agent.checkIn());
      if (rotated.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(rotated.map((r) => r.version)).to.deep.equal([before.LatestVersion + 1]);
    const after = ((await f.operator('GET', '/v1/keys/edge-001-data')) as { record: KeyRecord }).record;
    expect(after.ActiveVersion).to.equal(before.LatestVersion + 1);
  });
});
