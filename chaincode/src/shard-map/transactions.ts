/** The shard map (on the governance channel): which channel holds which devices' records. */
import { Context, Returns, Transaction } from 'fabric-contract-api';

import {
  AnchorKind,
  assertShardMapConsistent,
  canonicalJson,
  ErrorCode,
  EventName,
  resolveShard,
  Role,
  setShardMap,
  type ShardLoadRecord,
  type ShardMapRecord,
  TransactionName,
} from '@keyfleet/protocol';
import { departedRecords } from '../device-move-guard.js';
import { KeyType, Store } from '../store.js';
import { TransactionGroup } from '../transaction/compose.js';
import { AllRoles, argId, notFound, Overseers, reader } from '../transaction/read.js';
import { submit } from '../transaction/write.js';
import { nextShardMap } from './rules.js';

async function loadShardMap(store: Store): Promise<ShardMapRecord> {
  const record = await store.get<ShardMapRecord>(store.key(KeyType.ShardMap));
  if (record === null) notFound(ErrorCode.ShardMapNotFound, 'the shard map');
  return record;
}

export class ShardMapTransactions extends TransactionGroup {
  @Transaction()
  @Returns('string')
  async SetShardMap(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return submit(
      ctx,
      {
        action: TransactionName.SetShardMap,
        roles: [Role.Operator],
        check: setShardMap,
        apply: async (write) => {
          const { request, store } = write;
          const signer = await write.signedBy(AnchorKind.MetadataSigning);
          assertShardMapConsistent(request);
          const key = store.key(KeyType.ShardMap);
          const revision = (await store.get<ShardMapRecord>(key))?.Revision ?? 0;
          const record = nextShardMap(request, revision, write.now.iso, write.by, write.proof(signer.AnchorID));
          return {
            puts: [[key, record]],
            event: {
              name: EventName.ShardMapChanged,
              payload: { Revision: record.Revision, Shards: record.Shards, Default: record.Default },
            },
            result: record,
          };
        },
      },
      requestJson,
      jws,
    );
  }

  @Transaction(false)
  @Returns('string')
  async GetShardMap(ctx: Context): Promise<string> {
    reader(ctx, AllRoles, TransactionName.GetShardMap);
    return canonicalJson(await loadShardMap(new Store(ctx.stub)));
  }

  /** The shard of a device with this metadata (`''`: the device has none of that field). */
  @Transaction(false)
  @Returns('string')
  async ResolveShard(ctx: Context, group: string, location: string, fn: string): Promise<string> {
    reader(ctx, AllRoles, TransactionName.ResolveShard);
    const field = (value: string, name: string) => (value === '' ? null : argId(value, name));
    const subject = {
      Group: field(group, 'group'),
      Location: field(location, 'location'),
      Function: field(fn, 'function'),
    };
    return canonicalJson(resolveShard(await loadShardMap(new Store(ctx.stub)), subject));
  }

  /**
   * How many devices and keys this channel (a shard) holds, for `keyfleet shards`. A scan of the
   * channel's device and key records: its cost grows with the shard, so it is an operator's read.
   */
  @Transaction(false)
  @Returns('string')
  async GetShardLoad(ctx: Context): Promise<string> {
    reader(ctx, Overseers, TransactionName.GetShardLoad);
    const store = new Store(ctx.stub);
    // Records a move left behind (a departed device's history stays here) are not this shard's load.
    const departed = await departedRecords(store);
    const load: ShardLoadRecord = {
      Devices: (await store.count(KeyType.Device)) - departed.devices,
      Keys: (await store.count(KeyType.Key)) - departed.keys,
    };
    return canonicalJson(load);
  }
}
