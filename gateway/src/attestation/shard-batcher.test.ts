import { expect } from 'chai';
import type { AttestationResult } from '@keyfleet/protocol';
import type { AttestationBatcher, BatchInclusionProof } from './batcher';
import { newShardBatcher } from './shard-batcher';

describe('attestation batches per shard', () => {
  it('batches each result with those of its device’s shard; an unknown device goes to shard 0', async () => {
    const shardOf: Record<string, number> = { a: 1, b: 2, c: 1 };
    const made: string[][] = [];
    const batcher = newShardBatcher(
      (deviceId) => Promise.resolve(shardOf[deviceId] ?? null),
      (): AttestationBatcher => {
        const members: string[] = [];
        made.push(members);
        return {
          add: (result) => {
            members.push(result.DeviceID);
            return Promise.resolve({ BatchID: `batch-${String(made.indexOf(members))}` } as BatchInclusionProof);
          },
          flush: () => Promise.resolve(),
          close: () => Promise.resolve(),
          get pending() {
            return members.length;
          },
        };
      },
    );
    const result = (DeviceID: string) => ({ DeviceID }) as AttestationResult;
    const proofs = [];
    for (const device of ['a', 'b', 'c', 'nobody']) proofs.push((await batcher.add(result(device))).BatchID);
    expect(made).to.deep.equal([['a', 'c'], ['b'], ['nobody']]);
    expect(proofs).to.deep.equal(['batch-0', 'batch-1', 'batch-0', 'batch-2']);
    expect(batcher.pending).to.equal(4);
  });
});
