import { execFileSync } from 'node:child_process';
import { expect } from 'chai';
import type { TrustAnchorRecord } from '@keyfleet/protocol';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture';
import { networkScript } from './support/network';

/**
 * The conventional path users of Fabric's test network take: the chaincode packaged by
 * `peer lifecycle chaincode package --lang node`, installed on both organisations' peers, built
 * (npm) and launched by each peer through the Node external builder in network/builders/node —
 * no chaincode servers of ours, no containers. The whole stack then runs on it.
 */
describe('the chaincode as a --lang node package, built and launched by the peers', function () {
  this.timeout(240_000);
  let f: GatewayFixture;
  before(async () => {
    f = await startGatewayFixture({}, {}, { chaincodeLang: 'node' });
  });
  after(async () => {
    await f.close();
  });

  const peerCli = (org: string, ...args: string[]) =>
    execFileSync('bash', ['-c', `${networkScript('env', org)}\npeer "$@"`, 'peer', ...args], { encoding: 'utf8' });

  it('is approved by both organisations as the Node package, not the service package', () => {
    for (const org of ['Org1', 'Org2']) {
      const approved = JSON.parse(
        peerCli(org, 'lifecycle', 'chaincode', 'queryapproved', '-C', 'keyfleet', '-n', f.chaincode, '-O', 'json'),
      ) as { source?: { Type?: { LocalPackage?: { package_id?: string } } } };
      expect(approved.source?.Type?.LocalPackage?.package_id, org).to.match(
        /^keyfleet_node_[0-9a-f]{16}:[0-9a-f]{64}$/,
      );
    }
  });

  it('endorses the gateway’s and the verifier’s writes on both peers', async () => {
    // Each anchor registration was endorsed by both organisations, through the peer-launched code.
    const registrations = (await f.ledger.transactions()).filter((t) => t.method === 'RegisterTrustAnchor');
    expect(registrations.map((t) => [t.creator.mspId, t.validationCode])).to.have.deep.members([
      ['Org1MSP', 0],
      ['Org1MSP', 0],
      ['Org2MSP', 0],
    ]);
    const anchors = await f.ledger.evaluate<TrustAnchorRecord[]>('ListTrustAnchors');
    expect(anchors.map((a) => a.Kind).sort()).to.deep.equal(['device-ca', 'metadata-signing', 'verifier']);
  });
});
