import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import type { TrustAnchorRecord } from '@keyfleet/protocol';
import { x509 } from '@keyfleet/gateway';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { besideNetwork, connectionProfile, networkScript, networkScriptAt } from './support/network';

/** Runs Fabric's own peer CLI as IDENTITY of ORG, with the exports `network.sh env` prints. */
function peerCli(org: string, identity: string, ...args: string[]): string {
  const exports = networkScript('env', org, identity);
  return execFileSync('bash', ['-c', `${exports}\npeer "$@"`, 'peer', ...args], { encoding: 'utf8' });
}

/** `network.sh status`: each healthy running process → its pid, and each peer's block height. */
function status(output = networkScript('status')): { pids: Map<string, string>; heights: Map<string, number> } {
  const pids = new Map<string, string>();
  const heights = new Map<string, number>();
  for (const line of output.split('\n')) {
    const height = /^(\S+)\s+keyfleet block height (\d+)$/.exec(line);
    if (height?.[1] !== undefined && height[2] !== undefined) heights.set(height[1], Number(height[2]));
    const process = /^(\S+)\s+(\d+)\s+running\s+(OK|listening)$/.exec(line);
    if (process?.[1] !== undefined && process[2] !== undefined) pids.set(process[1], process[2]);
  }
  return { pids, heights };
}

describe('the Fabric network (network/network.sh) under keyfleet', function () {
  this.timeout(180_000);
  let f: GatewayFixture;
  before(async () => {
    f = await startGatewayFixture();
  });
  after(async () => {
    await f.close();
  });

  it('runs every process of the dev profile, healthy, with both peers at the same height', async () => {
    const { pids, heights } = status();
    expect([...pids.keys()].sort()).to.deep.equal(
      ['ca.org1', 'ca.org2', 'cc.org1', 'cc.org2', 'orderer0', 'peer0.org1', 'peer0.org2'].sort(),
    );
    const height = await f.ledger.height();
    expect(heights.get('peer0.org1')).to.be.at.least(height);
    expect(heights.get('peer0.org2')).to.be.at.least(height);
  });

  it('answers an empty page on a real peer (which sends no page metadata for one)', async () => {
    const devices = await f.ledger.evaluate<{ Records: unknown[]; Bookmark: string }>(
      'ListDevicesByGroup',
      'nobody-here',
      '10',
      '',
    );
    expect(devices).to.deep.include({ Records: [], Bookmark: '' });
    const attestations = await f.ledger.evaluate<{ Records: unknown[] }>('ListAttestations', 'nobody-here', '10', '');
    expect(attestations.Records).to.deep.equal([]);
  });

  it('answers up on a running network without restarting anything', () => {
    const before = status();
    networkScript('up');
    expect(status().pids).to.deep.equal(before.pids);
  });

  it('shows the same ledger to Fabric’s own CLI, as Org2’s auditor, as to the gateway client', async () => {
    const viaGateway = await f.ledger.evaluate<TrustAnchorRecord[]>('ListTrustAnchors');
    expect(viaGateway.map((a) => a.Kind).sort()).to.deep.equal(['device-ca', 'metadata-signing', 'verifier']);
    const viaPeerCli = JSON.parse(
      peerCli(
        'Org2',
        'auditor',
        'chaincode',
        'query',
        '-C',
        'keyfleet',
        '-n',
        f.chaincode,
        '-c',
        '{"Args":["ListTrustAnchors"]}',
      ),
    ) as TrustAnchorRecord[];
    expect(viaPeerCli).to.deep.equal(viaGateway);
  });

  it('tells the HSM-held gateway identity apart from the CA-enrolled role identities', async () => {
    const registrations = (await f.ledger.transactions()).filter((t) => t.method === 'RegisterTrustAnchor');
    const byGateway = registrations.filter((t) => t.creator.mspId === 'Org1MSP');
    expect(byGateway).to.have.length(2);
    for (const tx of byGateway) {
      const certificate = new X509Certificate(tx.creator.certificatePem);
      expect(certificate.subject).to.match(/CN=keyfleet-gateway$/m);
      const identityKey = (await f.gateway.hsm.getPublicKey({ label: 'fabric-identity' })).keyObject;
      expect(certificate.publicKey.equals(identityKey)).to.be.true;
    }
    // The verifier anchor is Org2's own write, by the verifier's HSM-held identity.
    const byVerifier = registrations.filter((t) => t.creator.mspId === 'Org2MSP');
    expect(byVerifier).to.have.length(1);
    expect(new X509Certificate(byVerifier[0]?.creator.certificatePem ?? '').subject).to.match(/CN=keyfleet-verifier$/m);

    // `network.sh env Org1 operator` is a file identity from Org1's CA: another name, the operator role.
    const exports = networkScript('env', 'Org1', 'operator');
    const msp = /CORE_PEER_MSPCONFIGPATH='([^']+)'/.exec(exports)?.[1] ?? expect.fail('no MSP path in env');
    const operatorPem = readFileSync(`${msp}/signcerts/cert.pem`, 'utf8');
    expect(new X509Certificate(operatorPem).subject).to.match(/CN=operator$/m);
    const attributes = new x509.X509Certificate(operatorPem).getExtension('1.2.3.4.5.6.7.8.1');
    expect(JSON.parse(Buffer.from(attributes?.value ?? new ArrayBuffer(0)).toString())).to.deep.equal({
      attrs: { role: 'operator' },
    });
    const profile = JSON.parse(readFileSync(connectionProfile, 'utf8')) as {
      organizations: Record<string, { enrolments: Record<string, { role: string }> }>;
    };
    expect(profile.organizations.Org1?.enrolments['keyfleet-gateway']?.role).to.equal('operator');
    expect(profile.organizations.Org2?.enrolments['keyfleet-verifier']?.role).to.equal('verifier');
  });
});

