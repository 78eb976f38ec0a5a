/**
 * Live re-sharding (docs/ledger.md, "Shard moves"): the two-phase move of devices and their keys'
 * records between shard channels. The same contract runs on both ends; each transaction checks
 * which end this channel is (`ctx.stub.getChannelID()`) against the request. The protocol, the
 * records and the pure checks are in @keyfleet/protocol (shard-move.ts).
 *
 * A second contract in the chaincode, `shard-move`, so its records stay out of the keyfleet
 * contract: transactions are called as `shard-move:<name>`. Writes: operators (or the gateway's mover
 * service), signed by the metadata-signing anchor like every write. Reads: operators, the verifier
 * and auditors.
 */
import { Context, Contract, Info, Returns, Transaction } from 'fabric-contract-api';

import {
  abortShardMove,
  acceptShardMove,
  assertDistinctEnds,
  assertRole,
  assertStateMatches,
  callerName,
  canonicalJson,
  commitShardMove,
  ErrorCode,
  id,
  int,
  LedgerError,
  Limits,
  movedStateDigest,
  prepareShardMove,
  PrincipalKind,
  Role,
  ShardMoveContractName,
  ShardMoveEnd,
  ShardMoveLimits,
  ShardMovePhase,
  ShardMoverService,
  str,
  validate,
  type Check,
  type DeviceMoveMarker,
  type DeviceRecord,
  type KeyArrivalMarker,
  type KeyRecord,
  type MovedState,
  type PreparedDevice,
  type RequestPrincipal,
  type ShardMoveOutcome,
  type ShardMoveRecord,
} from '@keyfleet/protocol';
import { deviceMoveMarker } from './device-move-guard.js';
import { callerOf } from './identity.js';
import { authenticateSignedRequest, type SignedRequest } from './signed-request.js';
import { KeyType, Store, dueKey } from './store.js';

const Readers = [Role.Operator, Role.Verifier, Role.Auditor] as const;

/** An operator asks for a move; the gateway's mover service finishes or aborts one after a restart. */
function moverPrincipal(principal: RequestPrincipal): string | null {
  if (principal.Kind === PrincipalKind.Operator) return null;
  if (principal.Kind === PrincipalKind.Service && principal.ID === ShardMoverService) return null;
  return `shard moves are asked for by an operator or ${ShardMoverService}`;
}

interface MoveWrite<T> extends SignedRequest<T> {
  readonly txId: string;
  readonly now: string;
  readonly channel: string;
}

type Puts = [string, unknown][];

function conflict(detail: string): never {
  throw new LedgerError(ErrorCode.ShardMoveConflict, detail);
}

@Info({ title: 'shard-move', description: 'Two-phase moves of devices and their keys between shard channels' })
export class ShardMoveContract extends Contract {
  constructor() {
    super(ShardMoveContractName);
  }

  /**
   * The source freezes each device and answers the state it froze. A device already frozen by this
   * same move is answered again (a retry), with `AlreadyPrepared`.
   */
  @Transaction()
  @Returns('string')
  async PrepareShardMove(ctx: Context, requestJson: string, jws: string): Promise<string> {
    const write = await this.authenticate(ctx, requestJson, jws, prepareShardMove);
    const { request, store } = write;
    assertDistinctEnds(request);
    this.assertChannel(write, request.Source, 'Source');
    const puts: Puts = [];
    const answers: PreparedDevice[] = [];
    for (const deviceId of request.Devices) {
      const earlier = await this.moveOf(store, deviceId, request.MoveID);
      const marker = await deviceMoveMarker(store, deviceId);
      if (earlier !== null) {
        if (earlier.End !== ShardMoveEnd.Source || earlier.Phase !== ShardMovePhase.Prepared) {
          conflict(`move ${request.MoveID} of ${deviceId} is ${earlier.End} ${earlier.Phase} here`);
        }
        if (earlier.Destination !== request.Destination) {
          conflict(`move ${request.MoveID} of ${deviceId} goes to ${earlier.Destination}`);
        }
        answers.push({ Move: earlier, State: await this.stateOf(store, deviceId), AlreadyPrepared: true });
        continue;
      }
      if (marker !== null) {
        if (marker.State === 'moved') {
          throw new LedgerError(ErrorCode.DeviceMoved, `device ${deviceId} moved to ${marker.Destination}`);
        }
        conflict(`device ${deviceId} is already moving (move ${marker.MoveID})`);
      }
      const state = await this.stateOf(store, deviceId);
      const move: ShardMoveRecord = {
        DocType: 'shard-move',
        MoveID: request.MoveID,
        DeviceID: deviceId,
        Group: state.Device.Group,
        Source: request.Source,
        Destination: request.Destination,
        MapRevision: request.MapRevision,
        End: ShardMoveEnd.Source,
        Phase: ShardMovePhase.Prepared,
        StateDigest: movedStateDigest(state),
        KeyIDs: state.Keys.map((k) => k.KeyID),
        PrepareTxID: write.txId,
        AcceptTxID: null,
        SourceCommitTxID: null,
        DestinationCommitTxID: null,
        AbortTxID: null,
        AbortReason: null,
        State: null,
        UpdatedAt: write.now,
        Proof: this.proof(write),
      };
      const frozen: DeviceMoveMarker = {
        DocType: 'device-move',
        DeviceID: deviceId,
        MoveID: request.MoveID,
        State: 'moving',
        Source: request.Source,
        Destination: request.Destination,
        Previous: null,
      };
      puts.push(...this.moveWrites(store, move, true), [store.key(KeyType.DeviceMove, deviceId), frozen]);
      answers.push({ Move: move, State: state, AlreadyPrepared: false });
    }
    await this.finish(write, jws, puts, []);
    return canonicalJson({ Devices: answers });
  }

