import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { DeviceRecord, KeyRecord } from '@keyfleet/protocol';
import { newFleet, runScenario, type FleetSummary } from '@keyfleet/agent/fleet';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture';

/**
 * The fleet simulator end to end: 20 virtual devices running the real agent code against a real
 * gateway on a fresh SoftHSM token, over HTTP. What the summary claims is checked on the ledger.
 */
describe('fleet simulator against a gateway on SoftHSM', function () {
  this.timeout(180_000);
  let f: GatewayFixture;
  let workDir: string;
  let summary: FleetSummary;
  let tamperedId: string;
  const size = 20;

  before(async () => {
    f = await startGatewayFixture();
    workDir = mkdtempSync(join(tmpdir(), 'keyfleet-fleet-test-'));
    const fleet = newFleet({
      gatewayUrl: f.url,
      size,
      tampered: 1,
      concurrency: 8,
      workDir,
      operatorAuthorization: () => f.bearer(f.callers.operator),
    });
    summary = await runScenario(fleet, { rounds: 1 });
    const tampered = fleet.devices().filter((d) => d.tampered);
    expect(tampered).to.have.length(1);
    tamperedId = (tampered[0] ?? expect.fail('no tampered device')).id;
  });
  after(async () => {
    await f.close();
    rmSync(workDir, { recursive: true, force: true });
  });

  const read = async <T>(transaction: string, id: string): Promise<T> => {
    return f.ledger.evaluate<T>(transaction, id);
  };
  const ids = () => Array.from({ length: size }, (_, i) => `sim-${String(i + 1).padStart(5, '0')}`);

  it('reports every device enrolled, one caught, the others affirmed and rotated', () => {
    const phases = JSON.stringify(summary.phases.map((p) => [p.name, p.failures]));
    expect(summary.enrolled, phases).to.equal(size);
    expect(
      summary.phases.filter((p) => p.name !== 'rotate').every((p) => p.failed === 0),
      phases,
    ).to.be.true;
    expect(summary.verdicts).to.deep.equal({ affirming: size - 1, contraindicated: 1 });
    expect(summary.contraindicated).to.deep.equal([tamperedId]);
    expect(summary.keyVersions).to.deep.equal({ v2: size - 1, v1: 1 });
    expect(summary.rotations).to.equal(size - 1);
    const rotate = summary.phases.find((p) => p.name === 'rotate');
    expect(rotate?.ok).to.equal(size - 1);
    // The suspended device asks too, and is refused.
    expect(rotate?.failures).to.deep.equal({ DEVICE_SUSPENDED: 1 });
    for (const phase of summary.phases.filter((p) => p.name !== 'rotate')) {
      expect(phase.failed, phase.name).to.equal(0);
    }
  });

  it('agrees with the ledger: device status and last verdict', async () => {
    for (const id of ids()) {
      const device = await read<DeviceRecord>('GetDevice', id);
      if (id === tamperedId) {
        expect(device.Status, id).to.equal('suspended');
        expect(device.LastAttestation?.Status, id).to.equal('contraindicated');
      } else {
        expect(device.Status, id).to.equal('active');
        expect(device.LastAttestation?.Status, id).to.equal('affirming');
      }
    }
  });

  it('agrees with the ledger: key versions, one rotation per healthy device', async () => {
    for (const id of ids()) {
      const key = await read<KeyRecord>('GetKey', `${id}-data`);
      expect(key.Owner, id).to.deep.equal({ Type: 'device', ID: id });
      const expected = id === tamperedId ? 1 : 2;
      expect(key.ActiveVersion, id).to.equal(expected);
      expect(
        key.Versions.map((v) => v.State),
        id,
      ).to.deep.equal(id === tamperedId ? ['active'] : ['deactivated', 'active']);
    }
    const rotations = (await f.ledger.transactions()).filter((t) => t.method === 'RotateKey');
    expect(rotations).to.have.length(size - 1);
  });
});
