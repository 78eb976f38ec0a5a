#!/usr/bin/env node
/**
 * `npm run scale`: what adding shards buys on one machine, measured at the ledger level. keyfleet's
 * own chaincode transactions (and the baseline's blind `Put`) go through @hyperledger/fabric-gateway
 * to every loaded shard channel side by side, in rounds that interleave 1, 2, 4 … shards so that
 * their ratios come from the same minutes of a shared machine. Per round: aggregate and per-shard
 * throughput, CPU per transaction of each Fabric process kind (from /proc), resident memory.
 *
 *   --up: makes one network per shard count (network/network.sh up --shards N), each loaded the
 *         same way, for the memory of each process as channels are added; the largest runs the
 *         throughput rounds. Each network is taken down once measured.
 *   --network-dir DIR: an existing network (e.g. the multi-host one), rounds only.
 *
 * Prints tables and writes bench/results/scale.json. BENCHMARKS.md and docs/scaling.md use them.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { formatMs, formatRate, formatTable, median } from '@keyfleet/agent/fleet';
import { openBenchNetwork, type BenchNetwork } from './network';
import { ProcessKind, rssByKind, sampleProcesses } from './scale/processes';
import { runRound, type RoundResult } from './scale/rounds';
import { loadOrMakeAnchor, openShardLoad, Workload, type ShardLoad } from './scale/shard-load';
import { repoRoot } from './service-process';

const usage = `Usage: node bench/dist/scale.js (--up | --network-dir DIR) [options]   (npm run scale)

  --up               one network per shard count under --work-dir, ports from --port-base
  --network-dir DIR  rounds on this running network (its shard channels; nothing is started)
  --shards LIST      shard counts, comma-separated, ascending (default 1,2,4)
  --workloads LIST   keyfleet,baseline (default both)
  --concurrency N    transactions in flight per shard (default 16)
  --seconds N        length of a round (default 15)
  --max-tx N         bound on transactions per shard per round (default 3000)
  --repeats N        rounds of each shard count and workload, interleaved; medians (default 2)
  --warm-seconds N   untimed keyfleet load on every channel before measuring (default 5)
  --signs N          ECDSA P-256 signatures per run of the HSM signing rate on SoftHSM, measured after
                     the rounds (bench/dist/sign-row.js, pooled signer, 3 runs; 0 skips it) (default 20000)
  --work-dir DIR     (default .fabric/scale)   --port-base N (default 16000)
  --out FILE         (default bench/results/scale.json)
`;

const { values } = parseArgs({
  options: {
    up: { type: 'boolean', default: false },
    'network-dir': { type: 'string' },
    shards: { type: 'string', default: '1,2,4' },
    workloads: { type: 'string', default: 'keyfleet,baseline' },
    concurrency: { type: 'string', default: '16' },
    seconds: { type: 'string', default: '15' },
    'max-tx': { type: 'string', default: '3000' },
    repeats: { type: 'string', default: '2' },
    'warm-seconds': { type: 'string', default: '5' },
    signs: { type: 'string', default: '20000' },
    'work-dir': { type: 'string', default: join(repoRoot, '.fabric', 'scale') },
    'port-base': { type: 'string', default: '16000' },
    out: { type: 'string', default: join(repoRoot, 'bench', 'results', 'scale.json') },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

function fail(message: string): never {
  process.stderr.write(`scale: ${message}\n${usage}`);
  process.exit(2);
}
if (values.help) {
  process.stdout.write(usage);
  process.exit(0);
}
function count(
  name: 'concurrency' | 'seconds' | 'max-tx' | 'repeats' | 'warm-seconds' | 'port-base' | 'signs',
  min: number,
  max: number,
) {
  const raw = values[name];
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max)
    fail(`--${name} must be an integer from ${min} to ${max}, got ${raw}`);
  return value;
}
const shardCounts = values.shards.split(',').map((s) => Number(s.trim()));
if (shardCounts.some((n, i) => !Number.isInteger(n) || n < 1 || n > 8 || (i > 0 && n <= (shardCounts[i - 1] ?? 0)))) {
  fail(`--shards takes ascending whole numbers from 1 to 8, got ${values.shards}`);
}
const workloads = values.workloads.split(',').map((w) => w.trim());
for (const w of workloads) if (w !== Workload.Keyfleet && w !== Workload.Baseline) fail(`unknown workload ${w}`);
if (values.up === (values['network-dir'] !== undefined)) fail('give either --up or --network-dir');
const options = {
  concurrency: count('concurrency', 1, 500),
  seconds: count('seconds', 1, 3600),
  maxTxPerShard: count('max-tx', 1, 10_000_000),
  repeats: count('repeats', 1, 20),
  warmSeconds: count('warm-seconds', 0, 600),
  portBase: count('port-base', 1024, 65000),
  signs: count('signs', 0, 10_000_000),
};
const log = (line: string) => process.stderr.write(`scale: ${line}\n`);
const maxShards = shardCounts[shardCounts.length - 1] ?? 1;

/** `network/network.sh VERB …` on DIR. */
async function networkSh(dir: string, ...args: string[]): Promise<void> {
  await promisify(execFile)('bash', [join(repoRoot, 'network', 'network.sh'), ...args, '--dir', dir], {
    maxBuffer: 1 << 24,
  });
}