  /**
   * The destination stages each device's state, after checking it hashes to the digest the source
   * froze. Nothing is live here until the destination's commit installs it.
   */
  @Transaction()
  @Returns('string')
  async AcceptShardMove(ctx: Context, requestJson: string, jws: string): Promise<string> {
    const write = await this.authenticate(ctx, requestJson, jws, acceptShardMove);
    const { request, store } = write;
    assertDistinctEnds(request);
    this.assertChannel(write, request.Destination, 'Destination');
    const seen = new Set<string>();
    const puts: Puts = [];
    const moves: ShardMoveRecord[] = [];
    for (const device of request.Devices) {
      const deviceId = device.DeviceID;
      if (seen.has(deviceId)) throw new LedgerError(ErrorCode.InvalidArgument, `request.Devices repeats ${deviceId}`);
      seen.add(deviceId);
      assertStateMatches(deviceId, device.StateDigest, device.State);
      const earlier = await this.moveOf(store, deviceId, request.MoveID);
      if (earlier !== null) {
        if (earlier.End !== ShardMoveEnd.Destination || earlier.StateDigest !== device.StateDigest) {
          conflict(`move ${request.MoveID} of ${deviceId} is already recorded here as ${earlier.End}`);
        }
        moves.push(earlier);
        continue;
      }
      await this.assertArrivable(store, device.State);
      const move: ShardMoveRecord = {
        DocType: 'shard-move',
        MoveID: request.MoveID,
        DeviceID: deviceId,
        Group: device.State.Device.Group,
        Source: request.Source,
        Destination: request.Destination,
        MapRevision: request.MapRevision,
        End: ShardMoveEnd.Destination,
        Phase: ShardMovePhase.Accepted,
        StateDigest: device.StateDigest,
        KeyIDs: device.State.Keys.map((k) => k.KeyID),
        PrepareTxID: device.PrepareTxID,
        AcceptTxID: write.txId,
        SourceCommitTxID: null,
        DestinationCommitTxID: null,
        AbortTxID: null,
        AbortReason: null,
        State: device.State,
        UpdatedAt: write.now,
        Proof: this.proof(write),
      };
      puts.push(...this.moveWrites(store, move, true), ...(await this.arrivalMarkers(store, move, device.State)));
      moves.push(move);
    }
    await this.finish(write, jws, puts, []);
    return canonicalJson({ Moves: moves.map(withoutState) } satisfies ShardMoveOutcome);
  }

