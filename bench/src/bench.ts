#!/usr/bin/env node
/**
 * `npm run bench`: one benchmark run, everything on 127.0.0.1, one load generator (the fleet
 * simulator's runner) for every row, a warm-up and the median of several runs per row. Prints a
 * table and writes bench/results/latest.json. See BENCHMARKS.md for what each row means.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
  type RunOptions,
} from '@keyfleet/agent/dist/fleet';
import { ApiRole } from '@keyfleet/gateway';
import { createCredentials } from '@keyfleet/gateway/dist/cli/credentials';
import { createSoftHsmStore, softHsmModule } from '@keyfleet/gateway/dist/hsm/softhsm-fixture';
import { openBaselineLedger } from './baseline';
import { repoRoot, startGatewayProcess, type GatewayProcess, type RouteTime } from './gateway-process';
import { summariseProfile } from './profile';

interface Row {
  readonly row: string;
  readonly unit: string;
  /** Median over runs; null when the row could not be measured. */
  readonly value: number | null;
  readonly runs: readonly number[];
  readonly p50Ms?: number;
  readonly p95Ms?: number;
  readonly p99Ms?: number;
  readonly ratio?: { readonly to: string; readonly value: number; readonly target: number } | undefined;
  readonly note: string;
}

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '300' },
    ops: { type: 'string', default: '300' },
    warmup: { type: 'string', default: '60' },
    runs: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '64' },
    batch: { type: 'string', default: '256' },
    signs: { type: 'string', default: '20000' },
    'max-seconds': { type: 'string', default: '900' },
    profile: { type: 'boolean', default: true },
    'no-profile': { type: 'boolean', default: false },
    out: { type: 'string', default: join(repoRoot, 'bench', 'results', 'latest.json') },
  },
});
const devices = Number(values.devices);
const ops = Number(values.ops);
const warmup = Number(values.warmup);
const runs = Number(values.runs);
const concurrency = Number(values.concurrency);
const batch = Number(values.batch);
const signs = Number(values.signs);
const deadline = Date.now() + Number(values['max-seconds']) * 1000;
const log = (text: string) => process.stderr.write(`bench: ${text}\n`);

