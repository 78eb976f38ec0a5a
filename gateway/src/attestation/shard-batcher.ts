import type { AttestationResult } from '@keyfleet/protocol';
import type { AttestationBatcher, BatchInclusionProof } from './batcher';

/**
 * One batcher per shard (docs/gateway.md, "Shards"): a batch is one transaction on one channel, so
 * results are batched with those of devices on the same shard. `shardOf` is the router's device
 * lookup; `newBatcher` makes the batcher of one shard (its ledger the router, which sends the batch
 * to the shard its devices share).
 */
export function newShardBatcher(
  shardOf: (deviceId: string) => Promise<number | null>,
  newBatcher: () => AttestationBatcher,
): AttestationBatcher {
  const batchers = new Map<number, AttestationBatcher>();
  const batcherOf = (shard: number) => {
    let batcher = batchers.get(shard);
    if (batcher === undefined) {
      batcher = newBatcher();
      batchers.set(shard, batcher);
    }
    return batcher;
  };
  return {
    async add(result: AttestationResult): Promise<BatchInclusionProof> {
      return batcherOf((await shardOf(result.DeviceID)) ?? 0).add(result);
    },
    async flush() {
      await Promise.all([...batchers.values()].map((b) => b.flush()));
    },
    async close() {
      await Promise.all([...batchers.values()].map((b) => b.close()));
    },
    get pending() {
      return [...batchers.values()].reduce((sum, b) => sum + b.pending, 0);
    },
  };
}
