import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'chai';

/**
 * A multi-host Fabric network (issue 15 item 5): the test makes its own hosts, Linux network
 * namespaces on one private bridge (network/hosts.sh), places the orderer on one, each
 * organisation's peer, CA and chaincode server on another, and drives the network from a client
 * host: a write through Org1's peer is read by Org2 through Org2's peer, with Fabric's CLI too, and
 * the scale bench runs there. Needs root (`ip netns`). `npm run test:multihost` (its own script:
 * 2 to 4 minutes on a busy 2-core machine); the hosts and processes go even when it fails.
 */
const repoRoot = resolve(__dirname, '..', '..');
const portBase = Number(process.env.KEYFLEET_TEST_PORT_BASE ?? 17000);
// The ports are inside the private hosts, where nothing else listens: any base would do.
const hostsPortBase = portBase + 830;
// One set of namespaces per test port base, so that runs of other engineers never meet.
const prefix = `kf${String(portBase)}`;
const dir = resolve(repoRoot, '.fabric', `multi-host-${String(portBase)}`);
const hostsFile = `${dir}.hosts`;
const subnet = '10.123.0';
const expected = {
  orderer: { ns: `${prefix}-orderer`, addr: `${subnet}.10` },
  org1: { ns: `${prefix}-org1`, addr: `${subnet}.11` },
  org2: { ns: `${prefix}-org2`, addr: `${subnet}.12` },
  client: { ns: `${prefix}-client`, addr: `${subnet}.20` },
} as const;

