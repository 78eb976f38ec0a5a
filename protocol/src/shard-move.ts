/**
 * Live re-sharding (issue 15 item 2, docs/ledger.md "Shard moves"): a device and its keys' records
 * move from one shard channel to another with a two-phase protocol recorded on both channels.
 *
 * 1. `PrepareShardMove` on the source freezes each device: its writes are refused with
 *    `DEVICE_MOVING` (reads are still answered there), and the answer carries the frozen state and
 *    its digest.
 * 2. `AcceptShardMove` on the destination stages that state in a move record, after checking that it
 *    hashes to the digest the source froze. Nothing is live there yet.
 * 3. `CommitShardMove` on the source turns the freeze into a tombstone: every read and write of the
 *    device there answers `DEVICE_MOVED` naming the destination.
 * 4. `CommitShardMove` on the destination installs the staged records: the device is live there.
 *
 * Between 3 and 4 no shard answers for the device (a retryable `DEVICE_MOVING` at most), and at no
 * time do two: that is what makes every request answered by exactly one shard. `AbortShardMove`
 * undoes a move that has not committed on the source. The moved state is ledger metadata only (the
 * device record and its keys' records); key material stays in the HSM cluster.
 *
 * A second contract in the chaincode, `shard-move`: its transactions are called as
 * `shard-move:<name>`. Writes are operators' (or the gateway's mover service, resuming after a crash).
 */
import { canonicalJson, sha256Hex } from './canonical.js';
import { ErrorCode, LedgerError } from './errors.js';
import {
  resolveShard,
  type SetShardMapRequest,
  type ShardMapRecord,
  type ShardRule,
  type ShardSubject,
} from './shard-map.js';
import type { DeviceRecord, KeyRecord, Proof } from './types.js';
import { arrayOf, id, int, literal, object, sha256HexField, str, text, type Check, type Checked } from './validate.js';

export const ShardMoveContractName = 'shard-move';

export const ShardMoveTransaction = {
  PrepareShardMove: 'PrepareShardMove',
  AcceptShardMove: 'AcceptShardMove',
  CommitShardMove: 'CommitShardMove',
  AbortShardMove: 'AbortShardMove',
  GetShardMove: 'GetShardMove',
  GetShardMoveRequest: 'GetShardMoveRequest',
  ListDeviceMoves: 'ListDeviceMoves',
  ListMovesInFlight: 'ListMovesInFlight',
  ListShardDevices: 'ListShardDevices',
} as const;
export type ShardMoveTransaction = (typeof ShardMoveTransaction)[keyof typeof ShardMoveTransaction];

const action = <T extends ShardMoveTransaction>(name: T) => `${ShardMoveContractName}:${name}` as const;

/** The transactions as clients call them: with the contract's namespace (`shard-move:<name>`). */
export const ShardMoveAction = {
  PrepareShardMove: action(ShardMoveTransaction.PrepareShardMove),
  AcceptShardMove: action(ShardMoveTransaction.AcceptShardMove),
  CommitShardMove: action(ShardMoveTransaction.CommitShardMove),
  AbortShardMove: action(ShardMoveTransaction.AbortShardMove),
  GetShardMove: action(ShardMoveTransaction.GetShardMove),
  GetShardMoveRequest: action(ShardMoveTransaction.GetShardMoveRequest),
  ListDeviceMoves: action(ShardMoveTransaction.ListDeviceMoves),
  ListMovesInFlight: action(ShardMoveTransaction.ListMovesInFlight),
  ListShardDevices: action(ShardMoveTransaction.ListShardDevices),
} as const;
export type ShardMoveAction = (typeof ShardMoveAction)[keyof typeof ShardMoveAction];

/** The service principal of the gateway's mover when it resumes moves on its own (after a restart). */
export const ShardMoverService = 'gateway.shard-mover';

/** Which end of a move a channel's record describes. */
export const ShardMoveEnd = { Source: 'source', Destination: 'destination' } as const;
export type ShardMoveEnd = (typeof ShardMoveEnd)[keyof typeof ShardMoveEnd];

/**
 * A move record's phase. Source: prepared → committed | aborted. Destination: accepted → committed |
 * aborted.
 */
export const ShardMovePhase = {
  Prepared: 'prepared',
  Accepted: 'accepted',
  Committed: 'committed',
  Aborted: 'aborted',
} as const;
export type ShardMovePhase = (typeof ShardMovePhase)[keyof typeof ShardMovePhase];

