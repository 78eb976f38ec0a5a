import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { newTlsFetch, type TlsTrust } from '@keyfleet/agent';

export const repoRoot = resolve(__dirname, '..', '..');

export interface RouteTime {
  readonly count: number;
  readonly sumSeconds: number;
}

/** A keyfleet service (the gateway or the verifier) running as its own process, as `npm start` runs it. */
export interface ServiceProcess {
  readonly name: string;
  /** `https://127.0.0.1:<port>` */
  readonly url: string;
  /** What its clients trust: the CA certificate it published at start. */
  readonly tls: TlsTrust;
  readonly pid: number;
  /** Server-side time by route, from the service's own `/metrics` histogram. */
  routeTimes(): Promise<Map<string, RouteTime>>;
  /** Stops it (SIGTERM, as `npm stop`) and answers its peak resident set size (VmHWM) in bytes. */
  stop(): Promise<number>;
}

export interface ServiceOptions {
  readonly name: string;
  /** `gateway/dist/main.js` or `gateway/dist/verifier-main.js`. */
  readonly script: string;
  readonly port: number;
  /** The service's whole configuration (its variables only, plus PATH and HOME). */
  readonly env: Readonly<Record<string, string>>;
  /** Its standard output and error are appended here. */
  readonly logFile: string;
  /** Write a V8 CPU profile of its main thread into this directory when it exits. */
  readonly cpuProfileDir?: string;
  /** The CA certificate the service publishes at start (its HTTPS certificate chains to it). */
  readonly caFile: string;
}

export async function freePort(): Promise<number> {
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

/** VmHWM: the kernel's record of a process's peak resident set size (proc(5)), in bytes; NaN if gone. */
export function peakRss(pid: number): number {
  try {
    const kib = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kib === undefined ? Number.NaN : Number(kib) * 1024;
  } catch {
    return Number.NaN;
  }
}

/**
 * CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat fields 14 and 15
 * (proc(5)); they count in USER_HZ ticks, 100 per second on Linux. NaN if the process is gone.
 */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/**
 * The whole machine's CPU time so far, from the first line of /proc/stat (proc(5)), in seconds:
 * `busy` is everything but idle and iowait, `total` everything; both summed over all cores.
 */
export function machineCpuSeconds(): { busy: number; total: number } {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1, 9).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: (total - idle) / 100, total: total / 100 };
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

const running = new Set<ChildProcess>();

/** SIGTERM to every service still running (the benchmark's exit path, interrupted or not). */
export function killServices(): void {
  for (const child of running) child.kill('SIGTERM');
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '';
  }
}

/** Starts `node <script>` on 127.0.0.1:`port` (HTTPS) and waits until its /healthz answers 200. */
export async function startService(options: ServiceOptions): Promise<ServiceProcess> {
  const url = `https://127.0.0.1:${options.port}`;
  let tls: TlsTrust | undefined;
  let trusting: typeof fetch | undefined;
  const log = openSync(options.logFile, 'a');
  const profile = options.cpuProfileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', options.cpuProfileDir];
  const child = spawn(process.execPath, [...profile, join(repoRoot, options.script)], {
    cwd: repoRoot,
    stdio: ['ignore', log, log],
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...options.env },
  });
  closeSync(log);
  running.add(child);
  child.once('exit', () => running.delete(child));
  const pid = child.pid ?? 0;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`the ${options.name} exited (${child.exitCode}); ${options.logFile}:\n${tail(options.logFile)}`);
    }
    try {
      // The CA certificate is written just before the service listens.
      if (trusting === undefined && existsSync(options.caFile)) {
        tls = { ca: readFileSync(options.caFile, 'utf8') };
        trusting = newTlsFetch(tls);
      }
      if (trusting !== undefined && (await trusting(`${url}/healthz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the ${options.name} did not answer ${url}/healthz within 120 s; see ${options.logFile}`);
    }
    // Polling the health endpoint: each try is a real request; this only paces them.
    await new Promise((r) => setTimeout(r, 200));
  }
  const ready: typeof fetch = trusting;
  return {
    name: options.name,
    url,
    tls: tls ?? {},
    pid,
    async routeTimes() {
      const text = await (await ready(`${url}/metrics`)).text();
      const out = new Map<string, RouteTime>();
      for (const match of text.matchAll(/^keyfleet_http_request_seconds_(sum|count)\{route="([^"]+)"\} (\S+)$/gm)) {
        const [, kind, route, value] = match as unknown as [string, string, string, string];
        const entry = out.get(route) ?? { count: 0, sumSeconds: 0 };
        out.set(route, kind === 'sum' ? { ...entry, sumSeconds: Number(value) } : { ...entry, count: Number(value) });
      }
      return out;
    },
    async stop() {
      const peak = peakRss(pid);
      child.kill('SIGTERM');
      await exited(child);
      return peak;
    },
  };
}
