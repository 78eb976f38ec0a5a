#!/usr/bin/env node
/**
 * keyfleet-fleet: N virtual devices in one process that enrol, attest and rotate against a
 * gateway, with a progress bar on stderr and a summary table on stdout.
 *
 *   node agent/dist/fleet/cli.js --devices 50 --tampered 1 --rounds 1 --audit
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { auditTrail } from './audit.js';
import { newOperatorAuthorization } from './operator.js';
import { newProgress, silentProgress } from './progress.js';
import { formatSummary, runScenario } from './scenario.js';
import { newFleet } from './simulator.js';

const usage = `usage: keyfleet-fleet [options]

  --gateway URL        gateway base URL (default $KEYFLEET_URL or http://127.0.0.1:8080)
  --credentials FILE   operator credentials (default $KEYFLEET_CREDENTIALS or .keyfleet/operator.json)
  --devices N          virtual devices, 1 to 10000 (default 50)
  --tampered K         devices whose application file was modified (default 0)
  --rounds R           rounds of attest-then-rotate after enrolment (default 1)
  --interval S         spread each round over S seconds (default 0: as fast as possible)
  --concurrency C      operations in flight (default 32)
  --group G            device group (default fleet-sim)
  --prefix P           device ids P-00001… (default sim; use a new one per run on the same ledger)
  --audit              print the audit trail of a caught device and a healthy one, read from the ledger
  --json FILE          also write the summary as JSON
  --quiet              no progress bar`;

async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      gateway: { type: 'string' },
      credentials: { type: 'string' },
      devices: { type: 'string', default: '50' },
      tampered: { type: 'string', default: '0' },
      rounds: { type: 'string', default: '1' },
      interval: { type: 'string', default: '0' },
      concurrency: { type: 'string', default: '32' },
      group: { type: 'string', default: 'fleet-sim' },
      prefix: { type: 'string', default: 'sim' },
      audit: { type: 'boolean', default: false },
      json: { type: 'string' },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const int = (name: string, raw: string, min: number, max: number): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw new RangeError(`--${name} must be an integer ${min}..${max}`);
    return n;
  };
  const devices = int('devices', values.devices, 1, 10_000);
  const tampered = int('tampered', values.tampered, 0, devices);
  const rounds = int('rounds', values.rounds, 0, 1000);
  const interval = int('interval', values.interval, 0, 86_400);
  const concurrency = int('concurrency', values.concurrency, 1, 4096);
  const gatewayUrl = values.gateway ?? env.KEYFLEET_URL ?? 'http://127.0.0.1:8080';
  const credentialsFile = values.credentials ?? env.KEYFLEET_CREDENTIALS ?? '.keyfleet/operator.json';
  const audience = env.KEYFLEET_AUTH_AUDIENCE ?? 'keyfleet-gateway';

  const workDir = mkdtempSync(join(tmpdir(), 'keyfleet-fleet-'));
  try {
    const fleet = newFleet({
      gatewayUrl,
      size: devices,
      tampered,
      concurrency,
      group: values.group,
      idPrefix: values.prefix,
      workDir,
      operatorAuthorization: newOperatorAuthorization({ credentialsFile, audience }),
      progress: values.quiet ? silentProgress : newProgress(),
    });
    process.stderr.write(
      `fleet: ${devices} devices (${tampered} tampered) against ${gatewayUrl}, ${rounds} round(s), ${concurrency} in flight\n`,
    );
    const summary = await runScenario(fleet, { rounds, intervalSeconds: interval });
    process.stdout.write(`\n${formatSummary(summary)}\n`);
    if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify(summary, null, 2)}\n`);

    if (values.audit) {
      const states = fleet.devices();
      const caught = states.find((d) => d.lastVerdict === 'contraindicated');
      const healthy = states.find((d) => d.lastVerdict === 'affirming' && d.rotations > 0) ?? states[0];
      const authorization = await fleet.operatorAuthorization();
      for (const device of [caught, healthy]) {
        if (device === undefined) continue;
        const title = device === caught ? 'caught by attestation' : 'healthy';
        process.stdout.write(`\naudit trail of ${device.id} (${title}), from the ledger:\n`);
        for (const line of await auditTrail(fleet.client, authorization, device.id, device.keyId)) {
          process.stdout.write(`  ${line}\n`);
        }
      }
    }
    const failures = summary.phases.reduce((n, p) => n + p.failed, 0);
    const expected = summary.contraindicated.length * rounds; // suspended devices cannot rotate
    return failures > expected ? 1 : 0;
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

main(process.argv.slice(2), process.env).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const code = typeof (err as { code?: unknown }).code === 'string' ? `${(err as { code: string }).code}: ` : '';
    process.stderr.write(`keyfleet-fleet: ${code}${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
