import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { FaultName, formatRow, runFaultSuite, tableHeader, type Reconcile } from './harness';

/**
 * `npm run faults [-- --profile ha|bft|both] [--hsm] [--devices N] [--seconds S] [--port-base P]`:
 * the fault suite on its own network (`.fabric/faults-<profile>`, or `faults-<profile>-hsm` with the
 * network's signing keys in SoftHSM tokens; ports from 13000), one table per profile. Exits 1 when
 * an acknowledged operation was lost or applied twice, or the reconcile finds the ledger, the
 * devices and the HSM disagreeing.
 */
const repoRoot = resolve(__dirname, '..', '..', '..');

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      profile: { type: 'string', default: 'both' },
      devices: { type: 'string', default: '12' },
      seconds: { type: 'string', default: '4' },
      hsm: { type: 'boolean', default: false },
      'port-base': { type: 'string', default: '13000' },
    },
  });
  const profiles: readonly string[] = values.profile === 'both' ? ['ha', 'bft'] : [values.profile];
  const devices = Number(values.devices);
  const seconds = Number(values.seconds);
  const portBase = Number(values['port-base']);
  const valid = (p: string): p is 'ha' | 'bft' => p === 'ha' || p === 'bft';
  if (
    !profiles.every(valid) ||
    !(devices >= 2 && devices <= 1000) ||
    !(seconds >= 1) ||
    !(Number.isInteger(portBase) && portBase >= 1024 && portBase <= 64000)
  ) {
    console.error(
      'usage: npm run faults -- [--profile ha|bft|both] [--hsm] [--devices 2..1000] [--seconds S>=1] [--port-base 1024..64000]',
    );
    return 2;
  }
  const hsm = values.hsm;
  let failed = false;
  for (const [index, profile] of profiles.filter(valid).entries()) {
    const network = hsm ? `${profile} --hsm` : profile;
    console.log(`\n== ${network}: ${String(devices)} devices, ${String(seconds)} s of load around each fault`);
    const { rows, reconcile } = await runFaultSuite({
      profile,
      hsm,
      dir: resolve(repoRoot, '.fabric', `faults-${profile}${hsm ? '-hsm' : ''}`),
      portBase: portBase + 200 * index,
      devices,
      phaseMs: { before: seconds * 1000, down: seconds * 1000, after: seconds * 1000 },
      faults: Object.values(FaultName),
      log: (line) => {
        console.log(line);
      },
    });
    console.log(`\n${tableHeader}\n${rows.map(formatRow).join('\n')}`);
    console.log(formatReconcile(reconcile));
    failed ||= rows.some((r) => r.lost > 0 || r.duplicated > 0) || problems(reconcile) > 0;
  }
  return failed ? 1 : 0;
}

export function problems(r: Reconcile): number {
  return r.devicesOffLedger.length + r.orphanHsmVersions.length + r.missingHsmVersions.length + r.noncesReused.length;
}

export function formatReconcile(r: Reconcile): string {
  const line = (name: string, items: readonly string[]) =>
    `  ${name.padEnd(44)} ${String(items.length)}${items.length > 0 ? `: ${items.slice(0, 5).join('; ')}` : ''}`;
  return [
    'reconcile (Org2 auditor, the devices, the HSM):',
    line('devices holding another version than the ledger', r.devicesOffLedger),
    line('HSM versions the ledger does not account for', r.orphanHsmVersions),
    line('ledger versions the HSM does not hold', r.missingHsmVersions),
    line('nonces accepted twice', r.noncesReused),
  ].join('\n');
}

/** Runs a command's main with the process's arguments; on an interrupt, exits (running exit handlers). */
export function runCommand(main: (argv: string[]) => Promise<number>): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}

if (require.main === module) runCommand(main);
