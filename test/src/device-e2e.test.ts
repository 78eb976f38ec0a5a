import { createCipheriv, createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { newAgent, type Agent } from '@keyfleet/agent';
import type { DeviceRecord, KeyRecord } from '@keyfleet/chaincode';
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
