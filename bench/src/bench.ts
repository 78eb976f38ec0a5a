#!/usr/bin/env node
/**
 * `npm run bench`: one benchmark run on the real Fabric network that scripts/bench.sh has just
 * started (network/network.sh, dev profile, its own directory and ports). Everything runs on
 * 127.0.0.1: the baseline chaincode and keyfleet's, the gateway and Org2's verifier as their own
 * processes on their own SoftHSM tokens, and one load generator (the fleet simulator's runner) for
 * every row, with a warm-up and the median of several runs. Prints a table and writes
 * bench/results/latest.json. BENCHMARKS.md says what each row means.
 */
import { execFile } from 'node:child_process';
import { cpus, tmpdir } from 'node:os';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import {
  formatMs,
  formatRate,
  formatTable,
  median,
  newFleet,
  newOperatorAuthorization,
  newProgress,
  type Fleet,
  type PhaseStats,
} from '@keyfleet/agent/fleet';
import { ApiRole } from '@keyfleet/gateway';
import { createCredentials } from '@keyfleet/gateway';
import {
  newBaselineWrite,
  openBenchNetwork,
  openFileKeyClient,
  validationCodeName,
  type FileKeyClient,
} from './network';
import { summariseProfile } from './profile';
import {
  cpuSeconds,
  freePort,
  machineCpuSeconds,
  killServices,
  peakRss,
  repoRoot,
  startService,
  type RouteTime,
  type ServiceProcess,
} from './service-process';

const usage = `Usage: node bench/dist/bench.js --network-dir DIR [options]   (npm run bench starts the network)

  --devices N       virtual devices for rotations and attestations, one operation each at a
                    time (default 64)
  --ops N           operations per timed run (default 96)
  --baseline-ops N  operations per timed run of the baseline, whose operations are short (default 480)
  --warmup N        warm-up operations before each row (default 32; the baseline: one untimed run)
  --runs N          timed runs per row; the row's value is the median (default 3)
  --concurrency N   operations in flight, every row (default 32)
  --batch N         results per Merkle batch (2 to 256) in the batched attestation row, which keeps
                    2 × N in flight (at most --devices) (default 32)
  --signs N         signatures per HSM signing run (default 10000)
  --token-keys LIST rows of rotations with this many keys on the gateway's token, comma-separated
                    (default 100,1000; 100,1000,10000 adds the slow big row; "" skips them)
  --token-ops N     operations per timed run of those rows, 16 devices in flight (default 32)
  --profile         V8 CPU profiles of the gateway and the verifier over the whole run, summarised
  --out FILE        (default bench/results/latest.json)
`;

