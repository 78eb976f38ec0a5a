import type { LedgerEvent, LedgerEventStream, LedgerEvents } from '../ledger/events';
import type { EventLog } from './dispatch';

/** What the follower reports, for metrics (events/metrics.ts). */
export interface FollowerObserver {
  /** `event` was handled and checkpointed. */
  handled(event: LedgerEvent): void;
  /** A stream was opened (true) or ended (false). */
  connected(up: boolean): void;
  /** A stream is opened again: after its deadline (`renewal`) or a failure (`failure`). */
  reopening(reason: 'renewal' | 'failure', delayMs: number): void;
}

export interface EventFollowerOptions {
  readonly events: LedgerEvents;
  /** Acts on one event; the event is checkpointed only after it resolves. A throw re-delivers it. */
  readonly handle: (event: LedgerEvent) => Promise<void>;
  /** Waits before a stream is opened again after a failure: doubling from `initialMs` up to `maxMs`. */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  /** A stream that ends sooner than this without an event counts as a failure (default 1 s). */
  readonly minStreamMs?: number;
  readonly observer?: FollowerObserver;
  readonly log?: EventLog;
  readonly now?: () => number;
  /** Resolves after `ms`, or at once when `signal` aborts. */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

export interface EventFollower {
  /** Starts following in the background; a second call does nothing. */
  start(): void;
  /** Stops: closes the stream, lets the event in hand finish (and be checkpointed), then resolves. */
  close(): Promise<void>;
}

/**
 * Follows the contract's events: handle, then checkpoint, one event at a time in commit order, so
 * after a restart the stream resumes right after the last event handled. When a stream fails it
 * is opened again from the checkpoint after a bounded, doubling backoff; when its deadline passes
 * it is opened again at once.
 */
export function newEventFollower(options: EventFollowerOptions): EventFollower {
  const { events, handle, observer, log } = options;
  const { initialMs, maxMs } = options.backoff ?? { initialMs: 250, maxMs: 30_000 };
  const minStreamMs = options.minStreamMs ?? 1000;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? abortableSleep;
  const abort = new AbortController();
  // A function, not the property: TypeScript would narrow `aborted` across the awaits.
  const closing = () => abort.signal.aborted;
  let stream: LedgerEventStream | undefined;
  let running: Promise<void> | undefined;

  async function follow(): Promise<void> {
    let delayMs = 0;
    while (!closing()) {
      if (delayMs > 0) await sleep(delayMs, abort.signal);
      if (closing()) return;
      const openedAt = now();
      let delivered = 0;
      let failure: unknown;
      try {
        stream = await events.open();
        observer?.connected(true);
        for await (const event of stream) {
          await handle(event);
          await events.checkpoint(event);
          delivered += 1;
          observer?.handled(event);
          if (closing()) break;
        }
      } catch (err) {
        failure = err;
      } finally {
        stream?.close();
        stream = undefined;
        observer?.connected(false);
      }
      if (closing()) return;
      const healthy = failure === undefined && (delivered > 0 || now() - openedAt >= minStreamMs);
      delayMs = healthy ? 0 : delivered > 0 ? initialMs : Math.min(maxMs, Math.max(initialMs, delayMs * 2));
      observer?.reopening(healthy ? 'renewal' : 'failure', delayMs);
      if (!healthy) {
        log?.warn(
          { err: failure, delayMs, checkpointBlock: events.checkpointBlock()?.toString() },
          'chaincode event stream failed; opening it again from the checkpoint',
        );
      }
    }
  }

  return {
    start() {
      running ??= follow();
    },
    async close() {
      abort.abort();
      stream?.close();
      await running;
    },
  };
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    timer.unref();
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
