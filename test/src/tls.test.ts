import { execFileSync, spawn } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { newAgent, newTlsFetch } from '@keyfleet/agent';
import { callService } from './support/http';
import { openConsoleOverHttps, type ConsoleOverHttps } from './support/console-browser';
import { newDeviceCsr, startGatewayFixture, type GatewayFixture, type SecondGateway } from './support/gateway-fixture';

/**
 * Issue 14, item 4: every keyfleet listener serves HTTPS, checked with an independent tool
 * (`openssl s_client`), not with the Node code that configured it: TLS 1.3 negotiated, TLS 1.2
 * refused, the chain verifies to the CA certificate the operator distributes and not to another,
 * and with mutual TLS on, only a client holding an HSM-issued device certificate gets an answer.
 */
describe('HTTPS on every listener, checked with openssl s_client (issue 14)', function () {
  this.timeout(180_000);
  let f: GatewayFixture;
  let mtls: SecondGateway;
  let auditorConsole: ConsoleOverHttps;
  let dir: string;
  const file = (name: string, content: string) => {
    const path = join(dir, name);
    writeFileSync(path, content, { mode: 0o600 });
    return path;
  };
  const hostPort = (url: string) => new URL(url).host;

  /**
   * One `openssl s_client` run sending `GET /healthz`; its exit status and everything it printed.
   * Asynchronous: the services run in this process and must keep answering while it runs.
   */
  const sClient = (url: string, args: readonly string[]) =>
    new Promise<{ status: number | null; out: string }>((resolve, reject) => {
      const child = spawn(
        'openssl',
        ['s_client', '-connect', hostPort(url), '-servername', 'localhost', '-brief', '-ign_eof', ...args],
        { stdio: ['pipe', 'pipe', 'pipe'], timeout: 20_000 },
      );
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
      child.on('error', reject);
      child.on('close', (status) => {
        resolve({ status, out });
      });
      child.stdin.end('GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    });

  let caFile: string;
  let verifierCaFile: string;
  let foreignCaFile: string;
  let foreignCert: string;
  let foreignKey: string;
  let deviceCert: string;
  let deviceKey: string;

  before(async () => {
    f = await startGatewayFixture();
    mtls = await f.openSecondGateway({ KEYFLEET_HTTP_TLS_CLIENT_AUTH: 'require' });
    auditorConsole = await openConsoleOverHttps(f);
    dir = mkdtempSync(join(tmpdir(), 'keyfleet-tls-'));
    caFile = file('ca.pem', f.caCertificate);
    verifierCaFile = file('verifier-ca.pem', f.verifierCaCertificate);
    // A CA and a client certificate of someone else's, made by openssl itself.
    foreignKey = join(dir, 'foreign.key');
    foreignCert = join(dir, 'foreign.pem');
    execFileSync('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      foreignKey,
      '-out',
      foreignCert,
      '-subj',
      '/CN=sensor-9',
      '-days',
      '1',
    ]);
    foreignCaFile = foreignCert;
    // A device enrolled through the gateway: its certificate is issued by the HSM-held device CA.
    const { csr, keys } = await newDeviceCsr('tls-device-1');
    const token = await f.operator('POST', '/v1/enrolment-tokens', {
      deviceId: 'tls-device-1',
      group: 'lab',
      location: 'bench',
      function: 'probe',
    });
    const enrolled = await callService(f.url, 'POST', '/v1/devices', { body: { enrolmentToken: token.token, csr } });
    expect(enrolled.status, enrolled.text).to.equal(201);
    deviceCert = file('device.pem', enrolled.body.certificate as string);
    const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
    deviceKey = file(
      'device.key',
      createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })
        .export({ type: 'pkcs8', format: 'pem' })
        .toString(),
    );
  });

  after(async () => {
    await auditorConsole.close();
    await f.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const listeners = () => [
    { name: 'operator gateway', url: f.url, ca: caFile },
    { name: 'verifier', url: f.verifierUrl, ca: verifierCaFile },
    { name: 'operator gateway with mutual TLS', url: mtls.url, ca: caFile, clientCert: true },
    // Org2's console: its certificate is issued by Org2's TLS CA, the verifier's (docs/console.md).
    { name: "auditor's console", url: auditorConsole.url, ca: verifierCaFile },
  ];

  for (const index of [0, 1, 2, 3]) {
    describe(`listener ${String(index + 1)}`, () => {
      const listener = () => listeners()[index] as ReturnType<typeof listeners>[number];
      const device = () => (listener().clientCert === true ? ['-cert', deviceCert, '-key', deviceKey] : []);

      it('is HTTPS, negotiates TLS 1.3 and its chain verifies to the distributed CA certificate', async () => {
        const { url, ca } = listener();
        expect(url).to.match(/^https:\/\//);
        const run = await sClient(url, ['-CAfile', ca, '-verify_return_error', '-verify_ip', '127.0.0.1', ...device()]);
        expect(run.out, listener().name).to.match(/Protocol version: TLSv1\.3/);
        expect(run.out).to.match(/Verification: OK/);
        expect(run.out).to.match(/HTTP\/1\.1 200 OK/);
        expect(run.status).to.equal(0);
      });

      it('refuses TLS 1.2', async () => {
        const run = await sClient(listener().url, ['-tls1_2', '-CAfile', listener().ca, ...device()]);
        expect(run.status, listener().name).to.not.equal(0);
        expect(run.out).to.match(/protocol version|no protocols available|alert/i);
        expect(run.out).to.not.match(/HTTP\/1\.1/);
      });

      it('does not verify against another CA', async () => {
        const run = await sClient(listener().url, ['-CAfile', foreignCaFile, '-verify_return_error', ...device()]);
        expect(run.status, listener().name).to.not.equal(0);
        expect(run.out).to.match(/verify error|unable to get local issuer certificate/i);
        expect(run.out).to.not.match(/HTTP\/1\.1/);
      });

      it("does not verify against the other organisation's CA", async () => {
        const other = listener().ca === caFile ? verifierCaFile : caFile;
        const run = await sClient(listener().url, ['-CAfile', other, '-verify_return_error', ...device()]);
        expect(run.status, listener().name).to.not.equal(0);
        expect(run.out).to.match(/verify error|unable to get local issuer certificate/i);
        expect(run.out).to.not.match(/HTTP\/1\.1/);
      });
    });
  }

  describe('mutual TLS: devices authenticate with their HSM-issued certificates', () => {
    const rows: { what: string; args: () => string[]; accepted: boolean }[] = [
      {
        what: 'a device certificate is accepted',
        args: () => ['-cert', deviceCert, '-key', deviceKey],
        accepted: true,
      },
      { what: 'no client certificate is refused', args: () => [], accepted: false },
      {
        what: 'a foreign client certificate is refused',
        args: () => ['-cert', foreignCert, '-key', foreignKey],
        accepted: false,
      },
    ];
    for (const row of rows) {
      it(row.what, async () => {
        const run = await sClient(mtls.url, ['-CAfile', caFile, ...row.args()]);
        if (row.accepted) {
          expect(run.out).to.match(/HTTP\/1\.1 200 OK/);
        } else {
          // TLS 1.3 checks the client's certificate after the handshake: openssl reports the
          // server's alert, or only that the server closed the connection (an EOF); either way
          // the request got no answer.
          expect(run.out).to.not.match(/HTTP\/1\.1/);
          expect(run.out, run.out).to.match(
            /alert|certificate required|unknown ca|CONNECTION CLOSED BY SERVER|unexpected eof/i,
          );
        }
      });
    }

    it('the agent checks in over mutual TLS with its own certificate; without it, it gets no answer', async () => {
      const keystorePath = join(dir, 'agent.json');
      const tls = { ca: f.caCertificate };
      const token = await f.operator('POST', '/v1/enrolment-tokens', {
        deviceId: 'tls-agent-1',
        group: 'lab',
        location: 'bench',
        function: 'probe',
      });
      await newAgent({ keystorePath, gatewayUrl: f.url, deviceId: 'tls-agent-1', tls }).enrol(token.token as string);
      const overMtls = await newAgent({ keystorePath, gatewayUrl: mtls.url, tls }).checkIn();
      expect(overMtls).to.deep.equal({ acknowledged: [], pending: [], rotated: [] });
      // The same keystore through a client that presents no certificate (only a stand-in fetch).
      const refused = await newAgent({ keystorePath, gatewayUrl: mtls.url, fetch: newTlsFetch(tls) })
        .checkIn()
        .catch((err: unknown) => err);
      expect(refused).to.have.property('code', 'AGENT_GATEWAY_UNAVAILABLE');
    });

    it('the same listener without mutual TLS answers a client without a certificate', async () => {
      expect((await sClient(f.url, ['-CAfile', caFile])).out).to.match(/HTTP\/1\.1 200 OK/);
    });
  });
});