const { values } = parseArgs({
  options: {
    'network-dir': { type: 'string' },
    devices: { type: 'string', default: '64' },
    ops: { type: 'string', default: '96' },
    warmup: { type: 'string', default: '32' },
    'baseline-ops': { type: 'string', default: '480' },
    runs: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '32' },
    batch: { type: 'string', default: '32' },
    signs: { type: 'string', default: '10000' },
    'token-keys': { type: 'string', default: '100,1000' },
    'token-ops': { type: 'string', default: '32' },
    out: { type: 'string', default: join(repoRoot, 'bench', 'results', 'latest.json') },
    profile: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write(usage);
  process.exit(0);
}

function count(name: keyof typeof values, min: number, max: number): number {
  const raw = values[name];
  const value = Number(raw);
  if (typeof raw !== 'string' || !/^\d+$/.test(raw) || value < min || value > max) {
    process.stderr.write(`bench: --${name} must be an integer from ${min} to ${max}, got ${String(raw)}\n${usage}`);
    process.exit(2);
  }
  return value;
}
const devices = count('devices', 1, 10_000);
const ops = count('ops', 1, 1_000_000);
const warmup = count('warmup', 0, 1_000_000);
const baselineOps = count('baseline-ops', 1, 10_000_000);
const runs = count('runs', 1, 100);
const concurrency = count('concurrency', 1, 1000);
const batch = count('batch', 2, 256);
const signs = count('signs', 1, 10_000_000);
const tokenOps = count('token-ops', 1, 1_000_000);
const tokenKeys = values['token-keys']
  .split(',')
  .filter((item) => item.trim() !== '')
  .map((item) => {
    const value = Number(item.trim());
    if (!/^\d+$/.test(item.trim()) || value < 1 || value > 100_000) {
      process.stderr.write(`bench: --token-keys takes whole numbers from 1 to 100000, got ${item}\n${usage}`);
      process.exit(2);
    }
    return value;
  });
/** Devices of the keys-on-the-token rows: few, so that their own version keys stay under the first row's count. */
const tokenDevices = 16;
if (values['network-dir'] === undefined) {
  process.stderr.write(`bench: --network-dir is required\n${usage}`);
  process.exit(2);
}
const networkDir = resolve(values['network-dir']);
const workDir = join(repoRoot, 'bench', 'results', 'work');
const log = (text: string) => process.stderr.write(`bench: ${text}\n`);

// --- what a row records --------------------------------------------------------------------------

interface Row {
  readonly row: string;
  readonly unit: string;
  /** Median over the timed runs. */
  readonly value: number;
  readonly runs: readonly number[];
  readonly p50Ms?: number;
  readonly p95Ms?: number;
  readonly p99Ms?: number;
  /** Failed operations in the timed runs, by code. */
  readonly failures?: Readonly<Record<string, number>>;
  /**
   * Ledger transactions per operation over the timed runs, by contract function, and those the
   * peers marked invalid (MVCC_READ_CONFLICT, PHANTOM_READ_CONFLICT, …), by validation code.
   */
  readonly ledger?: {
    readonly txPerOp: number;
    readonly perOpByFunction: Readonly<Record<string, number>>;
    readonly invalid: Readonly<Record<string, number>>;
  };
  /** CPU milliseconds per operation, by process group (timed runs). */
  readonly cpuMsPerOp?: Readonly<Record<string, number>>;
  /** Share of all cores' time the bench's processes used during the timed runs. */
  readonly cpuBusy?: number;
  /** Share of all cores' time every process on the machine used meanwhile (others' included). */
  readonly machineBusy?: number;
  /** Mean server-side milliseconds per route (gateway's and verifier's `/metrics`), timed runs. */
  readonly serverMs?: Readonly<Record<string, number>>;
  readonly note: string;
}

/** The processes whose CPU time is counted, by group: the network's, the services', the load generator. */
type Processes = () => Map<string, number>;

function groupOf(name: string): string {
  if (name.startsWith('peer')) return 'peers';
  if (name.startsWith('orderer')) return 'orderer';
  if (name.startsWith('cc.')) return 'chaincode';
  if (name.startsWith('ca.')) return 'CAs';
  return name;
}

function cpuByGroup(processes: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [name, pid] of processes) {
    const seconds = cpuSeconds(pid);
    if (Number.isFinite(seconds)) out.set(groupOf(name), (out.get(groupOf(name)) ?? 0) + seconds);
  }
  const self = process.cpuUsage();
  out.set('load generator', (self.user + self.system) / 1e6);
  return out;
}

function routeDelta(
  before: Map<string, RouteTime>,
  after: Map<string, RouteTime>,
  prefix: string,
  out: Record<string, number>,
) {
  for (const [route, t] of after) {
    // The benchmark's own scrapes of /metrics are not the row's work.
    if (route === '/metrics') continue;
    const b = before.get(route) ?? { count: 0, sumSeconds: 0 };
    const n = t.count - b.count;
    if (n > 0) out[`${prefix} ${route}`] = ((t.sumSeconds - b.sumSeconds) * 1000) / n;
  }
}

interface Measured {
  readonly runs: number[];
  readonly value: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  readonly failures: Record<string, number>;
  readonly ledger: { txPerOp: number; perOpByFunction: Record<string, number>; invalid: Record<string, number> };
  readonly cpuMsPerOp: Record<string, number>;
  /** Share of all cores' time used by the bench's processes during the timed runs. */
  readonly cpuBusy: number;
  /** Share of all cores' time used by every process of the machine (others' included) meanwhile. */
  readonly machineBusy: number;
  readonly serverMs: Record<string, number>;
}

interface Context {
  readonly ledger: FileKeyClient;
  readonly processes: Processes;
  readonly services: () => readonly ServiceProcess[];
}

/** The channel height once it stops moving: commits seen by one org's peer reach the other's a moment later. */
async function settledHeight(ledger: FileKeyClient): Promise<number> {
  let height = await ledger.height();
  for (let i = 0; i < 50; i++) {
    // Each pass is a real query; the pause only spaces them by more than one block-cutting interval.
    await new Promise((r) => setTimeout(r, 300));
    const now = await ledger.height();
    if (now === height) return height;
    height = now;
  }
  return height;
}

