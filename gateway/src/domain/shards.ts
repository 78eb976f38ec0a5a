import { TransactionName, type ShardLoadRecord, type ShardMapRecord } from '@keyfleet/protocol';
import { GatewayError, GatewayErrorCode } from '../errors';
import type { LedgerClient } from '../ledger/ledger-client';
import type { ShardRouter } from '../ledger/shard-router';

/** One shard as `keyfleet shards` shows it. */
export interface ShardLoad {
  readonly shard: number;
  readonly channel: string;
  readonly devices: number;
  readonly keys: number;
  readonly blockHeight: number;
}

export interface ShardOverview {
  /** False on an unsharded network: one shard, `keyfleet`, and no map. */
  readonly sharded: boolean;
  readonly governanceChannel: string | null;
  /** The shard map on the governance channel; null when none is written (or the network is unsharded). */
  readonly map: ShardMapRecord | null;
  readonly shards: readonly ShardLoad[];
}

/** A new shard map, as `PUT /v1/shards/map` takes it. */
export interface ShardMapBody {
  /** The revision it replaces (0: the first map); another means someone wrote in between. */
  readonly expectedRevision: number;
  readonly shards: readonly string[];
  /** In order: the first rule whose every non-null field equals the device's decides. */
  readonly rules: readonly {
    readonly match: {
      readonly group: string | null;
      readonly location: string | null;
      readonly function: string | null;
    };
    readonly shard: string;
  }[];
  readonly default: string;
}

export interface ShardsApi {
  overview(): Promise<ShardOverview>;
  /**
   * Writes the shard map on the governance channel (signed, audited). New enrolments follow it at
   * once on this gateway, within the map TTL on others; devices already enrolled stay where they are.
   * @throws GatewayError BAD_REQUEST/NOT_SHARDED on an unsharded network; LEDGER_REJECTED with the
   *   contract's code (INVALID_ARGUMENT, REVISION_CONFLICT, …) when the map is refused
   */
  setMap(body: ShardMapBody): Promise<{ transactionId: string; record: ShardMapRecord }>;
}

export interface ShardsOptions {
  /** The shard router on a sharded network; undefined on an unsharded one. */
  readonly router: ShardRouter | undefined;
  /** Shard 0's client (the only one when unsharded) and its channel. */
  readonly home: { readonly channel: string; readonly client: LedgerClient };
  /** Each shard's block height, by index. */
  readonly height: (shard: number) => Promise<number>;
}

/** The shard map and each shard's load, for operators (`GET /v1/shards`, `keyfleet shards`). */
export function newShardsApi(options: ShardsOptions): ShardsApi {
  const { router, home } = options;
  const shards = router?.channels.map((channel, index) => ({ channel, client: router.shard(index) })) ?? [home];
  return {
    async overview() {
      const loads = await Promise.all(
        shards.map(async ({ channel, client }, shard): Promise<ShardLoad> => {
          const [load, blockHeight] = await Promise.all([
            client.read<ShardLoadRecord>(TransactionName.GetShardLoad),
            options.height(shard),
          ]);
          return { shard, channel, devices: load.Devices, keys: load.Keys, blockHeight };
        }),
      );
      if (router === undefined) return { sharded: false, governanceChannel: null, map: null, shards: loads };
      // Read afresh: an operator asking wants the map as it is now, not as cached for placement.
      router.refreshMap();
      return {
        sharded: true,
        governanceChannel: router.governanceChannel,
        map: await router.shardMap(),
        shards: loads,
      };
    },

    async setMap(body) {
      if (router === undefined) {
        throw new GatewayError(
          GatewayErrorCode.BadRequest,
          'this network has no governance channel for a shard map (network/network.sh up --shards N)',
          'NOT_SHARDED',
        );
      }
      return router.write<ShardMapRecord>(TransactionName.SetShardMap, {
        ExpectedRevision: body.expectedRevision,
        Shards: body.shards,
        Rules: body.rules.map((r) => ({
          Match: { Group: r.match.group, Location: r.match.location, Function: r.match.function },
          Shard: r.shard,
        })),
        Default: body.default,
      });
    },
  };
}
