/**
 * The re-sharding coordinator (docs/operations.md, "Moving a group between shards"): for a change
 * of the shard map, finds the devices whose shard changes and moves each batch of them with the
 * shard-move contract's two-phase protocol (protocol shard-move.ts):
 *
 *   prepare (source) → accept (destination) → commit (source) → commit (destination)
 *
 * Every step is idempotent under its move id, so a step whose answer was lost is simply sent again,
 * and a restarted gateway finishes what it finds in flight on the ledger ({@link ShardMover.resume}):
 * a move the destination accepted is committed, one it did not is carried forward from a repeated
 * prepare (which answers the frozen state again), one aborted on either end is aborted on both.
 * Nothing is kept in the gateway: the ledger is the coordinator's log.
 *
 * The mover needs little of the shard router (ledger/shard-router.ts): {@link MoverShards} is that.
 */
import { randomUUID } from 'node:crypto';
import {
  ErrorCode,
  planShardMoves,
  ShardMoveAction,
  ShardMoveEnd,
  ShardMovePhase,
  TransactionName,
  withGroupRule,
  type Page,
  type PlannedMove,
  type PreparedDevice,
  type ShardDeviceEntry,
  type ShardMapRecord,
  type ShardMoveOutcome,
  type ShardMoveRecord,
} from '@keyfleet/protocol';
import { GatewayError, GatewayErrorCode } from '../errors';
import type { LedgerClient } from '../ledger/ledger-client';
import { ledgerRefusalCode } from '../ledger/port';
import type { MoveGate } from './move-gate';

/** What the mover asks of the shard router: the shards' clients, the map, and device → shard. */
export interface MoverShards {
  readonly channels: readonly string[];
  shard(index: number): LedgerClient;
  shardIndex(channel: string): number;
  readonly governance: LedgerClient;
  shardMap(): Promise<ShardMapRecord | null>;
  refreshMap(): void;
  readonly directory: { assignDevice(deviceId: string, shard: number): void };
}

export interface ShardMoverOptions {
  readonly shards: MoverShards;
  /** Devices per move transaction (default 50: an accept carries their whole key records). */
  readonly batchSize?: number;
  readonly newMoveId?: () => string;
  /** Attempts of one step when the ledger cannot be reached (default 5), and the pause between. */
  readonly attempts?: number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
  /** Holds this gateway's requests for the devices of the batch being moved (move-gate.ts). */
  readonly gate?: MoveGate;
}

/** A batch that could not move, and why (the ledger's code). Its devices stay where they were. */
export interface FailedMove {
  readonly moveId: string;
  readonly source: string;
  readonly destination: string;
  readonly devices: readonly string[];
  readonly code: string;
  readonly message: string;
}

export interface MoveReport {
  readonly mapRevision: number;
  /** Devices committed on their new shard. */
  readonly moved: number;
  readonly batches: number;
  readonly failed: readonly FailedMove[];
  readonly seconds: number;
}

export interface ResumeReport {
  /** Devices whose move was carried to its commit on both ends. */
  readonly committed: number;
  /** Devices whose move was aborted (a refusal on the way, or an abort on one end). */
  readonly aborted: number;
}

export interface ShardMover {
  /** Sends a group to a shard channel: a new map revision, then every device of the group moved. */
  moveGroup(group: string, channel: string): Promise<MoveReport>;
  /** Moves every device the current map places on another shard than the one holding it. */
  rebalance(): Promise<MoveReport>;
  /** Finishes (or aborts) the moves the ledger shows in flight, e.g. after a crash. */
  resume(): Promise<ResumeReport>;
}

const PageSize = 200;
/** Passes of plan-and-move per map change: enrolments placed by the old map while the first ran. */
const Passes = 3;