/**
 * Warm-up, then `runs` timed runs of `ops` operations under the one load generator; the row's value
 * is the median run. Over the timed runs it also counts the ledger transactions of `chaincode`, the
 * CPU time of every process and the services' server-side time per route.
 */
async function measure(
  ctx: Context,
  runner: Fleet,
  name: string,
  chaincode: string,
  op: (i: number) => Promise<void>,
  {
    runConcurrency = concurrency,
    runOps = ops,
    warmupOps = warmup,
  }: { runConcurrency?: number; runOps?: number; warmupOps?: number } = {},
): Promise<Measured> {
  log(`${name}: warm-up (${warmupOps}), then ${runs} × ${runOps}, ${runConcurrency} in flight`);
  if (warmupOps > 0) await runner.run(`${name} warm-up`, op, { count: warmupOps, concurrency: runConcurrency });
  const heightBefore = await settledHeight(ctx.ledger);
  const routesBefore = await Promise.all(ctx.services().map((s) => s.routeTimes()));
  const cpuBefore = cpuByGroup(ctx.processes());
  const machineBefore = machineCpuSeconds();
  const all: PhaseStats[] = [];
  for (let r = 0; r < runs; r++) {
    all.push(await runner.run(`${name} ${r + 1}/${runs}`, op, { count: runOps, concurrency: runConcurrency }));
  }
  const cpuAfter = cpuByGroup(ctx.processes());
  const machineAfter = machineCpuSeconds();
  const routesAfter = await Promise.all(ctx.services().map((s) => s.routeTimes()));
  const heightAfter = await settledHeight(ctx.ledger);
  const attempted = all.reduce((n, s) => n + s.ok + s.failed, 0);
  const failures: Record<string, number> = {};
  for (const s of all) for (const [code, n] of Object.entries(s.failures)) failures[code] = (failures[code] ?? 0) + n;
  if (Object.keys(failures).length > 0) log(`${name}: failures ${JSON.stringify(failures)}`);
  const txs = await ctx.ledger.transactionsOf(chaincode, heightBefore, heightAfter);
  const invalid: Record<string, number> = {};
  for (const [code, n] of txs.byCode) if (code !== 0) invalid[validationCodeName(code)] = n;
  const cpuMsPerOp: Record<string, number> = {};
  let cpuUsed = 0;
  for (const [group, seconds] of cpuAfter) {
    const used = seconds - (cpuBefore.get(group) ?? 0);
    if (used > 0) cpuMsPerOp[group] = (used * 1000) / attempted;
    if (used > 0) cpuUsed += used;
  }
  // Both shares over the same interval: the machine's ticks from /proc/stat, all cores together.
  const ticks = machineAfter.total - machineBefore.total;
  const serverMs: Record<string, number> = {};
  ctx.services().forEach((s, i) => {
    routeDelta(
      routesBefore[i] ?? new Map<string, RouteTime>(),
      routesAfter[i] ?? new Map<string, RouteTime>(),
      s.name,
      serverMs,
    );
  });
  return {
    runs: all.map((s) => s.perSecond),
    value: median(all.map((s) => s.perSecond)),
    p50Ms: median(all.map((s) => s.p50Ms)),
    p95Ms: median(all.map((s) => s.p95Ms)),
    p99Ms: median(all.map((s) => s.p99Ms)),
    failures,
    ledger: {
      txPerOp: txs.total / attempted,
      perOpByFunction: Object.fromEntries([...txs.byMethod].map(([fn, n]) => [fn, n / attempted])),
      invalid,
    },
    cpuMsPerOp,
    cpuBusy: cpuUsed / ticks,
    machineBusy: (machineAfter.busy - machineBefore.busy) / ticks,
    serverMs,
  };
}

async function signRow(kind: string): Promise<{ median: number; runs: number[]; concurrency: number }> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [join(__dirname, 'sign-row.js'), kind, String(signs), String(runs)],
    { cwd: repoRoot, maxBuffer: 1 << 20 },
  );
  return JSON.parse(stdout) as { median: number; runs: number[]; concurrency: number };
}

/** Fills the gateway's token with AES keys up to `n` keys, or removes keys by label prefix (fill-token.ts). */
async function fillToken(
  token: { conf: string; label: string; pinFile: string },
  ...args: string[]
): Promise<{ keys: number; changed: number; seconds: number }> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [join(__dirname, 'fill-token.js'), token.label, token.pinFile, ...args],
    { cwd: repoRoot, env: { ...process.env, SOFTHSM2_CONF: token.conf }, maxBuffer: 1 << 20 },
  );
  return JSON.parse(stdout) as { keys: number; changed: number; seconds: number };
}

