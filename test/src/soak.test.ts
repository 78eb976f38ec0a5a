import { resolve } from 'node:path';
import { expect } from 'chai';
import { formatReconcile } from './faults/cli';
import { growingProcesses, runSoak, type SoakResult } from './faults/soak';

/** `npm run soak`'s 3-minute form: a dev network of its own, ports from KEYFLEET_TEST_PORT_BASE+460. */
describe('soak: three minutes of steady load, memory bounded and nothing lost', function () {
  this.timeout(900_000);
  const portBase = Number(process.env.KEYFLEET_TEST_PORT_BASE ?? 17000) + 460;

  describe('telling growth without bound from warm-up and noise', () => {
    const series = (values: number[]) => values.map((mib, i) => ({ atSeconds: i * 10, rss: { gateway: mib } }));
    const rows: [string, number[], string[]][] = [
      ['flat', Array.from({ length: 18 }, () => 120), []],
      [
        'warm-up, then flat',
        [80, 100, 130, 150, 150, 150, 151, 149, 150, 152, 150, 149, 151, 150, 150, 152, 149, 150],
        [],
      ],
      ['garbage-collector sawtooth', Array.from({ length: 18 }, (_, i) => (i % 3 === 0 ? 180 : 140)), []],
      ['a steady leak', Array.from({ length: 18 }, (_, i) => 120 + 8 * i), ['gateway']],
      [
        'a step up that then holds',
        [...Array.from({ length: 9 }, () => 98), 113, 118, 118, 120, 120, 120, 119, 120, 121],
        [],
      ],
      ['a slow, steady leak', Array.from({ length: 18 }, (_, i) => 150 + 2.5 * i), ['gateway']],
      ['too few samples to tell', [100, 200, 300, 400, 500], []],
    ];
    for (const [name, values, expected] of rows) {
      it(`${name}: ${expected.length > 0 ? 'growing' : 'bounded'}`, () => {
        expect(growingProcesses(series(values))).to.deep.equal(expected);
      });
    }
  });

  describe('on a real network', () => {
    let result: SoakResult;
    before(async () => {
      result = await runSoak({
        dir: resolve(__dirname, '..', '..', '.fabric', `soak-test-${String(portBase)}`),
        portBase,
        devices: 8,
        durationMs: 180_000,
        sampleMs: 10_000,
        log: () => undefined,
      });
      const names = Object.keys(result.samples[0]?.rss ?? {});
      const series = names.map(
        (name) => `  ${name}: ${result.samples.map((s) => (s.rss[name] ?? 0).toFixed(0)).join(' ')}`,
      );
      console.log(
        `soak: ${String(result.acknowledged)} of ${String(result.attempted)} acknowledged; RSS (MiB) every 10 s:\n${series.join('\n')}\n${formatReconcile(result.reconcile)}`,
      );
    });

    it('acknowledges operations all along, loses none and applies none twice', () => {
      expect(result.acknowledged).to.be.above(100);
      expect(result.lost).to.equal(0);
      expect(result.duplicated).to.equal(0);
    });

    it('samples every keyfleet process, and none grows without bound', () => {
      expect(result.samples.length).to.be.at.least(18);
      for (const sample of result.samples) {
        expect(
          Object.values(sample.rss).every((mib) => mib > 10),
          JSON.stringify(sample),
        ).to.equal(true);
      }
      expect(result.growing).to.deep.equal([]);
    });

    it('leaves the devices, the HSM and the ledger in agreement', () => {
      expect(result.reconcile).to.deep.equal({
        devicesOffLedger: [],
        orphanHsmVersions: [],
        missingHsmVersions: [],
        noncesReused: [],
      });
    });
  });
});
