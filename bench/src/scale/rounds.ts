import { cpus } from 'node:os';
import { median } from '@keyfleet/agent/fleet';
import { machineCpuSeconds } from '../service-process';
import { cpuByKind, rssByKind, sampleProcesses, type ProcessKind } from './processes';
import type { ShardLoad, ShardTally, Workload } from './shard-load';

/** One timed round: `shards` channels loaded side by side with one workload. */
export interface RoundResult {
  readonly workload: Workload;
  readonly shards: number;
  readonly repeat: number;
  readonly seconds: number;
  readonly perShard: readonly { channel: string; committed: number; perSecond: number; p50Ms: number }[];
  readonly committed: number;
  readonly aggregatePerSecond: number;
  readonly failures: Record<string, number>;
  /** Endorsements repeated because Org2's peer had not yet committed the previous write. */
  readonly retries: number;
  /** The first message of each failure code. */
  readonly failureSamples: Record<string, string>;
  /** CPU milliseconds per committed transaction, by Fabric process kind and for the load generator. */
  readonly cpuMsPerTx: Record<ProcessKind | 'loadgen', number>;
  /** Busy share of the whole machine (every core, every user) during the round, 0–1. */
  readonly machineBusy: number;
  /**
   * Share of the machine's cores that the network's processes (peers, orderers, chaincode servers,
   * CAs) got during the round, 0–1. On a machine shared with other work this, not the clock,
   * bounds throughput: transactions per network CPU-second is the figure that compares across runs.
   */
  readonly networkCpuShare: number;
  /** Committed transactions per CPU-second of the network's processes. */
  readonly txPerNetworkCpuSecond: number;
  /** Mean RSS of one process of each kind at the end of the round, bytes. */
  readonly rssBytes: Partial<Record<ProcessKind, number>>;
}

export interface RoundOptions {
  readonly workload: Workload;
  readonly loads: readonly ShardLoad[];
  readonly concurrency: number;
  readonly seconds: number;
  /** Bound on transactions started per shard (the round stops at whichever comes first). */
  readonly maxTxPerShard: number;
  readonly processes: () => ReadonlyMap<string, number>;
  readonly repeat: number;
}

export async function runRound(options: RoundOptions): Promise<RoundResult> {
  const { loads, seconds } = options;
  const before = sampleProcesses(options.processes());
  const machineBefore = machineCpuSeconds();
  const selfBefore = process.cpuUsage();
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const tallies: ShardTally[] = await Promise.all(
    loads.map((load) => {
      let startedTx = 0;
      // Checked before each transaction: the round ends on time or at the bound, never mid-write.
      return load.run(options.workload, options.concurrency, () => {
        if (performance.now() >= deadline || startedTx >= options.maxTxPerShard) return true;
        startedTx++;
        return false;
      });
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const after = sampleProcesses(options.processes());
  const machineAfter = machineCpuSeconds();
  const self = process.cpuUsage(selfBefore);

  const committed = tallies.reduce((sum, t) => sum + t.committed, 0);
  const perTx = (cpuSeconds: number) => (committed === 0 ? Number.NaN : (cpuSeconds * 1000) / committed);
  const cpu = cpuByKind(before, after);
  const networkCpu = [...cpu.values()].reduce((a, b) => a + b, 0);
  const failures: Record<string, number> = {};
  const failureSamples: Record<string, string> = {};
  for (const t of tallies) {
    for (const [code, n] of t.failures) failures[code] = (failures[code] ?? 0) + n;
    for (const [code, m] of t.failureSamples) failureSamples[code] ??= m;
  }
  return {
    workload: options.workload,
    shards: loads.length,
    repeat: options.repeat,
    seconds: elapsed,
    perShard: tallies.map((t) => ({
      channel: t.channel,
      committed: t.committed,
      perSecond: t.committed / elapsed,
      p50Ms: median(t.latenciesMs),
    })),
    committed,
    aggregatePerSecond: committed / elapsed,
    failures,
    retries: tallies.reduce((sum, t) => sum + t.retries, 0),
    failureSamples,
    cpuMsPerTx: {
      peer: perTx(cpu.get('peer') ?? 0),
      orderer: perTx(cpu.get('orderer') ?? 0),
      chaincode: perTx(cpu.get('chaincode') ?? 0),
      ca: perTx(cpu.get('ca') ?? 0),
      loadgen: perTx((self.user + self.system) / 1e6),
    },
    networkCpuShare: networkCpu / (elapsed * cpus().length),
    txPerNetworkCpuSecond: networkCpu === 0 ? Number.NaN : committed / networkCpu,
    machineBusy: (machineAfter.busy - machineBefore.busy) / Math.max(1e-9, machineAfter.total - machineBefore.total),
    rssBytes: Object.fromEntries(rssByKind(after)),
  };
}
