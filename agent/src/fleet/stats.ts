/** Latency samples of one kind of operation, and what a summary row says about them. */
export interface PhaseStats {
  readonly name: string;
  readonly ok: number;
  readonly failed: number;
  /** Failures by code (the gateway's `detail` or `code`, or the agent's code). */
  readonly failures: Readonly<Record<string, number>>;
  /** Wall-clock time from the first start to the last end, in milliseconds. */
  readonly elapsedMs: number;
  /** Successful operations per second over `elapsedMs`. */
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
}

/** The nearest-rank percentile (p in 0..100) of unsorted samples; NaN when there are none. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] as number;
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Collects latencies and failures of one phase while it runs. */
export class PhaseRecorder {
  private readonly latencies: number[] = [];
  private readonly failureCounts = new Map<string, number>();
  private first = Number.POSITIVE_INFINITY;
  private last = Number.NEGATIVE_INFINITY;

  constructor(readonly name: string) {}

  succeeded(startMs: number, endMs: number): void {
    this.latencies.push(endMs - startMs);
    this.span(startMs, endMs);
  }

  failed(code: string, startMs: number, endMs: number): void {
    this.failureCounts.set(code, (this.failureCounts.get(code) ?? 0) + 1);
    this.span(startMs, endMs);
  }

  get done(): number {
    let failed = 0;
    for (const n of this.failureCounts.values()) failed += n;
    return this.latencies.length + failed;
  }

  stats(): PhaseStats {
    const elapsedMs = this.last > this.first ? this.last - this.first : 0;
    const failures = Object.fromEntries([...this.failureCounts].sort(([a], [b]) => a.localeCompare(b)));
    return {
      name: this.name,
      ok: this.latencies.length,
      failed: Object.values(failures).reduce((a, b) => a + b, 0),
      failures,
      elapsedMs,
      perSecond: elapsedMs > 0 ? (this.latencies.length * 1000) / elapsedMs : 0,
      p50Ms: percentile(this.latencies, 50),
      p95Ms: percentile(this.latencies, 95),
      p99Ms: percentile(this.latencies, 99),
    };
  }

  private span(startMs: number, endMs: number): void {
    this.first = Math.min(this.first, startMs);
    this.last = Math.max(this.last, endMs);
  }
}

/** A plain-text table: a header row, a rule, right-aligned numbers, left-aligned text. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const numeric = (cell: string) => /^[-+]?[\d.,]+(?:\s?[a-z%/×x]*)?$/i.test(cell) || cell === '—';
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => {
        const width = widths[i] ?? 0;
        return numeric(cell) ? cell.padStart(width) : cell.padEnd(width);
      })
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** Milliseconds with a precision that fits their size. */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}

export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond) || perSecond === 0) return '—';
  return perSecond >= 100 ? perSecond.toFixed(0) : perSecond.toFixed(1);
}

/** The summary table of phases, as the simulator prints it at the end. */
export function formatPhases(phases: readonly PhaseStats[]): string {
  return formatTable(
    ['phase', 'ok', 'failed', 'per s', 'p50 ms', 'p95 ms', 'p99 ms', 'failures'],
    phases.map((p) => [
      p.name,
      String(p.ok),
      String(p.failed),
      formatRate(p.perSecond),
      formatMs(p.p50Ms),
      formatMs(p.p95Ms),
      formatMs(p.p99Ms),
      Object.entries(p.failures)
        .map(([code, n]) => `${code}×${n}`)
        .join(' '),
    ]),
  );
}
