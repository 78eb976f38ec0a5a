import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { caliperNetworkConfig } from './network-config';

/** A connection description shaped as network/network.sh writes it, with files where it says. */
function writeDescription(dir: string, keysIn: Record<string, string[]>): string {
  const identity = (org: number, role: string) => ({
    certificate: `identities/org${org}/${role}/msp/signcerts/cert.pem`,
    privateKeyDir: `identities/org${org}/${role}/msp/keystore`,
  });
  const description = {
    profile: 'dev',
    channel: 'keyfleet',
    chaincode: 'keyfleet',
    orderers: [{ name: 'orderer0', endpoint: '127.0.0.1:15830', hostAlias: 'localhost' }],
    organizations: {
      Org1: {
        mspId: 'Org1MSP',
        peers: [
          {
            name: 'peer0.org1',
            endpoint: '127.0.0.1:15860',
            hostAlias: 'localhost',
            tlsRootCert: 'crypto/peerOrganizations/org1.keyfleet.local/tlsca/tlsca.org1.keyfleet.local-cert.pem',
          },
        ],
        ca: { url: 'https://127.0.0.1:15800', caName: 'ca-org1', tlsRootCert: 'org1-tls.pem', caCert: 'ca1.pem' },
        identities: { operator: identity(1, 'operator'), application: identity(1, 'application') },
        enrolments: { 'keyfleet-gateway': { role: 'operator', secretFile: 'identities/org1/keyfleet-gateway.secret' } },
      },
      Org2: {
        mspId: 'Org2MSP',
        peers: [
          {
            name: 'peer0.org2',
            endpoint: '127.0.0.1:15880',
            hostAlias: 'localhost',
            tlsRootCert: 'crypto/peerOrganizations/org2.keyfleet.local/tlsca/tlsca.org2.keyfleet.local-cert.pem',
          },
        ],
        ca: { url: 'https://127.0.0.1:15810', caName: 'ca-org2', tlsRootCert: 'org2-tls.pem', caCert: 'ca2.pem' },
        identities: { verifier: identity(2, 'verifier') },
        enrolments: {},
      },
    },
  };
  for (const [keystore, files] of Object.entries(keysIn)) {
    mkdirSync(join(dir, keystore), { recursive: true });
    for (const file of files) writeFileSync(join(dir, keystore, file), 'key');
  }
  const path = join(dir, 'connection.json');
  writeFileSync(path, JSON.stringify(description));
  return path;
}

const keystores = {
  'identities/org1/operator/msp/keystore': ['aa11_sk'],
  'identities/org1/application/msp/keystore': ['bb22_sk'],
  'identities/org2/verifier/msp/keystore': ['cc33_sk'],
};

describe("Caliper's network configuration from the connection description", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'caliper-config-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('names the channel and the contracts asked for', () => {
    const config = caliperNetworkConfig(writeDescription(dir, keystores), ['baseline']);
    expect(config.version).to.equal('2.0.0');
    expect(config.caliper.blockchain).to.equal('fabric');
    expect(config.channels).to.deep.equal([{ channelName: 'keyfleet', contracts: [{ id: 'baseline' }] }]);
  });

  it("gives each organisation its peers' endpoints, TLS CA files (absolute) and TLS host name", () => {
    const config = caliperNetworkConfig(writeDescription(dir, keystores), ['keyfleet']);
    expect(config.organizations.map((org) => org.mspid)).to.deep.equal(['Org1MSP', 'Org2MSP']);
    expect(config.organizations[0]?.peers).to.deep.equal([
      {
        endpoint: '127.0.0.1:15860',
        tlsCACerts: {
          path: join(dir, 'crypto/peerOrganizations/org1.keyfleet.local/tlsca/tlsca.org1.keyfleet.local-cert.pem'),
        },
        grpcOptions: { 'grpc.ssl_target_name_override': 'localhost' },
      },
    ]);
    expect(config.organizations[1]?.peers[0]?.endpoint).to.equal('127.0.0.1:15880');
    expect(config.organizations[1]?.peers[0]?.tlsCACerts.path).to.equal(
      join(dir, 'crypto/peerOrganizations/org2.keyfleet.local/tlsca/tlsca.org2.keyfleet.local-cert.pem'),
    );
  });

  it("lists every role identity of each organisation with its certificate and its keystore's key file", () => {
    const config = caliperNetworkConfig(writeDescription(dir, keystores), ['keyfleet']);
    expect(config.organizations[0]?.identities.certificates).to.deep.equal([
      {
        name: 'operator',
        clientPrivateKey: { path: join(dir, 'identities/org1/operator/msp/keystore/aa11_sk') },
        clientSignedCert: { path: join(dir, 'identities/org1/operator/msp/signcerts/cert.pem') },
      },
      {
        name: 'application',
        clientPrivateKey: { path: join(dir, 'identities/org1/application/msp/keystore/bb22_sk') },
        clientSignedCert: { path: join(dir, 'identities/org1/application/msp/signcerts/cert.pem') },
      },
    ]);
    expect(config.organizations[1]?.identities.certificates.map((c) => c.name)).to.deep.equal(['verifier']);
    expect(config.organizations[1]?.identities.certificates[0]?.clientPrivateKey.path).to.equal(
      join(dir, 'identities/org2/verifier/msp/keystore/cc33_sk'),
    );
  });

  const brokenKeystores: [string, string[]][] = [
    ['no key file', []],
    ['two key files', ['aa11_sk', 'dd44_sk']],
    ['only a file that is not a key', ['README']],
  ];
  for (const [what, files] of brokenKeystores) {
    it(`refuses a keystore with ${what}, naming the folder`, () => {
      const path = writeDescription(dir, { ...keystores, 'identities/org1/operator/msp/keystore': files });
      expect(() => caliperNetworkConfig(path, ['keyfleet'])).to.throw(
        `in ${join(dir, 'identities/org1/operator/msp/keystore')}`,
      );
    });
  }
});
