import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { expect } from 'chai';
import { newFleet, runScenario } from '@keyfleet/agent/fleet';
import type { DeviceRecord, KeyRecord, TrustAnchorRecord } from '@keyfleet/protocol';
import { softHsmModule, startGatewayFixture, type GatewayFixture } from './support/gateway-fixture';
import { hsmNetwork, networkScriptAt } from './support/network';

/**
 * `network.sh up --hsm` (issue 15 item 4): every peer's, orderer's, admin's and Fabric CA's signing
 * key is made in a SoftHSM token (one per organisation) and used through Fabric's BCCSP PKCS11.
 * Its own network on KEYFLEET_TEST_PORT_BASE+720 (support/network.ts), up only in this suite.
 */
describe('an --hsm network: node keys in SoftHSM tokens, none in files', function () {
  this.timeout(300_000);
  const { dir } = hsmNetwork;
  const hsm = (...args: string[]) => networkScriptAt(dir, hsmNetwork.portBase, ...args);
  const tokens = { Org1: 'Org1', Org2: 'Org2', Orderer: 'Orderer' } as const;
  const pinOf = (token: string) => readFileSync(join(dir, 'hsm', `${token}.pin`), 'utf8').trim();

  before(() => {
    hsm('up', '--hsm');
    hsm('deploy');
  });
  after(() => {
    hsm('down');
  });

  it('leaves no signing key of a node, an admin or a CA in a file: only TLS keys and client identities', () => {
    expectNoNodeKeyFile();
  });

  it('finds each node, admin and CA key in its organisation token, under Fabric’s CKA_ID', () => {
    const signers: [string, keyof typeof tokens][] = [
      ['crypto/ordererOrganizations/orderer.keyfleet.local/orderers/orderer0.orderer.keyfleet.local/msp', 'Orderer'],
      ['crypto/peerOrganizations/org1.keyfleet.local/peers/peer0.org1.keyfleet.local/msp', 'Org1'],
      ['crypto/peerOrganizations/org1.keyfleet.local/users/Admin@org1.keyfleet.local/msp', 'Org1'],
      ['crypto/peerOrganizations/org2.keyfleet.local/peers/peer0.org2.keyfleet.local/msp', 'Org2'],
      ['crypto/peerOrganizations/org2.keyfleet.local/users/Admin@org2.keyfleet.local/msp', 'Org2'],
    ];
    const inToken = new Map(Object.values(tokens).map((token) => [token, privateKeyIds(token)]));
    for (const [msp, token] of signers) {
      const signcerts = join(dir, msp, 'signcerts');
      const [certFile] = readdirSync(signcerts);
      const certificate = new X509Certificate(readFileSync(join(signcerts, certFile ?? 'none')));
      expect(inToken.get(token), msp).to.include(fabricKeyId(certificate));
    }
    for (const [ca, token] of [
      ['org1', 'Org1'],
      ['org2', 'Org2'],
      ['orderer', 'Orderer'],
    ] as const) {
      const certificate = new X509Certificate(readFileSync(join(dir, 'ca', ca, 'ca-cert.pem')));
      expect(inToken.get(token), `ca.${ca}`).to.include(fabricKeyId(certificate));
      // The organisation's MSP trusts exactly this CA: its identities are the token's.
      const domain = ca === 'orderer' ? 'orderer.keyfleet.local' : `${ca}.keyfleet.local`;
      const kind = ca === 'orderer' ? 'ordererOrganizations' : 'peerOrganizations';
      const cacerts = join(dir, 'crypto', kind, domain, 'msp', 'cacerts');
      expect(readdirSync(cacerts).map((f) => readFileSync(join(cacerts, f), 'utf8'))).to.deep.equal([
        certificate.toString(),
      ]);
    }
  });

  it('signs as Org1’s admin in the token: the right PIN reads the channel, a wrong one is refused', () => {
    const exports = hsm('env', 'Org1', 'admin');
    // The exports name the PIN file, never the PIN.
    for (const token of Object.values(tokens)) expect(exports).to.not.include(pinOf(token));
    const getinfo = (pinOverride: string) =>
      execFileSync('bash', ['-c', `${exports}\n${pinOverride}\npeer channel getinfo -c keyfleet`], {
        encoding: 'utf8',
      });
    expect(getinfo('')).to.match(/Blockchain info: \{"height":\d+/);
    expect(() => getinfo('export CORE_PEER_BCCSP_PKCS11_PIN=not-the-pin')).to.throw(/CKR_PIN_INCORRECT/);
  });

  it('writes no PIN into a log, the connection description or status', () => {
    const texts = [
      ...files(join(dir, 'logs')).map((file) => readFileSync(file, 'utf8')),
      readFileSync(join(dir, 'connection.json'), 'utf8'),
      hsm('status'),
    ];
    for (const token of Object.values(tokens)) {
      expect(
        texts.filter((text) => text.includes(pinOf(token))),
        token,
      ).to.deep.equal([]);
    }
  });

  describe('with the gateway (its own identity in its own token)', () => {
    let f: GatewayFixture;
    const connection = join(dir, 'connection.json');
    before(async () => {
      f = await startGatewayFixture(
        { KEYFLEET_FABRIC_CONNECTION: connection, KEYFLEET_FABRIC_CHAINCODE: 'keyfleet' },
        { KEYFLEET_VERIFIER_FABRIC_CONNECTION: connection, KEYFLEET_VERIFIER_FABRIC_CHAINCODE: 'keyfleet' },
      );
    });
    after(async () => {
      await f.close();
    });

    /** A query as Org2's auditor through Org2's peer, with Fabric's CLI: never through the gateway. */
    const query = (...args: string[]) =>
      JSON.parse(
        execFileSync(
          'bash',
          [
            '-c',
            `${hsm('env', 'Org2', 'auditor')}\npeer chaincode query -C keyfleet -n keyfleet -c "$1"`,
            'q',
            JSON.stringify({ Args: args }),
          ],
          { encoding: 'utf8' },
        ),
      ) as unknown;

    it('registers a key through the gateway, and Org2’s auditor reads it on this network with Fabric’s CLI', async () => {
      await f.operator('POST', '/v1/keys', {
        keyId: 'hsm-network-key',
        algorithm: 'AES-256',
        purpose: 'encrypt',
        owner: { type: 'application', id: 'billing' },
        rotationIntervalSeconds: 86400,
        accessPolicy: { read: [], use: [], rotate: [], administer: [{ mspId: 'Org1MSP', role: 'operator' }] },
      });
      const key = query('GetKey', 'hsm-network-key') as KeyRecord;
      expect(key).to.include({ KeyID: 'hsm-network-key', Algorithm: 'AES-256', LatestVersion: 1 });
      const anchors = query('ListTrustAnchors') as TrustAnchorRecord[];
      expect(anchors.map((a) => a.Kind).sort()).to.deep.equal(['device-ca', 'metadata-signing', 'verifier']);
    });

    it('runs the demo fleet (enrol, attest, one tampered device caught, rotate), and still no node key file exists', async () => {
      const size = 8;
      const workDir = mkdtempSync(join(tmpdir(), 'keyfleet-hsm-demo-'));
      try {
        const fleet = newFleet({
          gatewayUrl: f.url,
          size,
          tampered: 1,
          concurrency: 4,
          workDir,
          idPrefix: 'hsmdemo',
          group: 'demo-fleet',
          operatorAuthorization: () => f.bearer(f.callers.operator),
        });
        const summary = await runScenario(fleet, { rounds: 1 });
        const [tampered, ...others] = fleet.devices().filter((d) => d.tampered);
        expect(others).to.deep.equal([]);
        const tamperedId = tampered?.id ?? expect.fail('no tampered device');
        expect(summary.enrolled).to.equal(size);
        expect(summary.verdicts).to.deep.equal({ affirming: size - 1, contraindicated: 1 });
        expect(summary.contraindicated).to.deep.equal([tamperedId]);
        expect(summary.rotations).to.equal(size - 1);

        // What the demo claims, as Org2's auditor reads it through Org2's peer on this network.
        for (const device of fleet.devices()) {
          const record = query('GetDevice', device.id) as DeviceRecord;
          const key = query('GetKey', device.keyId) as KeyRecord;
          const caught = device.id === tamperedId;
          expect(record.Status, device.id).to.equal(caught ? 'suspended' : 'active');
          expect(record.LastAttestation?.Status, device.id).to.equal(caught ? 'contraindicated' : 'affirming');
          expect(key.ActiveVersion, device.id).to.equal(caught ? 1 : 2);
        }
      } finally {
        rmSync(workDir, { recursive: true, force: true });
      }
      // The network signed every one of those transactions, and not one node key came to disk.
      expectNoNodeKeyFile();
    });
  });

  /**
   * What may hold a private key, and why (docs/network.md, "Node keys in HSM tokens"); anything
   * else holding one fails. Every node and admin MSP, and the CA registrars', has an empty keystore.
   */
  function expectNoNodeKeyFile(): void {
    const allowed: readonly [RegExp, string][] = [
      [/^crypto\/.*\/tls\/server\.key$/, "a node's TLS key: Fabric reads TLS keys only from files"],
      [/^crypto\/(peer|orderer)Organizations\/[^/]+\/tlsca\/priv_sk$/, "an organisation's TLS CA"],
      [/^ca\/(org1|org2|orderer)\/tls-key\.pem$/, "a Fabric CA's TLS key"],
      [/^chaincode\/tls\/(ca|server)\.key$/, "the chaincode servers' TLS"],
      [/^ca\/(org1|org2|orderer)\/msp\/keystore\/IssuerRevocationPrivateKey$/, 'Fabric CA Idemix (unused)'],
      [/^identities\/org[12]\/(operator|application|verifier|auditor)\/msp\/keystore\/[0-9a-f]{64}_sk$/, 'a client'],
    ];
    const withKeys = files(dir)
      .filter((file) => readFileSync(file, 'latin1').includes('PRIVATE KEY'))
      .map((file) => relative(dir, file));
    expect(withKeys.filter((file) => !allowed.some(([pattern]) => pattern.test(file)))).to.deep.equal([]);
    // Not vacuous: the walk does see the key files that must be files.
    expect(withKeys.filter((file) => /^crypto\/.*\/tls\/server\.key$/.test(file))).to.have.length(3);

    // Every node and admin MSP, and the CA registrars', has an empty keystore; no CA key file.
    const keystores = files(dir).filter((file) => /\/msp\/keystore\/[^/]+$/.test(file));
    const stray = keystores
      .map((file) => relative(dir, file))
      .filter((file) => !/^identities\//.test(file) && !/^ca\/[^/]+\/msp\/keystore\/Issuer/.test(file));
    expect(stray).to.deep.equal([]);
    expect(files(dir).map((file) => relative(dir, file))).to.not.include.members([
      'ca/org1/ca-key.pem',
      'ca/org2/ca-key.pem',
    ]);
  }

  /** Every CKA_ID of a private key on the token, hex, as OpenSC's pkcs11-tool lists them. */
  function privateKeyIds(token: string): string[] {
    const out = execFileSync(
      'bash',
      [
        '-c',
        'pkcs11-tool --module "$1" --token-label "$2" --login --pin "$(cat "$3")" --list-objects --type privkey',
        'list',
        softHsmModule,
        token,
        join(dir, 'hsm', `${token}.pin`),
      ],
      { encoding: 'utf8', env: { ...process.env, SOFTHSM2_CONF: join(dir, 'hsm', 'softhsm2.conf') } },
    );
    return [...out.matchAll(/^\s+ID:\s+([0-9a-f]+)$/gm)].map((m) => m[1] ?? '');
  }
});

/** Fabric's PKCS#11 key id: SHA-256 of the uncompressed EC point (the last 65 bytes of the SPKI). */
function fabricKeyId(certificate: X509Certificate): string {
  const spki = certificate.publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256')
    .update(spki.subarray(spki.length - 65))
    .digest('hex');
}

function files(root: string): string[] {
  return readdirSync(root, { recursive: true, encoding: 'utf8' })
    .map((name) => join(root, name))
    .filter((path) => statSync(path, { throwIfNoEntry: false })?.isFile() === true);
}
