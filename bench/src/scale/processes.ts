import { readFileSync } from 'node:fs';
import { cpuSeconds } from '../service-process';

/** The kinds of Fabric process whose unit costs the capacity model needs (docs/scaling.md). */
export const ProcessKind = { Peer: 'peer', Orderer: 'orderer', Chaincode: 'chaincode', Ca: 'ca' } as const;
export type ProcessKind = (typeof ProcessKind)[keyof typeof ProcessKind];

/** A process's kind from its pid-file name in network/network.sh's layout (`peer0.org1`, `cc.org2` …). */
export function kindOf(name: string): ProcessKind | undefined {
  if (/^peer\d+\.org\d+$/.test(name)) return ProcessKind.Peer;
  if (/^orderer\d+$/.test(name)) return ProcessKind.Orderer;
  if (/^cc\.org\d+$/.test(name)) return ProcessKind.Chaincode;
  if (/^ca\./.test(name)) return ProcessKind.Ca;
  return undefined;
}

/** VmRSS: a process's resident set size now (proc(5)), in bytes; NaN if it is gone. */
export function residentBytes(pid: number): number {
  try {
    const kib = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kib === undefined ? Number.NaN : Number(kib) * 1024;
  } catch {
    return Number.NaN;
  }
}

export interface ProcessSample {
  readonly name: string;
  readonly kind: ProcessKind;
  readonly cpuSeconds: number;
  readonly rssBytes: number;
}

/** CPU used so far and resident memory of each known process of the network. */
export function sampleProcesses(processes: ReadonlyMap<string, number>): ProcessSample[] {
  const out: ProcessSample[] = [];
  for (const [name, pid] of processes) {
    const kind = kindOf(name);
    if (kind === undefined) continue;
    out.push({ name, kind, cpuSeconds: cpuSeconds(pid), rssBytes: residentBytes(pid) });
  }
  return out;
}

/** CPU seconds each kind used between two samples (processes matched by name). */
export function cpuByKind(before: readonly ProcessSample[], after: readonly ProcessSample[]): Map<ProcessKind, number> {
  const out = new Map<ProcessKind, number>();
  for (const a of after) {
    const b = before.find((s) => s.name === a.name);
    if (b === undefined) continue;
    out.set(a.kind, (out.get(a.kind) ?? 0) + (a.cpuSeconds - b.cpuSeconds));
  }
  return out;
}

/** Mean resident bytes of one process of each kind. */
export function rssByKind(samples: readonly ProcessSample[]): Map<ProcessKind, number> {
  const sums = new Map<ProcessKind, { total: number; n: number }>();
  for (const s of samples) {
    const sum = sums.get(s.kind) ?? { total: 0, n: 0 };
    sum.total += s.rssBytes;
    sum.n++;
    sums.set(s.kind, sum);
  }
  return new Map([...sums].map(([kind, { total, n }]) => [kind, total / n]));
}
