/** Runs tasks for the same key one at a time, in arrival order; tasks for other keys run freely. */
export type KeyedLock = <T>(key: string, task: () => Promise<T>) => Promise<T>;

export function newKeyedLock(): KeyedLock {
  const tails = new Map<string, Promise<unknown>>();
  return async <T>(key: string, task: () => Promise<T>): Promise<T> => {
    const previous = tails.get(key) ?? Promise.resolve();
    const run = previous.then(task, task);
    const settled = run.catch(() => undefined);
    tails.set(key, settled);
    try {
      return await run;
    } finally {
      if (tails.get(key) === settled) tails.delete(key);
    }
  };
}