export const ShardMoveLimits = {
  /** Devices one move transaction names (one move id covers a batch of devices). */
  Devices: 200,
  /** Keys one device may take along. */
  KeysPerDevice: 64,
  /** An accept carries whole key records (their versions and proofs): larger than other requests. */
  RequestBytes: 8 * 1024 * 1024,
  JwsBytes: 11 * 1024 * 1024,
} as const;

/** A Fabric channel name as network.sh makes them (the shard map's grammar). */
const channel = str({ max: 49, pattern: /^[a-z][a-z0-9.-]*$/, what: 'a channel name ([a-z][a-z0-9.-], 1-49)' });
/** A Fabric transaction id (64 hex digits on a real network). */
const txId = str({ max: 128, pattern: /^[0-9A-Za-z]+$/, what: 'a transaction id' });
const requestId = str({ max: 128, pattern: /^[A-Za-z0-9._:-]+$/, what: 'a request id' });
const devices = arrayOf(id, { min: 1, max: ShardMoveLimits.Devices, unique: true });

const envelope = <T extends ShardMoveAction>(name: T) => ({ Action: literal(name), RequestID: requestId });

const route = {
  MoveID: id,
  Source: channel,
  Destination: channel,
  /** The shard map revision the move carries out (0: a move by hand, with no map change). */
  MapRevision: int(0, Number.MAX_SAFE_INTEGER),
};

/** What moves with a device: its record and its keys' records, exactly as the source froze them. */
export interface MovedState {
  readonly Device: DeviceRecord;
  readonly Keys: readonly KeyRecord[];
}

const recordObject = (path: string, value: unknown): Record<string, unknown> => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new LedgerError(ErrorCode.InvalidArgument, `${path} must be an object`);
  }
  return value as Record<string, unknown>;
};

/**
 * The state's shape, as far as the destination relies on it (the ids it files records under); the
 * rest is bound by the digest, which the source computed over its own records.
 */
const movedState: Check<MovedState> = (value, path) => {
  const state = recordObject(path, value);
  const extra = Object.keys(state).filter((k) => k !== 'Device' && k !== 'Keys');
  if (extra.length > 0) throw new LedgerError(ErrorCode.InvalidArgument, `${path} has unknown field ${extra[0]}`);
  const device = recordObject(`${path}.Device`, state.Device);
  if (device.DocType !== 'device') {
    throw new LedgerError(ErrorCode.InvalidArgument, `${path}.Device.DocType must be device`);
  }
  id(device.DeviceID, `${path}.Device.DeviceID`);
  id(device.Group, `${path}.Device.Group`);
  const keys = arrayOf((k, p) => recordObject(p, k), { max: ShardMoveLimits.KeysPerDevice })(
    state.Keys,
    `${path}.Keys`,
  );
  const seen = new Set<string>();
  keys.forEach((key, index) => {
    const at = `${path}.Keys[${String(index)}]`;
    if (key.DocType !== 'key') throw new LedgerError(ErrorCode.InvalidArgument, `${at}.DocType must be key`);
    const keyId = id(key.KeyID, `${at}.KeyID`);
    const owner = recordObject(`${at}.Owner`, key.Owner);
    if (owner.Type !== 'device' || owner.ID !== device.DeviceID) {
      throw new LedgerError(ErrorCode.InvalidArgument, `${at}.Owner is not device ${String(device.DeviceID)}`);
    }
    if (seen.has(keyId)) throw new LedgerError(ErrorCode.InvalidArgument, `${at}.KeyID repeats an earlier key`);
    seen.add(keyId);
  });
  return state as unknown as MovedState;
};

export const prepareShardMove = object({
  ...envelope(ShardMoveAction.PrepareShardMove),
  ...route,
  Devices: devices,
});

const acceptedDevice = object({
  DeviceID: id,
  /** The source's PrepareShardMove transaction: the back-pointer an auditor follows. */
  PrepareTxID: txId,
  StateDigest: sha256HexField,
  State: movedState,
});

export const acceptShardMove = object({
  ...envelope(ShardMoveAction.AcceptShardMove),
  ...route,
  Devices: arrayOf(acceptedDevice, { min: 1, max: ShardMoveLimits.Devices }),
});

const committedDevice = object({
  DeviceID: id,
  /** The digest the other end holds: the commit refuses unless it is this end's. */
  StateDigest: sha256HexField,
  /** On the source: the destination's accept; on the destination: the source's commit. */
  CounterpartTxID: txId,
});