  /**
   * On the source: the freeze becomes a tombstone naming the destination, and the device leaves this
   * channel's indexes. On the destination: the staged records are installed and live. A commit
   * already made is answered again (a retry).
   */
  @Transaction()
  @Returns('string')
  async CommitShardMove(ctx: Context, requestJson: string, jws: string): Promise<string> {
    const write = await this.authenticate(ctx, requestJson, jws, commitShardMove);
    const { request, store } = write;
    const puts: Puts = [];
    const deletes: string[] = [];
    const moves: ShardMoveRecord[] = [];
    const seen = new Set<string>();
    for (const device of request.Devices) {
      const deviceId = device.DeviceID;
      if (seen.has(deviceId)) throw new LedgerError(ErrorCode.InvalidArgument, `request.Devices repeats ${deviceId}`);
      seen.add(deviceId);
      const move = await this.requireMove(store, deviceId, request.MoveID);
      this.assertChannel(write, move.End === ShardMoveEnd.Source ? move.Source : move.Destination, 'move end');
      if (move.StateDigest !== device.StateDigest) {
        throw new LedgerError(
          ErrorCode.ShardMoveMismatch,
          `${deviceId}: the other end holds state ${device.StateDigest}, this end froze ${move.StateDigest}`,
        );
      }
      if (move.Phase === ShardMovePhase.Committed) {
        moves.push(move);
        continue;
      }
      if (move.Phase === ShardMovePhase.Aborted) conflict(`move ${move.MoveID} of ${deviceId} was aborted here`);
      const committed: ShardMoveRecord =
        move.End === ShardMoveEnd.Source
          ? {
              ...move,
              Phase: ShardMovePhase.Committed,
              AcceptTxID: device.CounterpartTxID,
              SourceCommitTxID: write.txId,
            }
          : {
              ...move,
              Phase: ShardMovePhase.Committed,
              SourceCommitTxID: device.CounterpartTxID,
              DestinationCommitTxID: write.txId,
              State: null,
            };
      const stamped = { ...committed, UpdatedAt: write.now, Proof: this.proof(write) };
      if (move.End === ShardMoveEnd.Source) {
        const left = await this.departure(store, move);
        puts.push(...left.puts);
        deletes.push(...left.deletes);
      } else {
        if (move.State === null) conflict(`move ${move.MoveID} of ${deviceId} has no staged state`);
        puts.push(...this.arrival(store, move.State));
        deletes.push(...this.arrivalMarkerKeys(store, move));
      }
      puts.push(...this.moveWrites(store, stamped, false));
      deletes.push(store.key(KeyType.ShardMoveOpen, move.MoveID, deviceId));
      moves.push(stamped);
    }
    await this.finish(write, jws, puts, deletes);
    return canonicalJson({ Moves: moves.map(withoutState) } satisfies ShardMoveOutcome);
  }

  /**
   * Undoes a move not yet committed on this end: the source un-freezes the device, the destination
   * drops what it staged. The mover aborts the destination first, so the source never thaws a
   * device the destination could still install.
   */
  @Transaction()
  @Returns('string')
  async AbortShardMove(ctx: Context, requestJson: string, jws: string): Promise<string> {
    const write = await this.authenticate(ctx, requestJson, jws, abortShardMove);
    const { request, store } = write;
    const puts: Puts = [];
    const deletes: string[] = [];
    const moves: ShardMoveRecord[] = [];
    for (const deviceId of request.Devices) {
      const move = await this.requireMove(store, deviceId, request.MoveID);
      if (move.Phase === ShardMovePhase.Aborted) {
        moves.push(move);
        continue;
      }
      if (move.Phase === ShardMovePhase.Committed) conflict(`move ${move.MoveID} of ${deviceId} is committed here`);
      const aborted: ShardMoveRecord = {
        ...move,
        Phase: ShardMovePhase.Aborted,
        AbortTxID: write.txId,
        AbortReason: request.Reason,
        State: null,
        UpdatedAt: write.now,
        Proof: this.proof(write),
      };
      if (move.End === ShardMoveEnd.Source) {
        deletes.push(store.key(KeyType.DeviceMove, deviceId));
      } else {
        // The destination forgets the arrival; a device that had left here before keeps its tombstone.
        const marker = await deviceMoveMarker(store, deviceId);
        deletes.push(...this.arrivalMarkerKeys(store, move));
        if (marker?.Previous != null) puts.push([store.key(KeyType.DeviceMove, deviceId), marker.Previous]);
      }
      puts.push(...this.moveWrites(store, aborted, false));
      deletes.push(store.key(KeyType.ShardMoveOpen, move.MoveID, deviceId));
      moves.push(aborted);
    }
    await this.finish(write, jws, puts, deletes);
    return canonicalJson({ Moves: moves } satisfies ShardMoveOutcome);
  }

