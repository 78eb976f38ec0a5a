import { expect } from 'chai';
import type { BlockTransaction, StateWrite } from '@keyfleet/gateway';
import { newFleetIndex, type BlockSource } from './fleet-index';

const chaincode = 'keyfleet';

/** A chain held in memory, as qscc would hand it out block by block; it counts the reads. */
function chain() {
  const blocks: BlockTransaction[][] = [[]]; // block 0: the genesis block, no contract transaction
  const reads: number[] = [];
  const source: BlockSource = {
    height: () => Promise.resolve(blocks.length),
    block: (n) => {
      reads.push(n);
      return Promise.resolve(blocks[n] ?? []);
    },
  };
  let txs = 0;
  const commit = (at: string, values: object[], options: { validationCode?: number; namespace?: string } = {}) => {
    txs++;
    const writes: StateWrite[] = values.map((value, i) => ({
      namespace: options.namespace ?? chaincode,
      key: `k-${String(txs)}-${String(i)}`,
      isDelete: false,
      value: JSON.stringify(value),
    }));
    blocks.push([
      {
        blockNumber: blocks.length,
        transactionId: String(txs).padStart(64, '0'),
        timestamp: at,
        chaincode: options.namespace ?? chaincode,
        method: 'Any',
        args: [],
        creator: { mspId: 'Org1MSP', certificatePem: '' },
        validationCode: options.validationCode ?? 0,
        writes,
      },
    ]);
  };
  return { source, commit, reads };
}

const device = (id: string, group: string, status: string) => ({
  DocType: 'device',
  DeviceID: id,
  Group: group,
  Status: status,
});
const key = (id: string, latest: number) => ({ DocType: 'key', KeyID: id, LatestVersion: latest });
const result = (status: string) => ({ DocType: 'attestation', Status: status });
const request = { RequestID: 'r', Action: 'Any' }; // the request log entry every write makes: no DocType

describe('console fleet index: the charts’ figures from the blocks’ write sets', () => {
  it('counts devices by group and status as their latest record says', async () => {
    const c = chain();
    c.commit('2026-12-03T10:05:00.000Z', [device('d-1', 'lab', 'active'), request]);
    c.commit('2026-12-03T10:06:00.000Z', [device('d-2', 'lab', 'active')]);
    c.commit('2026-12-03T10:07:00.000Z', [device('d-3', 'roof', 'active')]);
    c.commit('2026-12-03T11:00:00.000Z', [device('d-2', 'lab', 'suspended')]);
    const stats = await newFleetIndex(c.source, chaincode).stats();
    expect(stats.Devices).to.deep.equal({ lab: { active: 1, suspended: 1 }, roof: { active: 1 } });
    expect(stats.Height).to.equal(5);
  });

  it('counts a rotation each time a key’s LatestVersion rises, in the hour of its transaction', async () => {
    const c = chain();
    c.commit('2026-12-03T10:05:00.000Z', [key('k-1', 1)]); // registered: not a rotation
    c.commit('2026-12-03T10:10:00.000Z', [key('k-1', 2)]);
    c.commit('2026-12-03T10:50:00.000Z', [key('k-1', 2)]); // the acknowledgement: same version
    c.commit('2026-12-03T12:01:00.000Z', [key('k-1', 3), key('k-2', 1)]);
    const stats = await newFleetIndex(c.source, chaincode).stats();
    expect(stats.Rotations).to.deep.equal([
      { Hour: '2026-12-03T10:00Z', Count: 1 },
      { Hour: '2026-12-03T12:00Z', Count: 1 },
    ]);
  });

  it('counts verdicts by status, and a batch’s members as batched or contraindicated', async () => {
    const c = chain();
    c.commit('2026-12-03T10:05:00.000Z', [result('affirming')]);
    c.commit('2026-12-03T10:06:00.000Z', [result('contraindicated'), device('d-1', 'lab', 'suspended')]);
    c.commit('2026-12-03T10:07:00.000Z', [
      { DocType: 'attestation-batch', Count: 10, Contraindicated: ['d-4', 'd-5'] },
    ]);
    c.commit('2026-12-03T11:07:00.000Z', [result('warning')]);
    const stats = await newFleetIndex(c.source, chaincode).stats();
    expect(stats.Verdicts).to.deep.equal([
      { Hour: '2026-12-03T10:00Z', affirming: 1, warning: 0, contraindicated: 3, batched: 8 },
      { Hour: '2026-12-03T11:00Z', affirming: 0, warning: 1, contraindicated: 0, batched: 0 },
    ]);
  });

  it('ignores transactions the peers invalidated, other namespaces, deletes and values that are not JSON', async () => {
    const c = chain();
    c.commit('2026-12-03T10:05:00.000Z', [device('d-1', 'lab', 'active')]);
    c.commit('2026-12-03T10:06:00.000Z', [device('d-1', 'lab', 'revoked')], { validationCode: 11 });
    c.commit('2026-12-03T10:07:00.000Z', [device('d-9', 'other', 'active')], { namespace: 'another-contract' });
    c.commit('2026-12-03T10:08:00.000Z', []);
    const last = c.source;
    const stats = await newFleetIndex(
      {
        height: () => last.height(),
        block: async (n) =>
          (await last.block(n)).map((tx) =>
            n === 4
              ? {
                  ...tx,
                  writes: [
                    { namespace: chaincode, key: 'x', isDelete: false, value: 'not json' },
                    {
                      namespace: chaincode,
                      key: 'y',
                      isDelete: true,
                      value: JSON.stringify(device('d-1', 'lab', 'revoked')),
                    },
                  ],
                }
              : tx,
          ),
      },
      chaincode,
    ).stats();
    expect(stats.Devices).to.deep.equal({ lab: { active: 1 } });
  });

  it('reads each block once: a later call reads only what was committed since', async () => {
    const c = chain();
    const index = newFleetIndex(c.source, chaincode);
    c.commit('2026-12-03T10:05:00.000Z', [device('d-1', 'lab', 'active')]);
    await index.stats();
    c.commit('2026-12-03T10:06:00.000Z', [device('d-2', 'lab', 'active')]);
    const [a, b] = await Promise.all([index.stats(), index.stats()]);
    expect(a.Devices).to.deep.equal({ lab: { active: 2 } });
    expect(b).to.deep.equal(a);
    expect(c.reads).to.deep.equal([0, 1, 2]);
  });
});
