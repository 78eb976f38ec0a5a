import { expect } from 'chai';
import { Harness, ShardMoveContract } from '@keyfleet/chaincode/testing';
import {
  errorCodeOf,
  ShardMoveAction,
  TransactionName,
  type DeviceRecord,
  type PreparedDevice,
  type ShardMapRecord,
  type ShardMoveOutcome,
} from '@keyfleet/protocol';
import { GatewayError, GatewayErrorCode } from '../errors';
import type { LedgerAction, LedgerClient } from '../ledger/ledger-client';
import { newShardMover, type MoverShards } from './mover';

const moves = new ShardMoveContract();
const Channels = ['keyfleet', 'keyfleet-shard1'];

/**
 * A ledger client over one harness: the real contracts in process, one world state per channel,
 * requests signed by the harness's metadata anchor; refusals as the Fabric transport reports them.
 */
function clientOver(h: Harness): LedgerClient {
  const refused = (err: unknown): never => {
    const message = (err as Error).message;
    const code = errorCodeOf(message);
    if (code === undefined) throw err;
    throw new GatewayError(GatewayErrorCode.LedgerRejected, message.slice(code.length + 2), code);
  };
  const run = <T>(action: LedgerAction, work: (method: string) => Promise<T>): Promise<T> => {
    const [contract, method] = action.includes(':') ? action.split(':') : ['keyfleet', action];
    const call = () => work(method ?? '').catch(refused);
    return contract === 'shard-move' ? h.on(moves, call) : call();
  };
  return {
    write: (action, fields) =>
      run(action, async (method) => ({
        transactionId: '',
        record: await h.write(h.ids.operator, method as never, h.req(action, { ...fields })),
      })) as never,
    read: (action, ...args) => run(action, (method) => h.read(h.ids.auditor, method as never, ...args)),
  };
}