describe('a second network beside the first, crashed and brought back by up', function () {
  this.timeout(240_000);
  const beside = (...args: string[]) => networkScriptAt(besideNetwork.dir, besideNetwork.portBase, ...args);
  const alive = (pid: string) => {
    try {
      process.kill(Number(pid), 0);
      return true;
    } catch {
      return false;
    }
  };
  const everyProcess = ['ca.org1', 'ca.org2', 'cc.org1', 'cc.org2', 'orderer0', 'peer0.org1', 'peer0.org2'];
  after(() => {
    beside('down');
  });

  it('comes up and deploys on its own ports while the test network runs', () => {
    beside('up');
    beside('deploy');
    expect([...status(beside('status')).pids.keys()].sort()).to.deep.equal([...everyProcess].sort());
    expect([...status().pids.keys()]).to.include.members(everyProcess);
  });

  it('after a crash (a peer and a chaincode server killed, a pid file lost) up restarts it on its data', () => {
    const before = status(beside('status'));
    const pid = (name: string) => before.pids.get(name) ?? expect.fail(`no ${name}`);
    process.kill(-Number(pid('peer0.org1')), 'SIGKILL');
    process.kill(-Number(pid('cc.org1')), 'SIGKILL');
    // The orderer keeps running and holding its ports, but nothing records it any more.
    rmSync(join(besideNetwork.dir, 'pids', 'orderer0.pid'));

    beside('up');
    const after = status(beside('status'));
    expect([...after.pids.keys()].sort()).to.deep.equal([...everyProcess].sort());
    expect(alive(pid('orderer0')), 'the leftover orderer').to.be.false;
    // The ledger survived: both peers are back at least at their height before the crash.
    for (const peer of ['peer0.org1', 'peer0.org2']) {
      expect(after.heights.get(peer), peer).to.be.at.least(before.heights.get(peer) ?? Infinity);
    }
    const exports = beside('env', 'Org2', 'auditor');
    const anchors = execFileSync(
      'bash',
      ['-c', `${exports}\npeer chaincode query -C keyfleet -n keyfleet -c '{"Args":["ListTrustAnchors"]}'`],
      { encoding: 'utf8' },
    );
    expect(JSON.parse(anchors)).to.deep.equal([]);
  });

  it('goes down twice without complaint, and leaves nothing of its own behind', () => {
    const pids = [...status(beside('status')).pids.values()];
    beside('down');
    beside('down');
    expect(existsSync(besideNetwork.dir)).to.be.false;
    expect(pids.filter(alive)).to.deep.equal([]);
  });
});
