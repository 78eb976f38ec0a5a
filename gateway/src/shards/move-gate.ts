/**
 * The gateway's own requests held back while it moves their device (shards/mover.ts): a request
 * for a device (or one of its keys) in the batch being moved waits here until the batch is done,
 * rather than racing the move's prepare on the same records. Without it, under steady load each
 * prepare keeps losing Fabric's MVCC check to the writes it is meant to freeze. Other gateways'
 * requests still meet the ledger's freeze (`DEVICE_MOVING`) and are retried there.
 */
export interface MoveGate {
  /** Holds requests for these ids (devices and their keys) until `release` is called. */
  hold(ids: readonly string[]): () => void;
  /** Resolves when none of `ids` is held, or after `maxMs`, whichever comes first. */
  passed(ids: readonly string[], maxMs: number): Promise<void>;
}

export function newMoveGate(): MoveGate {
  const held = new Map<string, Promise<void>>();
  return {
    hold(ids) {
      let release: () => void = () => undefined;
      const done = new Promise<void>((resolve) => {
        release = resolve;
      });
      for (const id of ids) held.set(id, done);
      return () => {
        for (const id of ids) if (held.get(id) === done) held.delete(id);
        release();
      };
    },
    async passed(ids, maxMs) {
      const waits = ids.map((id) => held.get(id)).filter((w): w is Promise<void> => w !== undefined);
      if (waits.length === 0) return;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, maxMs);
      });
      await Promise.race([Promise.all(waits).then(() => undefined), timeout]);
      clearTimeout(timer);
    },
  };
}