  // ---- reads --------------------------------------------------------------------------------------

  @Transaction(false)
  @Returns('string')
  async GetShardMove(ctx: Context, deviceId: string, moveId: string): Promise<string> {
    this.reader(ctx);
    return canonicalJson(
      await this.requireMove(new Store(ctx.stub), validate(id, deviceId, 'deviceId'), validate(id, moveId, 'moveId')),
    );
  }

  /** The signed request of a move transaction (`Proof.TxID` of a move record): re-verifiable by anyone. */
  @Transaction(false)
  @Returns('string')
  async GetShardMoveRequest(ctx: Context, txId: string): Promise<string> {
    this.reader(ctx);
    const store = new Store(ctx.stub);
    const checked = validate(str({ max: 128, pattern: /^[0-9A-Za-z]+$/, what: 'a transaction id' }), txId, 'txId');
    const request = await store.get(store.key(KeyType.ShardMoveRequest, checked));
    if (request === null) {
      throw new LedgerError(ErrorCode.ShardMoveNotFound, `no shard move transaction ${checked} on this channel`);
    }
    return canonicalJson(request);
  }

  /** Every move of a device this channel took part in, as source or destination: its trail here. */
  @Transaction(false)
  @Returns('string')
  async ListDeviceMoves(ctx: Context, deviceId: string): Promise<string> {
    this.reader(ctx);
    const store = new Store(ctx.stub);
    return canonicalJson(await store.all<ShardMoveRecord>(KeyType.ShardMove, [validate(id, deviceId, 'deviceId')]));
  }

  /** Moves prepared or accepted here and not yet committed or aborted: what a restarted mover resumes. */
  @Transaction(false)
  @Returns('string')
  async ListMovesInFlight(ctx: Context, size: string, mark: string): Promise<string> {
    this.reader(ctx);
    const store = new Store(ctx.stub);
    const page = await store.pageByPartialKey<{ DeviceID: string; MoveID: string }>(
      KeyType.ShardMoveOpen,
      [],
      pageSizeOf(size),
      bookmarkOf(mark),
    );
    const records: ShardMoveRecord[] = [];
    for (const open of page.Records) records.push(await this.requireMove(store, open.DeviceID, open.MoveID));
    return canonicalJson({ ...page, Records: records.map(withoutState) });
  }

  /**
   * The devices whose records live on this channel (frozen ones included, departed ones not), with
   * the metadata the shard map's rules read: what a map change is planned from.
   */
  @Transaction(false)
  @Returns('string')
  async ListShardDevices(ctx: Context, size: string, mark: string): Promise<string> {
    this.reader(ctx);
    const store = new Store(ctx.stub);
    const page = await store.pageByPartialKey<DeviceRecord>(KeyType.Device, [], pageSizeOf(size), bookmarkOf(mark));
    const records = [];
    for (const device of page.Records) {
      const marker = await deviceMoveMarker(store, device.DeviceID);
      if (marker?.State === 'moved') continue;
      const keys = await store.all<{ KeyID: string }>(KeyType.KeyByOwner, ['device', device.DeviceID]);
      records.push({
        DeviceID: device.DeviceID,
        Group: device.Group,
        Location: device.Location,
        Function: device.Function,
        KeyIDs: keys.map((k) => k.KeyID),
        Moving: marker === null ? null : marker.MoveID,
      });
    }
    return canonicalJson({ ...page, Records: records });
  }

  // ---- steps ----------------------------------------------------------------------------------------

  private async authenticate<T extends { Action: string; RequestID: string }>(
    ctx: Context,
    requestJson: string,
    jws: string,
    check: Check<T>,
  ): Promise<MoveWrite<T>> {
    const signed = await authenticateSignedRequest(ctx, requestJson, jws, {
      roles: [Role.Operator],
      check,
      principal: moverPrincipal,
      requestBytes: ShardMoveLimits.RequestBytes,
      jwsBytes: ShardMoveLimits.JwsBytes,
    });
    const timestamp = ctx.stub.getTxTimestamp();
    const ms = timestamp.seconds.toNumber() * 1000 + Math.floor(timestamp.nanos / 1_000_000);
    return {
      ...signed,
      txId: ctx.stub.getTxID(),
      now: new Date(ms).toISOString(),
      channel: ctx.stub.getChannelID(),
    };
  }