/** A SoftHSM store and token made by scripts/softhsm-init.sh, as `npm start` makes its own. */
async function initToken(dir: string, token: string, keySet: 'gateway' | 'verifier') {
  await promisify(execFile)('bash', [join(repoRoot, 'scripts', 'softhsm-init.sh')], {
    cwd: repoRoot,
    env: {
      ...process.env,
      KEYFLEET_HSM_DIR: dir,
      KEYFLEET_HSM_TOKEN: token,
      KEYFLEET_HSM_KEY_SET: keySet,
    },
  });
  return {
    conf: join(dir, 'softhsm2.conf'),
    label: token,
    uri: `pkcs11:token=${token}`,
    pinFile: join(dir, 'user-pin'),
  };
}

let filesDir: string | undefined;

/** Stops the services and removes the scratch files: on every way out, a signal's included. */
function cleanUp(): void {
  killServices();
  // The tokens are throw-away; the services' logs stay in bench/results/work until the next run.
  rmSync(join(workDir, 'hsm'), { recursive: true, force: true });
  rmSync(join(workDir, 'hsm-verifier'), { recursive: true, force: true });
  if (filesDir !== undefined) rmSync(filesDir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  rmSync(workDir, { recursive: true, force: true });
  mkdirSync(workDir, { recursive: true });
  // The simulated devices' measured files (app.js, …) stay out of the repository's tree.
  filesDir = mkdtempSync(join(tmpdir(), 'keyfleet-bench-'));
  try {
    await run(filesDir);
  } finally {
    cleanUp();
  }
}

async function run(filesDir: string): Promise<void> {
  const started = Date.now();
  const profiles = join(workDir, 'profiles');
  const profileDir = (name: string) => (values.profile ? { cpuProfileDir: join(profiles, name) } : {});
  const network = openBenchNetwork(networkDir);
  const services: ServiceProcess[] = [];
  const peaks: Record<string, number> = {};
  const processes: Processes = () => {
    const out = network.processes();
    for (const s of services) out.set(s.name, s.pid);
    return out;
  };
  const stopService = async (service: ServiceProcess, label: string) => {
    services.splice(services.indexOf(service), 1);
    peaks[label] = await service.stop();
  };
  // The baseline's operations go through the same runner (the fleet simulator's) as every other
  // row; this fleet's devices never call a gateway, they only hold the runner's slots.
  const runner = newFleet({
    gatewayUrl: 'http://127.0.0.1:9',
    size: concurrency,
    workDir: join(filesDir, 'runner'),
    operatorAuthorization: () => Promise.reject(new Error('unused')),
    progress: newProgress(),
  });

  log('HSM signing rows (each in its own process, on a fresh SoftHSM token)');
  const pooled = await signRow('pooled');
  const hsmSigner = await signRow('hsm-signer');
  const raw = await signRow('raw-session');

  log('baseline chaincode: network/network.sh deploy bench/baseline-chaincode --name baseline');
  await network.deploy('baseline', join(repoRoot, 'bench', 'baseline-chaincode'));
  const ledger = openFileKeyClient(network.connectionProfile, 'Org1', 'application');
  try {
    const ctx: Context = { ledger, processes, services: () => services };
    const put = newBaselineWrite(ledger.contract('baseline'));
    // Cross-org discovery lags a fresh commit by a few seconds (FABRIC-NOTES): wait for a first write.
    for (const deadline = Date.now() + 60_000; ;) {
      try {
        await put();
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    const baseline = await measure(ctx, runner, 'baseline Put', 'baseline', put, {
      runOps: baselineOps,
      // Its operations are short: a warm-up of --warmup of them ends before the processes are warm.
      warmupOps: Math.max(warmup, baselineOps),
    });
    // network.sh runs one pair of chaincode servers per network: deploying keyfleet's replaces them.
    for (const [name, pid] of network.processes())
      if (name.startsWith('cc.')) peaks[`${name} (baseline)`] = peakRss(pid);

    log("keyfleet's chaincode: network/network.sh deploy --name keyfleet");
    await network.deploy('keyfleet');
    log('SoftHSM tokens (scripts/softhsm-init.sh): the gateway’s and the verifier’s');
    const gatewayToken = await initToken(join(workDir, 'hsm'), 'keyfleet-bench', 'gateway');
    const verifierToken = await initToken(join(workDir, 'hsm-verifier'), 'keyfleet-bench-verifier', 'verifier');
    const dataDir = join(workDir, 'gateway');
    const jwks = join(dataDir, 'auth', 'jwks.json');
    const credentialsFile = join(workDir, 'operator.json');
    await createCredentials('bench-operator', ApiRole.Operator, credentialsFile, jwks);
    const verifierPort = await freePort();
    const gatewayPort = await freePort();
    const verifierUrl = `https://127.0.0.1:${verifierPort}`;
    const verifierCaFile = join(dataDir, 'verifier', 'tls-ca.pem');

    log('gateway (gateway/dist/main.js)');
    const gateway = await startService({
      name: 'gateway',
      script: 'gateway/dist/main.js',
      port: gatewayPort,
      logFile: join(workDir, 'gateway.log'),
      caFile: join(dataDir, 'device-ca.pem'),
      ...profileDir('gateway'),
      env: {
        SOFTHSM2_CONF: gatewayToken.conf,
        KEYFLEET_HSM_URI: gatewayToken.uri,
        KEYFLEET_HSM_PIN_FILE: gatewayToken.pinFile,
        KEYFLEET_DATA_DIR: dataDir,
        KEYFLEET_AUTH_JWKS: jwks,
        KEYFLEET_HTTP_HOST: '127.0.0.1',
        KEYFLEET_HTTP_PORT: String(gatewayPort),
        KEYFLEET_FABRIC_CONNECTION: network.connectionProfile,
        KEYFLEET_VERIFIER_URL: verifierUrl,
        KEYFLEET_VERIFIER_CA_FILE: verifierCaFile,
        // The scheduler would rotate keys on its own clock, in the middle of the rows.
        KEYFLEET_SCHEDULER_INTERVAL_MS: '0',
        KEYFLEET_LOG_LEVEL: 'warn',
      },
    });
    services.push(gateway);
    const startVerifier = async (batchSize: number) => {
      log(`verifier (gateway/dist/verifier-main.js), KEYFLEET_VERIFIER_BATCH_SIZE=${batchSize}`);
      const verifier = await startService({
        name: 'verifier',
        script: 'gateway/dist/verifier-main.js',
        port: verifierPort,
        logFile: join(workDir, 'verifier.log'),
        caFile: verifierCaFile,
        ...profileDir(`verifier-batch-${batchSize}`),
        env: {
          SOFTHSM2_CONF: verifierToken.conf,
          KEYFLEET_VERIFIER_HSM_URI: verifierToken.uri,
          KEYFLEET_VERIFIER_HSM_PIN_FILE: verifierToken.pinFile,
          KEYFLEET_VERIFIER_HTTP_HOST: '127.0.0.1',
          KEYFLEET_VERIFIER_HTTP_PORT: String(verifierPort),
          KEYFLEET_VERIFIER_DATA_DIR: join(dataDir, 'verifier'),
          KEYFLEET_VERIFIER_DEVICE_CA_CERT: join(dataDir, 'device-ca.pem'),
          KEYFLEET_VERIFIER_FABRIC_CONNECTION: network.connectionProfile,
          KEYFLEET_VERIFIER_BATCH_SIZE: String(batchSize),
          KEYFLEET_VERIFIER_LOG_LEVEL: 'warn',
        },
      });
      services.push(verifier);
      return verifier;
    };
    let verifier = await startVerifier(1);

    const operatorAuthorization = newOperatorAuthorization({ credentialsFile });

    // Rotations with N keys on the gateway's token, first, while the token holds little else: a
    // small fleet of its own, AES fillers up to N keys before each row; afterwards the fillers and
    // this fleet's version keys are removed, so the rows below start from the token they always had.
    const tokenRows: { keys: number; atStart: number; fillSeconds: number; measured: Measured }[] = [];
    if (tokenKeys.length > 0) {
      const keysFleet = newFleet({
        gatewayUrl: gateway.url,
        tls: gateway.tls,
        size: tokenDevices,
        concurrency: tokenDevices,
        idPrefix: 'kt',
        workDir: join(filesDir, 'token-fleet'),
        operatorAuthorization,
        progress: newProgress(),
      });
      log(`keys on the token: ${tokenDevices} devices enrol, get a data key, fetch its version 1`);
      const keysSetup = [await keysFleet.enrol(), await keysFleet.provisionKeys(), await keysFleet.fetchKeys()];
      const failed = keysSetup.reduce((n, stats) => n + stats.failed, 0);
      if (failed > 0) throw new Error(`set-up failed for ${failed} operations: ${JSON.stringify(keysSetup)}`);
      for (const keys of [...tokenKeys].sort((a, b) => a - b)) {
        const fill = await fillToken(gatewayToken, 'fill', String(keys));
        log(`token: ${fill.keys} keys (${fill.changed} AES fillers added in ${fill.seconds.toFixed(1)} s)`);
        const measured = await measure(
          ctx,
          keysFleet,
          `rotate, ${keys} keys on the token`,
          'keyfleet',
          keysFleet.operations.rotate,
          {
            runConcurrency: tokenDevices,
            runOps: tokenOps,
            warmupOps: Math.min(warmup, tokenDevices),
          },
        );
        tokenRows.push({ keys, atStart: fill.keys, fillSeconds: fill.seconds, measured });
      }
      const removed = await fillToken(gatewayToken, 'remove', 'bench-filler-', 'key:kt-');
      log(`token: removed ${removed.changed} fillers and version keys of the keys rows; ${removed.keys} keys left`);
    }
    const fleet = newFleet({
      gatewayUrl: gateway.url,
      tls: gateway.tls,
      size: devices,
      concurrency,
      workDir: join(filesDir, 'fleet'),
      operatorAuthorization,
      progress: newProgress(),
    });
    log(`set-up: reference values; ${devices} devices enrol, get a data key, fetch its version 1`);
    await fleet.setReferenceValues();
    const setup = [await fleet.enrol(), await fleet.provisionKeys(), await fleet.fetchKeys()];
    const setupFailures = setup.reduce((n, s) => n + s.failed, 0);
    if (setupFailures > 0) throw new Error(`set-up failed for ${setupFailures} operations: ${JSON.stringify(setup)}`);

    const rotations = await measure(ctx, fleet, 'rotate', 'keyfleet', fleet.operations.rotate);
    const single = await measure(ctx, fleet, 'attest (1 tx each)', 'keyfleet', fleet.operations.attest);

    // Enrolment needs a device that has never enrolled: one fresh device per operation.
    const enrolFleet = newFleet({
      gatewayUrl: gateway.url,
      tls: gateway.tls,
      size: warmup + runs * ops,
      idPrefix: 'enr',
      workDir: join(filesDir, 'enrol-fleet'),
      operatorAuthorization,
    });
    let nextEnrolment = 0;
    const enrolments = await measure(ctx, enrolFleet, 'enrol', 'keyfleet', () =>
      enrolFleet.operations.enrol(nextEnrolment++),
    );

    await stopService(verifier, 'verifier (1 per tx)');
    verifier = await startVerifier(batch);
    // A result waits for its batch: with two batches' worth in flight one fills while the other
    // commits; with fewer, batches are cut by KEYFLEET_VERIFIER_BATCH_DELAY_MS instead.
    const batchedConcurrency = Math.min(devices, Math.max(concurrency, 2 * batch));
    const batched = await measure(ctx, fleet, 'attest (batched)', 'keyfleet', fleet.operations.attest, {
      runConcurrency: batchedConcurrency,
    });

    await stopService(verifier, `verifier (batch ${batch})`);
    await stopService(gateway, 'gateway');
    for (const [name, pid] of network.processes()) if (!name.startsWith('ca.')) peaks[name] = peakRss(pid);

    const base = baseline.value;
    const ratio = (value: number, target?: number) => ({ to: 'baseline', value: value / base, target });
    const rows: (Row & { ratio?: { to: string; value: number; target: number | undefined } })[] = [
      {
        row: 'baseline: Fabric blind write',
        unit: 'tx/s',
        ...baseline,
        note: 'Put(key, value) of bench/baseline-chaincode via @hyperledger/fabric-gateway, Org1 file key, submit + commit status',
      },
      {
        row: 'rotations end to end',
        unit: 'rot/s',
        ...rotations,
        ratio: ratio(rotations.value, 0.8),
        note: 'agent.rotate(): signed request, HSM derive + wrap, ledger, unwrap + KCV check, signed acknowledgement',
      },
      {
        row: 'attestations, one by one',
        unit: 'att/s',
        ...single,
        ratio: ratio(single.value),
        note: 'agent.attest(): challenge, EAT over files, appraisal and EAR in the verifier, KEYFLEET_VERIFIER_BATCH_SIZE=1',
      },
      {
        row: `attestations, batched (${batch})`,
        unit: 'att/s',
        ...batched,
        ratio: ratio(batched.value, 20),
        note: `the same with KEYFLEET_VERIFIER_BATCH_SIZE=${batch}, ${batchedConcurrency} in flight`,
      },
      {
        row: 'enrolments',
        unit: 'enr/s',
        ...enrolments,
        ratio: ratio(enrolments.value),
        note: 'operator asks for an enrolment token, a new device enrols with it (CSR, certificate from the HSM-held CA)',
      },
      ...tokenRows.map(({ keys, atStart, measured }) => {
        const first = tokenRows[0];
        return {
          row: `rotations, ${keys.toLocaleString('en')} keys on the token`,
          unit: 'rot/s',
          ...measured,
          ...(first === undefined || first.keys === keys
            ? {}
            : {
                ratio: {
                  to: `${first.keys.toLocaleString('en')} keys`,
                  value: measured.value / first.measured.value,
                  target: 0.8,
                },
              }),
          note: `the rotation row's operation, ${tokenDevices} devices in flight, ${atStart} keys on the gateway's token at the row's start (AES fillers), 1 more per rotation`,
        };
      }),
      {
        row: 'HSM sign: gateway pooled signer',
        unit: 'sign/s',
        value: pooled.median,
        runs: pooled.runs,
        ratio: { to: 'HSMSigner', value: pooled.median / hsmSigner.median, target: 2 },
        note: `hsm.newSigner, ${pooled.concurrency} in flight, default pool (4 sessions)`,
      },
      {
        row: 'HSM sign: fabric-gateway HSMSigner',
        unit: 'sign/s',
        value: hsmSigner.median,
        runs: hsmSigner.runs,
        note: 'signers.newHSMSignerFactory (1.11), serial',
      },
      {
        row: 'HSM sign: one raw session',
        unit: 'sign/s',
        value: raw.median,
        runs: raw.runs,
        note: 'pkcs11js C_SignInit + C_Sign, synchronous, one session',
      },
    ];
    const [fewest, most] = [tokenRows[0], tokenRows.at(-1)];
    const targets = [
      { target: 'rotations/s ≥ 0.8 × baseline', measured: rotations.value / base, goal: 0.8 },
      { target: 'batched attestations/s ≥ 20 × baseline', measured: batched.value / base, goal: 20 },
      { target: 'pooled signer ≥ 2 × HSMSigner', measured: pooled.median / hsmSigner.median, goal: 2 },
      {
        target: 'p99 rotation ≤ 2 × baseline p99',
        measured: rotations.p99Ms / baseline.p99Ms,
        goal: 2,
        lowerIsBetter: true,
      },
      ...(fewest?.keys === 100 && most?.keys === 10_000
        ? [
            {
              target: 'rotations/s with 10,000 keys ≥ 0.8 × with 100',
              measured: most.measured.value / fewest.measured.value,
              goal: 0.8,
            },
          ]
        : []),
    ].map((t) => ({ ...t, met: t.lowerIsBetter === true ? t.measured <= t.goal : t.measured >= t.goal }));

    const mib = (bytes: number) => bytes / 2 ** 20;
    const out = process.stdout;
    out.write(
      `\n${formatTable(
        ['row', 'median', 'unit', 'p50 ms', 'p95 ms', 'p99 ms', '× baseline', 'tx/op', 'invalid tx', 'runs'],
        rows.map((r) => [
          r.row,
          formatRate(r.value),
          r.unit,
          r.p50Ms === undefined ? '' : formatMs(r.p50Ms),
          r.p95Ms === undefined ? '' : formatMs(r.p95Ms),
          r.p99Ms === undefined ? '' : formatMs(r.p99Ms),
          r.ratio === undefined
            ? ''
            : `${r.ratio.value.toFixed(2)}×${r.ratio.to === 'baseline' ? '' : ` ${r.ratio.to}`}`,
          r.ledger === undefined ? '' : r.ledger.txPerOp.toFixed(2),
          r.ledger === undefined ? '' : String(Object.values(r.ledger.invalid).reduce((a, b) => a + b, 0)),
          r.runs.map((v) => formatRate(v)).join(' '),
        ]),
      )}\n\n`,
    );
    for (const r of rows) {
      const failed = Object.entries(r.failures ?? {});
      const txs = Object.entries(r.ledger?.perOpByFunction ?? {}).map(([fn, n]) => `${n.toFixed(2)} ${fn}`);
      out.write(
        `  ${r.row}: ${r.note}${txs.length > 0 ? ` [per op: ${txs.join(' + ')}]` : ''}${
          failed.length > 0 ? `; FAILED ${JSON.stringify(r.failures)}` : ''
        }\n`,
      );
    }
    const groups = ['peers', 'orderer', 'chaincode', 'gateway', 'verifier', 'load generator', 'CAs'];
    const measuredRows = rows.filter((r) => r.cpuMsPerOp !== undefined);
    out.write(
      `\nCPU ms per operation, by process (timed runs; ${cpus().length} cores):\n${formatTable(
        ['row', ...groups, 'total', 'cores busy: bench', 'all'],
        measuredRows.map((r) => {
          const cpu = r.cpuMsPerOp ?? {};
          return [
            r.row,
            ...groups.map((g) => (cpu[g] === undefined ? '' : formatMs(cpu[g]))),
            formatMs(Object.values(cpu).reduce((a, b) => a + b, 0)),
            r.cpuBusy === undefined ? '' : `${(r.cpuBusy * 100).toFixed(0)}%`,
            r.machineBusy === undefined ? '' : `${(r.machineBusy * 100).toFixed(0)}%`,
          ];
        }),
      )}\n`,
    );
    out.write('\nserver-side mean ms per route (timed runs):\n');
    for (const r of measuredRows) {
      const routes = Object.entries(r.serverMs ?? {}).map(([route, ms]) => `${route} ${formatMs(ms)}`);
      if (routes.length > 0) out.write(`  ${r.row}: ${routes.join('; ')}\n`);
    }
    out.write(
      `\npeak RSS (VmHWM), MiB: ${Object.entries(peaks)
        .map(([name, bytes]) => `${name} ${mib(bytes).toFixed(0)}`)
        .join(', ')}\n`,
    );
    out.write(
      `\ntargets (issue 13):\n${formatTable(
        ['target', 'measured', 'met'],
        targets.map((t) => [t.target, `${t.measured.toFixed(2)}×`, t.met ? 'yes' : 'NO']),
      )}\n${
        targets.some((t) => t.target.includes('10,000 keys'))
          ? ''
          : '  not measured: rotations/s with 10,000 keys against 100 (--token-keys 100,1000,10000)\n'
      }\n`,
    );
    const profiled: Record<string, ReturnType<typeof summariseProfile>> = {};
    if (values.profile) {
      for (const name of readdirSync(profiles)) {
        const file = readdirSync(join(profiles, name)).find((f) => f.endsWith('.cpuprofile'));
        if (file === undefined) continue;
        const summary = summariseProfile(join(profiles, name, file));
        profiled[name] = summary;
        out.write(`${name}'s main thread over the whole run (V8 CPU profile, self time):\n`);
        for (const c of summary.categories) out.write(`  ${(c.share * 100).toFixed(1).padStart(5)}%  ${c.category}\n`);
        out.write('  top functions:\n');
        for (const f of summary.topFunctions.slice(0, 6)) {
          out.write(`  ${(f.share * 100).toFixed(1).padStart(5)}%  ${f.fn}\n`);
        }
      }
    }
    const result = {
      at: new Date().toISOString(),
      machine: { node: process.version, cpus: cpus().length },
      command: process.argv.slice(2),
      parameters: {
        devices,
        ops,
        baselineOps,
        warmup,
        runs,
        concurrency,
        batch,
        signs,
        batchedConcurrency,
        tokenKeys,
        tokenOps,
        tokenDevices,
      },
      network: { dir: networkDir, profile: 'dev', endorsement: "AND('Org1MSP.peer','Org2MSP.peer')" },
      rows,
      targets,
      peakRssMiB: Object.fromEntries(Object.entries(peaks).map(([k, v]) => [k, Math.round(mib(v))])),
      setup,
      ...(values.profile ? { profiles: profiled } : {}),
      seconds: (Date.now() - started) / 1000,
    };
    mkdirSync(join(values.out, '..'), { recursive: true });
    writeFileSync(values.out, `${JSON.stringify(result, null, 2)}\n`);
    log(`wrote ${values.out} (${result.seconds.toFixed(0)} s)`);
  } finally {
    ledger.close();
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    log(`${signal}: stopping the services it started`);
    cleanUp();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  });
}
main().catch((err: unknown) => {
  killServices();
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
