#!/usr/bin/env node
/**
 * The last step of `npm run caliper`: `node bench/dist/caliper/summary.js DIR` reads Caliper's
 * reports (DIR/report-NAME.html) and logs (DIR/caliper-NAME.log) of the baseline and keyfleet
 * benchmarks, writes DIR/summary.json and DIR/summary.md, prints the Markdown table, and exits 1
 * when a benchmark is missing, a round failed or a transaction failed (Caliper itself exits 0 then).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** One row of the summary table at the top of Caliper 0.6.0's HTML report. */
export interface RoundFigures {
  readonly round: string;
  readonly succeeded: number;
  readonly failed: number;
  /** Transactions sent per second. */
  readonly sendRate: number;
  /** Caliper's throughput: (succeeded + failed) / (last finish − first send), per second. */
  readonly throughput: number;
  readonly latencySeconds: { readonly min: number | null; readonly avg: number | null; readonly max: number | null };
}

const Columns = [
  'Name',
  'Succ',
  'Fail',
  'Send Rate (TPS)',
  'Max Latency (s)',
  'Min Latency (s)',
  'Avg Latency (s)',
  'Throughput (TPS)',
];

/** The rows of the report's first table (the summary); an unexpected layout is an error. */
export function parseCaliperReport(html: string): RoundFigures[] {
  const table = /<table[^>]*>([\s\S]*?)<\/table>/.exec(html)?.[1];
  if (table === undefined) throw new Error('no summary table in the Caliper report');
  const cells = (row: string, tag: 'td' | 'th') =>
    [...row.matchAll(new RegExp(`<${tag}>([^<]*)</${tag}>`, 'g'))].map((m) => (m[1] ?? '').trim());
  const rows = [...table.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((m) => m[1] ?? '');
  const head = cells(rows[0] ?? '', 'th');
  if (head.join('|') !== Columns.join('|')) throw new Error(`unexpected summary columns: ${head.join(', ')}`);
  const seconds = (text: string) => (text === '-' ? null : Number(text));
  return rows.slice(1).map((row) => {
    const [round = '', succ = '', fail = '', send = '', max = '', min = '', avg = '', tps = ''] = cells(row, 'td');
    return {
      round,
      succeeded: Number(succ),
      failed: Number(fail),
      sendRate: Number(send),
      throughput: Number(tps),
      latencySeconds: { min: seconds(min), avg: seconds(avg), max: seconds(max) },
    };
  });
}

/** Caliper's closing line: `Total rounds: N. Successful rounds: M. Failed rounds: K.` */
export function failedRounds(log: string): number | null {
  const match = /Total rounds: \d+\. Successful rounds: \d+\. Failed rounds: (\d+)\./.exec(log);
  return match === null ? null : Number(match[1]);
}

const ms = (s: number | null) => (s === null ? '–' : String(Math.round(s * 1000)));

function main(dir: string): number {
  const benchmarks = ['baseline', 'keyfleet'];
  const problems: string[] = [];
  const summary: Record<string, { rounds: RoundFigures[]; failedRounds: number | null }> = {};
  for (const name of benchmarks) {
    const report = join(dir, `report-${name}.html`);
    const log = join(dir, `caliper-${name}.log`);
    if (!existsSync(report) || !existsSync(log)) {
      problems.push(`${name}: no report or log`);
      continue;
    }
    const rounds = parseCaliperReport(readFileSync(report, 'utf8'));
    const failed = failedRounds(readFileSync(log, 'utf8'));
    summary[name] = { rounds, failedRounds: failed };
    if (failed !== 0) problems.push(`${name}: ${failed ?? 'unknown number of'} failed round(s)`);
    for (const round of rounds) if (round.failed > 0) problems.push(`${round.round}: ${round.failed} failed tx`);
  }
  const lines = [
    '| round | succ | fail | send rate tx/s | throughput tx/s | latency min / avg / max ms |',
    '| ----- | ---- | ---- | -------------- | --------------- | -------------------------- |',
    ...Object.values(summary).flatMap(({ rounds }) =>
      rounds.map(
        (r) =>
          `| ${r.round} | ${r.succeeded} | ${r.failed} | ${r.sendRate} | ${r.throughput} | ` +
          `${ms(r.latencySeconds.min)} / ${ms(r.latencySeconds.avg)} / ${ms(r.latencySeconds.max)} |`,
      ),
    ),
  ];
  writeFileSync(
    join(dir, 'summary.json'),
    `${JSON.stringify({ at: new Date().toISOString(), ...summary }, null, 2)}\n`,
  );
  writeFileSync(join(dir, 'summary.md'), `${lines.join('\n')}\n`);
  console.log(lines.join('\n'));
  console.log(`\nCaliper's reports: ${join(dir, 'report-baseline.html')}, ${join(dir, 'report-keyfleet.html')}`);
  for (const problem of problems) console.error(`caliper: ${problem}`);
  return problems.length === 0 ? 0 : 1;
}

if (require.main === module) {
  const dir = process.argv[2];
  if (dir === undefined) {
    console.error('usage: summary.js DIR');
    process.exit(2);
  }
  process.exitCode = main(dir);
}
