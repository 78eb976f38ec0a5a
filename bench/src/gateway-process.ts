import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';

export const repoRoot = resolve(__dirname, '..', '..');

export interface GatewayProcessOptions {
  /** SoftHSM store: configuration file, token URI and user PIN (a throw-away token). */
  readonly store: { readonly conf: string; readonly uri: string; readonly pin: string };
  readonly module: string;
  readonly dataDir: string;
  /** Results per Merkle batch (1: one RecordAttestation transaction per result). */
  readonly batchSize: number;
  /** Write a V8 CPU profile of the gateway into this directory on exit. */
  readonly cpuProfileDir?: string;
}

export interface RouteTime {
  readonly count: number;
  readonly sumSeconds: number;
}

export interface GatewayProcess {
  readonly url: string;
  readonly pid: number;
  /** Server-side time by route, from the gateway's own `/metrics` histogram. */
  routeTimes(): Promise<Map<string, RouteTime>>;
  /** Stops it (SIGTERM, as `npm stop`) and answers its peak resident set size (VmHWM). */
  stop(): Promise<{ peakRssBytes: number }>;
}

async function freePort(): Promise<number> {
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

/** VmHWM: the kernel's own record of the process's peak RSS (proc(5)). */
function peakRss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1];
  return kib === undefined ? Number.NaN : Number(kib) * 1024;
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolveExit) => {
    if (child.exitCode !== null || child.signalCode !== null) resolveExit();
    else {
      child.once('exit', () => {
        resolveExit();
      });
    }
  });
}

/** Starts `node gateway/dist/main.js` as `npm start` does, on 127.0.0.1 and a free port, and waits for /healthz. */
export async function startGatewayProcess(options: GatewayProcessOptions): Promise<GatewayProcess> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const args = [
    ...(options.cpuProfileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', options.cpuProfileDir]),
    join(repoRoot, 'gateway', 'dist', 'main.js'),
  ];
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      ...process.env,
      SOFTHSM2_CONF: options.store.conf,
      KEYFLEET_HSM_MODULE: options.module,
      KEYFLEET_HSM_URI: options.store.uri,
      // A throw-away token's PIN, passed through the environment, never argv.
      KEYFLEET_HSM_PIN: options.store.pin,
      KEYFLEET_DATA_DIR: options.dataDir,
      KEYFLEET_AUTH_JWKS: join(options.dataDir, 'auth', 'jwks.json'),
      KEYFLEET_HTTP_HOST: '127.0.0.1',
      KEYFLEET_HTTP_PORT: String(port),
      KEYFLEET_LEDGER: 'local',
      KEYFLEET_LOG_LEVEL: 'warn',
      KEYFLEET_ATTESTATION_BATCH_SIZE: String(options.batchSize),
    },
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const pid = child.pid ?? 0;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the gateway exited (${child.exitCode}): ${stderr}`);
    try {
      const response = await fetch(`${url}/healthz`);
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the gateway did not answer ${url}/healthz within 60 s: ${stderr}`);
    }
    // Polling the health endpoint: each try is a real request; this only paces them.
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    pid,
    async routeTimes() {
      const text = await (await fetch(`${url}/metrics`)).text();
      const out = new Map<string, RouteTime>();
      for (const match of text.matchAll(/^keyfleet_http_request_seconds_(sum|count)\{route="([^"]+)"\} (\S+)$/gm)) {
        const [, kind, route, value] = match as unknown as [string, string, string, string];
        const entry = out.get(route) ?? { count: 0, sumSeconds: 0 };
        out.set(route, kind === 'sum' ? { ...entry, sumSeconds: Number(value) } : { ...entry, count: Number(value) });
      }
      return out;
    },
    async stop() {
      const peakRssBytes = peakRss(pid);
      child.kill('SIGTERM');
      await exited(child);
      return { peakRssBytes };
    },
  };
}
