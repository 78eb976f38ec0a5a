import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { failureCode, newFleet, newOperatorAuthorization, type Fleet } from '@keyfleet/agent/fleet';
import type { AttestationRecord, KeyRecord, Page } from '@keyfleet/protocol';
import { ApiRole, issueBearerToken, newHsm, openLedgerReader, type LedgerReader } from '@keyfleet/gateway';
import { createSoftHsmStore, freePort, softHsmModule, type SoftHsmStore } from '@keyfleet/gateway/testing';
import { networkScriptAt } from '../support/network';
import { trustCa } from '../support/trust';

/**
 * keyfleet under faults on a real network: a steady load of rotations and attestations from the
 * fleet simulator while one part after another is killed with SIGKILL and brought back, then a
 * reconcile through Org2's auditor (never through the gateway) of everything that got a success
 * answer. docs/operations.md says what an operator sees in each case.
 */

const repoRoot = resolve(__dirname, '..', '..', '..');

export const FaultName = {
  /** The Raft leader of the channel (ha), or one of the four SmartBFT orderers (bft). */
  Orderer: 'orderer',
  PeerOrg1: 'peer of Org1',
  PeerOrg2: 'peer of Org2',
  ChaincodeServer: 'chaincode server',
  FabricCa: 'Fabric CA',
  Gateway: 'operator gateway',
  Verifier: 'verifier',
} as const;
export type FaultName = (typeof FaultName)[keyof typeof FaultName];

export interface FaultRow {
  readonly fault: FaultName;
  /** The process that was killed, e.g. `orderer1` or `gateway`. */
  readonly target: string;
  readonly attempted: number;
  readonly acknowledged: number;
  /** Failed operations by their code: each a clear refusal, never a silent loss. */
  readonly failed: Readonly<Record<string, number>>;
  /** Acknowledged operations the ledger does not hold: must be 0. */
  readonly lost: number;
  /** Operations the ledger holds twice (a nonce accepted twice): must be 0. */
  readonly duplicated: number;
  /**
   * From the kill until a rotation, an attestation and a key-service call begun after it have all
   * succeeded; null if one never did while the load ran.
   */
  readonly recoverySeconds: number | null;
}

export interface Reconcile {
  /** Devices whose key version differs from the ledger's active version. */
  readonly devicesOffLedger: readonly string[];
  /** Version objects in the HSM that the ledger does not account for (or committed as next). */
  readonly orphanHsmVersions: readonly string[];
  /** Ledger versions (not destroyed) that the HSM does not hold. */
  readonly missingHsmVersions: readonly string[];
  /** Nonce keys that two valid transactions wrote. */
  readonly noncesReused: readonly string[];
}

export interface FaultSuiteOptions {
  readonly profile: 'ha' | 'bft';
  /** `network.sh up --hsm`: every node's, admin's and Fabric CA's signing key in a SoftHSM token. */
  readonly hsm?: boolean;
  /** The network's directory and port base (the suite owns both). */
  readonly dir: string;
  readonly portBase: number;
  readonly devices: number;
  /**
   * Load per fault: before the kill, while down, and after the restart (then on until rotations
   * and attestations both succeed again, for at most 30 s).
   */
  readonly phaseMs: { readonly before: number; readonly down: number; readonly after: number };
  readonly faults: readonly FaultName[];
  readonly log: (line: string) => void;
}

export interface Service {
  readonly name: string;
  readonly url: string;
  child: ChildProcess | undefined;
  start(): Promise<void>;
  kill(): Promise<void>;
}

/**
 * A keyfleet service as a child process. It runs in `workDir`, inside the network's data directory,
 * so `network.sh down` recognises it as the network's own and stops it even when this process was
 * killed before it could (a mocha run killed from outside does not run exit handlers).
 */
