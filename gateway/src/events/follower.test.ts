import { expect } from 'chai';
import { canonicalBytes } from '@keyfleet/protocol';
import { GatewayError, GatewayErrorCode } from '../errors';
import type { LedgerEvent, LedgerEvents, LedgerEventStream } from '../ledger/events';
import { newDeviceDenials } from './device-denials';
import { newEventDispatcher } from './dispatch';
import { newEventFollower, type EventFollower, type EventFollowerOptions } from './follower';

/** What a checkpoint file holds: the last handled event's block and transaction. */
interface Checkpoint {
  block?: bigint;
  tx?: string;
}

/**
 * A ledger and its event service as Fabric's behave: events in commit order, several per block;
 * a stream opened with a checkpoint starts in its block, after its transaction.
 */
class FakeLedger {
  readonly committed: LedgerEvent[] = [];
  private block = 0n;
  private readonly waiting = new Set<() => void>();

  commit(...names: string[]): void {
    this.block += 1n;
    for (const name of names) {
      const transactionId = `tx-${String(this.committed.length + 1)}`;
      this.committed.push({
        name,
        payload: canonicalBytes({
          DeviceID: `dev-${String(this.committed.length + 1)}`,
          From: 'active',
          Reason: 'r',
          TxID: transactionId,
        }),
        blockNumber: this.block,
        transactionId,
      });
    }
    for (const wake of this.waiting) wake();
  }

  /** The event service of one process, over the checkpoint it keeps (a file, across restarts). */
  events(checkpoint: Checkpoint, script: StreamScript = {}): LedgerEvents & { opened: number } {
    const { committed, waiting } = this;
    const height = () => this.block + 1n;
    const source = {
      opened: 0,
      open(): Promise<LedgerEventStream> {
        const n = source.opened++;
        const failAfter = script.failAfter?.[n];
        const endAfter = script.endAfter?.[n];
        let closed = false;
        let wake: () => void = () => undefined;
        const start =
          checkpoint.tx === undefined ? 0 : committed.findIndex((e) => e.transactionId === checkpoint.tx) + 1;
        return Promise.resolve({
          close() {
            closed = true;
            wake();
          },
          async *[Symbol.asyncIterator]() {
            let next = start;
            let delivered = 0;
            for (;;) {
              if (closed) return;
              if (failAfter !== undefined && delivered === failAfter) {
                throw new GatewayError(GatewayErrorCode.LedgerUnavailable, 'the peer went away');
              }
              if (endAfter !== undefined && delivered === endAfter) return; // the deadline
              const event = committed[next];
              if (event === undefined) {
                await new Promise<void>((resolve) => {
                  wake = () => {
                    waiting.delete(wake);
                    resolve();
                  };
                  waiting.add(wake);
                });
                continue;
              }
              next += 1;
              delivered += 1;
              yield event;
            }
          },
        });
      },
      checkpoint(event: LedgerEvent) {
        if (script.failCheckpoint?.has(event.transactionId) === true) {
          script.failCheckpoint.delete(event.transactionId);
          return Promise.reject(new Error('crashed before the checkpoint was written'));
        }
        checkpoint.block = event.blockNumber;
        checkpoint.tx = event.transactionId;
        return Promise.resolve();
      },
      checkpointBlock: () => checkpoint.block,
      height: () => Promise.resolve(height()),
    };
    return source;
  }
}

interface StreamScript {
  /** For the n-th stream opened: fail after delivering this many events. */
  failAfter?: (number | undefined)[];
  /** For the n-th stream opened: end normally (its deadline) after this many events. */
  endAfter?: (number | undefined)[];
  /** Transactions whose checkpoint write fails once (a crash after handling, before checkpointing). */
  failCheckpoint?: Set<string>;
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (condition()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`timed out waiting until ${what}`);
}