  private reader(ctx: Context): void {
    const { fcn } = ctx.stub.getFunctionAndParameters();
    assertRole(callerOf(ctx), Readers, fcn);
  }

  private assertChannel(write: MoveWrite<unknown>, expected: string, what: string): void {
    if (write.channel !== expected) {
      conflict(`this channel is ${write.channel}, the ${what} is ${expected}`);
    }
  }

  /** The proof of every record a transaction writes: the signed request itself is kept once, by TxID. */
  private proof(write: MoveWrite<unknown>): ShardMoveRecord['Proof'] {
    return { AnchorID: write.anchorId, JWS: '', TxID: write.txId, Principal: write.principal };
  }

  private async moveOf(store: Store, deviceId: string, moveId: string): Promise<ShardMoveRecord | null> {
    return store.get<ShardMoveRecord>(store.key(KeyType.ShardMove, deviceId, moveId));
  }

  private async requireMove(store: Store, deviceId: string, moveId: string): Promise<ShardMoveRecord> {
    const move = await this.moveOf(store, deviceId, moveId);
    if (move === null) {
      throw new LedgerError(ErrorCode.ShardMoveNotFound, `no move ${moveId} of device ${deviceId} on this channel`);
    }
    return move;
  }

  private moveWrites(store: Store, move: ShardMoveRecord, open: boolean): Puts {
    const puts: Puts = [[store.key(KeyType.ShardMove, move.DeviceID, move.MoveID), move]];
    if (open) {
      puts.push([
        store.key(KeyType.ShardMoveOpen, move.MoveID, move.DeviceID),
        { MoveID: move.MoveID, DeviceID: move.DeviceID },
      ]);
    }
    return puts;
  }

  /** The device's record and its keys' records, keys in KeyID order (the digest's input is canonical). */
  private async stateOf(store: Store, deviceId: string): Promise<MovedState> {
    const device = await store.get<DeviceRecord>(store.key(KeyType.Device, deviceId));
    if (device === null) throw new LedgerError(ErrorCode.DeviceNotFound, `device ${deviceId} does not exist`);
    const owned = await store.all<{ KeyID: string }>(KeyType.KeyByOwner, ['device', deviceId]);
    if (owned.length > ShardMoveLimits.KeysPerDevice) {
      throw new LedgerError(
        ErrorCode.InvalidArgument,
        `device ${deviceId} owns ${String(owned.length)} keys; a move takes at most ${String(ShardMoveLimits.KeysPerDevice)}`,
      );
    }
    const keys: KeyRecord[] = [];
    for (const { KeyID } of owned) {
      const key = await store.get<KeyRecord>(store.key(KeyType.Key, KeyID));
      if (key !== null) keys.push(key);
    }
    keys.sort((a, b) => (a.KeyID < b.KeyID ? -1 : a.KeyID > b.KeyID ? 1 : 0));
    return { Device: device, Keys: keys };
  }

  /**
   * A device may arrive where it is unknown, or where it lived before and left (its marker says
   * `moved`); never over a live device or a live key, and never twice at once.
   */
  private async assertArrivable(store: Store, state: MovedState): Promise<void> {
    const deviceId = state.Device.DeviceID;
    const marker = await deviceMoveMarker(store, deviceId);
    const present = (await store.get(store.key(KeyType.Device, deviceId))) !== null;
    if (marker?.State === 'arriving') conflict(`device ${deviceId} is already arriving here (move ${marker.MoveID})`);
    if (present && marker?.State !== 'moved') {
      throw new LedgerError(ErrorCode.DeviceExists, `device ${deviceId} is live on this channel`);
    }
    for (const key of state.Keys) {
      const here = await store.get<KeyRecord>(store.key(KeyType.Key, key.KeyID));
      if (here !== null && !(here.Owner.Type === 'device' && here.Owner.ID === deviceId && marker?.State === 'moved')) {
        throw new LedgerError(ErrorCode.KeyExists, `key ${key.KeyID} is live on this channel`);
      }
    }
  }

