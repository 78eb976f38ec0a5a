import { expect } from 'chai';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { connect, hash, signers, type Gateway as FabricGateway } from '@hyperledger/fabric-gateway';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import type { AttestationRecord, DeviceRecord, TrustAnchorRecord } from '@keyfleet/protocol';
import { newTlsFetch } from '@keyfleet/agent';
import { openGateway, type Gateway } from './app';
import { verifyEar } from './attestation';
import { loadAgentAttestation } from './attestation/testing/agent';
import { newCsr } from './testing/attestation-fleet';
import { ApiRole, issueBearerToken } from './auth/bearer';
import { newDeviceCa } from './ca/device-ca';
import { loadConfig } from './config';
import { TLS_CA_FILE } from './verifier-app';
import { createSoftHsmStore, softHsmModule, type SoftHsmStore } from './testing/softhsm';
import { readOrganization } from './ledger/fabric';
import { freePort } from './testing/fabric-ca-server';
import { newSoftwareKey } from './testing/software-key';

/**
 * Org2's verifier as its own process, on the real parts: a Fabric network of two organisations
 * (network/network.sh, own directory and ports), the operator gateway on one SoftHSM token, and
 * `verifier-main.js` as a child process on a token of its own. A device talks to the gateway's
 * address only; the result on the ledger is written by the verifier's Org2 identity.
 */