function newService(
  name: string,
  script: string,
  env: NodeJS.ProcessEnv,
  port: number,
  workDir: string,
  logFile: string,
  caFile: string,
): Service {
  const url = `https://127.0.0.1:${String(port)}`;
  const service: Service = {
    name,
    url,
    child: undefined,
    async start() {
      const child = spawn(process.execPath, [resolve(repoRoot, script)], {
        cwd: workDir,
        env: { ...process.env, ...env },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      service.child = child;
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        writeFileSync(logFile, stderr);
      });
      for (let attempt = 0; attempt < 600; attempt++) {
        if (child.exitCode !== null) throw new Error(`${name} exited: ${stderr}`);
        // The CA certificate it publishes at start: what its clients trust (KEYFLEET_CA_FILE).
        if (existsSync(caFile)) trustCa(readFileSync(caFile, 'utf8'));
        if (
          await fetch(`${url}/healthz`).then(
            (r) => r.ok,
            () => false,
          )
        )
          return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`${name} did not become healthy: ${stderr}`);
    },
    async kill() {
      const child = service.child;
      service.child = undefined;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await once(child, 'exit');
    },
  };
  return service;
}

/** The pid of a network process, from network.sh's pid file. */
function networkPid(dir: string, name: string): number {
  return Number(readFileSync(join(dir, 'pids', `${name}.pid`), 'utf8').trim());
}

/** The orderer that leads the Raft channel now (its operations port's metric). */
async function raftLeader(portBase: number, orderers: number): Promise<string> {
  for (let i = 0; i < orderers; i++) {
    const metrics = await fetch(`http://127.0.0.1:${String(portBase + 20 + 10 * i + 2)}/metrics`).then(
      (r) => r.text(),
      () => '',
    );
    if (/consensus_etcdraft_is_leader\{channel="keyfleet"\} 1/.test(metrics)) return `orderer${String(i)}`;
  }
  throw new Error('no Raft leader');
}

export interface Acks {
  /** Per device: versions the device was given and acknowledged. */
  readonly rotations: Map<string, number[]>;
  /** Per device: acknowledged attestations. */
  readonly attestations: Map<string, number>;
}

/** A network, the gateway and the verifier as processes on their tokens, and an enrolled fleet. */
export interface Stack {
  readonly net: (...args: string[]) => string;
  readonly fleet: Fleet;
  readonly gateway: Service;
  readonly verifier: Service;
  readonly store: SoftHsmStore;
  /** The ledger as Org2's auditor reads it (qscc and keyfleet's contract), never through the gateway. */
  readonly reader: LedgerReader;
  /** One key-service round trip: the application billing encrypts with its key and decrypts. */
  keyService(): Promise<void>;
  /** Stops the services, removes the tokens and takes the network down. */
  close(): Promise<void>;
}

export interface StackOptions {
  readonly profile: 'dev' | 'ha' | 'bft';
  /** `network.sh up --hsm` (docs/network.md): the network's own signing keys in SoftHSM tokens. */
  readonly hsm?: boolean;
  readonly dir: string;
  readonly portBase: number;
  readonly devices: number;
  readonly log: (line: string) => void;
}