describe('event follower with a checkpoint', () => {
  let ledger: FakeLedger;
  let checkpoint: Checkpoint;
  let handled: string[];
  let delays: number[];
  let reopened: string[];
  let follower: EventFollower | undefined;

  const follow = (options: Partial<EventFollowerOptions> & { script?: StreamScript } = {}) => {
    const events = ledger.events(checkpoint, options.script);
    follower = newEventFollower({
      events,
      handle: (event) => {
        handled.push(event.transactionId);
        return Promise.resolve();
      },
      backoff: { initialMs: 100, maxMs: 400 },
      minStreamMs: 0,
      sleep: (ms) => {
        delays.push(ms);
        return Promise.resolve();
      },
      observer: {
        handled: () => undefined,
        connected: () => undefined,
        reopening: (reason) => reopened.push(reason),
      },
      ...options,
    });
    follower.start();
    return events;
  };

  beforeEach(() => {
    ledger = new FakeLedger();
    checkpoint = {};
    handled = [];
    delays = [];
    reopened = [];
  });
  afterEach(async () => {
    await follower?.close();
    follower = undefined;
  });

  it('handles every event once, in commit order, from the first block, each checkpointed after it is handled', async () => {
    ledger.commit('DeviceSuspended', 'DeviceSuspended');
    const atHandling: (string | undefined)[] = [];
    follow({
      handle: (event) => {
        atHandling.push(checkpoint.tx);
        handled.push(event.transactionId);
        return Promise.resolve();
      },
    });
    ledger.commit('DeviceRevoked');
    await until(() => handled.length === 3, 'three events are handled');
    expect(handled).to.deep.equal(['tx-1', 'tx-2', 'tx-3']);
    expect(atHandling).to.deep.equal([undefined, 'tx-1', 'tx-2']);
    await until(() => checkpoint.tx === 'tx-3', 'the last one is checkpointed');
    expect(checkpoint.block).to.equal(2n);
  });

  it('resumes after a restart right after the last event handled: none again, none missed', async () => {
    ledger.commit('DeviceSuspended', 'DeviceReinstated');
    follow();
    await until(() => checkpoint.tx === 'tx-2', 'two are checkpointed');
    await follower?.close();
    // Committed while the process is down, the second one in the checkpoint's own block's successor.
    ledger.commit('DeviceSuspended');
    ledger.commit('DeviceRevoked', 'DeviceReinstated');
    follow();
    await until(() => handled.length === 5, 'the two new events are handled');
    ledger.commit('DeviceSuspended');
    await until(() => handled.length === 6, 'a live event is handled');
    expect(handled).to.deep.equal(['tx-1', 'tx-2', 'tx-3', 'tx-4', 'tx-5', 'tx-6']);
  });

  it('opens a failed stream again from the checkpoint, after a doubling backoff bounded by maxMs', async () => {
    ledger.commit('DeviceSuspended', 'DeviceSuspended', 'DeviceSuspended');
    // Streams 0-4 fail at once, stream 5 after one event, stream 6 works.
    const events = follow({ script: { failAfter: [0, 0, 0, 0, 0, 1] } });
    await until(() => handled.length === 3, 'every event is handled');
    expect(handled).to.deep.equal(['tx-1', 'tx-2', 'tx-3']);
    expect(delays).to.deep.equal([100, 200, 400, 400, 400, 100]);
    expect(reopened).to.deep.equal(Array(6).fill('failure'));
    expect(events.opened).to.equal(7);
  });

  it('opens a stream again at once when its deadline ends it', async () => {
    ledger.commit('DeviceSuspended', 'DeviceSuspended');
    follow({ script: { endAfter: [1, 0] } });
    await until(() => handled.length === 2, 'both events are handled');
    ledger.commit('DeviceRevoked');
    await until(() => handled.length === 3, 'the third is handled');
    expect(handled).to.deep.equal(['tx-1', 'tx-2', 'tx-3']);
    expect(reopened).to.deep.equal(['renewal', 'renewal']);
    expect(delays).to.deep.equal([]);
  });

  it('counts a stream that ends at once without an event as a failure: no busy loop', async () => {
    follow({ script: { endAfter: [0, 0, 0] }, minStreamMs: 60_000 });
    await until(() => reopened.length === 3, 'three streams have ended');
    expect(reopened).to.deep.equal(['failure', 'failure', 'failure']);
    expect(delays).to.deep.equal([100, 200, 400]);
  });

  it('does not checkpoint an event whose handling failed: it comes again and is handled once', async () => {
    ledger.commit('DeviceSuspended', 'DeviceRevoked', 'DeviceReinstated');
    let failed = false;
    follow({
      handle: (event) => {
        if (event.transactionId === 'tx-2' && !failed) {
          failed = true;
          return Promise.reject(new Error('ENOSPC'));
        }
        handled.push(event.transactionId);
        return Promise.resolve();
      },
    });
    await until(() => handled.length === 3, 'every event is handled');
    expect(handled).to.deep.equal(['tx-1', 'tx-2', 'tx-3']);
    expect(delays).to.deep.equal([100]);
  });

  it('a crash between acting and checkpointing delivers that event again; acting twice changes nothing', async () => {
    ledger.commit('DeviceSuspended');
    const denials = newDeviceDenials();
    const saved: number[] = [];
    const dispatch = newEventDispatcher({
      denials,
      store: {
        load: () => Promise.resolve(new Map()),
        save: (devices) => {
          saved.push(devices.size);
          return Promise.resolve();
        },
      },
    });
    follow({
      script: { failCheckpoint: new Set(['tx-1']) },
      handle: async (event) => {
        handled.push(event.transactionId);
        await dispatch(event);
      },
    });
    await until(() => checkpoint.tx === 'tx-1', 'the event is checkpointed');
    expect(handled).to.deep.equal(['tx-1', 'tx-1']);
    expect(saved).to.deep.equal([1]);
    expect(denials.refusal('dev-1')).to.equal('suspended');
  });

  it('close() ends a stream that waits for the next event, and stops', async () => {
    const events = follow();
    await until(() => events.opened === 1, 'a stream is open');
    await follower?.close();
    ledger.commit('DeviceSuspended');
    await new Promise((resolve) => setImmediate(resolve));
    expect(handled).to.deep.equal([]);
    expect(events.opened).to.equal(1);
  });
});