/** Warm-up, then `runs` timed runs of `ops` operations; the median run is the row's value. */
async function measure(fleet: Fleet, name: string, op: (i: number) => Promise<void>, options: RunOptions = {}) {
  await fleet.run(`${name} warm-up`, op, { ...options, count: warmup });
  const all: PhaseStats[] = [];
  for (let r = 0; r < runs; r++) {
    if (Date.now() > deadline) break;
    all.push(await fleet.run(`${name} ${r + 1}/${runs}`, op, { ...options, count: ops }));
  }
  const failures = all.reduce((n, s) => n + s.failed, 0);
  if (failures > 0) log(`${name}: ${failures} failed: ${JSON.stringify(all.map((s) => s.failures))}`);
  return {
    runs: all.map((s) => s.perSecond),
    value: all.length === 0 ? null : median(all.map((s) => s.perSecond)),
    p50Ms: median(all.map((s) => s.p50Ms)),
    p95Ms: median(all.map((s) => s.p95Ms)),
    p99Ms: median(all.map((s) => s.p99Ms)),
    failures,
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

function serverTimes(before: Map<string, RouteTime>, after: Map<string, RouteTime>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [route, t] of after) {
    const b = before.get(route) ?? { count: 0, sumSeconds: 0 };
    const n = t.count - b.count;
    if (n > 0) out[route] = ((t.sumSeconds - b.sumSeconds) * 1000) / n;
  }
  return out;
}

async function main(): Promise<void> {
  const started = Date.now();
  const rows: Row[] = [];
  const breakdown: Record<string, unknown> = {};

  log('HSM signing rows (each in its own process, fresh SoftHSM token)');
  const pooled = await signRow('pooled');
  const hsmSigner = await signRow('hsm-signer');
  const raw = await signRow('raw-session');

  const store = createSoftHsmStore('keyfleet-bench');
  const dataDir = mkdtempSync(join(tmpdir(), 'keyfleet-bench-'));
  const workDir = mkdtempSync(join(tmpdir(), 'keyfleet-bench-fleet-'));
  const credentialsFile = join(dataDir, 'operator.json');
  await createCredentials('bench-operator', ApiRole.Operator, credentialsFile, join(dataDir, 'auth', 'jwks.json'));
  const gatewayOptions = { store, module: softHsmModule, dataDir };
  const ledgerFile = join(dataDir, 'local-ledger.jsonl');
  const peaks: Record<string, number> = {};
  const ledgerBytes: Record<string, number> = {};
  const stopGateway = async (name: string, gateway: GatewayProcess) => {
    peaks[name] = (await gateway.stop()).peakRssBytes;
    ledgerBytes[`after ${name}`] = statSync(ledgerFile).size;
  };
  try {
    let gateway = await startGatewayProcess({ ...gatewayOptions, batchSize: 1 });
    // The fleet's URL is fixed at creation; every gateway of this run listens on its own port,
    // so devices are pointed at the current one through a forwarding fetch.
    let current = gateway.url;
    const first = gateway.url;
    const fleetFetch: typeof fetch = (input, init) =>
      fetch(typeof input === 'string' ? input.replace(first, current) : input, init);
    const devicesFleet = newFleet({
      gatewayUrl: first,
      size: devices,
      concurrency,
      workDir,
      operatorAuthorization: newOperatorAuthorization({ credentialsFile }),
      progress: newProgress(),
      fetch: fleetFetch,
    });
    log(`set-up: ${devices} devices enrol, get a data key, fetch version 1`);
    await devicesFleet.setReferenceValues();
    const setup = [await devicesFleet.enrol(), await devicesFleet.provisionKeys(), await devicesFleet.fetchKeys()];
    breakdown.setup = setup;
    await stopGateway('set-up', gateway);

    log('baseline: trivial write through the in-process ledger transport');
    const baselineFile = join(dataDir, 'baseline-ledger.json');
    copyFileSync(ledgerFile, baselineFile);
    const baselineLedger = await openBaselineLedger({
      store,
      module: softHsmModule,
      ledgerFile: baselineFile,
      keyId: devicesFleet.devices()[0]?.keyId ?? '',
    });
    const baseline = await measure(devicesFleet, 'baseline write', () => baselineLedger.write());
    await baselineLedger.close();
    rmSync(baselineFile, { force: true });

    gateway = await startGatewayProcess({ ...gatewayOptions, batchSize: 1 });
    current = gateway.url;
    let before = await gateway.routeTimes();
    log('rotations end to end');
    const rotations = await measure(devicesFleet, 'rotate', devicesFleet.operations.rotate);
    let after = await gateway.routeTimes();
    breakdown.rotationServerMs = serverTimes(before, after);
    before = after;
    log('attestations end to end, one transaction each');
    const single = await measure(devicesFleet, 'attest (1 tx each)', devicesFleet.operations.attest);
    after = await gateway.routeTimes();
    breakdown.attestationServerMs = serverTimes(before, after);
    await stopGateway('rotations + attestations', gateway);

    gateway = await startGatewayProcess({ ...gatewayOptions, batchSize: batch });
    current = gateway.url;
    log(`attestations end to end, batched (${batch} per Merkle batch, ${Math.max(concurrency, batch)} in flight)`);
    before = await gateway.routeTimes();
    const batched = await measure(devicesFleet, 'attest (batched)', devicesFleet.operations.attest, {
      concurrency: Math.min(devices, Math.max(concurrency, batch)),
    });
    after = await gateway.routeTimes();
    breakdown.batchedAttestationServerMs = serverTimes(before, after);
    await stopGateway('batched attestations', gateway);

    if (values.profile && !values['no-profile'] && Date.now() < deadline) {
      log('profile: a CPU profile of the gateway under the rotation and attestation loads (not timed)');
      const profileDir = mkdtempSync(join(tmpdir(), 'keyfleet-bench-prof-'));
      gateway = await startGatewayProcess({ ...gatewayOptions, batchSize: 1, cpuProfileDir: profileDir });
      current = gateway.url;
      await devicesFleet.run('profile rotate', devicesFleet.operations.rotate, { count: ops });
      await devicesFleet.run('profile attest', devicesFleet.operations.attest, { count: ops });
      await stopGateway('profile', gateway);
      const file = readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile'));
      if (file !== undefined) breakdown.gatewayProfile = summariseProfile(join(profileDir, file));
      rmSync(profileDir, { recursive: true, force: true });
    }

    const base = baseline.value;
    const ratio = (value: number | null, target: number) =>
      value === null || base === null ? undefined : { to: 'local-ledger baseline', value: value / base, target };
    rows.push(
      {
        row: 'baseline: Fabric blind write',
        unit: 'tx/s',
        value: null,
        runs: [],
        note: 'BLOCKED: Fabric cannot be built here (Go module proxy answers 403 for github.com/hyperledger/*)',
      },
      {
        row: 'baseline: local-ledger trivial write',
        unit: 'tx/s',
        ...baseline,
        note: 'ConsumeNonce via LedgerClient → in-process transport → LocalLedger (file); NOT Fabric',
      },
      {
        row: 'rotations end to end',
        unit: 'rot/s',
        ...rotations,
        ratio: ratio(rotations.value, 0.8),
        note: 'agent → gateway → HSM → ledger → agent; request + ack = 2 HTTP calls, 2 ledger tx',
      },
      {
        row: 'attestations, 1 tx each',
        unit: 'att/s',
        ...single,
        ratio: ratio(single.value, 1),
        note: 'challenge + evidence = 2 HTTP calls; RecordAttestation',
      },
      {
        row: `attestations, batched (${batch})`,
        unit: 'att/s',
        ...batched,
        ratio: ratio(batched.value, 20),
        note: `ConsumeNonce each + RecordAttestationBatch per ≤${batch}; ${Math.min(devices, Math.max(concurrency, batch))} in flight`,
      },
      {
        row: 'HSM sign: gateway pooled signer',
        unit: 'sign/s',
        value: pooled.median,
        runs: pooled.runs,
        ratio: { to: 'HSMSigner serial', value: pooled.median / hsmSigner.median, target: 2 },
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
      {
        row: 'gateway peak RSS',
        unit: 'MiB',
        value: Math.max(...Object.values(peaks)) / 2 ** 20,
        runs: Object.values(peaks).map((b) => b / 2 ** 20),
        note: `VmHWM of each gateway process: ${Object.entries(peaks)
          .map(([k, v]) => `${k} ${(v / 2 ** 20).toFixed(0)}`)
          .join(', ')}`,
      },
    );

    const table = formatTable(
      ['row', 'median', 'unit', 'p50 ms', 'p95 ms', 'p99 ms', 'ratio (target)', 'runs'],
      rows.map((r) => [
        r.row,
        r.value === null ? 'n/a' : formatRate(r.value),
        r.unit,
        r.p50Ms === undefined ? '' : formatMs(r.p50Ms),
        r.p95Ms === undefined ? '' : formatMs(r.p95Ms),
        r.p99Ms === undefined ? '' : formatMs(r.p99Ms),
        r.ratio === undefined ? '' : `${r.ratio.value.toFixed(2)}× (≥ ${r.ratio.target}×)`,
        r.runs.map((v) => formatRate(v)).join(' '),
      ]),
    );
    process.stdout.write(`\n${table}\n\n`);
    for (const r of rows) process.stdout.write(`  ${r.row}: ${r.note}\n`);
    const profiled = breakdown.gatewayProfile as ReturnType<typeof summariseProfile> | undefined;
    if (profiled !== undefined) {
      process.stdout.write('\ngateway main thread, CPU profile under rotation + attestation load:\n');
      for (const p of profiled.categories) {
        process.stdout.write(`  ${(p.share * 100).toFixed(1).padStart(5)}%  ${p.category}\n`);
      }
      process.stdout.write('top functions by self time:\n');
      for (const f of profiled.topFunctions) {
        process.stdout.write(`  ${(f.share * 100).toFixed(1).padStart(5)}%  ${f.fn}\n`);
      }
    }
    process.stdout.write(
      `\nserver-side mean ms per route: ${JSON.stringify(breakdown, (k, v: unknown) => (k === 'gatewayProfile' || k === 'setup' ? undefined : v))}\n`,
    );
    const result = {
      at: new Date().toISOString(),
      machine: { node: process.version, cpus: (await import('node:os')).cpus().length },
      parameters: { devices, ops, warmup, runs, concurrency, batch, signs },
      rows,
      breakdown,
      ledgerFileBytes: ledgerBytes,
      seconds: (Date.now() - started) / 1000,
    };
    mkdirSync(join(values.out, '..'), { recursive: true });
    writeFileSync(values.out, `${JSON.stringify(result, null, 2)}\n`);
    log(`wrote ${values.out} (${result.seconds.toFixed(0)} s)`);
  } finally {
    store.remove();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(workDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
