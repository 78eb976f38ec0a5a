import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'chai';

/**
 * The refusals of the multi-host placement (issue 15 item 5), which need no network: a hosts file
 * for `network.sh up --hosts` and the arguments of network/hosts.sh. Bad input is refused with a
 * clear message and makes nothing: no network directory, no namespace. The multi-host network
 * itself runs in `npm run test:multihost` (multi-host.test.ts).
 */
const repoRoot = resolve(__dirname, '..', '..');
const portBase = Number(process.env.KEYFLEET_TEST_PORT_BASE ?? 17000);

describe('multi-host placement: hostile hosts files and hosts.sh arguments are refused, nothing made', () => {
  let work: string;
  beforeEach(() => {
    work = mkdtempSync(join(tmpdir(), 'network-hosts-'));
  });
  afterEach(() => {
    rmSync(work, { recursive: true, force: true });
  });

  const good = ['orderer kf-orderer 10.123.0.10', 'org1 kf-org1 10.123.0.11', 'org2 kf-org2 10.123.0.12'];
  const hostileFiles: [string, string[], string][] = [
    ['an unknown unit', [...good, 'peer kf-peer 10.123.0.13'], 'unknown unit peer'],
    [
      'a public address',
      ['orderer kf-orderer 8.8.8.8', ...good.slice(1)],
      "private IPv4 address (10/8, 172.16/12, 192.168/16, 127/8), got '8.8.8.8'",
    ],
    ['an address just outside 172.16/12', [...good.slice(0, 2), 'org2 kf-org2 172.32.0.12'], "got '172.32.0.12'"],
    [
      'a host name instead of an address',
      [...good.slice(0, 2), 'org2 kf-org2 org2.example.com'],
      "got 'org2.example.com'",
    ],
    ['no address', [...good.slice(0, 2), 'org2 kf-org2'], "got ''"],
    [
      'a namespace name with a slash',
      ['orderer ../orderer 10.123.0.10', ...good.slice(1)],
      "network namespace name, got '../orderer'",
    ],
    ['no line for org2', good.slice(0, 2), 'no line for org2'],
  ];
  for (const [what, lines, message] of hostileFiles) {
    it(`up --hosts refuses a file with ${what}`, () => {
      const file = join(work, 'hosts');
      writeFileSync(file, `${lines.join('\n')}\n`);
      const dir = join(work, 'network');
      const run = spawnSync('bash', [join(repoRoot, 'network', 'network.sh'), 'up', '--hosts', file, '--dir', dir], {
        env: { ...process.env, KEYFLEET_NETWORK_PORT_BASE: String(portBase + 830) },
        encoding: 'utf8',
      });
      expect(run.status).to.equal(1);
      expect(run.stderr).to.include(message);
      expect(readdirSync(work)).to.deep.equal(['hosts']);
    });
  }

  it('up --hosts refuses a file that does not exist', () => {
    const run = spawnSync(
      'bash',
      [join(repoRoot, 'network', 'network.sh'), 'up', '--hosts', join(work, 'none'), '--dir', join(work, 'n')],
      {
        encoding: 'utf8',
      },
    );
    expect(run.status).to.equal(1);
    expect(run.stderr).to.include(`--hosts ${join(work, 'none')}: no such file`);
    expect(readdirSync(work)).to.deep.equal([]);
  });

  const hostileArguments: [string, string[], string][] = [
    ['an empty prefix', ['up', ''], "PREFIX must be 1 to 12 letters, digits or -, got ''"],
    ['a prefix with a slash', ['up', 'kf/x'], "got 'kf/x'"],
    ['a prefix of 13 characters', ['up', 'kfabcdefghijk'], "got 'kfabcdefghijk'"],
    ['a public subnet', ['up', 'kfhostile', '8.8.8'], "private range (10/8, 172.16/12, 192.168/16), got '8.8.8'"],
    ['a subnet beside 192.168/16', ['up', 'kfhostile', '192.169.1'], "got '192.169.1'"],
    ['a subnet with four octets', ['up', 'kfhostile', '10.1.2.3'], "got '10.1.2.3'"],
  ];
  for (const [what, args, message] of hostileArguments) {
    it(`hosts.sh refuses ${what}, and makes no namespace`, () => {
      const before = namespaces();
      const run = spawnSync('bash', [join(repoRoot, 'network', 'hosts.sh'), ...args], { encoding: 'utf8' });
      expect(run.status).to.equal(1);
      expect(run.stderr).to.include(message);
      expect(run.stdout).to.equal('');
      expect(namespaces()).to.deep.equal(before);
    });
  }
});

/** The machine's named network namespaces (`ip netns list`), sorted. */
function namespaces(): string[] {
  const run = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return run.stdout
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name !== '')
    .sort();
}