describe('the shard mover over the real contracts (two channels in process)', () => {
  let shards: Harness[];
  let governance: Harness;
  let assigned: [string, number][];
  let mover: ReturnType<typeof newShardMover>;
  const client = (i: number) => clientOver(shards[i] as Harness);

  beforeEach(async () => {
    shards = [await Harness.create(), await Harness.create()];
    governance = await Harness.create();
    (shards[1] as Harness).stub.channelId = 'keyfleet-shard1';
    governance.stub.channelId = 'keyfleet-governance';
    for (const h of [...shards, governance]) await h.bootstrap();
    const home = shards[0] as Harness;
    for (const id of ['m-1', 'm-2', 'p-1']) {
      await home.write(
        home.ids.operator,
        TransactionName.EnrolDevice,
        home.enrolRequest(id, { Group: id.startsWith('m') ? 'meters' : 'pumps' }),
      );
      await home.write(
        home.ids.operator,
        TransactionName.RegisterKey,
        home.keyRequest(`${id}-k`, { Owner: { Type: 'device', ID: id } }),
      );
    }
    assigned = [];
    const g = clientOver(governance);
    const router: MoverShards = {
      channels: Channels,
      shard: client,
      shardIndex: (channel) => Channels.indexOf(channel),
      governance: g,
      shardMap: () => g.read<ShardMapRecord>(TransactionName.GetShardMap).catch(() => null),
      refreshMap: () => undefined,
      directory: { assignDevice: (id, shard) => assigned.push([id, shard]) },
    };
    mover = newShardMover({ shards: router, batchSize: 1, sleep: () => Promise.resolve() });
  });

  const liveOn = async (deviceId: string): Promise<number[]> => {
    const on: number[] = [];
    for (const [i] of shards.entries()) {
      const found = await client(i)
        .read<DeviceRecord>(TransactionName.GetDevice, deviceId)
        .then(
          () => true,
          () => false,
        );
      if (found) on.push(i);
    }
    return on;
  };

  it('sends a group to a shard: a new map revision, its devices moved, the others left in place', async () => {
    const report = await mover.moveGroup('meters', 'keyfleet-shard1');
    expect(report).to.include({ mapRevision: 1, moved: 2, batches: 2 });
    expect(report.failed).to.deep.equal([]);
    expect(await liveOn('m-1')).to.deep.equal([1]);
    expect(await liveOn('m-2')).to.deep.equal([1]);
    expect(await liveOn('p-1')).to.deep.equal([0]);
    expect(assigned).to.have.deep.members([
      ['m-1', 1],
      ['m-2', 1],
    ]);
    expect((await mover.rebalance()).moved, 'nothing left to move').to.equal(0);
  });

  it('finishes after a crash at every point: prepared only, accepted, committed on the source', async () => {
    const route = { Source: 'keyfleet', Destination: 'keyfleet-shard1', MapRevision: 0 };
    const prepare = async (moveId: string, deviceId: string) =>
      (
        await client(0).write<{ Devices: PreparedDevice[] }>(ShardMoveAction.PrepareShardMove, {
          ...route,
          MoveID: moveId,
          Devices: [deviceId],
        })
      ).record.Devices;
    const accept = async (moveId: string, prepared: PreparedDevice[]) =>
      (
        await client(1).write<ShardMoveOutcome>(ShardMoveAction.AcceptShardMove, {
          ...route,
          MoveID: moveId,
          Devices: prepared.map((p) => ({
            DeviceID: p.Move.DeviceID,
            PrepareTxID: p.Move.PrepareTxID,
            StateDigest: p.Move.StateDigest,
            State: p.State,
          })),
        })
      ).record.Moves;
    // m-1: prepared only. m-2: accepted. p-1: committed on the source, not on the destination.
    await prepare('mv-a', 'm-1');
    await accept('mv-b', await prepare('mv-b', 'm-2'));
    const [accepted] = await accept('mv-c', await prepare('mv-c', 'p-1'));
    await client(0).write(ShardMoveAction.CommitShardMove, {
      MoveID: 'mv-c',
      Devices: [{ DeviceID: 'p-1', StateDigest: accepted?.StateDigest, CounterpartTxID: accepted?.AcceptTxID }],
    });
    for (const id of ['m-1', 'm-2', 'p-1']) expect(await liveOn(id), id).to.have.length.below(2);

    expect(await mover.resume()).to.deep.equal({ committed: 3, aborted: 0 });
    for (const id of ['m-1', 'm-2', 'p-1']) expect(await liveOn(id), id).to.deep.equal([1]);
    expect(await mover.resume(), 'nothing left in flight').to.deep.equal({ committed: 0, aborted: 0 });
  });

  it('aborts a move the destination aborted: the device thaws where it was', async () => {
    const route = { Source: 'keyfleet', Destination: 'keyfleet-shard1', MapRevision: 0, MoveID: 'mv-x' };
    const { record } = await client(0).write<{ Devices: PreparedDevice[] }>(ShardMoveAction.PrepareShardMove, {
      ...route,
      Devices: ['m-1'],
    });
    const [p] = record.Devices;
    await client(1).write(ShardMoveAction.AcceptShardMove, {
      ...route,
      Devices: [
        { DeviceID: 'm-1', PrepareTxID: p?.Move.PrepareTxID, StateDigest: p?.Move.StateDigest, State: p?.State },
      ],
    });
    await client(1).write(ShardMoveAction.AbortShardMove, { MoveID: 'mv-x', Devices: ['m-1'], Reason: 'test' });
    expect(await mover.resume()).to.deep.equal({ committed: 0, aborted: 1 });
    expect(await liveOn('m-1')).to.deep.equal([0]);
    const suspended = await client(0).write<DeviceRecord>(TransactionName.SuspendDevice, {
      DeviceID: 'm-1',
      Reason: 'writable again',
    });
    expect(suspended.record.Status).to.equal('suspended');
  });
});
