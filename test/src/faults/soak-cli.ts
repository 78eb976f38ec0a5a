import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { formatReconcile, problems, runCommand } from './cli';
import { runSoak } from './soak';

/**
 * `npm run soak [-- --minutes M] [--devices N]`: the soak on a dev network of its own
 * (`.fabric/soak`, ports from 13400), memory sampled every minute (every tenth of the run when it is
 * shorter than ten minutes). Exits 1 when memory grows without bound, an acknowledged operation is
 * lost or applied twice, or the reconcile disagrees.
 */
const repoRoot = resolve(__dirname, '..', '..', '..');

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { minutes: { type: 'string', default: '30' }, devices: { type: 'string', default: '24' } },
  });
  const minutes = Number(values.minutes);
  const devices = Number(values.devices);
  if (!(minutes >= 1 && minutes <= 24 * 60) || !(Number.isInteger(devices) && devices >= 2 && devices <= 1000)) {
    console.error('usage: npm run soak -- [--minutes 1..1440] [--devices 2..1000]');
    return 2;
  }
  const durationMs = minutes * 60_000;
  console.log(`== soak: ${String(devices)} devices, ${String(minutes)} min of rotations and attestations`);
  const result = await runSoak({
    dir: resolve(repoRoot, '.fabric', 'soak'),
    portBase: 13400,
    devices,
    durationMs,
    sampleMs: Math.min(60_000, durationMs / 10),
    log: (line) => {
      console.log(line);
    },
  });
  const failed = Object.entries(result.failed)
    .map(([code, n]) => `${code} ${String(n)}`)
    .join(', ');
  console.log(
    [
      `operations: ${String(result.attempted)} attempted, ${String(result.acknowledged)} acknowledged, failed: ${failed || 'none'}`,
      `lost ${String(result.lost)}, duplicated ${String(result.duplicated)}`,
      `memory growing without bound: ${result.growing.join(', ') || 'none'}`,
      formatReconcile(result.reconcile),
    ].join('\n'),
  );
  const bad = result.lost > 0 || result.duplicated > 0 || result.growing.length > 0 || problems(result.reconcile) > 0;
  return bad ? 1 : 0;
}

if (require.main === module) runCommand(main);
