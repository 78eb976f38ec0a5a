/**
 * Live re-sharding (docs/ledger.md, "Shard moves"): the two-phase move of devices and their keys'
 * records between shard channels. The same contract runs on both ends; each transaction checks
 * which end this channel is (`ctx.stub.getChannelID()`) against the request. The protocol, the
 * records and the pure checks are in @keyfleet/protocol (shard-move.ts).
 *
 * A second contract in the chaincode, `shard-move`, so its records stay out of the keyfleet
 * contract: transactions are called as `shard-move:<name>`. Writes: operators (or the gateway's mover
 * service), signed by the metadata-signing anchor, through the one write path of every keyfleet write
 * (transaction/write.ts). Reads: operators, the verifier and auditors.
 */
import { Context, Info, Returns, Transaction } from 'fabric-contract-api';

import {
  abortShardMove,
  acceptShardMove,
  AnchorKind,
  assertDistinctEnds,
  assertStateMatches,
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
  ShardMoveAction,
  ShardMoveContractName,
  ShardMoveEnd,
  ShardMoveLimits,
  ShardMovePhase,
  ShardMoverService,
  str,
  validate,
  type Check,
  type Checked,
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
import { KeyType, Store, dueKey } from './store.js';
import { contractOf, TransactionGroup } from './transaction/compose.js';
import { Overseers, reader } from './transaction/read.js';
import { type Envelope, type Outcome, submit, type Write } from './transaction/write.js';

/** An operator asks for a move; the gateway's mover service finishes or aborts one after a restart. */
function moverPrincipal(principal: RequestPrincipal): void {
  if (principal.Kind === PrincipalKind.Operator) return;
  if (principal.Kind === PrincipalKind.Service && principal.ID === ShardMoverService) return;
  throw new LedgerError(ErrorCode.PrincipalInvalid, `shard moves are asked for by an operator or ${ShardMoverService}`);
}

/** A move transaction's request, checked by the write path, with what its steps read. */
interface MoveWrite<T extends Envelope> {
  readonly write: Write<T>;
  readonly request: T;
  readonly store: Store;
  readonly txId: string;
  readonly now: string;
  readonly channel: string;
  /** The metadata-signing anchor whose JWS authorised the write. */
  readonly anchorId: string;
}

type Puts = [string, unknown][];

/**
 * One move transaction through the shared write path: operators or the mover service, a JWS by the
 * metadata-signing anchor, then `step` (which must not write: it returns the writes). Every move
 * transaction also keeps its signed request once, by TxID, since its records carry no copy of it.
 */
function moveStep<T extends Envelope, R>(
  ctx: Context,
  action: string,
  check: Check<T>,
  step: (m: MoveWrite<T>) => Promise<Outcome<R>>,
  requestJson: string,
  jws: string,
): Promise<string> {
  return submit(
    ctx,
    {
      action,
      roles: [Role.Operator],
      principal: moverPrincipal,
      check,
      limits: { requestBytes: ShardMoveLimits.RequestBytes, jwsBytes: ShardMoveLimits.JwsBytes },
      apply: async (write) => {
        const signer = await write.signedBy(AnchorKind.MetadataSigning);
        const outcome = await step({
          write,
          request: write.request,
          store: write.store,
          txId: write.txId,
          now: write.now.iso,
          channel: ctx.stub.getChannelID(),
          anchorId: signer.AnchorID,
        });
        const signed = { TxID: write.txId, Action: write.request.Action, AnchorID: signer.AnchorID, JWS: write.jws };
        return { ...outcome, puts: [...outcome.puts, [write.store.key(KeyType.ShardMoveRequest, write.txId), signed]] };
      },
    },
    requestJson,
    jws,
  );
}

function conflict(detail: string): never {
  throw new LedgerError(ErrorCode.ShardMoveConflict, detail);
}

export class ShardMoveTransactions extends TransactionGroup {
  /**
   * The source freezes each device and answers the state it froze. A device already frozen by this
   * same move is answered again (a retry), with `AlreadyPrepared`.
   */
  @Transaction()
  @Returns('string')
  async PrepareShardMove(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return moveStep(
      ctx,
      ShardMoveAction.PrepareShardMove,
      prepareShardMove,
      (write) => this.prepareShardMove(write),
      requestJson,
      jws,
    );
  }

  private async prepareShardMove(write: MoveWrite<Checked<typeof prepareShardMove>>): Promise<Outcome<unknown>> {
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
    return { puts, result: { Devices: answers } };
  }

  /**
   * The destination stages each device's state, after checking it hashes to the digest the source
   * froze. Nothing is live here until the destination's commit installs it.
   */
  @Transaction()
  @Returns('string')
  async AcceptShardMove(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return moveStep(
      ctx,
      ShardMoveAction.AcceptShardMove,
      acceptShardMove,
      (write) => this.acceptShardMove(write),
      requestJson,
      jws,
    );
  }

  private async acceptShardMove(write: MoveWrite<Checked<typeof acceptShardMove>>): Promise<Outcome<unknown>> {
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
    return { puts, result: { Moves: moves.map(withoutState) } satisfies ShardMoveOutcome };
  }

  /**
   * On the source: the freeze becomes a tombstone naming the destination, and the device leaves this
   * channel's indexes. On the destination: the staged records are installed and live. A commit
   * already made is answered again (a retry).
   */
  @Transaction()
  @Returns('string')
  async CommitShardMove(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return moveStep(
      ctx,
      ShardMoveAction.CommitShardMove,
      commitShardMove,
      (write) => this.commitShardMove(write),
      requestJson,
      jws,
    );
  }

  private async commitShardMove(write: MoveWrite<Checked<typeof commitShardMove>>): Promise<Outcome<unknown>> {
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
    return { puts, deletes, result: { Moves: moves.map(withoutState) } satisfies ShardMoveOutcome };
  }

  /**
   * Undoes a move not yet committed on this end: the source un-freezes the device, the destination
   * drops what it staged. The mover aborts the destination first, so the source never thaws a
   * device the destination could still install.
   */
  @Transaction()
  @Returns('string')
  async AbortShardMove(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return moveStep(
      ctx,
      ShardMoveAction.AbortShardMove,
      abortShardMove,
      (write) => this.abortShardMove(write),
      requestJson,
      jws,
    );
  }

  private async abortShardMove(write: MoveWrite<Checked<typeof abortShardMove>>): Promise<Outcome<unknown>> {
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
    return { puts, deletes, result: { Moves: moves } satisfies ShardMoveOutcome };
  }

  // ---- reads --------------------------------------------------------------------------------------

  @Transaction(false)
  @Returns('string')
  async GetShardMove(ctx: Context, deviceId: string, moveId: string): Promise<string> {
    reader(ctx, Overseers, ShardMoveAction.GetShardMove);
    return canonicalJson(
      await this.requireMove(new Store(ctx.stub), validate(id, deviceId, 'deviceId'), validate(id, moveId, 'moveId')),
    );
  }

  /** The signed request of a move transaction (`Proof.TxID` of a move record): re-verifiable by anyone. */
  @Transaction(false)
  @Returns('string')
  async GetShardMoveRequest(ctx: Context, txId: string): Promise<string> {
    reader(ctx, Overseers, ShardMoveAction.GetShardMoveRequest);
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
    reader(ctx, Overseers, ShardMoveAction.ListDeviceMoves);
    const store = new Store(ctx.stub);
    return canonicalJson(await store.all<ShardMoveRecord>(KeyType.ShardMove, [validate(id, deviceId, 'deviceId')]));
  }

  /** Moves prepared or accepted here and not yet committed or aborted: what a restarted mover resumes. */
  @Transaction(false)
  @Returns('string')
  async ListMovesInFlight(ctx: Context, size: string, mark: string): Promise<string> {
    reader(ctx, Overseers, ShardMoveAction.ListMovesInFlight);
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
    reader(ctx, Overseers, ShardMoveAction.ListShardDevices);
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

  private assertChannel(write: MoveWrite<Envelope>, expected: string, what: string): void {
    if (write.channel !== expected) {
      conflict(`this channel is ${write.channel}, the ${what} is ${expected}`);
    }
  }

  /** The proof of every record a transaction writes: the signed request itself is kept once, by TxID. */
  private proof(write: MoveWrite<Envelope>): ShardMoveRecord['Proof'] {
    return { AnchorID: write.anchorId, JWS: '', TxID: write.txId, Principal: write.write.principal };
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
}

@Info({ title: 'shard-move', description: 'Two-phase moves of devices and their keys between shard channels' })
export class ShardMoveContract extends contractOf(ShardMoveContractName, [ShardMoveTransactions]) {}

/** Answers leave out the staged state (it can be megabytes); GetShardMove has it. */
function withoutState(move: ShardMoveRecord): ShardMoveRecord {
  return { ...move, State: null };
}

const pageSizeOf = (value: string): number => {
  if (!/^\d{1,4}$/.test(value)) throw new LedgerError(ErrorCode.InvalidArgument, 'pageSize must be an integer');
  return validate(int(1, Limits.PageSize), Number(value), 'pageSize');
};
const bookmarkOf = (value: string): string => validate(str({ min: 0, max: 1024 }), value, 'bookmark');
