/**
 * Test support: a real `fabric-ca-server` with TLS on free 127.0.0.1 ports in a temporary home,
 * and `fabric-ca-client` to register identities with it. The binaries are the ones
 * scripts/install-fabric.sh recorded in <repo>/.cache/fabric.env (FABRIC_CA_BIN_DIR).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** gateway/dist/testing → the repository root. */
export const repoRoot = resolve(__dirname, '..', '..', '..');

export interface FabricCaServer {
  /** `https://127.0.0.1:<port>` */
  readonly url: string;
  /** The CA certificate, which also issued the server's TLS certificate: the root to pin. */
  readonly caCertPem: string;
  readonly caName: string;
  readonly port: number;
  /** Registers a client identity through the bootstrap admin; `attrs` as `--id.attrs` takes them. */
  register(id: string, secret: string, attrs?: string): Promise<void>;
  /** Stops the server (SIGTERM, then SIGKILL) and deletes its home. */
  stop(): Promise<void>;
}

/**
 * The directory holding fabric-ca-server and fabric-ca-client, from fabric.env. Throws, never
 * skips, when they are missing: a suite that silently does not run proves nothing.
 */
export function fabricCaBinDir(): string {
  const cacheDir = resolve(repoRoot, process.env.KEYFLEET_CACHE_DIR ?? '.cache');
  const envFile = join(cacheDir, 'fabric.env');
  const missing = (what: string): Error =>
    new Error(`Fabric CA binaries not found (${what}): run scripts/install-fabric.sh to install them`);
  if (!existsSync(envFile)) throw missing(`no ${envFile}`);
  const line = readFileSync(envFile, 'utf8')
    .split('\n')
    .map((l) => /^FABRIC_CA_BIN_DIR=(['"]?)(.*)\1\s*$/.exec(l.trim()))
    .find((m) => m !== null);
  const value = line?.[2];
  if (value === undefined || value === '') throw missing(`FABRIC_CA_BIN_DIR is not set in ${envFile}`);
  const dir = isAbsolute(value) ? value : resolve(repoRoot, value);
  for (const tool of ['fabric-ca-server', 'fabric-ca-client']) {
    if (!existsSync(join(dir, tool))) throw missing(`no ${tool} in ${dir}`);
  }
  return dir;
}

/** A port that was free a moment ago; the caller retries if another process takes it first. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => {
        resolvePort(port);
      });
    });
  });
}

const delay = (ms: number): Promise<void> =>
  new Promise((r) => {
    setTimeout(r, ms);
  });

/** GET /api/v1/cainfo over TLS pinned to the CA certificate: the CA port serves, not just the process. */
function cainfoAnswers(url: string, ca: string): Promise<boolean> {
  return new Promise((resolveOk) => {
    const req = request(`${url}/api/v1/cainfo`, { ca, agent: false, timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', () => {
        resolveOk(res.statusCode === 200);
      });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => {
      resolveOk(false);
    });
    req.end();
  });
}

/** Starts a CA and waits until it answers; retries on a port taken between probe and bind. */
export async function startFabricCaServer(options: { readonly caName?: string } = {}): Promise<FabricCaServer> {
  const binDir = fabricCaBinDir();
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(binDir, options.caName ?? 'keyfleet-ca');
    } catch (err) {
      lastError = err as Error;
      if (!/address already in use/.test(lastError.message)) throw lastError;
    }
  }
  throw lastError ?? new Error('fabric-ca-server did not start');
}

async function startOnce(binDir: string, caName: string): Promise<FabricCaServer> {
  const home = mkdtempSync(join(tmpdir(), 'keyfleet-fabric-ca-'));
  const port = await freePort();
  const opsPort = await freePort();
  const url = `https://127.0.0.1:${port}`;
  // Throw-away credentials of a throw-away CA.
  const adminSecret = randomBytes(12).toString('base64url');
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, FABRIC_CA_SERVER_HOME: home };
  const child: ChildProcess = spawn(
    join(binDir, 'fabric-ca-server'),
    [
      'start',
      '-b',
      `admin:${adminSecret}`,
      '--address',
      '127.0.0.1',
      '--port',
      String(port),
      '--tls.enabled',
      '--ca.name',
      caName,
      '--csr.hosts',
      'localhost,127.0.0.1',
      '--operations.listenaddress',
      `127.0.0.1:${opsPort}`,
    ],
    { cwd: home, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  const keep = (chunk: Buffer): void => {
    log = (log + chunk.toString('utf8')).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((r) => {
    child.once('exit', () => {
      r();
    });
  });
  const running = (): boolean => child.exitCode === null && child.signalCode === null;

  const stop = async (): Promise<void> => {
    if (running()) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    }
    rmSync(home, { recursive: true, force: true });
  };

  const caCertFile = join(home, 'ca-cert.pem');
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (!running()) {
      await stop();
      throw new Error(`fabric-ca-server exited before it served:\n${log}`);
    }
    if (existsSync(caCertFile) && (await cainfoAnswers(url, readFileSync(caCertFile, 'utf8')))) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`fabric-ca-server did not answer on ${url} within 20 s:\n${log}`);
    }
    await delay(50);
  }
  const caCertPem = readFileSync(caCertFile, 'utf8');

  const clientHome = join(home, 'admin');
  const client = (args: string[]): Promise<unknown> =>
    run(join(binDir, 'fabric-ca-client'), [...args, '--home', clientHome, '--tls.certfiles', caCertFile], {
      env: { ...env, FABRIC_CA_CLIENT_HOME: clientHome },
    });
  try {
    await client(['enroll', '-u', `https://admin:${adminSecret}@127.0.0.1:${port}`, '--caname', caName]);
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    url,
    caCertPem,
    caName,
    port,
    register: async (id, secret, attrs) => {
      const args = ['register', '-u', url, '--caname', caName, '--id.name', id, '--id.secret', secret];
      args.push('--id.type', 'client', ...(attrs === undefined ? [] : ['--id.attrs', attrs]));
      await client(args);
    },
    stop,
  };
}
