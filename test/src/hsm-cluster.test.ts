import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'chai';
import { exportJWK, generateKeyPair, type KeyLike } from 'jose';
import type { HsmClusterEventRecord, KeyRecord } from '@keyfleet/protocol';
import { issueBearerToken } from '@keyfleet/gateway';
import { createSoftHsmStore, softHsmModule, type SoftHsmStore } from '@keyfleet/gateway/testing';
import { fabricEnv, newNamespace, peerQuery } from './support/network';
import { trustCa } from './support/trust';

const main = resolve(__dirname, '../../gateway/dist/main.js');
const hsmCli = resolve(__dirname, '../../gateway/dist/hsm/cli.js');

/**
 * Issue 15's redundant HSM cluster on the real network: a gateway over two tokens loses its primary
 * token (pulled out of the SoftHSM store) while operators rotate an application key and encrypt
 * with it. It goes on with the second token without a restart, every acknowledged rotation's version
 * is on the ledger and usable, and Org2's auditor reads the failover on the ledger.
 */
describe('HSM cluster: the gateway token pulled mid-load', function () {
  this.timeout(300_000);
  let store: SoftHsmStore;
  let chaincode: string;
  let dir: string;
  let port: number;
  let operatorKey: KeyLike;
  let gateway: ChildProcess | undefined;
  let stderr = '';
  const url = () => `https://127.0.0.1:${port}`;
  const primary = `hsmc-${process.pid}`.slice(0, 24);
  const second = `${primary}-2`;

  const operator = async (method: string, path: string, body?: unknown) => {
    const token = await issueBearerToken(operatorKey, {
      subject: 'alice',
      role: 'operator',
      audience: 'keyfleet-gateway',
      kid: 'alice',
    });
    const response = await fetch(`${url()}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  before(async () => {
    chaincode = newNamespace('hsmc');
    store = createSoftHsmStore(primary);
    store.addToken(second);
    // The SO's ceremony, through the same CLI verb an operator runs.
    execFileSync(process.execPath, [hsmCli, 'cluster-init'], {
      env: {
        ...process.env,
        SOFTHSM2_CONF: store.conf,
        KEYFLEET_HSM_MODULE: softHsmModule,
        KEYFLEET_HSM_SO_PIN: store.soPin,
        KEYFLEET_HSM_CLUSTER_TOKENS: `${primary},${second}`,
      },
      stdio: 'ignore',
    });
    dir = mkdtempSync(join(tmpdir(), 'keyfleet-hsmc-'));
    mkdirSync(join(dir, 'gateway'));
    const pair = await generateKeyPair('ES256');
    operatorKey = pair.privateKey;
    writeFileSync(
      join(dir, 'jwks.json'),
      JSON.stringify({
        keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'alice', alg: 'ES256', sub: 'alice', role: 'operator' }],
      }),
    );
    const probe = createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    port = (probe.address() as { port: number }).port;
    probe.close();

    const child = spawn(process.execPath, [main], {
      env: {
        ...process.env,
        SOFTHSM2_CONF: store.conf,
        KEYFLEET_HSM_MODULE: softHsmModule,
        KEYFLEET_HSM_URI: `pkcs11:token=${primary}`,
        KEYFLEET_HSM_REPLICAS: `pkcs11:token=${second}`,
        KEYFLEET_HSM_PIN: store.pin,
        KEYFLEET_DATA_DIR: join(dir, 'gateway'),
        KEYFLEET_AUTH_JWKS: join(dir, 'jwks.json'),
        KEYFLEET_HTTP_PORT: String(port),
        KEYFLEET_LOG_LEVEL: 'warn',
        KEYFLEET_SCHEDULER_INTERVAL_MS: '0',
        ...fabricEnv(chaincode),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    gateway = child;
    // The gateway's warnings and errors (pino JSON on stdout) go with a failure's message.
    child.stdout.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    for (let attempt = 0; ; attempt++) {
      if (child.exitCode !== null) throw new Error(`the gateway exited: ${stderr}`);
      // Its CA certificate, published at its first start: what a client trusts (KEYFLEET_CA_FILE).
      const caFile = join(dir, 'gateway', 'device-ca.pem');
      if (existsSync(caFile)) trustCa(readFileSync(caFile, 'utf8'));
      if (
        await fetch(`${url()}/healthz`).then(
          (r) => r.ok,
          () => false,
        )
      )
        break;
      if (attempt > 2400) throw new Error('the gateway did not become healthy');
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  after(async () => {
    if (gateway && gateway.exitCode === null) {
      gateway.kill('SIGTERM');
      await once(gateway, 'exit');
    }
    store.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  it('goes on with the second token: 0 acknowledged rotations lost, every version usable, the failover on the ledger', async () => {
    const registered = await operator('POST', '/v1/keys', {
      keyId: 'hsmc-data',
      algorithm: 'AES-256',
      purpose: 'encrypt',
      owner: { type: 'application', id: 'billing' },
      rotationIntervalSeconds: 86400,
      accessPolicy: {
        read: [{ mspId: 'Org1MSP', role: 'operator' }],
        use: [{ mspId: 'Org1MSP', role: 'operator' }],
        rotate: [{ mspId: 'Org1MSP', role: 'operator' }],
        administer: [{ mspId: 'Org1MSP', role: 'operator' }],
      },
    });
    expect(registered.status, JSON.stringify(registered.body)).to.equal(201);

    const sealed: { version: number; ciphertext: string; plaintext: string }[] = [];
    const rotatedTo: number[] = [];
    const failures: string[] = [];
    // An object, so TypeScript does not narrow the flags across the awaits that change them.
    const flags = { pulled: false, stop: false, atPull: 0 };
    const deadline = Date.now() + 150_000;
    const seal = async (i: number) => {
      const plaintext = Buffer.from(`reading ${i}`).toString('base64url');
      const answer = await operator('POST', '/v1/keys/hsmc-data/encrypt', { plaintext });
      if (answer.status !== 200) throw new Error(`encrypt ${answer.status} ${JSON.stringify(answer.body)}`);
      sealed.push({ version: answer.body.version as number, ciphertext: answer.body.ciphertext as string, plaintext });
    };
    const rotations = (async () => {
      while (!flags.stop) {
        const answer = await operator('POST', '/v1/keys/hsmc-data/rotate');
        if (answer.status === 200) rotatedTo.push((answer.body as { version: number }).version);
        else failures.push(`rotate ${answer.status} ${JSON.stringify(answer.body)}`);
        if ((flags.pulled && rotatedTo.length >= flags.atPull + 3) || failures.length > 20 || Date.now() > deadline) {
          flags.stop = true;
        }
      }
    })();
    const encryptions = (async () => {
      for (let i = 0; !flags.stop; i++) await seal(i).catch((err: unknown) => failures.push(String(err)));
    })();
    while (rotatedTo.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    try {
      // The primary token goes as a pulled device would: its directory leaves the store at once.
      const tokens = join(store.dir, 'tokens');
      const padded = Buffer.from(primary.padEnd(32));
      const [tokenDir] = readdirSync(tokens).filter((d) =>
        readFileSync(join(tokens, d, 'token.object')).includes(padded),
      );
      renameSync(join(tokens, tokenDir ?? 'missing'), join(store.dir, 'pulled'));
      rmSync(join(store.dir, 'pulled'), { recursive: true, force: true });
      flags.atPull = rotatedTo.length;
      flags.pulled = true;
    } finally {
      if (!flags.pulled) flags.stop = true;
      await Promise.all([rotations, encryptions]);
    }
    expect(failures, stderr.slice(-6000)).to.deep.equal([]);
    expect(rotatedTo.length, 'rotations acknowledged after the token was pulled').to.be.at.least(flags.atPull + 3);

    // Every acknowledged rotation is on the ledger, and every version's ciphertexts open.
    const record = (await operator('GET', '/v1/keys/hsmc-data')).body.record as KeyRecord;
    const onLedger = record.Versions.map((v) => v.Version);
    expect(onLedger).to.include.members(rotatedTo);
    for (const s of sealed) {
      const opened = await operator('POST', '/v1/keys/decrypt', { ciphertext: s.ciphertext });
      expect(opened.status, JSON.stringify(opened.body)).to.equal(200);
      expect(opened.body.plaintext).to.equal(s.plaintext);
    }
    const sealedVersions = new Set(sealed.map((s) => s.version));
    expect(sealedVersions.size).to.be.greaterThan(3);
    // The gateway still serves: a new version made on the surviving token.
    const last = await operator('POST', '/v1/keys/hsmc-data/rotate');
    expect(last.status, JSON.stringify(last.body)).to.equal(200);

    // As Org2's auditor, with Fabric's own CLI: the failover and the replications.
    let events: HsmClusterEventRecord[] = [];
    for (let attempt = 0; attempt < 60; attempt++) {
      events = peerQuery(
        chaincode,
        { org: 'Org2', name: 'auditor' },
        'hsm-cluster:ListHsmClusterEvents',
        primary,
      ) as HsmClusterEventRecord[];
      if (events.some((e) => e.DocType === 'hsm-failover')) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    const failovers = events.filter((e) => e.DocType === 'hsm-failover');
    expect(failovers).to.have.length(1);
    expect(failovers[0]).to.include({ From: primary, To: second });
    const replications = events.filter((e) => e.DocType === 'hsm-replication');
    expect(replications.some((e) => e.Reason === 'join' && e.Target === second)).to.equal(true);
  });
});