export async function openStack(options: StackOptions): Promise<Stack> {
  const { dir, portBase, log } = options;
  const net = (...args: string[]) => networkScriptAt(dir, portBase, ...args);
  const started = Date.now();
  // A network of its own, made anew: nothing left from an earlier run.
  net('down');
  net('up', '--profile', options.profile, ...(options.hsm === true ? ['--hsm'] : []));
  net('deploy');
  log(
    `network: ${options.profile}${options.hsm === true ? ' --hsm' : ''} profile up and deployed in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  const profilePath = join(dir, 'connection.json');

  const work = join(dir, 'keyfleet');
  mkdirSync(work, { recursive: true });
  const store: SoftHsmStore = createSoftHsmStore('keyfleet-stack');
  store.addToken('keyfleet-stack-verifier');
  const services: Service[] = [];
  // An interrupted run (the CLI exits on SIGINT) still stops its services and removes its tokens.
  const onExit = () => {
    for (const service of services) service.child?.kill('SIGKILL');
    store.remove();
  };
  process.once('exit', onExit);
  let reader: LedgerReader | undefined;
  const close = async () => {
    process.removeListener('exit', onExit);
    reader?.close();
    for (const service of services) await service.kill();
    store.remove();
    net('down');
  };
  try {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    // An application, billing, that encrypts and decrypts with a key of its own (the key service).
    const billing = await generateKeyPair('ES256');
    const jwks = join(work, 'jwks.json');
    writeFileSync(
      jwks,
      JSON.stringify({
        keys: [
          { ...(await exportJWK(publicKey)), kid: 'ops', alg: 'ES256', sub: 'ops', role: 'operator' },
          {
            ...(await exportJWK(billing.publicKey)),
            kid: 'billing',
            alg: 'ES256',
            sub: 'billing',
            role: 'application',
          },
        ],
      }),
    );
    const credentials = join(work, 'operator.json');
    writeFileSync(
      credentials,
      JSON.stringify({ subject: 'ops', role: 'operator', kid: 'ops', privateJwk: await exportJWK(privateKey) }),
      { mode: 0o600 },
    );
    const [gatewayPort, verifierPort] = [await freePort(), await freePort()];
    const common = { SOFTHSM2_CONF: store.conf, KEYFLEET_LOG_LEVEL: 'warn' };
    const gateway = newService(
      'gateway',
      'gateway/dist/main.js',
      {
        ...common,
        KEYFLEET_HSM_MODULE: softHsmModule,
        KEYFLEET_HSM_URI: store.uri,
        KEYFLEET_HSM_PIN: store.pin,
        KEYFLEET_DATA_DIR: join(work, 'gateway'),
        KEYFLEET_AUTH_JWKS: jwks,
        KEYFLEET_HTTP_PORT: String(gatewayPort),
        KEYFLEET_SCHEDULER_INTERVAL_MS: '0',
        KEYFLEET_FABRIC_CONNECTION: profilePath,
        KEYFLEET_VERIFIER_URL: `https://127.0.0.1:${String(verifierPort)}`,
        KEYFLEET_VERIFIER_CA_FILE: join(work, 'verifier', 'tls-ca.pem'),
      },
      gatewayPort,
      work,
      join(work, 'gateway.log'),
      join(work, 'gateway', 'device-ca.pem'),
    );
    const verifier = newService(
      'verifier',
      'gateway/dist/verifier-main.js',
      {
        ...common,
        KEYFLEET_VERIFIER_HSM_MODULE: softHsmModule,
        KEYFLEET_VERIFIER_HSM_URI: 'pkcs11:token=keyfleet-stack-verifier',
        KEYFLEET_VERIFIER_HSM_PIN: store.pin,
        KEYFLEET_VERIFIER_DATA_DIR: join(work, 'verifier'),
        KEYFLEET_VERIFIER_DEVICE_CA_CERT: join(work, 'gateway', 'device-ca.pem'),
        KEYFLEET_VERIFIER_FABRIC_CONNECTION: profilePath,
        KEYFLEET_VERIFIER_HTTP_PORT: String(verifierPort),
        KEYFLEET_VERIFIER_LOG_LEVEL: 'warn',
      },
      verifierPort,
      work,
      join(work, 'verifier.log'),
      join(work, 'verifier', 'tls-ca.pem'),
    );
    services.push(gateway, verifier);
    // The gateway first: it publishes the device CA's certificate that the verifier trusts.
    await gateway.start();
    await verifier.start();

    const fleet: Fleet = newFleet({
      gatewayUrl: gateway.url,
      size: options.devices,
      operatorAuthorization: newOperatorAuthorization({ credentialsFile: credentials }),
      workDir: join(work, 'devices'),
      group: 'stack',
      idPrefix: 'dev',
      concurrency: 8,
    });
    await fleet.setReferenceValues();
    await fleet.enrol({ progress: false });
    await fleet.provisionKeys({ progress: false });
    await fleet.fetchKeys({ progress: false });
    log(`fleet: ${String(options.devices)} devices enrolled, each holding version 1 of its data key`);
    reader = openLedgerReader(profilePath, 'Org2', 'auditor');

    const operators = [{ mspId: 'Org1MSP', role: 'operator' }];
    await fleet.client.request(
      'POST',
      '/v1/keys',
      {
        keyId: 'billing-orders',
        algorithm: 'AES-256',
        purpose: 'encrypt',
        owner: { type: 'application', id: 'billing' },
        rotationIntervalSeconds: 86400,
        accessPolicy: {
          read: [],
          use: [{ mspId: 'Org1MSP', role: 'application', id: 'billing' }],
          rotate: operators,
          administer: operators,
        },
      },
      { authorization: await fleet.operatorAuthorization() },
    );
    const keyService = async () => {
      const authorization = `Bearer ${await issueBearerToken(billing.privateKey, {
        subject: 'billing',
        role: ApiRole.Application,
        audience: 'keyfleet-gateway',
        kid: 'billing',
        ttlSeconds: 120,
      })}`;
      const plaintext = randomBytes(32).toString('base64url');
      const { ciphertext } = await fleet.client.request<{ ciphertext: string }>(
        'POST',
        '/v1/keys/billing-orders/encrypt',
        { plaintext },
        { authorization },
      );
      const opened = await fleet.client.request<{ plaintext: string }>(
        'POST',
        '/v1/keys/decrypt',
        { ciphertext },
        { authorization },
      );
      if (opened.plaintext !== plaintext)
        throw Object.assign(new Error('decrypt gave other bytes'), { code: 'ROUND_TRIP' });
    };
    return { net, fleet, gateway, verifier, store, reader, keyService, close };
  } catch (err) {
    await close();
    throw err;
  }
}