export function newShardMover(options: ShardMoverOptions): ShardMover {
  const { shards } = options;
  const batchSize = options.batchSize ?? 50;
  const newMoveId = options.newMoveId ?? (() => `mv-${randomUUID()}`);
  const attempts = options.attempts ?? 5;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((done) => setTimeout(done, ms)));
  const now = options.now ?? Date.now;
  const clientOf = (channel: string) => shards.shard(shards.shardIndex(channel));

  /** A step again when the ledger could not be reached: the step is idempotent under its move id. */
  const step = async <T>(name: string, run: () => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await run();
      } catch (err) {
        const unreachable = err instanceof GatewayError && err.code === GatewayErrorCode.LedgerUnavailable;
        if (!unreachable && !readConflict(err)) throw err;
        if (attempt >= attempts) {
          // Which step, for the operator reading the job: the ledger's error says only what failed.
          throw new GatewayError(err.code, `${name}: ${err.message}`, err.detail, { cause: err.cause });
        }
        // A conflict: the load wrote a record the prepare read; a short, jittered pause and again.
        await sleep(readConflict(err) ? 100 + Math.floor(Math.random() * 300) : 250 * 2 ** (attempt - 1));
      }
    }
  };

  const pages = async <T>(client: LedgerClient, action: ShardMoveAction): Promise<T[]> => {
    const out: T[] = [];
    let bookmark = '';
    do {
      const page = await client.read<Page<T>>(action, String(PageSize), bookmark);
      out.push(...page.Records);
      bookmark = page.Bookmark;
    } while (bookmark !== '');
    return out;
  };

  const moveOn = async (client: LedgerClient, deviceId: string, moveId: string): Promise<ShardMoveRecord | null> => {
    try {
      return await client.read<ShardMoveRecord>(ShardMoveAction.GetShardMove, deviceId, moveId);
    } catch (err) {
      if (ledgerRefusalCode(err) === ErrorCode.ShardMoveNotFound) return null;
      throw err;
    }
  };

  const commitSource = async (moveId: string, source: string, accepted: readonly ShardMoveRecord[]) =>
    step('commit on the source', () =>
      clientOf(source).write<ShardMoveOutcome>(ShardMoveAction.CommitShardMove, {
        MoveID: moveId,
        Devices: accepted.map((m) => ({
          DeviceID: m.DeviceID,
          StateDigest: m.StateDigest,
          CounterpartTxID: m.AcceptTxID ?? '',
        })),
      }),
    );

  /** The source has committed: from now on requests for these devices go to the destination. */
  const commitDestination = async (moveId: string, destination: string, committed: readonly ShardMoveRecord[]) => {
    const index = shards.shardIndex(destination);
    for (const m of committed) shards.directory.assignDevice(m.DeviceID, index);
    await step('commit on the destination', () =>
      clientOf(destination).write<ShardMoveOutcome>(ShardMoveAction.CommitShardMove, {
        MoveID: moveId,
        Devices: committed.map((m) => ({
          DeviceID: m.DeviceID,
          StateDigest: m.StateDigest,
          CounterpartTxID: m.SourceCommitTxID ?? '',
        })),
      }),
    );
  };

  const abort = async (moveId: string, channel: string, devices: readonly string[], reason: string) =>
    step('abort', () =>
      clientOf(channel).write(ShardMoveAction.AbortShardMove, {
        MoveID: moveId,
        Devices: devices,
        Reason: reason.slice(0, 256).replace(/[^\x20-\x7e]/g, ' '),
      }),
    );

  /** One batch through the four steps; a refusal before the source commits aborts both ends. */
  const moveBatch = async (
    planned: PlannedMove,
    mapRevision: number,
    moveId = newMoveId(),
  ): Promise<FailedMove | number> => {
    const { Source: source, Destination: destination, Devices: devices } = planned;
    const route = { MoveID: moveId, Source: source, Destination: destination, MapRevision: mapRevision };
    let prepared: PreparedDevice[];
    try {
      ({ Devices: prepared } = await step('prepare', () =>
        clientOf(source).write<{ Devices: PreparedDevice[] }>(ShardMoveAction.PrepareShardMove, {
          ...route,
          Devices: devices,
        }),
      ).then((w) => w.record));
    } catch (err) {
      return failure(moveId, planned, err);
    }
    let accepted: ShardMoveRecord[];
    try {
      ({ Moves: accepted } = (
        await step('accept', () =>
          clientOf(destination).write<ShardMoveOutcome>(ShardMoveAction.AcceptShardMove, {
            ...route,
            Devices: prepared.map((p) => ({
              DeviceID: p.Move.DeviceID,
              PrepareTxID: p.Move.PrepareTxID,
              StateDigest: p.Move.StateDigest,
              State: p.State,
            })),
          }),
        )
      ).record);
    } catch (err) {
      if (ledgerRefusalCode(err) === undefined) throw err; // unreachable: resume() decides later
      await abort(moveId, source, devices, `accept refused: ${(err as Error).message}`);
      return failure(moveId, planned, err);
    }
    const { record: committed } = await commitSource(moveId, source, accepted);
    await commitDestination(moveId, destination, committed.Moves);
    return committed.Moves.length;
  };

  const listShard = (channel: string) => pages<ShardDeviceEntry>(clientOf(channel), ShardMoveAction.ListShardDevices);

  const carryOut = async (map: ShardMapRecord): Promise<MoveReport> => {
    const started = now();
    let moved = 0;
    let batches = 0;
    const failed: FailedMove[] = [];
    for (let pass = 0; pass < Passes; pass++) {
      const onShards = new Map<string, ShardDeviceEntry[]>();
      for (const channel of shards.channels) onShards.set(channel, await listShard(channel));
      const keysOf = new Map([...onShards.values()].flat().map((d) => [d.DeviceID, d.KeyIDs]));
      const plan = planShardMoves(map, onShards, batchSize).filter(
        (p) => !failed.some((f) => f.devices.some((d) => p.Devices.includes(d))),
      );
      if (plan.length === 0) break;
      for (let planned = plan.shift(); planned !== undefined; planned = plan.shift()) {
        batches++;
        const ids = planned.Devices.flatMap((d) => [d, ...(keysOf.get(d) ?? [])]);
        const release = options.gate?.hold(ids);
        const outcome = await moveBatch(planned, map.Revision).finally(release);
        if (typeof outcome === 'number') {
          moved += outcome;
        } else if (conflictCodes.has(outcome.code) && planned.Devices.length > 1) {
          // Busy devices keep conflicting with the load: halves conflict less often than the whole.
          const half = Math.ceil(planned.Devices.length / 2);
          plan.unshift(
            { ...planned, Devices: planned.Devices.slice(0, half) },
            { ...planned, Devices: planned.Devices.slice(half) },
          );
        } else {
          failed.push(outcome);
        }
      }
    }
    return { mapRevision: map.Revision, moved, batches, failed, seconds: (now() - started) / 1000 };
  };

  const currentMap = async (): Promise<ShardMapRecord> => {
    shards.refreshMap();
    const map = await shards.shardMap();
    if (map === null) {
      throw new GatewayError(GatewayErrorCode.NotFound, 'no shard map is written yet', ErrorCode.ShardMapNotFound);
    }
    return map;
  };

  return {
    async moveGroup(group, channel) {
      shards.refreshMap();
      // No map yet: every device is on shard 0, the default of the first map.
      const map = (await shards.shardMap()) ?? {
        Revision: 0,
        Shards: [...shards.channels],
        Rules: [],
        Default: shards.channels[0] ?? channel,
      };
      const { record } = await shards.governance.write<ShardMapRecord>(
        TransactionName.SetShardMap,
        withGroupRule(map, group, channel),
      );
      shards.refreshMap();
      return carryOut(record);
    },

    async rebalance() {
      return carryOut(await currentMap());
    },

    async resume() {
      let committed = 0;
      let aborted = 0;
      const inFlight: ShardMoveRecord[] = [];
      for (const channel of shards.channels) {
        inFlight.push(...(await pages<ShardMoveRecord>(clientOf(channel), ShardMoveAction.ListMovesInFlight)));
      }
      const done = new Set<string>();
      for (const move of inFlight) {
        const { MoveID: moveId, DeviceID: deviceId, Source: source, Destination: destination } = move;
        // Both ends of one move may be listed: whichever comes first finishes it.
        if (done.has(`${moveId}\u0000${deviceId}`)) continue;
        done.add(`${moveId}\u0000${deviceId}`);
        if (move.End === ShardMoveEnd.Source) {
          const there = await moveOn(clientOf(destination), deviceId, moveId);
          if (there?.Phase === ShardMovePhase.Aborted) {
            await abort(moveId, source, [deviceId], 'aborted on the destination');
            aborted++;
          } else if (there?.Phase === ShardMovePhase.Accepted) {
            const { record } = await commitSource(moveId, source, [there]);
            await commitDestination(moveId, destination, record.Moves);
            committed++;
          } else if (there === null) {
            // Never accepted: carried forward from a repeated prepare, which answers the frozen state.
            const outcome = await moveBatch(
              { Source: source, Destination: destination, Devices: [deviceId] },
              move.MapRevision,
              moveId,
            );
            if (typeof outcome === 'number') committed += outcome;
            else aborted++;
          }
        } else {
          const there = await moveOn(clientOf(source), deviceId, moveId);
          if (there?.Phase === ShardMovePhase.Committed) {
            await commitDestination(moveId, destination, [{ ...move, SourceCommitTxID: there.SourceCommitTxID }]);
            committed++;
          } else if (there === null || there.Phase === ShardMovePhase.Aborted) {
            await abort(moveId, destination, [deviceId], 'not prepared on the source');
            aborted++;
          } else {
            const { record } = await commitSource(moveId, source, [move]);
            await commitDestination(moveId, destination, record.Moves);
            committed++;
          }
        }
      }
      return { committed, aborted };
    },
  };
}

/** Fabric's MVCC_READ_CONFLICT and PHANTOM_READ_CONFLICT, as the transport reports them. */
const conflictCodes: ReadonlySet<string> = new Set(['COMMIT_11', 'COMMIT_12']);

function readConflict(err: unknown): err is GatewayError {
  return err instanceof GatewayError && conflictCodes.has(String(err.detail));
}

function failure(moveId: string, planned: PlannedMove, err: unknown): FailedMove {
  const code = ledgerRefusalCode(err);
  if (code === undefined) throw err;
  return {
    moveId,
    source: planned.Source,
    destination: planned.Destination,
    devices: planned.Devices,
    code,
    message: (err as Error).message,
  };
}
