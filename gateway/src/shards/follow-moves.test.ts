import { expect } from 'chai';
import { ErrorCode } from '@keyfleet/protocol';
import { GatewayError, GatewayErrorCode } from '../errors';
import type { LedgerClient, Written } from '../ledger/ledger-client';
import { followShardMoves } from './follow-moves';

const refusal = (code: ErrorCode, text: string) => new GatewayError(GatewayErrorCode.LedgerRejected, text, code);
const moving = refusal(ErrorCode.DeviceMoving, 'device d-1 is moving to keyfleet-shard1 (move mv-1); retry shortly');
const moved = refusal(ErrorCode.DeviceMoved, 'device d-1 moved to keyfleet-shard1 (move mv-1)');

/** A client that answers from a script, one entry per call: an error to throw or a record. */
function scripted(script: unknown[]): LedgerClient & { calls: number } {
  const client = {
    calls: 0,
    write<T>(): Promise<Written<T>> {
      const next = script[client.calls++];
      if (next instanceof Error) return Promise.reject(next);
      return Promise.resolve({ transactionId: `tx-${String(client.calls)}`, record: next as T });
    },
    read<T>(): Promise<T> {
      const next = script[client.calls++];
      return next instanceof Error ? Promise.reject(next) : Promise.resolve(next as T);
    },
  };
  return client;
}

describe('followShardMoves: requests that meet a device in the middle of a move', () => {
  let clock: number;
  let assigned: [string, number][];
  const routing = {
    shardIndex: (channel: string) => ['keyfleet', 'keyfleet-shard1'].indexOf(channel),
    directory: { assignDevice: (id: string, shard: number) => assigned.push([id, shard]) },
  };
  const options = (retryForMs = 5_000) => ({
    retryForMs,
    now: () => clock,
    sleep: (ms: number) => {
      clock += ms;
      return Promise.resolve();
    },
  });

  beforeEach(() => {
    clock = 0;
    assigned = [];
  });

  it('follows DEVICE_MOVED to the destination it names, and answers from there', async () => {
    const inner = scripted([moved, { ok: true }]);
    const written = await followShardMoves(inner, routing, options()).write('RotateKey', {});
    expect(written.record).to.deep.equal({ ok: true });
    expect(assigned).to.deep.equal([['d-1', 1]]);
    expect(inner.calls).to.equal(2);
  });

  it('sends a request refused with DEVICE_MOVING again until the move is done', async () => {
    const inner = scripted([moving, moving, moving, { ok: true }]);
    expect(await followShardMoves(inner, routing, options()).read('GetDevice', 'd-1')).to.deep.equal({ ok: true });
    expect(inner.calls).to.equal(4);
    expect(clock).to.equal(100 + 200 + 400);
  });

  it('gives up on DEVICE_MOVING after retryForMs, with the refusal as it came', async () => {
    const inner = scripted(Array.from({ length: 50 }, () => moving));
    const err = await followShardMoves(inner, routing, options(1_000))
      .write('SuspendDevice', {})
      .catch((e: unknown) => e);
    expect(err).to.equal(moving);
    expect(clock).to.be.at.most(1_000);
  });

  it('passes every other refusal through at once, and follows a device that keeps moving only so far', async () => {
    const other = refusal(ErrorCode.KeyNotFound, 'key k does not exist');
    const rows: [string, unknown[], number][] = [
      ['KEY_NOT_FOUND', [other], 1],
      ['a move loop', Array.from({ length: 10 }, () => moved), 5],
    ];
    for (const [name, script, calls] of rows) {
      const inner = scripted(script);
      const err = await followShardMoves(inner, routing, options())
        .write('RotateKey', {})
        .catch((e: unknown) => e);
      expect(err, name).to.be.instanceOf(GatewayError);
      expect(inner.calls, name).to.equal(calls);
    }
  });
});
