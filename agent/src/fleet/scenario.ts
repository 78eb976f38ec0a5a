import type { DeviceState, Fleet } from './simulator.js';
import { formatPhases, formatTable, PhaseRecorder, type PhaseStats } from './stats.js';

export interface ScenarioOptions {
  /** Rounds of attest-then-rotate after set-up; default 1. */
  readonly rounds?: number;
  /** Spread each round's operations over this many seconds (0: as fast as possible). */
  readonly intervalSeconds?: number;
}

export interface FleetSummary {
  readonly phases: readonly PhaseStats[];
  readonly devices: number;
  readonly enrolled: number;
  readonly verdicts: Readonly<Record<string, number>>;
  /** Devices whose last attestation was contraindicated: the gateway suspends them. */
  readonly contraindicated: readonly string[];
  /** Devices by the data-key version they hold. */
  readonly keyVersions: Readonly<Record<string, number>>;
  readonly rotations: number;
  readonly elapsedMs: number;
}

/**
 * The fleet's life: reference values, enrolment, a data key per device, then `rounds` rounds in
 * which every device attests and then rotates its key, each round spread over `intervalSeconds`.
 */
export async function runScenario(fleet: Fleet, options: ScenarioOptions = {}): Promise<FleetSummary> {
  const started = Date.now();
  const rounds = options.rounds ?? 1;
  const spreadMs = (options.intervalSeconds ?? 0) * 1000;
  await fleet.setReferenceValues();
  const phases: PhaseStats[] = [await fleet.enrol(), await fleet.provisionKeys(), await fleet.fetchKeys()];
  const attest = new PhaseRecorder('attest');
  const rotate = new PhaseRecorder('rotate');
  for (let round = 0; round < rounds; round++) {
    await fleet.attest({ recorder: attest, spreadMs });
    await fleet.rotate({ recorder: rotate, spreadMs });
  }
  if (rounds > 0) phases.push(attest.stats(), rotate.stats());
  return summarise(fleet.devices(), phases, Date.now() - started);
}

export function summarise(devices: readonly DeviceState[], phases: readonly PhaseStats[], elapsedMs: number) {
  const verdicts: Record<string, number> = {};
  const keyVersions: Record<string, number> = {};
  for (const d of devices) {
    const verdict = d.lastVerdict ?? 'not attested';
    verdicts[verdict] = (verdicts[verdict] ?? 0) + 1;
    keyVersions[`v${d.keyVersion}`] = (keyVersions[`v${d.keyVersion}`] ?? 0) + 1;
  }
  return {
    phases,
    devices: devices.length,
    enrolled: devices.filter((d) => d.enrolled).length,
    verdicts,
    contraindicated: devices.filter((d) => d.lastVerdict === 'contraindicated').map((d) => d.id),
    keyVersions,
    rotations: devices.reduce((n, d) => n + d.rotations, 0),
    elapsedMs,
  } satisfies FleetSummary;
}

/** The summary as the simulator prints it: the phase table, then what became of the devices. */
export function formatSummary(summary: FleetSummary): string {
  const list = (record: Readonly<Record<string, number>>) =>
    Object.entries(record)
      .map(([k, n]) => `${n} ${k}`)
      .join(', ');
  const shown = summary.contraindicated.slice(0, 5).join(', ');
  const more = summary.contraindicated.length > 5 ? ` and ${summary.contraindicated.length - 5} more` : '';
  return [
    formatPhases(summary.phases),
    '',
    formatTable(
      ['fleet', ''],
      [
        ['devices enrolled', `${summary.enrolled} of ${summary.devices}`],
        ['last verdicts', list(summary.verdicts)],
        ['caught (suspended)', summary.contraindicated.length === 0 ? 'none' : `${shown}${more}`],
        ['data-key versions', list(summary.keyVersions)],
        ['rotations done', String(summary.rotations)],
        ['wall time', `${(summary.elapsedMs / 1000).toFixed(1)} s`],
      ],
    ),
  ].join('\n');
}
