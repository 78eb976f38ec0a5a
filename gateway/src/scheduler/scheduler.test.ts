import { expect } from 'chai';
import type { LedgerClient } from '../ledger/ledger-client';
import { newRotationScheduler, type RotationScheduler } from './scheduler';

/** A ledger on which nothing is due; each pass reads one page, which a test may hold back. */
function quietLedger() {
  let passes = 0;
  let hold: Promise<void> | undefined;
  let release: () => void = () => undefined;
  const ledger: LedgerClient = {
    write: () => Promise.reject(new Error('the scheduler writes nothing here')),
    async read<T>(transaction: string): Promise<T> {
      if (transaction !== 'ListKeysDueForRotation') throw new Error(`unexpected read ${transaction}`);
      passes += 1;
      if (hold !== undefined) await hold;
      return { Records: [], Bookmark: '' } as T;
    },
  };
  return {
    ledger,
    passes: () => passes,
    holdPasses() {
      hold = new Promise((resolve) => (release = resolve));
    },
    releasePasses() {
      hold = undefined;
      release();
    },
  };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (condition()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`timed out waiting until ${what}`);
}

describe('rotation scheduler wake (the attestation-failure event)', () => {
  let scheduler: RotationScheduler;
  let world: ReturnType<typeof quietLedger>;

  beforeEach(() => {
    world = quietLedger();
    scheduler = newRotationScheduler({
      ledger: world.ledger,
      rotateApplicationKey: () => Promise.reject(new Error('nothing is due')),
      intervalMs: 3_600_000, // never ticks during a test: every pass here is a wake's
      batchSize: 10,
    });
  });
  afterEach(async () => {
    world.releasePasses();
    await scheduler.stop();
  });

  it('runs a pass at once instead of at the next tick', async () => {
    scheduler.start();
    scheduler.wake();
    await until(() => world.passes() === 1, 'a pass ran');
  });

  it('several wakes during a pass make exactly one more pass after it', async () => {
    scheduler.start();
    world.holdPasses();
    scheduler.wake();
    await until(() => world.passes() === 1, 'the first pass reads');
    scheduler.wake();
    scheduler.wake();
    scheduler.wake();
    world.releasePasses();
    await until(() => world.passes() === 2, 'one more pass ran');
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(world.passes()).to.equal(2);
  });

  it('does nothing while stopped (KEYFLEET_SCHEDULER_INTERVAL_MS=0)', async () => {
    scheduler.wake();
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(world.passes()).to.equal(0);
  });
});
