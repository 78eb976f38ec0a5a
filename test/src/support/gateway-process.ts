import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { exportJWK, generateKeyPair, type KeyLike } from 'jose';
import { issueBearerToken } from '@keyfleet/gateway';
import { softHsmModule } from '@keyfleet/gateway/testing';
import { fabricEnv } from './network';
import { trustCa } from './trust';

const main = resolve(__dirname, '../../../gateway/dist/main.js');

/** A free port on the loopback interface, for a service this test starts. */
export async function freeLoopbackPort(): Promise<number> {
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as { port: number };
  probe.close();
  return port;
}

/**
 * An operator, alice, whose bearer tokens the gateway accepts: her public key is in
 * `DIR/jwks.json` (KEYFLEET_AUTH_JWKS). `call` answers with the status and the JSON body.
 */
export interface Operator {
  readonly jwksFile: string;
  call(
    url: string,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: Record<string, unknown> }>;
}

export async function newOperator(dir: string): Promise<Operator> {
  const pair = await generateKeyPair('ES256');
  const key: KeyLike = pair.privateKey;
  const jwksFile = join(dir, 'jwks.json');
  writeFileSync(
    jwksFile,
    JSON.stringify({
      keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'alice', alg: 'ES256', sub: 'alice', role: 'operator' }],
    }),
  );
  return {
    jwksFile,
    async call(url, method, path, body) {
      const token = await issueBearerToken(key, {
        subject: 'alice',
        role: 'operator',
        audience: 'keyfleet-gateway',
        kid: 'alice',
      });
      const response = await fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    },
  };
}

export interface GatewayProcessOptions {
  /** The SoftHSM store's configuration file and user PIN. */
  readonly store: { readonly conf: string; readonly pin: string };
  /** RFC 7512 URI of the gateway's token. */
  readonly hsmUri: string;
  /** Holds the gateway's data directory (`DIR/gateway`). */
  readonly dir: string;
  readonly port: number;
  readonly jwksFile: string;
  /** The chaincode namespace of the suite ({@link newNamespace}). */
  readonly chaincode: string;
  /** More settings (a failpoint, HSM replicas, …). */
  readonly env?: Readonly<Record<string, string>>;
}

/** The gateway as a process of its own, healthy over HTTPS, its CA trusted by this test's fetch. */
export interface GatewayProcess {
  readonly url: string;
  readonly child: ChildProcess;
  /** Settles when the process has exited, however and whenever that happened. */
  readonly exited: Promise<void>;
  /** What it wrote (pino JSON on stdout, errors on stderr), for a failure's message. */
  output(): string;
  /** SIGTERM and wait for the exit; nothing if it is gone already. */
  stop(): Promise<void>;
}

/**
 * Starts `gateway/dist/main.js` and resolves once `/healthz` answers; a gateway that exits first,
 * or is not healthy within about two minutes, fails with what it wrote.
 */
export async function startGatewayProcess(options: GatewayProcessOptions): Promise<GatewayProcess> {
  const dataDir = join(options.dir, 'gateway');
  mkdirSync(dataDir, { recursive: true });
  const url = `https://127.0.0.1:${String(options.port)}`;
  const child = spawn(process.execPath, [main], {
    env: {
      ...process.env,
      SOFTHSM2_CONF: options.store.conf,
      KEYFLEET_HSM_MODULE: softHsmModule,
      KEYFLEET_HSM_URI: options.hsmUri,
      KEYFLEET_HSM_PIN: options.store.pin,
      KEYFLEET_DATA_DIR: dataDir,
      KEYFLEET_AUTH_JWKS: options.jwksFile,
      KEYFLEET_HTTP_PORT: String(options.port),
      KEYFLEET_LOG_LEVEL: 'warn',
      KEYFLEET_SCHEDULER_INTERVAL_MS: '0',
      ...fabricEnv(options.chaincode),
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Listened for from the start: a process that dies at a failpoint may be gone before anyone asks.
  const exited = once(child, 'exit').then(() => undefined);
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const gateway: GatewayProcess = {
    url,
    child,
    exited,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
  for (let attempt = 0; attempt < 2400; attempt++) {
    if (child.exitCode !== null) throw new Error(`the gateway exited: ${output}`);
    // Its CA certificate, published at its first start: what a client trusts (KEYFLEET_CA_FILE).
    const caFile = join(dataDir, 'device-ca.pem');
    if (existsSync(caFile)) trustCa(readFileSync(caFile, 'utf8'));
    const healthy = await fetch(`${url}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (healthy) return gateway;
    await new Promise((r) => setTimeout(r, 50));
  }
  await gateway.stop();
  throw new Error(`the gateway did not become healthy: ${output}`);
}
