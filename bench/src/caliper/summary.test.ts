import { expect } from 'chai';
import { failedRounds, parseCaliperReport } from './summary';

const head =
  '<th>Name</th> <th>Succ</th> <th>Fail</th> <th>Send Rate (TPS)</th> <th>Max Latency (s)</th> ' +
  '<th>Min Latency (s)</th> <th>Avg Latency (s)</th> <th>Throughput (TPS)</th>';
const row = (cells: string[]) => `<tr>${cells.map((c) => ` <td>${c}</td>`).join('')}</tr>`;
/** Laid out as Caliper 0.6.0's report: the summary table first, then one table per round. */
const report = (rows: string[][], columns = head) =>
  `<html><body><table style="min-width: 100%;"><tr>${columns}</tr>${rows.map(row).join('\n')}</table>` +
  `<table><tr>${head}</tr>${row(['other', '1', '0', '1', '1', '1', '1', '1'])}</table></body></html>`;

describe("Caliper's report summary", () => {
  it('reads every row of the summary table, latencies in seconds, none from the later tables', () => {
    const rounds = parseCaliperReport(
      report([
        ['enrol-devices', '494', '0', '16.7', '2.68', '0.14', '1.06', '16.3'],
        ['rotate-keys', '0', '12', '3.0', '-', '-', '-', '2.9'],
      ]),
    );
    expect(rounds).to.deep.equal([
      {
        round: 'enrol-devices',
        succeeded: 494,
        failed: 0,
        sendRate: 16.7,
        throughput: 16.3,
        latencySeconds: { min: 0.14, avg: 1.06, max: 2.68 },
      },
      {
        round: 'rotate-keys',
        succeeded: 0,
        failed: 12,
        sendRate: 3,
        throughput: 2.9,
        latencySeconds: { min: null, avg: null, max: null },
      },
    ]);
  });

  const broken: [string, string][] = [
    ['no table at all', '<html><body>No data within test result</body></html>'],
    ['other columns', report([], '<th>Name</th> <th>Succ</th>')],
  ];
  for (const [what, html] of broken) {
    it(`refuses a report with ${what}`, () => {
      expect(() => parseCaliperReport(html)).to.throw(/summary/);
    });
  }

  it("reads the number of failed rounds from Caliper's closing line, or none when it never got there", () => {
    expect(
      failedRounds(
        '... Benchmark finished in 114.879 seconds. Total rounds: 4. Successful rounds: 2. Failed rounds: 2.',
      ),
    ).to.equal(2);
    expect(failedRounds('Total rounds: 1. Successful rounds: 1. Failed rounds: 0.')).to.equal(0);
    expect(failedRounds('Error: cannot connect')).to.equal(null);
  });
});