async function upNetwork(shards: number): Promise<BenchNetwork> {
  const dir = join(values['work-dir'], `shards-${String(shards)}`);
  const started = performance.now();
  await networkSh(dir, 'down');
  await networkSh(dir, 'up', '--shards', String(shards), '--port-base', String(options.portBase));
  const network = openBenchNetwork(dir);
  await deployWorkload(network, Workload.Keyfleet);
  log(
    `network with ${String(shards)} shard(s) up and deployed in ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
  return network;
}

interface ChannelsOf {
  readonly shards: string[];
  /** Every channel the peers and orderers have joined: the shards and the governance channel. */
  readonly all: number;
}

function channelsOf(network: BenchNetwork): ChannelsOf {
  const description = JSON.parse(readFileSync(network.connectionProfile, 'utf8')) as {
    channel: string;
    channels?: { shards?: string[]; governance?: string | null };
  };
  const shards = description.channels?.shards ?? [description.channel];
  return { shards, all: shards.length + (typeof description.channels?.governance === 'string' ? 1 : 0) };
}

/** The workload's chaincode served (network.sh's chaincode servers run one package at a time). */
async function deployWorkload(network: BenchNetwork, workload: Workload): Promise<void> {
  if (workload === Workload.Keyfleet) await network.deploy('keyfleet');
  else await network.deploy('baseline', join(repoRoot, 'bench', 'baseline-chaincode'));
}

async function openLoads(network: BenchNetwork, shards: number): Promise<ShardLoad[]> {
  const channels = channelsOf(network).shards;
  if (channels.length < shards)
    throw new Error(`the network has ${String(channels.length)} shard channel(s), not ${String(shards)}`);
  const anchor = await loadOrMakeAnchor(join(network.dir, 'scale-anchor.json'));
  return Promise.all(channels.slice(0, shards).map((ch, k) => openShardLoad(network.connectionProfile, ch, k, anchor)));
}

async function warm(network: BenchNetwork, loads: readonly ShardLoad[]): Promise<void> {
  if (options.warmSeconds === 0) return;
  await runRound({
    workload: Workload.Keyfleet,
    loads,
    concurrency: options.concurrency,
    seconds: options.warmSeconds,
    maxTxPerShard: options.maxTxPerShard,
    processes: () => network.processes(),
    repeat: 0,
  });
}

interface MemoryRow {
  readonly shards: number;
  /** Channels each peer and orderer has joined: the shards and the governance channel. */
  readonly channels: number;
  readonly rssBytes: Partial<Record<ProcessKind, number>>;
}

async function main(): Promise<void> {
  const context = { cores: cpus().length, loadavgAtStart: loadavg(), startedAt: new Date().toISOString() };
  log(
    `${String(context.cores)} cores, load average ${context.loadavgAtStart.map((l) => l.toFixed(1)).join(' ')} at start`,
  );
  const memory: MemoryRow[] = [];
  let network: BenchNetwork;
  if (values.up) {
    // One network per smaller shard count, for memory only; the largest stays for the rounds.
    for (const shards of shardCounts.slice(0, -1)) {
      const small = await upNetwork(shards);
      const loads = await openLoads(small, shards);
      await warm(small, loads);
      for (const l of loads) l.close();
      memory.push({
        shards,
        channels: channelsOf(small).all,
        rssBytes: Object.fromEntries(rssByKind(sampleProcesses(small.processes()))),
      });
      await networkSh(small.dir, 'down');
    }
    network = await upNetwork(maxShards);
  } else {
    network = openBenchNetwork(values['network-dir'] as string);
  }

  const loads = await openLoads(network, maxShards);
  await deployWorkload(network, Workload.Keyfleet);
  await warm(network, loads);
  memory.push({
    shards: maxShards,
    channels: channelsOf(network).all,
    rssBytes: Object.fromEntries(rssByKind(sampleProcesses(network.processes()))),
  });

  // The ledger's growth per transaction: what one peer's data directory (blocks, state and history
  // databases of every channel) gained over the rounds, per transaction committed in them.
  const peerData = join(network.dir, 'nodes', 'peer0.org1', 'data');
  const dataBefore = await diskBytes(peerData);
  const rounds: RoundResult[] = [];
  for (const workload of workloads as Workload[]) {
    await deployWorkload(network, workload);
    for (let repeat = 1; repeat <= options.repeats; repeat++) {
      for (const shards of shardCounts) {
        const result = await runRound({
          workload,
          loads: loads.slice(0, shards),
          concurrency: options.concurrency,
          seconds: options.seconds,
          maxTxPerShard: options.maxTxPerShard,
          processes: () => network.processes(),
          repeat,
        });
        rounds.push(result);
        for (const [code, message] of Object.entries(result.failureSamples)) {
          log(`  ${String(result.failures[code])} failed ${code}, e.g. ${message}`);
        }
        log(
          `${workload} × ${String(shards)} shard(s), run ${String(repeat)}: ${formatRate(result.aggregatePerSecond)} tx/s` +
            ` (${result.perShard.map((s) => formatRate(s.perSecond)).join(' + ')}), network CPU share ${(result.networkCpuShare * 100).toFixed(0)} %, machine ${(result.machineBusy * 100).toFixed(0)} % busy`,
        );
      }
    }
  }
  for (const l of loads) l.close();
  const committedInRounds = rounds.reduce((sum, r) => sum + r.committed, 0);
  const ledgerBytesPerTx = ((await diskBytes(peerData)) - dataBefore) / committedInRounds;
  if (values.up) await networkSh(network.dir, 'down');

  const hsmSign = options.signs === 0 ? null : await signRate(options.signs);
  report(rounds, memory);
  process.stdout.write(
    `\nledger growth on one peer: ${ledgerBytesPerTx.toFixed(0)} bytes per committed transaction (blocks, state and history, ${String(committedInRounds)} transactions)\n`,
  );
  if (hsmSign !== null) {
    process.stdout.write(
      `\nSoftHSM ECDSA P-256 signatures (the gateway's pooled signer, ${String(hsmSign.concurrency)} in flight): ` +
        `${formatRate(hsmSign.median)} sign/s (runs ${hsmSign.runs.map(formatRate).join(', ')})\n`,
    );
  }
  mkdirSync(join(values.out, '..'), { recursive: true });
  writeFileSync(
    values.out,
    `${JSON.stringify({ context, options, shardCounts, memory, rounds, hsmSign, ledgerBytesPerTx }, null, 2)}\n`,
  );
  log(`results in ${values.out}`);
}