const network = (...args: string[]) =>
  execFileSync('bash', [join(repoRoot, 'network', 'network.sh'), ...args, '--dir', dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
const hosts = (...args: string[]) =>
  execFileSync('bash', [join(repoRoot, 'network', 'hosts.sh'), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
/** A command run on the client host. */
const onClient = (command: string, ...args: string[]) =>
  execFileSync('ip', ['netns', 'exec', expected.client.ns, command, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
/** The network namespace a process runs in (`ip netns identify`), '' for the machine's own. */
const namespaceOf = (pid: number) =>
  execFileSync('ip', ['netns', 'identify', String(pid)], { encoding: 'utf8' }).trim();
/** Listening TCP addresses (`ss`) in a namespace, or the machine's own with ns ''. */
const listening = (ns: string) =>
  (ns === ''
    ? execFileSync('ss', ['-ltnH'], { encoding: 'utf8' })
    : execFileSync('ip', ['netns', 'exec', ns, 'ss', '-ltnH'], { encoding: 'utf8' })
  )
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[3] ?? '')
    .filter((address) => address !== '');

function cleanUp(): void {
  spawnSync('bash', [join(repoRoot, 'network', 'network.sh'), 'down', '--dir', dir], { stdio: 'ignore' });
  spawnSync('bash', [join(repoRoot, 'network', 'hosts.sh'), 'down', prefix], { stdio: 'inherit' });
  rmSync(hostsFile, { force: true });
}

describe('a multi-host network: orderer, Org1 and Org2 on hosts of their own (network namespaces)', function () {
  this.timeout(600_000);
  const connection = join(dir, 'connection.json');

  before(() => {
    cleanUp(); // whatever an interrupted run left
    mkdirSync(resolve(dir, '..'), { recursive: true });
    const file = hosts('up', prefix, subnet);
    execFileSync('bash', ['-c', 'cat > "$1"', 'write', hostsFile], { input: file });
    network('up', '--shards', '2', '--hosts', hostsFile, '--port-base', String(hostsPortBase));
    network('deploy');
    // The cross-host write gets a state namespace of its own: the bench registers its own anchor.
    network('deploy', '--name', 'crosshost');
  });
  after(cleanUp);

  it('runs each process in its host namespace, listening on that host address only', () => {
    const unitOf = (name: string) =>
      name.startsWith('orderer') || name === 'ca.orderer' ? 'orderer' : name.endsWith('org1') ? 'org1' : 'org2';
    const pids = join(dir, 'pids');
    const names = execFileSync('ls', [pids], { encoding: 'utf8' }).trim().split('\n');
    expect(names.map((n) => n.replace(/\.pid$/, '')).sort()).to.deep.equal(
      ['ca.org1', 'ca.org2', 'cc.org1', 'cc.org2', 'orderer0', 'peer0.org1', 'peer0.org2'].sort(),
    );
    for (const file of names) {
      const name = file.replace(/\.pid$/, '');
      const pid = Number(readFileSync(join(pids, file), 'utf8'));
      expect(namespaceOf(pid), name).to.equal(expected[unitOf(name)].ns);
    }
    for (const unit of ['orderer', 'org1', 'org2'] as const) {
      const addresses = listening(expected[unit].ns);
      expect(addresses, unit).to.not.be.empty;
      // The host's address, or its loopback (a chaincode server and the peer's chaincode port).
      for (const address of addresses)
        expect(address, unit).to.match(new RegExp(`^(${expected[unit].addr}|127\\.0\\.0\\.1):\\d+$`));
    }
    // The machine's own namespace has none of the network's ports, and the client host none.
    const ports = new Set(Array.from({ length: 102 }, (_, i) => String(hostsPortBase + i)));
    expect(listening('').filter((a) => ports.has(a.slice(a.lastIndexOf(':') + 1)))).to.deep.equal([]);
    expect(listening(expected.client.ns)).to.deep.equal([]);
  });

  it("commits a write through Org1's host that Org2 reads through its own host, with fabric-gateway and Fabric's CLI", () => {
    for (const [index, channel] of ['keyfleet', 'keyfleet-shard1'].entries()) {
      const anchorId = `cross-host-${String(index)}`;
      const out = JSON.parse(
        onClient(
          'node',
          join(repoRoot, 'test', 'dist', 'support', 'cross-host-client.js'),
          connection,
          channel,
          'crosshost',
          anchorId,
        ),
      ) as { written: { AnchorID: string }; readByOrg2: unknown; org1Peer: string; org2Peer: string };
      expect(out.written.AnchorID).to.equal(anchorId);
      expect(out.readByOrg2, channel).to.deep.equal(out.written);
      expect(out.org1Peer).to.match(new RegExp(`^${expected.org1.addr}:`));
      expect(out.org2Peer).to.match(new RegExp(`^${expected.org2.addr}:`));
      // Org2's auditor with Fabric's own peer CLI, from the client host.
      const env = network('env', 'Org2', 'auditor', '--channel', channel);
      const listed = JSON.parse(
        onClient(
          'bash',
          '-c',
          `${env}\npeer chaincode query -C "$KEYFLEET_CHANNEL" -n crosshost -c '{"Args":["ListTrustAnchors"]}'`,
        ),
      ) as { AnchorID: string }[];
      expect(listed.map((a) => a.AnchorID)).to.deep.equal([anchorId]);
    }
  });

  it('runs the scale bench from the client host: every loaded shard commits, CPU per transaction measured', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'multi-host-scale-')), 'scale.json');
    try {
      onClient(
        'node',
        join(repoRoot, 'bench', 'dist', 'scale.js'),
        '--network-dir',
        dir,
        '--shards',
        '1,2',
        '--workloads',
        'keyfleet',
        '--seconds',
        '4',
        '--repeats',
        '1',
        '--warm-seconds',
        '0',
        '--concurrency',
        '4',
        '--signs',
        '0',
        '--out',
        out,
      );
      const result = JSON.parse(readFileSync(out, 'utf8')) as {
        rounds: {
          shards: number;
          perShard: { channel: string; committed: number }[];
          cpuMsPerTx: Record<string, number>;
        }[];
      };
      expect(result.rounds.map((r) => r.shards)).to.deep.equal([1, 2]);
      for (const round of result.rounds) {
        expect(round.perShard.map((s) => s.channel)).to.deep.equal(
          ['keyfleet', 'keyfleet-shard1'].slice(0, round.shards),
        );
        for (const shard of round.perShard) expect(shard.committed, shard.channel).to.be.above(0);
        for (const kind of ['peer', 'orderer', 'chaincode']) expect(round.cpuMsPerTx[kind], kind).to.be.above(0);
      }
    } finally {
      rmSync(resolve(out, '..'), { recursive: true, force: true });
    }
  });
});
