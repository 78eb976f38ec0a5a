import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ledgerCounts, openStack, reconcileAll, startLoad, type Acks, type Reconcile } from './harness';

/**
 * The soak: a steady mixed load on the dev profile for a while, the resident memory of every
 * keyfleet process sampled as it runs, and the same reconcile as the fault suite at the end.
 * It fails when memory grows without bound or an acknowledged operation is lost.
 */

export interface SoakOptions {
  readonly dir: string;
  readonly portBase: number;
  readonly devices: number;
  readonly durationMs: number;
  readonly sampleMs: number;
  readonly log: (line: string) => void;
}

export interface SoakResult {
  readonly attempted: number;
  readonly acknowledged: number;
  readonly failed: Readonly<Record<string, number>>;
  readonly lost: number;
  readonly duplicated: number;
  /** RSS in MiB of each process at each sample, oldest first. */
  readonly samples: readonly { readonly atSeconds: number; readonly rss: Readonly<Record<string, number>> }[];
  /** Processes whose memory kept growing through the middle and the last third of the run. */
  readonly growing: readonly string[];
  readonly reconcile: Reconcile;
}

/** Resident set size of a process in MiB (Linux /proc), or NaN once it is gone. */
export function rssMiB(pid: number): number {
  try {
    const kib = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${String(pid)}/status`, 'utf8'))?.[1];
    return kib === undefined ? Number.NaN : Number(kib) / 1024;
  } catch {
    return Number.NaN;
  }
}

/** How much a least-squares line through `series` rises from its first to its last point. */
function rise(series: readonly number[]): { rise: number; start: number } {
  const n = series.length;
  const meanX = (n - 1) / 2;
  const meanY = series.reduce((a, b) => a + b, 0) / n;
  const slope =
    series.reduce((sum, y, x) => sum + (x - meanX) * (y - meanY), 0) /
    series.reduce((sum, _, x) => sum + (x - meanX) ** 2, 0);
  return { rise: slope * (n - 1), start: meanY - slope * meanX };
}

/**
 * Growth without bound, told apart from warm-up, heap steps and garbage-collector noise: the first
 * third of the run is warm-up; a process grows without bound when its memory keeps rising through
 * both the middle and the last third (each by more than 8 MiB and 5%). A step up that then holds
 * (V8 sizing its heap once more) rises in one third only.
 */
export function growingProcesses(samples: SoakResult['samples']): string[] {
  if (samples.length < 6) return [];
  const third = Math.floor(samples.length / 3);
  const names = Object.keys(samples[0]?.rss ?? {});
  return names.filter((name) => {
    const series = samples.map((s) => s.rss[name] ?? Number.NaN);
    return [series.slice(third, 2 * third), series.slice(2 * third)].every((part) => {
      const line = rise(part);
      return line.rise > 8 && line.rise > 0.05 * line.start;
    });
  });
}

export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const stack = await openStack({ ...options, profile: 'dev' });
  try {
    const acks: Acks = { rotations: new Map(), attestations: new Map() };
    const pidOf = (name: string) => Number(readFileSync(join(options.dir, 'pids', `${name}.pid`), 'utf8').trim());
    const processes: Record<string, () => number | undefined> = {
      gateway: () => stack.gateway.child?.pid,
      verifier: () => stack.verifier.child?.pid,
      'chaincode server org1': () => pidOf('cc.org1'),
      'chaincode server org2': () => pidOf('cc.org2'),
    };
    const samples: { atSeconds: number; rss: Record<string, number> }[] = [];
    const started = Date.now();
    const sample = () => {
      const rss = Object.fromEntries(
        Object.entries(processes).map(([name, pid]) => {
          const p = pid();
          return [name, p === undefined ? Number.NaN : rssMiB(p)];
        }),
      );
      samples.push({ atSeconds: Math.round((Date.now() - started) / 1000), rss });
      options.log(
        `${String(samples.at(-1)?.atSeconds).padStart(5)} s  ${Object.entries(rss)
          .map(([name, mib]) => `${name} ${mib.toFixed(0)} MiB`)
          .join(', ')}`,
      );
    };
    const load = startLoad(stack, acks);
    const timer = setInterval(sample, options.sampleMs);
    await new Promise((r) => setTimeout(r, options.durationMs));
    clearInterval(timer);
    sample();
    await load.stop();
    const { lost, duplicated } = await ledgerCounts({ ...stack, acks });
    return {
      ...load.counts,
      lost,
      duplicated,
      samples,
      growing: growingProcesses(samples),
      reconcile: await reconcileAll(stack.fleet, stack.reader, stack.store),
    };
  } finally {
    await stack.close();
  }
}