export const commitShardMove = object({
  ...envelope(ShardMoveAction.CommitShardMove),
  MoveID: id,
  Devices: arrayOf(committedDevice, { min: 1, max: ShardMoveLimits.Devices }),
});

export const abortShardMove = object({
  ...envelope(ShardMoveAction.AbortShardMove),
  MoveID: id,
  Devices: devices,
  Reason: text,
});

export type PrepareShardMoveRequest = Checked<typeof prepareShardMove>;
export type AcceptShardMoveRequest = Checked<typeof acceptShardMove>;
export type CommitShardMoveRequest = Checked<typeof commitShardMove>;
export type AbortShardMoveRequest = Checked<typeof abortShardMove>;

/** One device's move as one channel saw it; each channel keeps its own under (DeviceID, MoveID). */
export interface ShardMoveRecord {
  DocType: 'shard-move';
  MoveID: string;
  DeviceID: string;
  Group: string;
  Source: string;
  Destination: string;
  MapRevision: number;
  End: ShardMoveEnd;
  Phase: ShardMovePhase;
  StateDigest: string;
  KeyIDs: string[];
  /** Both ends know the source's prepare and the destination's accept; the commits link them up. */
  PrepareTxID: string;
  AcceptTxID: string | null;
  SourceCommitTxID: string | null;
  DestinationCommitTxID: string | null;
  AbortTxID: string | null;
  AbortReason: string | null;
  /** On the destination until it commits: the records it will install. Null everywhere else. */
  State: MovedState | null;
  UpdatedAt: string;
  Proof: Proof;
}

/**
 * Where a device stands on a channel because of a move, filed under the device: `moving` while a
 * source's prepared move freezes it, `moved` after it left (the tombstone), `arriving` while a
 * destination holds it staged. Absent when the device is live here or was never here.
 */
export interface DeviceMoveMarker {
  DocType: 'device-move';
  DeviceID: string;
  MoveID: string;
  State: 'moving' | 'moved' | 'arriving';
  Source: string;
  Destination: string;
  /** An arriving device that had left this channel before: its tombstone, put back by an abort. */
  Previous: DeviceMoveMarker | null;
}

/** Filed under a key a destination holds staged, so a request for it is told to retry, not "not found". */
export interface KeyArrivalMarker {
  DocType: 'key-arriving';
  KeyID: string;
  DeviceID: string;
  MoveID: string;
}

/** What a prepare answers for each device: the state it froze (for the accept) and its record. */
export interface PreparedDevice {
  Move: ShardMoveRecord;
  State: MovedState;
  /** True when an earlier prepare of the same move had frozen it (a retry). */
  AlreadyPrepared: boolean;
}

/** The answer of the writes that only change phases: each device's record afterwards. */
export interface ShardMoveOutcome {
  Moves: ShardMoveRecord[];
}

/** The digest that binds the two ends: SHA-256 of the state's canonical JSON. */
export function movedStateDigest(state: MovedState): string {
  return sha256Hex(canonicalJson(state));
}

/** A move goes somewhere else: refused when source and destination are one channel. */
export function assertDistinctEnds(request: { Source: string; Destination: string }): void {
  if (request.Source === request.Destination) {
    throw new LedgerError(ErrorCode.InvalidArgument, `Source and Destination are both ${request.Source}`);
  }
}

/** What an accept must match: the state it carries hashes to the digest the source froze. */
export function assertStateMatches(deviceId: string, stateDigest: string, state: MovedState): void {
  if (state.Device.DeviceID !== deviceId) {
    throw new LedgerError(ErrorCode.InvalidArgument, `the state of ${deviceId} is device ${state.Device.DeviceID}`);
  }
  const actual = movedStateDigest(state);
  if (actual !== stateDigest) {
    throw new LedgerError(
      ErrorCode.ShardMoveMismatch,
      `the state of ${deviceId} hashes to ${actual}, not the frozen ${stateDigest}`,
    );
  }
}

/** How a guarded record is used: history reads are answered even after the device left. */
export const DeviceUse = { Read: 'read', Write: 'write', History: 'history' } as const;
export type DeviceUse = (typeof DeviceUse)[keyof typeof DeviceUse];

