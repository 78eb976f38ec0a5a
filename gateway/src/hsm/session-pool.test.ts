import { expect } from 'chai';
import { HsmError } from './hsm-error.js';
import { SessionPool } from './session-pool.js';

/** A fake session factory: sessions are numbers; records opens and closes. */
function factory(): { opened: number[]; closed: number[]; open(): number; close(s: number): void } {
  let next = 1;
  const f = {
    opened: [] as number[],
    closed: [] as number[],
    open: () => {
      const s = next++;
      f.opened.push(s);
      return s;
    },
    close: (s: number) => {
      f.closed.push(s);
    },
  };
  return f;
}

describe('SessionPool', () => {
  it('never opens more than its size and serves waiters in order', async () => {
    const f = factory();
    const pool = new SessionPool(f, 2);
    const a = await pool.acquire();
    const b = await pool.acquire();
    const order: number[] = [];
    const waiting = [1, 2, 3].map((i) =>
      pool.acquire().then((lease) => {
        order.push(i);
        lease.release();
      }),
    );
    expect(pool.queued).to.equal(3);
    a.release();
    b.release();
    await Promise.all(waiting);
    expect(order).to.deep.equal([1, 2, 3]);
    expect(f.opened).to.deep.equal([1, 2]);
    expect(pool.openCount).to.equal(2);
  });

  it('gives each session to one holder at a time under heavy concurrency', async () => {
    const pool = new SessionPool(factory(), 3);
    const busy = new Set<number>();
    let overlaps = 0;
    await Promise.all(
      Array.from({ length: 500 }, async () => {
        const lease = await pool.acquire();
        if (busy.has(lease.session)) overlaps++;
        busy.add(lease.session);
        await new Promise((r) => setImmediate(r));
        busy.delete(lease.session);
        lease.release();
      }),
    );
    expect(overlaps).to.equal(0);
  });

  it('closes a discarded session and opens a fresh one for the next waiter', async () => {
    const f = factory();
    const pool = new SessionPool(f, 1);
    const a = await pool.acquire();
    const next = pool.acquire();
    a.discard();
    const b = await next;
    expect(f.closed).to.deep.equal([1]);
    expect(b.session).to.equal(2);
  });

  it('drops sessions of an older generation without closing them (C_CloseAllSessions did)', async () => {
    const f = factory();
    const pool = new SessionPool(f, 2);
    const a = await pool.acquire();
    const b = await pool.acquire();
    b.release();
    pool.invalidate();
    a.release();
    expect(f.closed).to.deep.equal([]);
    expect(pool.openCount).to.equal(0);
    expect((await pool.acquire()).session).to.equal(3);
  });

  it('rejects waiters and new work after close', async () => {
    const f = factory();
    const pool = new SessionPool(f, 1);
    const a = await pool.acquire();
    const waiter = pool.acquire();
    pool.close();
    let caught: unknown;
    try {
      await waiter;
    } catch (err) {
      caught = err;
    }
    expect(caught).to.be.instanceOf(HsmError).with.property('code', 'HSM_CLOSED');
    a.release();
    expect(f.closed).to.deep.equal([1]);
    let again: unknown;
    try {
      await pool.acquire();
    } catch (err) {
      again = err;
    }
    expect(again).to.be.instanceOf(HsmError).with.property('code', 'HSM_CLOSED');
  });

  it('does not count a session whose open() threw', async () => {
    let fail = true;
    const pool = new SessionPool(
      {
        open: () => {
          if (fail) throw new Error('CKR_TOKEN_NOT_PRESENT');
          return 7;
        },
        close: () => undefined,
      },
      1,
    );
    let caught: unknown;
    try {
      await pool.acquire();
    } catch (err) {
      caught = err;
    }
    expect(caught).to.be.instanceOf(Error);
    expect(pool.openCount).to.equal(0);
    fail = false;
    expect((await pool.acquire()).session).to.equal(7);
  });
});
