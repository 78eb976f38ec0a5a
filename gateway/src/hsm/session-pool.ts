import { HsmError, HsmErrorCode } from './hsm-error.js';

/** A session lent to one operation; give it back exactly once. */
export interface Lease<S> {
  readonly session: S;
  /** Returns the session to the pool. */
  release(): void;
  /** The session is broken: close it (best effort) and let the pool open another later. */
  discard(): void;
  /**
   * The session handle is already invalid (CKR_SESSION_HANDLE_INVALID): forget it without
   * C_CloseSession, since after a library re-initialisation the same number may name a new session.
   */
  drop(): void;
}

/** How the pool opens and closes sessions; both are synchronous PKCS#11 calls. */
export interface SessionFactory<S> {
  open(): S;
  close(session: S): void;
}

interface Slot<S> {
  readonly session: S;
  readonly generation: number;
}

/**
 * A bounded pool: at most `size` sessions, each used by one operation at a time (PKCS#11 v2.40
 * §5.6: one active operation per session per kind), and a FIFO queue when all are busy.
 * `invalidate()` retires every session at once after a token fault; leases out at that moment
 * are dropped on return without C_CloseSession, because their handles may already name new
 * sessions after C_CloseAllSessions.
 */
export class SessionPool<S> {
  readonly #factory: SessionFactory<S>;
  readonly #size: number;
  readonly #idle: Slot<S>[] = [];
  #waiters: ((slot: Slot<S> | Error) => void)[] = [];
  #waitHead = 0;
  #open = 0;
  #generation = 0;
  #closed = false;

  constructor(factory: SessionFactory<S>, size: number) {
    this.#factory = factory;
    this.#size = size;
  }

  /** Sessions currently open (idle or lent). */
  get openCount(): number {
    return this.#open;
  }

  /** Operations waiting for a session. */
  get queued(): number {
    return this.#waiters.length - this.#waitHead;
  }

  /** Waits for a free session, opening one if the pool is below its size. */
  acquire(): Promise<Lease<S>> {
    if (this.#closed) return Promise.reject(new HsmError(HsmErrorCode.Closed, 'the HSM session pool is closed'));
    const idle = this.#idle.pop();
    if (idle !== undefined) return Promise.resolve(this.#lease(idle));
    if (this.#open < this.#size) {
      // Count it first, so a throwing open() cannot leave the pool over its size.
      this.#open++;
      try {
        return Promise.resolve(this.#lease({ session: this.#factory.open(), generation: this.#generation }));
      } catch (err) {
        this.#open--;
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
    }
    return new Promise((resolve, reject) => {
      this.#waiters.push((slot) => {
        if (slot instanceof Error) reject(slot);
        else resolve(this.#lease(slot));
      });
    });
  }

  /**
   * Retires every session: idle ones are forgotten now, lent ones when they come back. The caller
   * closes them all at once (C_CloseAllSessions) before opening new ones.
   */
  invalidate(): void {
    this.#generation++;
    this.#open -= this.#idle.length;
    this.#idle.length = 0;
  }

  /** Closes idle sessions and refuses new work; lent sessions close as they come back. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const closed = new HsmError(HsmErrorCode.Closed, 'the HSM session pool is closed');
    for (let i = this.#waitHead; i < this.#waiters.length; i++) this.#waiters[i]?.(closed);
    this.#waiters = [];
    this.#waitHead = 0;
    for (const slot of this.#idle.splice(0)) this.#closeQuietly(slot);
  }

  #lease(slot: Slot<S>): Lease<S> {
    let done = false;
    return {
      session: slot.session,
      release: () => {
        if (done) return;
        done = true;
        this.#giveBack(slot, true);
      },
      discard: () => {
        if (done) return;
        done = true;
        this.#giveBack(slot, false);
      },
      drop: () => {
        if (done) return;
        done = true;
        this.#giveBack({ session: slot.session, generation: -1 }, false);
      },
    };
  }

  #giveBack(slot: Slot<S>, healthy: boolean): void {
    if (slot.generation !== this.#generation) {
      // Already closed by C_CloseAllSessions during invalidation; the handle may be reused.
      this.#open--;
    } else if (this.#closed || !healthy) {
      this.#closeQuietly(slot);
    } else if (this.#waitHead < this.#waiters.length) {
      this.#nextWaiter()(slot);
      return;
    } else {
      this.#idle.push(slot);
      return;
    }
    this.#serveWaiterWithNewSession();
  }

  #closeQuietly(slot: Slot<S>): void {
    this.#open--;
    try {
      this.#factory.close(slot.session);
    } catch {
      // The session is already gone; there is nothing left to release.
    }
  }

  #nextWaiter(): (slot: Slot<S> | Error) => void {
    const waiter = this.#waiters[this.#waitHead];
    this.#waiters[this.#waitHead] = noop;
    this.#waitHead++;
    if (this.#waitHead > 1024 && this.#waitHead * 2 > this.#waiters.length) {
      this.#waiters = this.#waiters.slice(this.#waitHead);
      this.#waitHead = 0;
    }
    return waiter ?? noop;
  }

  /** A session slot was freed without being handed on: open a fresh one for the next waiter. */
  #serveWaiterWithNewSession(): void {
    if (this.#closed || this.#waitHead >= this.#waiters.length || this.#open >= this.#size) return;
    const waiter = this.#nextWaiter();
    this.#open++;
    try {
      waiter({ session: this.#factory.open(), generation: this.#generation });
    } catch (err) {
      this.#open--;
      waiter(err instanceof Error ? err : new Error(String(err)));
    }
  }
}

function noop(): void {
  // placeholder for a waiter already served
}
