import './logging.js';

import { expect } from 'chai';

import {
  ErrorCode,
  movedStateDigest,
  ShardMoveAction,
  ShardMoverService,
  TransactionName,
  type DeviceRecord,
  type KeyRecord,
  type PreparedDevice,
  type ShardMoveOutcome,
  type ShardMoveRecord,
} from '@keyfleet/protocol';
import { ShardMoveContract } from './contract-shard-moves.js';
import { Harness, expectRejected } from './testing/harness.js';

const Source = 'keyfleet';
const Destination = 'keyfleet-shard1';
const moves = new ShardMoveContract();

type Tx = keyof ShardMoveContract;

/** Two shard channels: a harness (its own world state) per channel, the same anchors on both. */
describe('shard-move contract: two-phase moves of devices between shard channels', () => {
  let src: Harness;
  let dst: Harness;

  const move = (h: Harness, tx: Tx, request: Record<string, unknown>) =>
    h.on(moves, () => h.write(h.ids.operator, tx as never, request));
  const read = <T>(h: Harness, tx: Tx, ...args: string[]) =>
    h.on(moves, () => h.read<T>(h.ids.auditor, tx as never, ...args));

  const prepareReq = (h: Harness, fields: Record<string, unknown> = {}) =>
    h.req(ShardMoveAction.PrepareShardMove, {
      MoveID: 'm-1',
      Source,
      Destination,
      MapRevision: 2,
      Devices: ['dev-a'],
      ...fields,
    });
  const acceptReq = (h: Harness, prepared: PreparedDevice[], fields: Record<string, unknown> = {}) =>
    h.req(ShardMoveAction.AcceptShardMove, {
      MoveID: 'm-1',
      Source,
      Destination,
      MapRevision: 2,
      Devices: prepared.map((p) => ({
        DeviceID: p.Move.DeviceID,
        PrepareTxID: p.Move.PrepareTxID,
        StateDigest: p.Move.StateDigest,
        State: p.State,
      })),
      ...fields,
    });
  const commitReq = (h: Harness, digest: string, counterpart: string, fields: Record<string, unknown> = {}) =>
    h.req(ShardMoveAction.CommitShardMove, {
      MoveID: 'm-1',
      Devices: [{ DeviceID: 'dev-a', StateDigest: digest, CounterpartTxID: counterpart }],
      ...fields,
    });
  const abortReq = (h: Harness, fields: Record<string, unknown> = {}) =>
    h.req(ShardMoveAction.AbortShardMove, { MoveID: 'm-1', Devices: ['dev-a'], Reason: 'operator abort', ...fields });

  const rotate = (h: Harness, current: number) =>
    h.write<KeyRecord>(h.ids.operator, TransactionName.RotateKey, h.rotateRequest('k-a', current));
  const suspend = (h: Harness) =>
    h.write<DeviceRecord>(
      h.ids.operator,
      TransactionName.SuspendDevice,
      h.req(TransactionName.SuspendDevice, { DeviceID: 'dev-a', Reason: 'maintenance' }),
    );

  /** The whole protocol for dev-a, src → dst; answers each step's records. */
  async function moveAll(from: Harness, to: Harness, moveId: string, fromChannel: string, toChannel: string) {
    const ends = { MoveID: moveId, Source: fromChannel, Destination: toChannel };
    const prepared = await move(from, 'PrepareShardMove', prepareReq(from, ends));
    const { Devices } = prepared as { Devices: PreparedDevice[] };
    const accepted = (await move(to, 'AcceptShardMove', acceptReq(to, Devices, ends))) as ShardMoveOutcome;
    const digest = Devices[0]?.Move.StateDigest ?? '';
    const sourceCommit = (await move(
      from,
      'CommitShardMove',
      commitReq(from, digest, accepted.Moves[0]?.AcceptTxID ?? '', { MoveID: moveId }),
    )) as ShardMoveOutcome;
    const destinationCommit = (await move(
      to,
      'CommitShardMove',
      commitReq(to, digest, sourceCommit.Moves[0]?.SourceCommitTxID ?? '', { MoveID: moveId }),
    )) as ShardMoveOutcome;
    return { prepared: Devices, accepted, sourceCommit, destinationCommit };
  }

  beforeEach(async () => {
    src = await Harness.create();
    dst = await Harness.create();
    dst.stub.channelId = Destination;
    await src.bootstrap();
    await dst.bootstrap();
    await src.write(src.ids.operator, TransactionName.EnrolDevice, src.enrolRequest('dev-a'));
    await src.write(
      src.ids.operator,
      TransactionName.RegisterKey,
      src.keyRequest('k-a', { Owner: { Type: 'device', ID: 'dev-a' } }),
    );
    await rotate(src, 1);
  });

  it('moves a device and its keys: frozen, staged, gone from the source, live on the destination', async () => {
    const before = await src.read<DeviceRecord>(src.ids.auditor, TransactionName.GetDevice, 'dev-a');
    const { Devices: prepared } = (await move(src, 'PrepareShardMove', prepareReq(src))) as {
      Devices: PreparedDevice[];
    };
    const [frozen] = prepared;
    if (frozen === undefined) throw new Error('prepare answered no device');
    expect(frozen.State.Device).to.deep.equal(before);
    expect(frozen.State.Keys.map((k) => [k.KeyID, k.LatestVersion])).to.deep.equal([['k-a', 2]]);
    expect(frozen.Move.StateDigest).to.equal(movedStateDigest(frozen.State));

    // Prepared: the source still answers reads, refuses writes of the device and its keys.
    expect(await src.read<DeviceRecord>(src.ids.auditor, TransactionName.GetDevice, 'dev-a')).to.deep.equal(before);
    await expectRejected(src, rotate(src, 2), ErrorCode.DeviceMoving);
    await expectRejected(src, suspend(src), ErrorCode.DeviceMoving);

    const accepted = (await move(dst, 'AcceptShardMove', acceptReq(dst, prepared))) as ShardMoveOutcome;
    // Accepted: staged only; the destination tells callers to retry, and the source still answers.
    await expectRejected(dst, dst.read(dst.ids.auditor, TransactionName.GetDevice, 'dev-a'), ErrorCode.DeviceMoving);
    await expectRejected(dst, dst.read(dst.ids.auditor, TransactionName.GetKey, 'k-a'), ErrorCode.DeviceMoving);
    await expectRejected(dst, rotate(dst, 2), ErrorCode.DeviceMoving);
    expect(await src.read<DeviceRecord>(src.ids.auditor, TransactionName.GetDevice, 'dev-a')).to.deep.equal(before);
    const acceptTx = accepted.Moves[0]?.AcceptTxID ?? '';

    const digest = frozen.Move.StateDigest;
    const sourceCommit = (await move(src, 'CommitShardMove', commitReq(src, digest, acceptTx))) as ShardMoveOutcome;
    const gone = await expectRejected(
      src,
      src.read(src.ids.auditor, TransactionName.GetDevice, 'dev-a'),
      ErrorCode.DeviceMoved,
    );
    expect(gone.message).to.contain(`moved to ${Destination}`);
    await expectRejected(src, src.read(src.ids.auditor, TransactionName.GetKey, 'k-a'), ErrorCode.DeviceMoved);
    await expectRejected(src, rotate(src, 2), ErrorCode.DeviceMoved);
    // History stays readable where it happened; the device has left the source's group listing.
    const history = await src.read<unknown[]>(src.ids.auditor, TransactionName.GetKeyHistory, 'k-a');
    expect(history).to.have.length(2);
    const listed = await src.read<{ Records: unknown[] }>(
      src.ids.auditor,
      TransactionName.ListDevicesByGroup,
      'gw-edge',
      '10',
      '',
    );
    expect(listed.Records).to.deep.equal([]);

    const sourceCommitTx = sourceCommit.Moves[0]?.SourceCommitTxID ?? '';
    await move(dst, 'CommitShardMove', commitReq(dst, digest, sourceCommitTx));
    expect(await dst.read<DeviceRecord>(dst.ids.auditor, TransactionName.GetDevice, 'dev-a')).to.deep.equal(before);
    const rotated = await rotate(dst, 2);
    expect(rotated.LatestVersion).to.equal(3);
    expect(rotated.Versions.map((v) => v.Version)).to.deep.equal([1, 2, 3]);

    // The two channels' records link up: each names the other's transactions.
    const [atSource] = await read<ShardMoveRecord[]>(src, 'ListDeviceMoves', 'dev-a');
    const [atDestination] = await read<ShardMoveRecord[]>(dst, 'ListDeviceMoves', 'dev-a');
    expect(atSource).to.include({ End: 'source', Phase: 'committed', AcceptTxID: acceptTx, StateDigest: digest });
    expect(atDestination).to.include({
      End: 'destination',
      Phase: 'committed',
      PrepareTxID: atSource?.PrepareTxID,
      AcceptTxID: acceptTx,
      SourceCommitTxID: atSource?.SourceCommitTxID,
      StateDigest: digest,
      State: null,
    });
    // Each shard's load counts the device where it lives now (its old records stay for their history).
    expect(await src.read(src.ids.auditor, TransactionName.GetShardLoad)).to.deep.equal({ Devices: 0, Keys: 0 });
    expect(await dst.read(dst.ids.auditor, TransactionName.GetShardLoad)).to.deep.equal({ Devices: 1, Keys: 1 });
    // The signed request behind each record, kept once per transaction.
    const signed = await read<{ Action: string; JWS: string }>(src, 'GetShardMoveRequest', atSource?.PrepareTxID ?? '');
    expect(signed.Action).to.equal(ShardMoveAction.PrepareShardMove);
    expect(signed.JWS.split('.')).to.have.length(3);
    await expectRejected(src, read(src, 'GetShardMoveRequest', 'nope'), ErrorCode.ShardMoveNotFound);
    expect(await read(src, 'ListMovesInFlight', '10', '')).to.deep.include({ Records: [] });
    expect(await read(dst, 'ListMovesInFlight', '10', '')).to.deep.include({ Records: [] });
  });

  it('answers retries of every step with the same records and writes no second copy', async () => {
    const first = (await move(src, 'PrepareShardMove', prepareReq(src))) as { Devices: PreparedDevice[] };
    const again = (await move(src, 'PrepareShardMove', prepareReq(src))) as { Devices: PreparedDevice[] };
    expect(again.Devices[0]?.AlreadyPrepared).to.equal(true);
    expect(again.Devices[0]?.Move).to.deep.equal(first.Devices[0]?.Move);
    const accepted = (await move(dst, 'AcceptShardMove', acceptReq(dst, first.Devices))) as ShardMoveOutcome;
    const acceptedAgain = (await move(dst, 'AcceptShardMove', acceptReq(dst, first.Devices))) as ShardMoveOutcome;
    expect(acceptedAgain.Moves).to.deep.equal(accepted.Moves);
    const inFlight = await read<{ Records: ShardMoveRecord[] }>(dst, 'ListMovesInFlight', '10', '');
    expect(inFlight.Records.map((m) => [m.DeviceID, m.Phase])).to.deep.equal([['dev-a', 'accepted']]);
    const digest = first.Devices[0]?.Move.StateDigest ?? '';
    const c1 = (await move(src, 'CommitShardMove', commitReq(src, digest, 'tx0001'))) as ShardMoveOutcome;
    const c2 = (await move(src, 'CommitShardMove', commitReq(src, digest, 'tx0001'))) as ShardMoveOutcome;
    expect(c2.Moves).to.deep.equal(c1.Moves);
    expect(await read<ShardMoveRecord[]>(src, 'ListDeviceMoves', 'dev-a')).to.have.length(1);
  });

  it('aborts a prepared move: the source thaws the device, the destination drops what it staged', async () => {
    const { Devices } = (await move(src, 'PrepareShardMove', prepareReq(src))) as { Devices: PreparedDevice[] };
    await move(dst, 'AcceptShardMove', acceptReq(dst, Devices));
    await move(dst, 'AbortShardMove', abortReq(dst));
    await expectRejected(dst, dst.read(dst.ids.auditor, TransactionName.GetKey, 'k-a'), ErrorCode.KeyNotFound);
    await move(src, 'AbortShardMove', abortReq(src));
    expect((await rotate(src, 2)).LatestVersion).to.equal(3);
    const [atDestination] = await read<ShardMoveRecord[]>(dst, 'ListDeviceMoves', 'dev-a');
    expect(atDestination).to.include({ Phase: 'aborted', AbortReason: 'operator abort', State: null });
    await expectRejected(
      dst,
      move(dst, 'CommitShardMove', commitReq(dst, Devices[0]?.Move.StateDigest ?? '', 'tx0001')),
      ErrorCode.ShardMoveConflict,
    );
    // A new move of the thawed device freezes its new state.
    const next = (await move(src, 'PrepareShardMove', prepareReq(src, { MoveID: 'm-2' }))) as {
      Devices: PreparedDevice[];
    };
    expect(next.Devices[0]?.State.Keys[0]?.LatestVersion).to.equal(3);
  });

  it('moves a device back to a channel it left, over its tombstone', async () => {
    await moveAll(src, dst, 'm-1', Source, Destination);
    await rotate(dst, 2);
    // A move back that is aborted leaves the old tombstone in place.
    const ends = { MoveID: 'm-x', Source: Destination, Destination: Source };
    const { Devices } = (await move(dst, 'PrepareShardMove', prepareReq(dst, ends))) as { Devices: PreparedDevice[] };
    await move(src, 'AcceptShardMove', acceptReq(src, Devices, ends));
    await move(src, 'AbortShardMove', abortReq(src, { MoveID: 'm-x' }));
    await move(dst, 'AbortShardMove', abortReq(dst, { MoveID: 'm-x' }));
    await expectRejected(src, src.read(src.ids.auditor, TransactionName.GetDevice, 'dev-a'), ErrorCode.DeviceMoved);
    await moveAll(dst, src, 'm-2', Destination, Source);
    const back = await src.read<KeyRecord>(src.ids.auditor, TransactionName.GetKey, 'k-a');
    expect(back.LatestVersion).to.equal(3);
    await expectRejected(dst, dst.read(dst.ids.auditor, TransactionName.GetKey, 'k-a'), ErrorCode.DeviceMoved);
    expect(
      (await read<ShardMoveRecord[]>(src, 'ListDeviceMoves', 'dev-a')).map((m) => `${m.MoveID} ${m.End} ${m.Phase}`),
    ).to.have.members(['m-1 source committed', 'm-x destination aborted', 'm-2 destination committed']);
  });

  it('lets the gateway mover service finish moves, and lists the devices a shard holds', async () => {
    await move(src, 'PrepareShardMove', prepareReq(src, { Principal: { Kind: 'service', ID: ShardMoverService } }));
    const listed = await read<{ Records: { DeviceID: string; Moving: string | null }[] }>(
      src,
      'ListShardDevices',
      '10',
      '',
    );
    expect(listed.Records).to.deep.equal([
      {
        DeviceID: 'dev-a',
        Group: 'gw-edge',
        Location: 'plant-7/hall-2',
        Function: 'temperature gateway',
        KeyIDs: ['k-a'],
        Moving: 'm-1',
      },
    ]);
  });

  it('refuses hostile or misplaced steps and writes nothing', async () => {
    const prepared = async () =>
      ((await move(src, 'PrepareShardMove', prepareReq(src))) as { Devices: PreparedDevice[] }).Devices;
    const tamper = (devices: PreparedDevice[], change: (state: PreparedDevice['State']) => unknown) =>
      devices.map((d) => ({ ...d, State: change(structuredClone(d.State)) as PreparedDevice['State'] }));
    const rows: [string, () => Promise<unknown>, ErrorCode][] = [
      [
        'an auditor prepares',
        () => src.on(moves, () => src.write(src.ids.auditor, 'PrepareShardMove' as never, prepareReq(src))),
        ErrorCode.AccessDenied,
      ],
      [
        'an application principal',
        () => move(src, 'PrepareShardMove', prepareReq(src, { Principal: { Kind: 'application', ID: 'app-billing' } })),
        ErrorCode.PrincipalInvalid,
      ],
      [
        'another service principal',
        () =>
          move(src, 'PrepareShardMove', prepareReq(src, { Principal: { Kind: 'service', ID: 'gateway.scheduler' } })),
        ErrorCode.PrincipalInvalid,
      ],
      [
        'a prepare on the wrong channel',
        () => move(dst, 'PrepareShardMove', prepareReq(dst)),
        ErrorCode.ShardMoveConflict,
      ],
      [
        'Source = Destination',
        () => move(src, 'PrepareShardMove', prepareReq(src, { Destination: Source })),
        ErrorCode.InvalidArgument,
      ],
      [
        'an unknown device',
        () => move(src, 'PrepareShardMove', prepareReq(src, { Devices: ['nope'] })),
        ErrorCode.DeviceNotFound,
      ],
      [
        'an unknown field',
        () => move(src, 'PrepareShardMove', prepareReq(src, { Force: true })),
        ErrorCode.InvalidArgument,
      ],
      ['no devices', () => move(src, 'PrepareShardMove', prepareReq(src, { Devices: [] })), ErrorCode.InvalidArgument],
      [
        'too many devices',
        () =>
          move(src, 'PrepareShardMove', prepareReq(src, { Devices: Array.from({ length: 201 }, (_, i) => `d-${i}`) })),
        ErrorCode.InvalidArgument,
      ],
      [
        'a channel name outside the grammar',
        () => move(src, 'PrepareShardMove', prepareReq(src, { Destination: 'Shard_1' })),
        ErrorCode.InvalidArgument,
      ],
      [
        'a second move of a frozen device',
        async () => {
          await prepared();
          return move(src, 'PrepareShardMove', prepareReq(src, { MoveID: 'm-2' }));
        },
        ErrorCode.ShardMoveConflict,
      ],
      [
        'an accept whose state was changed on the way',
        async () => {
          const devices = tamper(await prepared(), (s) => ({ ...s, Device: { ...s.Device, Status: 'revoked' } }));
          return move(dst, 'AcceptShardMove', acceptReq(dst, devices));
        },
        ErrorCode.ShardMoveMismatch,
      ],
      [
        'an accept that drops a key',
        async () =>
          move(
            dst,
            'AcceptShardMove',
            acceptReq(
              dst,
              tamper(await prepared(), (s) => ({ ...s, Keys: [] })),
            ),
          ),
        ErrorCode.ShardMoveMismatch,
      ],
      [
        "an accept carrying another device's key",
        async () => {
          const devices = tamper(await prepared(), (s) => ({
            ...s,
            Keys: s.Keys.map((k) => ({ ...k, Owner: { Type: 'device', ID: 'dev-b' } })),
          }));
          return move(dst, 'AcceptShardMove', acceptReq(dst, devices));
        },
        ErrorCode.InvalidArgument,
      ],
      [
        'an accept with a state that is not an object',
        async () => {
          const devices = (await prepared()).map((d) => ({ ...d, State: 'everything' as never }));
          return move(dst, 'AcceptShardMove', acceptReq(dst, devices));
        },
        ErrorCode.InvalidArgument,
      ],
      [
        'an accept on the source channel',
        async () => move(src, 'AcceptShardMove', acceptReq(src, await prepared())),
        ErrorCode.ShardMoveConflict,
      ],
      [
        'an accept over a live device',
        async () => {
          const devices = await prepared();
          await dst.write(dst.ids.operator, TransactionName.EnrolDevice, dst.enrolRequest('dev-a'));
          return move(dst, 'AcceptShardMove', acceptReq(dst, devices));
        },
        ErrorCode.DeviceExists,
      ],
      [
        'a commit with another digest',
        async () => {
          await prepared();
          return move(src, 'CommitShardMove', commitReq(src, 'ab'.repeat(32), 'tx0001'));
        },
        ErrorCode.ShardMoveMismatch,
      ],
      [
        'a commit of a move never prepared',
        () => move(src, 'CommitShardMove', commitReq(src, 'ab'.repeat(32), 'tx0001')),
        ErrorCode.ShardMoveNotFound,
      ],
      [
        'an abort after the source committed',
        async () => {
          const [d] = await prepared();
          await move(src, 'CommitShardMove', commitReq(src, d?.Move.StateDigest ?? '', 'tx0001'));
          return move(src, 'AbortShardMove', abortReq(src));
        },
        ErrorCode.ShardMoveConflict,
      ],
      [
        'a prepare of a device that left',
        async () => {
          const [d] = await prepared();
          await move(src, 'CommitShardMove', commitReq(src, d?.Move.StateDigest ?? '', 'tx0001'));
          return move(src, 'PrepareShardMove', prepareReq(src, { MoveID: 'm-3' }));
        },
        ErrorCode.DeviceMoved,
      ],
    ];
    for (const [name, attempt, code] of rows) {
      src = await Harness.create();
      dst = await Harness.create();
      dst.stub.channelId = Destination;
      await src.bootstrap();
      await dst.bootstrap();
      await src.write(src.ids.operator, TransactionName.EnrolDevice, src.enrolRequest('dev-a'));
      await src.write(
        src.ids.operator,
        TransactionName.RegisterKey,
        src.keyRequest('k-a', { Owner: { Type: 'device', ID: 'dev-a' } }),
      );
      const promise = attempt();
      // The refusing harness is whichever the row's last step ran on; check both wrote nothing.
      let caught: unknown;
      try {
        await promise;
      } catch (err) {
        caught = err;
      }
      expect(caught, name).to.be.instanceOf(Error);
      expect((caught as Error).message, name).to.match(new RegExp(`^${code}: `));
      expect(src.lastRejectedWrites + dst.lastRejectedWrites, `${name}: writes attempted`).to.equal(0);
    }
  });
});