/**
 * The one rule of what a channel answers for a device a move touched: frozen (`moving`) refuses
 * writes; gone (`moved`) refuses reads and writes, naming where it went; staged (`arriving`) refuses
 * both as retryable; history is always answered.
 */
export function assertDeviceUsable(marker: DeviceMoveMarker | null, use: DeviceUse): void {
  if (marker === null || use === DeviceUse.History) return;
  if (marker.State === 'arriving') {
    throw new LedgerError(
      ErrorCode.DeviceMoving,
      `device ${marker.DeviceID} is arriving from ${marker.Source} (move ${marker.MoveID}); retry shortly`,
    );
  }
  if (marker.State === 'moved') {
    throw new LedgerError(
      ErrorCode.DeviceMoved,
      `device ${marker.DeviceID} moved to ${marker.Destination} (move ${marker.MoveID})`,
    );
  }
  if (use === DeviceUse.Write) {
    throw new LedgerError(
      ErrorCode.DeviceMoving,
      `device ${marker.DeviceID} is moving to ${marker.Destination} (move ${marker.MoveID}); retry shortly`,
    );
  }
}

/**
 * The device and the channel a `DEVICE_MOVED` refusal names (with or without its `DEVICE_MOVED: `
 * prefix), so a router can follow it; null for any other message.
 */
export function movedDeviceOf(message: string): { deviceId: string; destination: string } | null {
  const found = /device (\S+) moved to ([a-z][a-z0-9.-]*) \(move /.exec(message);
  return found?.[1] === undefined || found[2] === undefined ? null : { deviceId: found[1], destination: found[2] };
}

/** A device as a shard lists it for planning (`ListShardDevices`). */
export interface ShardDeviceEntry extends ShardSubject {
  readonly DeviceID: string;
  /** The keys that move with it. */
  readonly KeyIDs: readonly string[];
  /** The move freezing it here, if one is. */
  readonly Moving: string | null;
}

/** One batch of a plan: devices that go from one channel to another. */
export interface PlannedMove {
  readonly Source: string;
  readonly Destination: string;
  readonly Devices: readonly string[];
}

/**
 * What a map asks for: every device listed on a channel whose shard under `map` is another one, in
 * batches of at most `batchSize` per (source, destination). Devices a move already freezes are left
 * out (that move decides where they go).
 */
export function planShardMoves(
  map: Pick<ShardMapRecord, 'Rules' | 'Default' | 'Revision'>,
  onShards: ReadonlyMap<string, readonly ShardDeviceEntry[]>,
  batchSize: number = ShardMoveLimits.Devices,
): PlannedMove[] {
  const size = Math.max(1, Math.min(batchSize, ShardMoveLimits.Devices));
  const plan: PlannedMove[] = [];
  for (const [source, devices] of onShards) {
    const byDestination = new Map<string, string[]>();
    for (const device of devices) {
      if (device.Moving !== null) continue;
      const { Shard } = resolveShard(map, device);
      if (Shard === source) continue;
      byDestination.set(Shard, [...(byDestination.get(Shard) ?? []), device.DeviceID]);
    }
    for (const [destination, ids] of byDestination) {
      for (let at = 0; at < ids.length; at += size) {
        plan.push({ Source: source, Destination: destination, Devices: ids.slice(at, at + size) });
      }
    }
  }
  return plan;
}

/**
 * The map with one group sent to `channel`: its group-only rule changed (or a new one put first, so
 * that it decides before rules on location or function). The fields of a `SetShardMap` request.
 */
export function withGroupRule(
  map: Pick<ShardMapRecord, 'Revision' | 'Shards' | 'Rules' | 'Default'>,
  group: string,
  channel: string,
): Pick<SetShardMapRequest, 'ExpectedRevision' | 'Shards' | 'Rules' | 'Default'> {
  if (!map.Shards.includes(channel)) {
    throw new LedgerError(ErrorCode.InvalidArgument, `${channel} is not a shard of the map (${map.Shards.join(', ')})`);
  }
  const groupOnly = (r: ShardRule) => r.Match.Group === group && r.Match.Location === null && r.Match.Function === null;
  const rule: ShardRule = { Match: { Group: group, Location: null, Function: null }, Shard: channel };
  const at = map.Rules.findIndex(groupOnly);
  const rules = at === -1 ? [rule, ...map.Rules] : map.Rules.map((r, i) => (i === at ? rule : r));
  return { ExpectedRevision: map.Revision, Shards: [...map.Shards], Rules: rules, Default: map.Default };
}
