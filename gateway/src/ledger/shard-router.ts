/**
 * The shard router (issue 15 item 1; docs/gateway.md, "Shards"): a {@link LedgerClient} over one
 * client per shard channel and one for the governance channel, which sends each call to the channel
 * that holds its record. Services keep speaking the typed port (port.ts) over a single client and
 * never learn that there are shards; on an unsharded network the gateway uses the plain client.
 *
 * Where things live:
 * - a device's record, its keys, its nonces and attestation results: its shard, placed at enrolment
 *   by the shard map ({@link ShardRouter.place}) and found later through the {@link ShardDirectory};
 * - application keys, reference values, the HSM cluster's records: shard 0 (`keyfleet`, the channel
 *   of an unsharded network), so that they stay where a client of one channel looks for them;
 * - trust anchors: on every channel (each channel's contract checks every write's JWS against its
 *   own anchors), read from shard 0;
 * - the shard map: the governance channel.
 *
 * Lists (`ListDevicesByGroup`, `ListKeysDueForRotation`) page through the shards in order, with a
 * bookmark `<shard>:<the shard's bookmark>`, so the scheduler finds due keys on every shard.
 *
 * **Changing a device's shard** (re-sharding): the router decides nothing per device itself; it asks
 * `router.directory` (shard-directory.ts). After a move commits, call
 * `router.directory.assignDevice(deviceId, newShardIndex)`; `router.shardIndex(channel)` turns a
 * channel name into that index, and `router.shard(index)` is the client to write the move's records
 * with on either side.
 */
import {
  ErrorCode,
  type HistoryEntry,
  type AttestationBatchRecord,
  HsmClusterAction,
  type KeyRecord,
  type Page,
  resolveShard,
  type ShardDecision,
  type ShardMapRecord,
  type ShardSubject,
  TransactionName,
} from '@keyfleet/protocol';
import { GatewayError, GatewayErrorCode } from '../errors';
import type { LedgerAction, LedgerClient, Written } from './ledger-client';
import { ledgerRefusalCode } from './port';
import { newShardDirectory, type ShardDirectory, type ShardDirectoryOptions, type ShardHit } from './shard-directory';

export interface ShardChannel {
  readonly channel: string;
  readonly client: LedgerClient;
}

export interface ShardRouterOptions {
  /** One client per shard channel, in the network's order: index 0 is `keyfleet`. */
  readonly shards: readonly ShardChannel[];
  readonly governance: ShardChannel;
  /**
   * How long a shard map read stays in use, in milliseconds (default 5 s). A TTL rather than the
   * governance channel's events: the map matters only to place a new device, an enrolment costs a
   * commit (seconds) anyway, and a TTL needs no second event stream and checkpoint per gateway. A
   * map change reaches every gateway within the TTL; a `SetShardMap` through this router at once.
   */
  readonly mapTtlMs?: number;
  readonly now?: () => number;
  readonly chooseShard?: ShardDirectoryOptions['chooseShard'];
  readonly cacheCapacity?: number;
}

/** Where a new device goes, by the map (rule and revision), or shard 0 when no map is written yet. */
export interface Placement {
  readonly shard: number;
  readonly channel: string;
  readonly decision: ShardDecision | null;
}

export interface ShardRouter extends LedgerClient {
  /** The shard channels, index = shard number (the device record's `Shard`). */
  readonly channels: readonly string[];
  readonly governanceChannel: string;
  /** The one place where device → shard is remembered and looked up. */
  readonly directory: ShardDirectory;
  /** The client of one shard, for work done per shard (counts, moves). */
  shard(index: number): LedgerClient;
  /** The index of a shard channel; throws SHARD_UNKNOWN for a channel the network lacks. */
  shardIndex(channel: string): number;
  /** The client of the governance channel. */
  readonly governance: LedgerClient;
  /** The shard map (cached for the TTL); null while none is written. */
  shardMap(): Promise<ShardMapRecord | null>;
  /** Drops the cached map: the next placement reads it again. */
  refreshMap(): void;
  /** The shard a device with this metadata is placed on now. */
  place(subject: ShardSubject): Promise<Placement>;
}

const T = TransactionName;