/** Bytes under DIR (`du -sb`). */
async function diskBytes(dir: string): Promise<number> {
  const { stdout } = await promisify(execFile)('du', ['-sb', dir]);
  return Number(stdout.split('\t')[0]);
}

/** The HSM's signing rate, in a process of its own on a fresh SoftHSM token (bench/src/sign-row.ts). */
async function signRate(signs: number): Promise<{ median: number; runs: number[]; concurrency: number }> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [join(__dirname, 'sign-row.js'), 'pooled', String(signs), '3'],
    {
      cwd: repoRoot,
      maxBuffer: 1 << 20,
    },
  );
  return JSON.parse(stdout) as { median: number; runs: number[]; concurrency: number };
}

const mib = (bytes: number | undefined) =>
  bytes === undefined || !Number.isFinite(bytes) ? '—' : (bytes / 2 ** 20).toFixed(0);

function report(rounds: readonly RoundResult[], memory: readonly MemoryRow[]): void {
  const rows: string[][] = [];
  for (const workload of workloads) {
    const of = (shards: number) => rounds.filter((r) => r.workload === workload && r.shards === shards);
    for (const shards of shardCounts) {
      const mine = of(shards);
      // The ratio is taken within each repeat (the same minutes), then the median of those.
      const ratios = mine.map((r) => {
        const one = of(shardCounts[0] ?? 1).find((o) => o.repeat === r.repeat);
        return one === undefined ? Number.NaN : r.aggregatePerSecond / one.aggregatePerSecond;
      });
      const cpu = (kind: keyof RoundResult['cpuMsPerTx']) => formatMs(median(mine.map((r) => r.cpuMsPerTx[kind])));
      const failures = mine.reduce((sum, r) => sum + Object.values(r.failures).reduce((a, b) => a + b, 0), 0);
      rows.push([
        workload,
        String(shards),
        formatRate(median(mine.map((r) => r.aggregatePerSecond))),
        formatRate(median(mine.map((r) => r.aggregatePerSecond / shards))),
        `${median(ratios).toFixed(2)}×`,
        formatMs(median(mine.flatMap((r) => r.perShard.map((s) => s.p50Ms)))),
        cpu('peer'),
        cpu('orderer'),
        cpu('chaincode'),
        cpu('loadgen'),
        formatRate(median(mine.map((r) => r.txPerNetworkCpuSecond))),
        `${(median(mine.map((r) => r.networkCpuShare)) * 100).toFixed(0)} %`,
        `${(median(mine.map((r) => r.machineBusy)) * 100).toFixed(0)} %`,
        String(failures),
        String(mine.reduce((sum, r) => sum + r.retries, 0)),
      ]);
    }
  }
  process.stdout.write(
    `\nThroughput (medians of ${String(options.repeats)} interleaved runs; ${String(options.concurrency)} in flight per shard;` +
      ` ${String(cpus().length)} cores shared with other work):\n` +
      formatTable(
        [
          'workload',
          'shards',
          'aggregate tx/s',
          'per shard tx/s',
          `÷ ${String(shardCounts[0])} shard`,
          'p50 ms',
          'peer CPU ms/tx',
          'orderer ms/tx',
          'chaincode ms/tx',
          'loadgen ms/tx',
          'tx per net CPU-s',
          'net CPU share',
          'machine busy',
          'failed',
          'retried',
        ],
        rows,
      ) +
      '\n',
  );
  process.stdout.write(
    `\nResident memory of one process (MiB), after the same warm-up load on every shard:\n` +
      formatTable(
        ['shards', 'channels', 'peer', 'orderer', 'chaincode server', 'CA'],
        memory.map((m) => [
          String(m.shards),
          String(m.channels),
          mib(m.rssBytes.peer),
          mib(m.rssBytes.orderer),
          mib(m.rssBytes.chaincode),
          mib(m.rssBytes.ca),
        ]),
      ) +
      '\n',
  );
  const first = memory[0];
  const last = memory[memory.length - 1];
  if (first !== undefined && last !== undefined && last.channels > first.channels) {
    const slope = (kind: ProcessKind) =>
      mib(
        ((last.rssBytes[kind] ?? Number.NaN) - (first.rssBytes[kind] ?? Number.NaN)) / (last.channels - first.channels),
      );
    process.stdout.write(
      `marginal memory per channel (MiB per process): peer ${slope(ProcessKind.Peer)}, orderer ${slope(ProcessKind.Orderer)}, chaincode server ${slope(ProcessKind.Chaincode)}\n`,
    );
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`scale: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
