import { expect } from 'chai';
import { GatewayError } from '../errors';
import type { LedgerClient } from '../ledger/ledger-client';
import { newShardsApi } from './shards';

/** A ledger that answers GetShardLoad and records every write it is asked for. */
function countingLedger(load: { Devices: number; Keys: number }, writes: string[]): LedgerClient {
  return {
    read: <T>(transaction: string) =>
      transaction === 'GetShardLoad' ? Promise.resolve(load as T) : Promise.reject(new Error(transaction)),
    write: (action) => {
      writes.push(action);
      return Promise.reject(new Error('no writes here'));
    },
  };
}

describe('keyfleet shards on an unsharded network', () => {
  const writes: string[] = [];
  const api = newShardsApi({
    router: undefined,
    home: { channel: 'keyfleet', client: countingLedger({ Devices: 2, Keys: 5 }, writes) },
    height: (shard) => Promise.resolve(shard === 0 ? 42 : -1),
  });

  it('shows the one channel with its load, and no map', async () => {
    expect(await api.overview()).to.deep.equal({
      sharded: false,
      governanceChannel: null,
      map: null,
      shards: [{ shard: 0, channel: 'keyfleet', devices: 2, keys: 5, blockHeight: 42 }],
    });
  });

  it('refuses a shard map with NOT_SHARDED and writes nothing', async () => {
    const map = { expectedRevision: 0, shards: ['keyfleet'], rules: [], default: 'keyfleet' };
    const refused = await api.setMap(map).then(
      () => expect.fail('written'),
      (err: unknown) => err,
    );
    expect(refused).to.be.instanceOf(GatewayError).and.to.include({ code: 'BAD_REQUEST', detail: 'NOT_SHARDED' });
    expect(writes).to.deep.equal([]);
  });
});