  /** The source's commit: the tombstone, and the device out of the indexes that list or schedule it. */
  private async departure(store: Store, move: ShardMoveRecord): Promise<{ puts: Puts; deletes: string[] }> {
    const gone: DeviceMoveMarker = {
      DocType: 'device-move',
      DeviceID: move.DeviceID,
      MoveID: move.MoveID,
      State: 'moved',
      Source: move.Source,
      Destination: move.Destination,
      Previous: null,
    };
    const deletes = [store.key(KeyType.DeviceByGroup, move.Group, move.DeviceID)];
    for (const keyId of move.KeyIDs) {
      deletes.push(store.key(KeyType.KeyByOwner, 'device', move.DeviceID, keyId));
      const key = await store.get<KeyRecord>(store.key(KeyType.Key, keyId));
      if (key?.NextRotationDue != null) deletes.push(dueKey(Date.parse(key.NextRotationDue), keyId));
    }
    return { puts: [[store.key(KeyType.DeviceMove, move.DeviceID), gone]], deletes };
  }

  /** While staged here, the device and its keys answer "moving, retry" rather than "not found". */
  private async arrivalMarkers(store: Store, move: ShardMoveRecord, state: MovedState): Promise<Puts> {
    const previous = await deviceMoveMarker(store, move.DeviceID);
    const arriving: DeviceMoveMarker = {
      DocType: 'device-move',
      DeviceID: move.DeviceID,
      MoveID: move.MoveID,
      State: 'arriving',
      Source: move.Source,
      Destination: move.Destination,
      Previous: previous,
    };
    const puts: Puts = [[store.key(KeyType.DeviceMove, move.DeviceID), arriving]];
    for (const key of state.Keys) {
      const marker: KeyArrivalMarker = {
        DocType: 'key-arriving',
        KeyID: key.KeyID,
        DeviceID: move.DeviceID,
        MoveID: move.MoveID,
      };
      puts.push([store.key(KeyType.KeyArriving, key.KeyID), marker]);
    }
    return puts;
  }

  private arrivalMarkerKeys(store: Store, move: ShardMoveRecord): string[] {
    return [
      store.key(KeyType.DeviceMove, move.DeviceID),
      ...move.KeyIDs.map((keyId) => store.key(KeyType.KeyArriving, keyId)),
    ];
  }

  /** The destination's commit: the records exactly as the source froze them, and their indexes. */
  private arrival(store: Store, state: MovedState): Puts {
    const device = state.Device;
    const puts: Puts = [
      [store.key(KeyType.Device, device.DeviceID), device],
      [store.key(KeyType.DeviceByGroup, device.Group, device.DeviceID), { DeviceID: device.DeviceID }],
    ];
    for (const key of state.Keys) {
      puts.push(
        [store.key(KeyType.Key, key.KeyID), key],
        [store.key(KeyType.KeyByOwner, 'device', device.DeviceID, key.KeyID), { KeyID: key.KeyID }],
      );
      if (key.NextRotationDue !== null) {
        puts.push([
          dueKey(Date.parse(key.NextRotationDue), key.KeyID),
          { KeyID: key.KeyID, NextRotationDue: key.NextRotationDue },
        ]);
      }
    }
    return puts;
  }

  /** Every write of a transaction, after all checks: the records, the signed request, the replay guard. */
  private async finish(
    write: MoveWrite<{ Action: string; RequestID: string }>,
    jws: string,
    puts: Puts,
    deletes: string[],
  ): Promise<void> {
    const { store, request } = write;
    for (const key of deletes) await store.delete(key);
    for (const [key, value] of puts) await store.put(key, value);
    await store.put(store.key(KeyType.ShardMoveRequest, write.txId), {
      TxID: write.txId,
      Action: request.Action,
      AnchorID: write.anchorId,
      JWS: jws,
    });
    await store.put(store.key(KeyType.Request, request.RequestID), {
      RequestID: request.RequestID,
      Action: request.Action,
      TxID: write.txId,
      At: write.now,
      By: callerName(write.caller),
      Principal: write.principal,
    });
  }
}

/** Answers leave out the staged state (it can be megabytes); GetShardMove has it. */
function withoutState(move: ShardMoveRecord): ShardMoveRecord {
  return { ...move, State: null };
}

const pageSizeOf = (value: string): number => {
  if (!/^\d{1,4}$/.test(value)) throw new LedgerError(ErrorCode.InvalidArgument, 'pageSize must be an integer');
  return validate(int(1, Limits.PageSize), Number(value), 'pageSize');
};
const bookmarkOf = (value: string): string => validate(str({ min: 0, max: 1024 }), value, 'bookmark');