describe('the verifier service: Org2 process, own token, reached through the gateway', function () {
  this.timeout(120_000);

  const repoRoot = resolve(__dirname, '..', '..');
  const networkDir = join(repoRoot, '.fabric', `verifier-test-${String(process.pid)}`);
  const profilePath = join(networkDir, 'connection.json');
  // Its own ports, below the integration network's (KEYFLEET_TEST_PORT_BASE, default 17000).
  const portBase = String(Number(process.env.KEYFLEET_TEST_PORT_BASE ?? 17000) - 4500);
  const network = (verb: string) =>
    execFileSync(
      'bash',
      [join(repoRoot, 'network', 'network.sh'), verb, '--dir', networkDir, '--port-base', portBase],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
        encoding: 'utf8',
      },
    );

  const work = mkdtempSync(join(tmpdir(), 'keyfleet-verifier-svc-'));
  const gatewayDir = join(work, 'gateway');
  const verifierDir = join(work, 'verifier');
  const group = 'gw-edge';
  let verifierStore: SoftHsmStore | undefined;
  let gatewayStore: SoftHsmStore | undefined;
  let gateway: Gateway | undefined;
  let gatewayUrl = '';
  let verifierUrl = '';
  let verifierPort = 0;
  /** A fetch that trusts the gateway's device CA and the verifier's TLS CA, as their clients do. */
  let trusting: typeof fetch = fetch;
  let child: ChildProcess | undefined;
  let childOutput = '';
  let bearer = '';
  let ledger: AuditorView | undefined;
  const agent = loadAgentAttestation();

  const startVerifier = async (env: Record<string, string> = {}): Promise<void> => {
    const store = verifierStore ?? assertNever('no verifier store');
    childOutput = '';
    const proc = spawn(process.execPath, [join(__dirname, 'verifier-main.js')], {
      env: {
        ...process.env,
        SOFTHSM2_CONF: store.conf,
        KEYFLEET_VERIFIER_HSM_MODULE: softHsmModule,
        KEYFLEET_VERIFIER_HSM_URI: store.uri,
        KEYFLEET_VERIFIER_HSM_PIN: store.pin,
        KEYFLEET_VERIFIER_HTTP_PORT: String(verifierPort),
        KEYFLEET_VERIFIER_DATA_DIR: verifierDir,
        KEYFLEET_VERIFIER_FABRIC_CONNECTION: profilePath,
        KEYFLEET_VERIFIER_DEVICE_CA_CERT: join(gatewayDir, 'device-ca.pem'),
        KEYFLEET_VERIFIER_LOG_LEVEL: 'warn',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    proc.stdout.on('data', (chunk: Buffer) => (childOutput += chunk.toString()));
    proc.stderr.on('data', (chunk: Buffer) => (childOutput += chunk.toString()));
    const exited = new Promise<never>((_resolve, reject) =>
      proc.once('exit', (code) => {
        reject(new Error(`the verifier exited with ${String(code)}:\n${childOutput}`));
      }),
    );
    exited.catch(() => undefined);
    const ready = (async () => {
      for (let attempt = 0; attempt < 600; attempt++) {
        // The verifier publishes its TLS CA certificate just before it listens: trust it then.
        const tlsCa = join(verifierDir, TLS_CA_FILE);
        if (existsSync(tlsCa)) {
          trusting = newTlsFetch({
            ca: [readFileSync(join(gatewayDir, 'device-ca.pem'), 'utf8'), readFileSync(tlsCa, 'utf8')].join('\n'),
          });
        }
        const status = await trusting(`${verifierUrl}/healthz`).then(
          (r) => r.status,
          () => 0,
        );
        if (status === 200) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`the verifier did not become healthy:\n${childOutput}`);
    })();
    await Promise.race([ready, exited]);
  };

  const stopVerifier = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (proc === undefined || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
  };

  before(async function () {
    this.timeout(300_000);
    network('up');
    network('deploy');

    // The verifier's token is made first: the test process then points SOFTHSM2_CONF at the gateway's.
    verifierStore = createSoftHsmStore('keyfleet-verifier');
    gatewayStore = createSoftHsmStore('keyfleet-operator');
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    mkdirSync(join(gatewayDir, 'auth'), { recursive: true });
    const jwks = join(gatewayDir, 'auth', 'jwks.json');
    const operatorJwk = {
      ...(await exportJWK(publicKey)),
      kid: 'alice-key',
      alg: 'ES256',
      sub: 'alice',
      role: 'operator',
    };
    writeFileSync(jwks, JSON.stringify({ keys: [operatorJwk] }));
    bearer = `Bearer ${await issueBearerToken(privateKey, {
      subject: 'alice',
      role: ApiRole.Operator,
      audience: 'keyfleet-gateway',
      kid: 'alice-key',
      ttlSeconds: 3600,
    })}`;

    verifierPort = await freePort();
    verifierUrl = `https://127.0.0.1:${String(verifierPort)}`;
    gateway = await openGateway(
      loadConfig({
        KEYFLEET_HSM_MODULE: softHsmModule,
        KEYFLEET_HSM_URI: gatewayStore.uri,
        KEYFLEET_HSM_PIN: gatewayStore.pin,
        KEYFLEET_DATA_DIR: gatewayDir,
        KEYFLEET_AUTH_JWKS: jwks,
        KEYFLEET_FABRIC_CONNECTION: profilePath,
        KEYFLEET_VERIFIER_URL: verifierUrl,
        KEYFLEET_VERIFIER_CA_FILE: join(verifierDir, TLS_CA_FILE),
        KEYFLEET_VERIFIER_TIMEOUT_MS: '60000',
        KEYFLEET_SCHEDULER_INTERVAL_MS: '0',
        KEYFLEET_LOG_LEVEL: process.env.KEYFLEET_TEST_LOG_LEVEL ?? 'silent',
      }),
    );
    gatewayUrl = await gateway.server.listen({ host: '127.0.0.1', port: 0 });
    // After the gateway: it registers the device-CA anchor and publishes the certificate.
    await startVerifier();
    ledger = openAuditorView(profilePath, networkDir);
  });

  after(async function () {
    this.timeout(120_000);
    ledger?.close();
    await stopVerifier().catch(() => undefined);
    await gateway?.close().catch(() => undefined);
    gatewayStore?.remove();
    verifierStore?.remove();
    rmSync(work, { recursive: true, force: true });
    network('down');
    rmSync(`${networkDir}.lock`, { force: true });
  });

  // ---- a device, as the agent makes it ---------------------------------------------------------

  interface Device {
    id: string;
    key: KeyObject;
    chainPem: string;
    files: Record<string, string>;
  }

  const call = async (base: string, method: string, path: string, body?: unknown, auth?: string) => {
    const response = await trusting(`${base}${path}`, {
      method,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(auth === undefined ? {} : { authorization: auth }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  const enrol = async (id: string): Promise<Device> => {
    const token = await call(
      gatewayUrl,
      'POST',
      '/v1/enrolment-tokens',
      { deviceId: id, group, location: 'plant-7', function: 'temperature gateway' },
      bearer,
    );
    expect(token.status, JSON.stringify(token.body)).to.equal(201);
    const { key, csrPem } = await newCsr(id);
    const enrolled = await call(gatewayUrl, 'POST', '/v1/devices', { enrolmentToken: token.body.token, csr: csrPem });
    expect(enrolled.status, JSON.stringify(enrolled.body)).to.equal(201);
    const dir = join(work, id);
    mkdirSync(dir);
    const files = { 'app.js': join(dir, 'app.js'), 'agent.json': join(dir, 'agent.json') };
    writeFileSync(files['app.js'], "console.log('temperature gateway');\n");
    writeFileSync(files['agent.json'], JSON.stringify({ interval: 60 }));
    return {
      id,
      key,
      chainPem: `${String(enrolled.body.certificate)}${String(enrolled.body.caCertificate)}`,
      files,
    };
  };

  const evidenceFor = (device: Device, nonce: string) =>
    agent.collectEvidence({
      deviceKey: device.key,
      certificateChainPem: device.chainPem,
      nonce,
      measuredFiles: Object.entries(device.files).map(([name, path]) => ({ name, path })),
      hwmodel: 'rpi-cm4',
      swname: 'keyfleet-agent',
      swversion: '0.1.0',
      dbgstat: 1,
    });

  /** Challenge and evidence, both at `base`. */
  const attest = async (device: Device, base = gatewayUrl) => {
    const challenge = await call(base, 'POST', '/v1/attestation/challenges', { deviceId: device.id });
    expect(challenge.status, JSON.stringify(challenge.body)).to.equal(201);
    const evidence = await evidenceFor(device, String(challenge.body.challenge));
    return { evidence, answer: await call(base, 'POST', '/v1/attestation/evidence', { evidence }) };
  };

  const deviceStatus = async (id: string) => (await view().evaluate<DeviceRecord>('GetDevice', id)).Status;
  const view = () => ledger ?? assertNever('no ledger view');
  let device: Device | undefined;
  const theDevice = () => device ?? assertNever('no device enrolled');

  // ---- the rows ----------------------------------------------------------------------------------

  it('writes the result through Org2: RecordAttestation by the verifier identity, under its own anchor', async () => {
    device = await enrol('dev-vs-0001');
    const reference = Object.entries(theDevice().files).map(([name, path]) => ({
      name,
      algorithm: 'sha-256',
      digest: createHash('sha256').update(readFileSync(path)).digest('hex'),
    }));
    const set = await call(
      gatewayUrl,
      'PUT',
      `/v1/reference-values/${group}`,
      { policyId: 'gw-edge-golden', measurements: reference },
      bearer,
    );
    expect(set.status, JSON.stringify(set.body)).to.equal(200);

    const { answer } = await attest(theDevice());
    expect(answer.status, JSON.stringify(answer.body)).to.equal(200);
    expect(answer.body.status).to.equal('affirming');
    const recorded = answer.body.recorded as { transactionId: string; resultId: string };

    const record = await view().evaluate<AttestationRecord>('GetAttestation', theDevice().id, recorded.resultId);
    expect(record.RecordedBy).to.equal('Org2MSP/verifier/keyfleet-verifier');
    const anchors = await view().evaluate<TrustAnchorRecord[]>('ListTrustAnchors');
    const anchor = anchors.find((a) => a.AnchorID === record.VerifierID) ?? assertNever('no anchor');
    expect(anchor).to.include({
      Kind: 'verifier',
      Status: 'active',
      RegisteredBy: 'Org2MSP/verifier/keyfleet-verifier',
    });
    expect(anchor.PossessionJWS, 'registered with proof of possession').to.be.a('string');
    expect(record.Proof.AnchorID).to.equal(anchor.AnchorID);
    // The EAR the device got is signed by that anchor's key.
    const ear = await verifyEar(
      String(answer.body.ear),
      createPublicKey({ key: { ...anchor.PublicKey }, format: 'jwk' }),
    );
    expect(ear['ear.verifier-id'].developer).to.equal(anchor.AnchorID);
  });

  it("holds no Org2 key in the operator gateway's token, and no Org2 identity in its data directory", async () => {
    const g = gateway ?? assertNever('no gateway');
    const labels = (await g.hsm.findKeys()).map((k) => `${k.kind}:${k.label}`).sort();
    expect(labels).to.deep.equal([
      'private:device-ca',
      'private:device-kex',
      'private:fabric-identity',
      'private:metadata-signing',
      'public:device-ca',
      'public:device-kex',
      'public:fabric-identity',
      'public:metadata-signing',
    ]);
    const verifierThumbprints = (await view().evaluate<TrustAnchorRecord[]>('ListTrustAnchors'))
      .filter((a) => a.Kind === 'verifier')
      .map((a) => a.Thumbprint);
    expect(verifierThumbprints).to.have.length(1);
    for (const label of ['device-ca', 'device-kex', 'fabric-identity', 'metadata-signing']) {
      const jwk = await exportJWK((await g.hsm.getPublicKey({ label })).keyObject);
      expect(verifierThumbprints).to.not.include(await calculateJwkThumbprint(jwk));
    }
    expect(readdirSync(gatewayDir).sort()).to.deep.equal([
      'auth',
      'device-ca.pem',
      'events',
      'fabric-identity-keyfleet-gateway.pem',
    ]);
  });

  it('suspends on a contraindicated result; the verifier alone does not reinstate, the operator gateway does', async () => {
    const d = theDevice();
    const original = readFileSync(d.files['app.js'] ?? '');
    writeFileSync(d.files['app.js'] ?? '', "console.log('tampered');\n");
    const bad = await attest(d);
    expect(bad.answer.body.status, JSON.stringify(bad.answer.body)).to.equal('contraindicated');
    expect(await deviceStatus(d.id)).to.equal('suspended');

    writeFileSync(d.files['app.js'] ?? '', original);
    // Straight to the verifier (a device may): affirming and recorded, but Org2 cannot reinstate.
    const direct = await attest(d, verifierUrl);
    expect(direct.answer.body.status, JSON.stringify(direct.answer.body)).to.equal('affirming');
    expect(direct.answer.body.actions).to.include({ reinstated: false });
    expect(await deviceStatus(d.id)).to.equal('suspended');

    // Through the gateway: the operator checks the result on the ledger and reinstates.
    const through = await attest(d);
    expect(through.answer.body.status).to.equal('affirming');
    expect(through.answer.body.actions).to.include({ reinstated: true });
    expect(await deviceStatus(d.id)).to.equal('active');
  });

  describe('refusals of the verifier reach the device through the gateway with their own code', () => {
    const rows: {
      name: string;
      status: number;
      code: string;
      run: () => Promise<{ status: number; body: unknown }>;
    }[] = [
      {
        name: 'replayed evidence',
        status: 409,
        code: 'NONCE_REPLAYED',
        run: async () => {
          const { evidence } = await attest(theDevice());
          return call(gatewayUrl, 'POST', '/v1/attestation/evidence', { evidence });
        },
      },
      {
        name: 'a nonce the verifier never issued',
        status: 401,
        code: 'NONCE_INVALID',
        run: async () => {
          const evidence = await evidenceFor(theDevice(), Buffer.alloc(53, 7).toString('base64url'));
          return call(gatewayUrl, 'POST', '/v1/attestation/evidence', { evidence });
        },
      },
      {
        name: 'evidence that is not an EAT',
        status: 400,
        code: 'EVIDENCE_MALFORMED',
        run: () => call(gatewayUrl, 'POST', '/v1/attestation/evidence', { evidence: 'e30.e30.c2ln' }),
      },
      {
        name: 'a challenge for a device id outside the grammar (refused by the shared schema)',
        status: 400,
        code: 'BAD_REQUEST',
        run: () => call(gatewayUrl, 'POST', '/v1/attestation/challenges', { deviceId: '../etc' }),
      },
    ];
    for (const { name, status, code, run } of rows) {
      it(`${name}: ${String(status)} ${code}`, async () => {
        const answer = await run();
        expect(answer.status, JSON.stringify(answer.body)).to.equal(status);
        expect((answer.body as { error: { code: string } }).error.code).to.equal(code);
      });
    }
  });

  it('restarts on the same token without registering another anchor', async () => {
    const before = (await view().evaluate<TrustAnchorRecord[]>('ListTrustAnchors')).filter(
      (a) => a.Kind === 'verifier',
    );
    await stopVerifier();
    await startVerifier();
    const after = (await view().evaluate<TrustAnchorRecord[]>('ListTrustAnchors')).filter((a) => a.Kind === 'verifier');
    expect(after).to.deep.equal(before);
    expect((await attest(theDevice())).answer.body.status).to.equal('affirming');
  });

  describe('with the verifier down', () => {
    before(async () => {
      await stopVerifier();
    });

    for (const [name, path, body] of [
      ['evidence', '/v1/attestation/evidence', { evidence: 'e30.e30.c2ln' }],
      ['a challenge', '/v1/attestation/challenges', { deviceId: 'dev-vs-0001' }],
    ] as const) {
      it(`answers ${name} with 503 VERIFIER_UNAVAILABLE, not a 500`, async () => {
        const answer = await call(gatewayUrl, 'POST', path, body);
        expect(answer.status, JSON.stringify(answer.body)).to.equal(503);
        expect(answer.body.error).to.deep.equal({
          code: 'VERIFIER_UNAVAILABLE',
          message: 'the gateway could not complete the request',
        });
      });
    }

    it("refuses to start on a device CA certificate whose key is not the ledger's device-ca anchor", async () => {
      const impostor = await newDeviceCa({ key: newSoftwareKey('impostor-ca') });
      const file = join(work, 'impostor-ca.pem');
      writeFileSync(file, impostor.certificatePem);
      let refused: unknown;
      await startVerifier({ KEYFLEET_VERIFIER_DEVICE_CA_CERT: file }).catch((err: unknown) => (refused = err));
      expect(String(refused)).to.include('is not an active device-ca trust anchor on the ledger');
      expect(child?.exitCode).to.equal(1);
    });

    it('keeps serving everything else (the operator reads the ledger itself)', async () => {
      expect((await call(gatewayUrl, 'GET', '/healthz')).status).to.equal(200);
      const refs = await call(gatewayUrl, 'GET', `/v1/reference-values/${group}`, undefined, bearer);
      expect(refs.status).to.equal(200);
    });
  });
});

/** The ledger as Org2's auditor reads it, through Org2's peer with a file identity of the network. */
interface AuditorView {
  evaluate<T>(transaction: string, ...args: string[]): Promise<T>;
  close(): void;
}

function openAuditorView(profilePath: string, networkDir: string): AuditorView {
  const org = readOrganization(profilePath, 'Org2');
  const peer = org.peers[0] ?? assertNever('no Org2 peer');
  const msp = join(networkDir, 'identities', 'org2', 'auditor', 'msp');
  const keyFile = readdirSync(join(msp, 'keystore'))[0] ?? assertNever('no auditor key');
  const client = new grpc.Client(peer.endpoint, grpc.credentials.createSsl(readFileSync(peer.tlsRootCert)), {
    'grpc.ssl_target_name_override': peer.hostAlias,
  });
  const gateway: FabricGateway = connect({
    client,
    identity: { mspId: org.mspId, credentials: readFileSync(join(msp, 'signcerts', 'cert.pem')) },
    signer: signers.newPrivateKeySigner(createPrivateKey(readFileSync(join(msp, 'keystore', keyFile)))),
    hash: hash.sha256,
    evaluateOptions: () => ({ deadline: Date.now() + 10_000 }),
  });
  const contract = gateway.getNetwork(org.channel).getContract(org.chaincode);
  const decoder = new TextDecoder();
  return {
    async evaluate<T>(transaction: string, ...args: string[]) {
      return JSON.parse(decoder.decode(await contract.evaluateTransaction(transaction, ...args))) as T;
    },
    close() {
      gateway.close();
      client.close();
    },
  };
}

function assertNever(message: string): never {
  throw new Error(message);
}
