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

import { joinNegativeNumbers, parseArgsProblem, UsageError, wholeNumber } from '../cli-args.js';
import { AgentErrorCode } from '../errors.js';
import { auditTrail } from './audit.js';
import { tlsTrustFromEnv } from '../http/tls.js';
import { newOperatorAuthorization } from './operator.js';
import { newProgress, silentProgress } from './progress.js';
import { formatSummary, runScenario } from './scenario.js';
import { newFleet } from './simulator.js';

const usage = `usage: keyfleet-fleet [options]

  --gateway URL        gateway base URL (default $KEYFLEET_URL or https://127.0.0.1:8080); the
                       gateway's certificate must chain to the CA in $KEYFLEET_CA_FILE
  --credentials FILE   operator credentials (default $KEYFLEET_CREDENTIALS or .keyfleet/operator.json)
  --devices N          virtual devices, 1 to 10000 (default 50)
  --tampered K         devices whose application file was modified (default 0)
  --rounds R           rounds of attest-then-rotate after enrolment (default 1)
  --interval S         spread each round over S seconds (default 0: as fast as possible)
  --concurrency C      operations in flight (default 32)
  --group G            device group (default fleet-sim)
  --groups N           spread the devices over N groups G-1 … G-N (default 1: all in G), 1 to 64;
                       a shard map with rules by group spreads them over the shards
  --prefix P           device ids P-00001… (default sim; use a new one per run on the same ledger)
  --audit              print the audit trail of a caught device and a healthy one, read from the ledger
  --json FILE          also write the summary as JSON
  --quiet              no progress bar`;

const options = {
  gateway: { type: 'string' },
  credentials: { type: 'string' },
  devices: { type: 'string', default: '50' },
  tampered: { type: 'string', default: '0' },
  rounds: { type: 'string', default: '1' },
  interval: { type: 'string', default: '0' },
  concurrency: { type: 'string', default: '32' },
  group: { type: 'string', default: 'fleet-sim' },
  groups: { type: 'string', default: '1' },
  prefix: { type: 'string', default: 'sim' },
  audit: { type: 'boolean', default: false },
  json: { type: 'string' },
  quiet: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;
/** Where the simulator writes its messages and summary: `process`, or a test's buffers. */
export interface CliIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

const numeric = new Set(['--devices', '--tampered', '--rounds', '--interval', '--concurrency', '--groups']);

/**
 * Runs the simulator: exit status 0, 1 when more operations failed than the tampered devices
 * explain, 2 on a usage error (one line on stderr that names the option).
 */
export async function run(argv: readonly string[], env: NodeJS.ProcessEnv, io: CliIo = process): Promise<number> {
  try {
    return await main(argv, env, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(
        `keyfleet-fleet: ${AgentErrorCode.InvalidArgument}: ${err.message} (keyfleet-fleet --help shows the usage)\n`,
      );
      return 2;
    }
    const code = typeof (err as { code?: unknown }).code === 'string' ? `${(err as { code: string }).code}: ` : '';
    io.stderr.write(`keyfleet-fleet: ${code}${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

function parseCommandLine(argv: readonly string[]) {
  try {
    return parseArgs({ args: joinNegativeNumbers(argv, numeric), options });
  } catch (err) {
    throw new UsageError(parseArgsProblem(err));
  }
}

async function main(argv: readonly string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  const { values } = parseCommandLine(argv);
  if (values.help) {
    io.stdout.write(`${usage}\n`);
    return 0;
  }
  const devices = wholeNumber('--devices', values.devices, 1, 10_000);
  const tampered = wholeNumber('--tampered', values.tampered, 0, devices);
  const rounds = wholeNumber('--rounds', values.rounds, 0, 1000);
  const groups = wholeNumber('--groups', values.groups, 1, 64);
  const interval = wholeNumber('--interval', values.interval, 0, 86_400);
  const concurrency = wholeNumber('--concurrency', values.concurrency, 1, 4096);
  const gatewayUrl = values.gateway ?? env.KEYFLEET_URL ?? 'https://127.0.0.1:8080';
  const tls = tlsTrustFromEnv(env);
  const credentialsFile = values.credentials ?? env.KEYFLEET_CREDENTIALS ?? '.keyfleet/operator.json';
  const audience = env.KEYFLEET_AUTH_AUDIENCE ?? 'keyfleet-gateway';

  const workDir = mkdtempSync(join(tmpdir(), 'keyfleet-fleet-'));
  try {
    const fleet = newFleet({
      gatewayUrl,
      tls,
      size: devices,
      tampered,
      concurrency,
      group: values.group,
      groups,
      idPrefix: values.prefix,
      workDir,
      operatorAuthorization: newOperatorAuthorization({ credentialsFile, audience }),
      progress: values.quiet ? silentProgress : newProgress(),
    });
    io.stderr.write(
      `fleet: ${devices} devices (${tampered} tampered) against ${gatewayUrl}, ${rounds} round(s), ${concurrency} in flight\n`,
    );
    const summary = await runScenario(fleet, { rounds, intervalSeconds: interval });
    io.stdout.write(`\n${formatSummary(summary)}\n`);
    if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify(summary, null, 2)}\n`);

    if (values.audit) {
      const states = fleet.devices();
      const caught = states.find((d) => d.lastVerdict === 'contraindicated');
      const healthy = states.find((d) => d.lastVerdict === 'affirming' && d.rotations > 0) ?? states[0];
      const authorization = await fleet.operatorAuthorization();
      for (const device of [caught, healthy]) {
        if (device === undefined) continue;
        const title = device === caught ? 'caught by attestation' : 'healthy';
        io.stdout.write(`\naudit trail of ${device.id} (${title}), from the ledger:\n`);
        for (const line of await auditTrail(fleet.client, authorization, device.id, device.keyId)) {
          io.stdout.write(`  ${line}\n`);
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

if (require.main === module) {
  void run(process.argv.slice(2), process.env).then((code) => {
    process.exitCode = code;
  });
}