export function newShardRouter(options: ShardRouterOptions): ShardRouter {
  const { shards, governance } = options;
  if (shards.length === 0) throw new RangeError('a shard router needs at least one shard');
  const channels = shards.map((s) => s.channel);
  const now = options.now ?? Date.now;
  const mapTtlMs = options.mapTtlMs ?? 5_000;
  const home = shardAt(shards, 0);

  /** Asks every shard for a record; a "not found" (or any refusal: a bad id) is a miss there. */
  const everyShard = async <R>(transaction: LedgerAction, ...args: string[]): Promise<ShardHit<R>[]> => {
    const answers = await Promise.all(
      shards.map(async ({ client }, shard): Promise<ShardHit<R> | null> => {
        try {
          const record: R = await client.read<R>(transaction, ...args);
          return { shard, record };
        } catch (err) {
          if (ledgerRefusalCode(err) !== undefined) return null;
          throw err;
        }
      }),
    );
    return answers.filter((a): a is ShardHit<R> => a !== null);
  };

  const directory = newShardDirectory({
    probe: {
      device: (id) => everyShard(T.GetDevice, id),
      key: (id) => everyShard<KeyRecord>(T.GetKey, id),
      batch: (id) => everyShard<AttestationBatchRecord>(T.GetAttestationBatch, id),
    },
    ...(options.chooseShard === undefined ? {} : { chooseShard: options.chooseShard }),
    ...(options.cacheCapacity === undefined ? {} : { capacity: options.cacheCapacity }),
  });

  let cachedMap: { readonly at: number; readonly map: Promise<ShardMapRecord | null> } | undefined;
  const shardMap = (): Promise<ShardMapRecord | null> => {
    if (cachedMap === undefined || now() - cachedMap.at >= mapTtlMs) {
      const map = governance.client.read<ShardMapRecord>(T.GetShardMap).catch((err: unknown) => {
        if (ledgerRefusalCode(err) === ErrorCode.ShardMapNotFound) return null;
        cachedMap = undefined; // a failed read is not kept
        throw err;
      });
      cachedMap = { at: now(), map };
    }
    return cachedMap.map;
  };

  const shardIndex = (channel: string): number => {
    const index = channels.indexOf(channel);
    if (index === -1) {
      throw new GatewayError(
        GatewayErrorCode.LedgerUnavailable,
        `the shard map names ${channel}, which is not a shard channel of this network (${channels.join(', ')})`,
        'SHARD_UNKNOWN',
      );
    }
    return index;
  };

  const place = async (subject: ShardSubject): Promise<Placement> => {
    const map = await shardMap();
    if (map === null) return { shard: 0, channel: home.channel, decision: null };
    const decision = resolveShard(map, subject);
    return { shard: shardIndex(decision.Shard), channel: decision.Shard, decision };
  };

  const client = (index: number | null): LedgerClient => shardAt(shards, index ?? 0).client;
  const byDevice = async (deviceId: unknown) =>
    client(typeof deviceId === 'string' ? await directory.deviceShard(deviceId) : 0);
  const byKey = async (keyId: unknown) => client(typeof keyId === 'string' ? await directory.keyShard(keyId) : 0);
  const byBatch = async (batchId: unknown) =>
    client(typeof batchId === 'string' ? await directory.batchShard(batchId) : 0);

  /** A read on every shard at once: the first shard's answer that is not "not found". */
  const firstFound = async <R>(transaction: LedgerAction, args: string[]): Promise<R> => {
    const hits = await everyShard<R>(transaction, ...args);
    const [hit] = hits;
    // None found: shard 0 answers, with the contract's own refusal (NOT_FOUND or a bad argument).
    return hit === undefined ? home.client.read<R>(transaction, ...args) : hit.record;
  };

  /**
   * A device's or key's history over every shard it lived on, newest first as each shard answers
   * (Fabric's order): a move leaves the source's history readable there (the device tombstoned) and
   * the destination's begins with the move's commit, so an auditor follows a device across shards.
   * The shards' lists are merged by timestamp, each keeping its own order. Found nowhere: the first
   * refusal that is not "not found" (ACCESS_DENIED …), else shard 0's.
   */
  const histories = async <R>(transaction: LedgerAction, args: string[]): Promise<R> => {
    const notFound = new Set<string>([ErrorCode.DeviceNotFound, ErrorCode.KeyNotFound]);
    const answers = await Promise.all(
      shards.map(({ client }) =>
        client.read<HistoryEntry<unknown>[]>(transaction, ...args).then(
          (entries) => ({ entries }),
          (err: unknown) => {
            const code = ledgerRefusalCode(err);
            if (code === undefined) throw err;
            return { refusal: notFound.has(code) ? undefined : err };
          },
        ),
      ),
    );
    const lists = answers.flatMap((a) => ('entries' in a ? [[...a.entries]] : []));
    if (lists.length === 0) {
      const refused = answers.find((a) => 'refusal' in a && a.refusal !== undefined);
      if (refused !== undefined && 'refusal' in refused) throw refused.refusal;
      return home.client.read<R>(transaction, ...args);
    }
    const merged: HistoryEntry<unknown>[] = [];
    for (;;) {
      let newest: HistoryEntry<unknown>[] | undefined;
      for (const list of lists) {
        const head = list[0];
        if (head !== undefined && (newest?.[0] === undefined || head.Timestamp > newest[0].Timestamp)) newest = list;
      }
      const next = newest?.shift();
      if (next === undefined) return merged as R;
      merged.push(next);
    }
  };

  /** A page of a list over every shard, in shard order: `<shard>:<that shard's bookmark>`. */
  const pages = async <R>(transaction: LedgerAction, args: string[]): Promise<Page<R>> => {
    const [first = '', size = '', mark = ''] = args;
    const start = parseBookmark(mark, shards.length);
    if (start === null) {
      throw new GatewayError(
        GatewayErrorCode.LedgerRejected,
        'bookmark is not one this query handed out',
        ErrorCode.InvalidArgument,
      );
    }
    const wanted = Number(size);
    // A size the contract would refuse: shard 0 refuses it with the contract's own code.
    if (!Number.isInteger(wanted) || wanted < 1) return home.client.read<Page<R>>(transaction, ...args);
    const records: R[] = [];
    let fetched = 0;
    for (let shard = start.shard, bookmark = start.bookmark; shard < shards.length; shard++, bookmark = '') {
      const page = await client(shard).read<Page<R>>(transaction, first, String(wanted - records.length), bookmark);
      records.push(...page.Records);
      fetched += page.FetchedCount;
      if (page.Bookmark !== '') {
        return { Records: records, FetchedCount: fetched, Bookmark: `${String(shard)}:${page.Bookmark}` };
      }
      if (records.length >= wanted) {
        const next = shard + 1 < shards.length ? `${String(shard + 1)}:` : '';
        return { Records: records, FetchedCount: fetched, Bookmark: next };
      }
    }
    return { Records: records, FetchedCount: fetched, Bookmark: '' };
  };

  const read = async <R>(transaction: LedgerAction, ...args: string[]): Promise<R> => {
    const [first] = args;
    switch (transaction) {
      case T.GetDeviceHistory:
      case T.GetKeyHistory:
        return histories<R>(transaction, args);
      case T.GetDevice:
      case T.GetAttestation:
      case T.ListAttestations:
        return (await byDevice(first)).read<R>(transaction, ...args);
      case T.GetKey:
      case T.AuthorizeKeyUse:
        return (await byKey(first)).read<R>(transaction, ...args);
      case T.GetAttestationBatch:
      case T.VerifyAttestationInclusion:
        return (await byBatch(first)).read<R>(transaction, ...args);
      case T.GetNonce:
        return firstFound<R>(transaction, args);
      case T.ListDevicesByGroup:
      case T.ListKeysDueForRotation:
        return (await pages<unknown>(transaction, args)) as R;
      case T.GetShardMap:
      case T.ResolveShard:
        return governance.client.read<R>(transaction, ...args);
      default:
        // Trust anchors, reference values, the HSM cluster's records: shard 0.
        return home.client.read<R>(transaction, ...args);
    }
  };

  const write = async <R>(action: LedgerAction, fields: Readonly<Record<string, unknown>>): Promise<Written<R>> => {
    switch (action) {
      case T.EnrolDevice: {
        const placed = await place(subjectOf(fields));
        const written = await client(placed.shard).write<R>(action, { ...fields, Shard: placed.shard });
        if (typeof fields.DeviceID === 'string') directory.assignDevice(fields.DeviceID, placed.shard);
        return written;
      }
      case T.SuspendDevice:
      case T.ReinstateDevice:
      case T.RevokeDevice:
      case T.RecordAttestation:
        return (await byDevice(fields.DeviceID)).write<R>(action, fields);
      case T.RegisterKey: {
        const owner = fields.Owner as { Type?: unknown; ID?: unknown } | undefined;
        const device = owner?.Type === 'device' && typeof owner.ID === 'string' ? owner.ID : undefined;
        const written = await (device === undefined ? home.client : await byDevice(device)).write<R>(action, fields);
        if (typeof fields.KeyID === 'string')
          directory.noteKey(fields.KeyID, device === undefined ? 'home' : { device });
        return written;
      }
      case T.ActivateKey:
      case T.RotateKey:
      case T.DeactivateKey:
      case T.MarkKeyCompromised:
      case T.DestroyKeyVersion:
      case T.SetAccessPolicy:
      case T.SetRotationPolicy:
        return (await byKey(fields.KeyID)).write<R>(action, fields);
      case T.ConsumeNonce:
        // A rotation nonce names its key, an attestation nonce its device: both live on the device's shard.
        return (await (fields.Purpose === 'attestation' ? byDevice : byKey)(fields.Subject)).write<R>(action, fields);
      case T.RecordRotationAcks:
        return (await recordAcks(fields)) as Written<R>;
      case T.RecordAttestationBatch: {
        const shard = await batchShardOf(fields);
        const written = await client(shard).write<R>(action, fields);
        if (typeof fields.BatchID === 'string') directory.noteBatch(fields.BatchID, shard);
        return written;
      }
      case T.RegisterTrustAnchor:
      case T.ReplaceTrustAnchor:
      case T.RetireTrustAnchor: {
        // Every channel checks writes against its own anchors: the same anchors everywhere.
        const written = await home.client.write<R>(action, fields);
        for (const other of [...shards.slice(1), governance]) await other.client.write(action, fields);
        return written;
      }
      case T.SetShardMap: {
        const written = await governance.client.write<R>(action, fields);
        cachedMap = undefined;
        return written;
      }
      case HsmClusterAction.RecordHsmReplication:
      case HsmClusterAction.RecordHsmFailover:
      default:
        return home.client.write<R>(action, fields);
    }
  };

  /** Acknowledgements of keys on several shards: one write per shard, the outcomes in the request's order. */
  const recordAcks = async (fields: Readonly<Record<string, unknown>>): Promise<Written<{ Acks: unknown[] }>> => {
    const acks = Array.isArray(fields.Acks) ? (fields.Acks as { KeyID?: unknown; NonceDigest?: unknown }[]) : [];
    const byShard = new Map<number, typeof acks>();
    for (const ack of acks) {
      const shard = typeof ack.KeyID === 'string' ? ((await directory.keyShard(ack.KeyID)) ?? 0) : 0;
      byShard.set(shard, [...(byShard.get(shard) ?? []), ack]);
    }
    if (byShard.size <= 1) {
      const [shard = 0] = byShard.keys();
      return client(shard).write(T.RecordRotationAcks, fields);
    }
    const written = await Promise.all(
      [...byShard].map(([shard, part]) =>
        client(shard).write<{ Acks: { NonceDigest: string }[] }>(T.RecordRotationAcks, { ...fields, Acks: part }),
      ),
    );
    const outcomes = new Map(written.flatMap((w) => w.record.Acks.map((o) => [o.NonceDigest, o] as const)));
    return {
      transactionId: written[0]?.transactionId ?? '',
      record: { Acks: acks.map((ack) => outcomes.get(ack.NonceDigest as string)) },
    };
  };

  /** A batch is one transaction: its members' devices must share a shard (the verifier batches per shard). */
  const batchShardOf = async (fields: Readonly<Record<string, unknown>>): Promise<number> => {
    const nonces = Array.isArray(fields.Nonces) ? (fields.Nonces as { DeviceID?: unknown }[]) : [];
    const found = new Set<number>();
    for (const { DeviceID } of nonces) {
      found.add(typeof DeviceID === 'string' ? ((await directory.deviceShard(DeviceID)) ?? 0) : 0);
    }
    if (found.size > 1) {
      throw new GatewayError(
        GatewayErrorCode.LedgerRejected,
        `attestation batch ${String(fields.BatchID)} has devices on shards ${[...found].join(', ')}`,
        'SHARDS_MIXED',
      );
    }
    return [...found][0] ?? 0;
  };

  return {
    channels,
    governanceChannel: governance.channel,
    directory,
    governance: governance.client,
    shard: (index) => shardAt(shards, index).client,
    shardIndex,
    shardMap,
    refreshMap() {
      cachedMap = undefined;
    },
    place,
    read,
    write,
  };
}

/** The device metadata a rule reads, from an enrolment request: an empty field is no value. */
export function subjectOf(fields: Readonly<Record<string, unknown>>): ShardSubject {
  const value = (v: unknown) => (typeof v === 'string' && v !== '' ? v : null);
  return { Group: value(fields.Group), Location: value(fields.Location), Function: value(fields.Function) };
}

/** `<shard>:<inner>` → where to start; '' → the first shard; null when it is not one we handed out. */
export function parseBookmark(mark: string, shards: number): { shard: number; bookmark: string } | null {
  if (mark === '') return { shard: 0, bookmark: '' };
  const found = /^(0|[1-9][0-9]{0,2}):/.exec(mark);
  const shard = Number(found?.[1]);
  if (found === null || shard >= shards) return null;
  return { shard, bookmark: mark.slice(found[0].length) };
}

function shardAt(shards: readonly ShardChannel[], index: number): ShardChannel {
  const found = shards[index];
  if (found === undefined) throw new RangeError(`no shard ${String(index)} (the network has ${String(shards.length)})`);
  return found;
}