export async function runFaultSuite(options: FaultSuiteOptions): Promise<{ rows: FaultRow[]; reconcile: Reconcile }> {
  const stack = await openStack(options);
  try {
    const acks: Acks = { rotations: new Map(), attestations: new Map() };
    const rows: FaultRow[] = [];
    for (const fault of options.faults) {
      rows.push(await oneFault(fault, { ...options, ...stack, acks }));
      const last = rows.at(-1);
      if (last) options.log(formatRow(last));
    }
    return { rows, reconcile: await reconcileAll(stack.fleet, stack.reader, stack.store) };
  } finally {
    await stack.close();
  }
}

interface FaultContext extends FaultSuiteOptions, Stack {
  readonly acks: Acks;
}

export type OperationKind = 'rotation' | 'attestation' | 'key-service';
const operationKinds: readonly OperationKind[] = ['rotation', 'attestation', 'key-service'];

export interface Load {
  readonly counts: { attempted: number; acknowledged: number; readonly failed: Record<string, number> };
  /** Stops taking new operations and waits for those in flight. */
  stop(): Promise<void>;
}

/**
 * A steady load on the fleet: each worker takes the next device and rotates its key or attests
 * it, alternately, recording every acknowledgement for the reconcile and every failure by its code.
 */
export function startLoad(
  stack: Pick<Stack, 'fleet' | 'keyService'>,
  acks: Acks,
  onAcknowledged: (kind: OperationKind, begunAt: number) => void = () => undefined,
  workers = 6,
): Load {
  const { fleet } = stack;
  const devices = fleet.devices();
  const counts = { attempted: 0, acknowledged: 0, failed: {} as Record<string, number> };
  let stopped = false;
  let next = 0;
  const worker = async () => {
    while (!stopped) {
      const n = next++;
      const i = n % devices.length;
      const id = devices[i]?.id ?? '';
      const kind = operationKinds[Math.floor(n / devices.length) % operationKinds.length] ?? 'rotation';
      const begun = Date.now();
      counts.attempted++;
      try {
        if (kind === 'rotation') {
          await fleet.operations.rotate(i);
          const version = fleet.devices()[i]?.keyVersion ?? 0;
          acks.rotations.set(id, [...(acks.rotations.get(id) ?? []), version]);
        } else if (kind === 'attestation') {
          await fleet.operations.attest(i);
          acks.attestations.set(id, (acks.attestations.get(id) ?? 0) + 1);
        } else {
          await stack.keyService();
        }
        counts.acknowledged++;
        onAcknowledged(kind, begun);
      } catch (err) {
        const code = failureCode(err);
        counts.failed[code] = (counts.failed[code] ?? 0) + 1;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  const running = Array.from({ length: workers }, worker);
  return {
    counts,
    async stop() {
      stopped = true;
      await Promise.all(running);
    },
  };
}

async function oneFault(fault: FaultName, c: FaultContext): Promise<FaultRow> {
  // Recovery is per kind of operation: rotations, attestations and key-service calls take different paths.
  let killedAt = Number.POSITIVE_INFINITY;
  const recovered = new Map<OperationKind, number>();
  const load = startLoad(c, c.acks, (kind, begunAt) => {
    if (begunAt > killedAt && !recovered.has(kind)) recovered.set(kind, Date.now());
  });

  await new Promise((r) => setTimeout(r, c.phaseMs.before));
  const { target, restart } = await injure(fault, c);
  killedAt = Date.now();
  await new Promise((r) => setTimeout(r, c.phaseMs.down));
  await restart();
  await new Promise((r) => setTimeout(r, c.phaseMs.after));
  // The load goes on until every kind of operation succeeds again, for at most half a minute.
  const giveUpAt = Date.now() + 30_000;
  while (recovered.size < operationKinds.length && Date.now() < giveUpAt) await new Promise((r) => setTimeout(r, 250));
  await load.stop();

  const { lost, duplicated } = await ledgerCounts(c);
  return {
    fault,
    target,
    ...load.counts,
    lost,
    duplicated,
    // Recovered when every kind has succeeded again: the latest of them.
    recoverySeconds:
      recovered.size < operationKinds.length ? null : (Math.max(...recovered.values()) - killedAt) / 1000,
  };
}

/** SIGKILLs the fault's process; `restart` brings it back on its data. */
async function injure(fault: FaultName, c: FaultContext): Promise<{ target: string; restart: () => Promise<void> }> {
  const network = (name: string) => {
    process.kill(networkPid(c.dir, name), 'SIGKILL');
    return {
      target: name,
      // network.sh start brings that one process back on its data, the others untouched.
      restart: () => {
        c.net('start', name);
        return Promise.resolve();
      },
    };
  };
  switch (fault) {
    case FaultName.Orderer:
      return network(c.profile === 'ha' ? await raftLeader(c.portBase, 3) : 'orderer1');
    case FaultName.PeerOrg1:
      return network('peer0.org1');
    case FaultName.PeerOrg2:
      return network(c.profile === 'ha' ? 'peer1.org2' : 'peer0.org2');
    case FaultName.ChaincodeServer:
      return network('cc.org1');
    case FaultName.FabricCa:
      return network('ca.org1');
    case FaultName.Gateway:
      await c.gateway.kill();
      return { target: 'gateway', restart: () => c.gateway.start() };
    case FaultName.Verifier:
      await c.verifier.kill();
      return { target: 'verifier', restart: () => c.verifier.start() };
  }
}

/** Every acknowledgement so far, against the ledger as Org2's auditor reads it. */
export async function ledgerCounts(
  c: Pick<Stack, 'fleet' | 'reader'> & { readonly acks: Acks },
): Promise<{ lost: number; duplicated: number }> {
  let lost = 0;
  let duplicated = 0;
  for (const device of c.fleet.devices()) {
    const key = await evaluate<KeyRecord>(c.reader, 'GetKey', device.keyId);
    const versions = new Set(key.Versions.map((v) => v.Version));
    lost += (c.acks.rotations.get(device.id) ?? []).filter((v) => !versions.has(v)).length;
    const results = await allAttestations(c.reader, device.id);
    const nonces = new Set(results.map((r) => r.NonceDigest));
    duplicated += results.length - nonces.size;
    lost += Math.max(0, (c.acks.attestations.get(device.id) ?? 0) - results.length);
  }
  return { lost, duplicated };
}

export async function reconcileAll(fleet: Fleet, reader: LedgerReader, store: SoftHsmStore): Promise<Reconcile> {
  const devicesOffLedger: string[] = [];
  const orphanHsmVersions: string[] = [];
  const missingHsmVersions: string[] = [];
  const hsm = await newHsm({ uri: store.uri, modulePath: softHsmModule, pin: store.pin, sessions: 1 });
  try {
    const labels = new Set((await hsm.findKeys({ kind: 'secret' })).map((k) => k.label));
    for (const device of fleet.devices()) {
      const key = await evaluate<KeyRecord>(reader, 'GetKey', device.keyId);
      if (key.ActiveVersion !== device.keyVersion) {
        devicesOffLedger.push(
          `${device.id}: holds v${String(device.keyVersion)}, ledger v${String(key.ActiveVersion)}`,
        );
      }
      const live = key.Versions.filter((v) => v.State !== 'destroyed').map((v) => v.Version);
      const committedNext = key.NextKeyCommitment === null ? [] : [key.LatestVersion + 1];
      const prefix = `key:${key.KeyID}:v`;
      const held = [...labels].filter((l) => l.startsWith(prefix)).map((l) => Number(l.slice(prefix.length)));
      for (const v of held)
        if (!live.includes(v) && !committedNext.includes(v)) orphanHsmVersions.push(`${prefix}${String(v)}`);
      for (const v of live) if (!held.includes(v)) missingHsmVersions.push(`${prefix}${String(v)}`);
    }
  } finally {
    await hsm.close();
  }
  // A nonce's key written by two valid transactions: accepted twice.
  const writers = new Map<string, number>();
  const height = await reader.height();
  for (let n = 0; n < height; n++) {
    for (const tx of await reader.block(n)) {
      if (tx.validationCode !== 0) continue;
      for (const w of tx.writes) {
        if (!w.isDelete && w.key.startsWith('\u0000nonce\u0000')) writers.set(w.key, (writers.get(w.key) ?? 0) + 1);
      }
    }
  }
  const noncesReused = [...writers].filter(([, count]) => count > 1).map(([key]) => key);
  return { devicesOffLedger, orphanHsmVersions, missingHsmVersions, noncesReused };
}

/** A read of keyfleet's contract (deployed under its default name) as Org2's auditor. */
async function evaluate<T>(reader: LedgerReader, transaction: string, ...args: string[]): Promise<T> {
  return JSON.parse(new TextDecoder().decode(await reader.evaluate('keyfleet', transaction, ...args))) as T;
}

async function allAttestations(reader: LedgerReader, deviceId: string): Promise<AttestationRecord[]> {
  const out: AttestationRecord[] = [];
  let bookmark = '';
  do {
    const page = await evaluate<Page<AttestationRecord>>(reader, 'ListAttestations', deviceId, '200', bookmark);
    out.push(...page.Records);
    bookmark = page.Bookmark;
  } while (bookmark !== '');
  return out;
}

export function formatRow(row: FaultRow): string {
  const failed = Object.entries(row.failed)
    .map(([code, n]) => `${code} ${String(n)}`)
    .join(', ');
  return [
    row.fault.padEnd(18),
    row.target.padEnd(12),
    String(row.attempted).padStart(9),
    String(row.acknowledged).padStart(12),
    String(row.lost).padStart(5),
    String(row.duplicated).padStart(11),
    (row.recoverySeconds === null ? 'none' : `${row.recoverySeconds.toFixed(1)} s`).padStart(10),
    `  ${failed || '-'}`,
  ].join(' ');
}

export const tableHeader = [
  'fault'.padEnd(18),
  'killed'.padEnd(12),
  'attempted'.padStart(9),
  'acknowledged'.padStart(12),
  'lost'.padStart(5),
  'duplicated'.padStart(11),
  'recovery'.padStart(10),
  '  failed (by code)',
].join(' ');
