/** Where the simulator reports progress: one phase at a time. */
export interface Progress {
  start(phase: string, total: number): void;
  tick(done: number, failed: number): void;
  finish(): void;
}

export interface ProgressOptions {
  readonly stream?: NodeJS.WriteStream;
  /** Redraw at most this often, ms; default 100 on a terminal, 2000 otherwise. */
  readonly intervalMs?: number;
  readonly now?: () => number;
}

/** Nothing at all (tests, `--quiet`). */
export const silentProgress: Progress = { start() {}, tick() {}, finish() {} };

/**
 * A progress bar on stderr. On a terminal it redraws one line in place (`\r`); in a pipe or a log
 * file it writes a plain line now and then, so CI logs stay readable.
 */
export function newProgress(options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  const tty = stream.isTTY;
  const interval = options.intervalMs ?? (tty ? 100 : 2000);
  const now = options.now ?? (() => Date.now());
  let phase = '';
  let total = 0;
  let startedAt = 0;
  let drawnAt = 0;
  let done = 0;
  let failed = 0;

  const render = (): string => {
    const fraction = total === 0 ? 1 : Math.min(1, done / total);
    const seconds = (now() - startedAt) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const width = 28;
    const filled = Math.round(fraction * width);
    const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
    const failedText = failed > 0 ? `  ${failed} failed` : '';
    return `${phase.padEnd(14)} [${bar}] ${String(done).padStart(String(total).length)}/${total}  ${rate.toFixed(0)}/s${failedText}`;
  };
  const draw = (final: boolean) => {
    drawnAt = now();
    if (tty) stream.write(`\r\x1b[2K${render()}${final ? '\n' : ''}`);
    else stream.write(`${render()}\n`);
  };

  return {
    start(name, count) {
      phase = name;
      total = count;
      done = 0;
      failed = 0;
      startedAt = now();
      drawnAt = 0;
      if (tty) draw(false);
    },
    tick(nowDone, nowFailed) {
      done = nowDone;
      failed = nowFailed;
      if (now() - drawnAt >= interval) draw(false);
    },
    finish() {
      draw(true);
    },
  };
}
