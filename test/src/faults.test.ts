import { resolve } from 'node:path';
import { expect } from 'chai';
import { formatReconcile } from './faults/cli';
import { FaultName, formatRow, runFaultSuite, tableHeader, type FaultRow, type Reconcile } from './faults/harness';

/**
 * The fault suite's short form (`npm run faults` is the long one, on the ha and bft profiles): on
 * an ha network of its own (three Raft orderers, two peers per organisation), each part killed
 * with SIGKILL under load and started again. Nothing acknowledged may be lost or applied twice,
 * and afterwards the devices, the HSM and the ledger (read as Org2's auditor) agree.
 */
describe('faults: SIGKILL under load on the ha profile, nothing acknowledged lost', function () {
  this.timeout(600_000);
  const portBase = Number(process.env.KEYFLEET_TEST_PORT_BASE ?? 17000) + 350;
  let rows: FaultRow[] = [];
  let reconcile: Reconcile;

  before(async () => {
    ({ rows, reconcile } = await runFaultSuite({
      profile: 'ha',
      dir: resolve(__dirname, '..', '..', '.fabric', `faults-test-${String(portBase)}`),
      portBase,
      devices: 6,
      phaseMs: { before: 1500, down: 2000, after: 2500 },
      faults: Object.values(FaultName),
      log: () => undefined,
    }));
    console.log(`${tableHeader}\n${rows.map(formatRow).join('\n')}\n${formatReconcile(reconcile)}`);
  });

  for (const fault of Object.values(FaultName)) {
    it(`${fault}: every acknowledged operation is on the ledger once, and the load recovers`, () => {
      const row = rows.find((r) => r.fault === fault);
      expect(row, fault).to.not.equal(undefined);
      expect(row?.acknowledged, 'operations acknowledged around the fault').to.be.above(0);
      expect(row?.lost, 'lost').to.equal(0);
      expect(row?.duplicated, 'duplicated').to.equal(0);
      expect(row?.recoverySeconds, 'an operation begun after the kill succeeded').to.not.equal(null);
    });
  }

  it('loses no operation to a dead peer of Org1: the gateway moves to the organisation’s other peer', () => {
    const row = rows.find((r) => r.fault === FaultName.PeerOrg1);
    expect(row?.failed, 'failed operations by code').to.deep.equal({});
  });

  it('leaves the devices, the HSM and the ledger in agreement, and no nonce accepted twice', () => {
    expect(reconcile).to.deep.equal({
      devicesOffLedger: [],
      orphanHsmVersions: [],
      missingHsmVersions: [],
      noncesReused: [],
    });
  });
});
