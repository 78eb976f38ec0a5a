/**
 * Where a device's records live, once the network has shards (docs/gateway.md, "Shards"): the one
 * place in the gateway that remembers and looks up device → shard. A device's record, its keys, its
 * nonces and its attestation results are all on its shard, so a key is found through its owner
 * device and only application keys (shard 0) stand apart.
 *
 * The scheme: a bounded cache, filled when the router places a device at enrolment and by lookups;
 * a miss asks every shard at once (`GetDevice`, `GetKey` or `GetAttestationBatch`) and remembers the
 * one that has the record. Concurrent misses for one id share a single lookup. Nothing negative is
 * cached: an id no shard knows is asked again next time (it may be enrolled meanwhile).
 *
 * **Changing a device's shard** (re-sharding, issue 15 item 2): call {@link ShardDirectory.assignDevice}
 * with the new shard once the move is committed, on every gateway (e.g. from the move's event); its
 * keys follow, since they are found through their owner. {@link ShardDirectory.forgetDevice} makes the
 * next request ask the shards again. A lookup that finds a device on several shards (a move half
 * done) asks {@link ShardDirectoryOptions.chooseShard}; without one it is an error.
 */
import { GatewayError, GatewayErrorCode } from '../errors';

/** A record a shard answered, with the shard's index. */
export interface ShardHit<R> {
  readonly shard: number;
  readonly record: R;
}

/** Who a key belongs to, as far as its shard goes: a device's keys live with it, the rest on shard 0. */
export type KeyHome = { readonly device: string } | 'home';

export interface ShardDirectoryOptions {
  /**
   * Asks every shard for a record: one hit per shard that has it (none when no shard has it). A
   * shard that cannot be reached makes it throw, so that nothing is cached from half an answer.
   */
  readonly probe: {
    device(deviceId: string): Promise<readonly ShardHit<unknown>[]>;
    key(
      keyId: string,
    ): Promise<readonly ShardHit<{ readonly Owner: { readonly Type: string; readonly ID: string } }>[]>;
    batch(batchId: string): Promise<readonly ShardHit<unknown>[]>;
  };
  /** Which of several shards holding one device is its shard now; default: an error. */
  readonly chooseShard?: (deviceId: string, hits: readonly ShardHit<unknown>[]) => number;
  /** Entries kept per cache (devices, keys, batches), oldest dropped first; default 100 000. */
  readonly capacity?: number;
}

export interface ShardDirectory {
  /** The shard of a device, or null when no shard has it. */
  deviceShard(deviceId: string): Promise<number | null>;
  /** The device lives on `shard` from now on: at enrolment, and after a re-sharding move commits. */
  assignDevice(deviceId: string, shard: number): void;
  /** Forgets where a device is: the next request asks the shards again. */
  forgetDevice(deviceId: string): void;
  /** The shard of a key (its owner device's, or 0 for an application key), or null when unknown. */
  keyShard(keyId: string): Promise<number | null>;
  /** A key was registered for `home`. */
  noteKey(keyId: string, home: KeyHome): void;
  /** The shard of an attestation batch record, or null when unknown. */
  batchShard(batchId: string): Promise<number | null>;
  noteBatch(batchId: string, shard: number): void;
}

export function newShardDirectory(options: ShardDirectoryOptions): ShardDirectory {
  const capacity = options.capacity ?? 100_000;
  const devices = boundedMap<string, number>(capacity);
  const keys = boundedMap<string, KeyHome>(capacity);
  const batches = boundedMap<string, number>(capacity);
  const inFlight = new Map<string, Promise<number | null>>();

  /** One lookup per id at a time: a burst of requests for a device costs one round of the shards. */
  const once = (what: string, id: string, lookup: () => Promise<number | null>): Promise<number | null> => {
    const name = `${what}\u0000${id}`;
    const running = inFlight.get(name);
    if (running !== undefined) return running;
    const started = lookup().finally(() => inFlight.delete(name));
    inFlight.set(name, started);
    return started;
  };

  const single = (what: string, id: string, hits: readonly ShardHit<unknown>[]): number | null => {
    const [first, ...others] = hits;
    if (first === undefined) return null;
    if (others.length === 0) return first.shard;
    if (what === 'device' && options.chooseShard !== undefined) return options.chooseShard(id, hits);
    throw new GatewayError(
      GatewayErrorCode.LedgerUnavailable,
      `${what} ${id} is on shards ${hits.map((h) => String(h.shard)).join(', ')}: no single shard holds it`,
      'SHARD_AMBIGUOUS',
    );
  };

  const directory: ShardDirectory = {
    async deviceShard(deviceId) {
      const known = devices.get(deviceId);
      if (known !== undefined) return known;
      return once('device', deviceId, async () => {
        const shard = single('device', deviceId, await options.probe.device(deviceId));
        if (shard !== null) devices.set(deviceId, shard);
        return shard;
      });
    },
    assignDevice(deviceId, shard) {
      devices.set(deviceId, shard);
    },
    forgetDevice(deviceId) {
      devices.delete(deviceId);
    },

    async keyShard(keyId) {
      const home = keys.get(keyId);
      if (home === 'home') return 0;
      if (home !== undefined) return directory.deviceShard(home.device);
      return once('key', keyId, async () => {
        const hits = await options.probe.key(keyId);
        const shard = single('key', keyId, hits);
        const owner = hits[0]?.record.Owner;
        if (shard === null || owner === undefined) return null;
        if (owner.Type === 'device') {
          keys.set(keyId, { device: owner.ID });
          // The key was found where its device is: that answers the device's shard too.
          if (devices.get(owner.ID) === undefined) devices.set(owner.ID, shard);
        } else if (shard === 0) {
          keys.set(keyId, 'home');
        }
        return shard;
      });
    },
    noteKey(keyId, home) {
      keys.set(keyId, home);
    },

    async batchShard(batchId) {
      const known = batches.get(batchId);
      if (known !== undefined) return known;
      return once('batch', batchId, async () => {
        const shard = single('batch', batchId, await options.probe.batch(batchId));
        if (shard !== null) batches.set(batchId, shard);
        return shard;
      });
    },
    noteBatch(batchId, shard) {
      batches.set(batchId, shard);
    },
  };
  return directory;
}

/** A Map that drops its oldest entry past `capacity` (insertion order; a re-set refreshes). */
function boundedMap<K, V>(capacity: number): Pick<Map<K, V>, 'get' | 'delete'> & { set(key: K, value: V): void } {
  const map = new Map<K, V>();
  return {
    get: (key) => map.get(key),
    delete: (key) => map.delete(key),
    set(key, value) {
      map.delete(key);
      map.set(key, value);
      if (map.size > capacity) {
        const oldest = map.keys().next();
        if (oldest.done !== true) map.delete(oldest.value);
      }
    },
  };
}
