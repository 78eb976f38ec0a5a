import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { PublicJwk } from '@keyfleet/protocol';
import type { Contract } from '@hyperledger/fabric-gateway';
import {
  enrolDevice,
  newAnchorKey,
  type AnchorKey,
  registerKey,
  registerTrustAnchor,
  rotateKey,
  RequestSigner,
} from '../caliper/requests';
import { openFileKeyClient, validationCodeName } from '../network';

/**
 * Load on one shard channel at the ledger level: keyfleet's own chaincode transactions submitted
 * through @hyperledger/fabric-gateway straight to the peers (no keyfleet gateway in between, so the
 * figures are the ledger's, whatever routes requests to shards). Requests are signed as the
 * Caliper workload signs them (bench/src/caliper/requests.ts): a software metadata-signing anchor
 * registered on this channel for the run.
 */
export const Workload = {
  /** A device's life in three writes: EnrolDevice, RegisterKey of its data key, RotateKey v1 → v2. */
  Keyfleet: 'keyfleet',
  /** Blind `Put` of a fresh key into the baseline chaincode: Fabric's own cost, nothing of keyfleet. */
  Baseline: 'baseline',
} as const;
export type Workload = (typeof Workload)[keyof typeof Workload];

/** What one shard committed in one round. */
export interface ShardTally {
  readonly channel: string;
  /** Transactions committed VALID. */
  committed: number;
  /** Failures by code (a validation code name or the gateway error's name and gRPC code). */
  readonly failures: Map<string, number>;
  /** The first message seen of each failure code (the endorsers' answers say why). */
  readonly failureSamples: Map<string, string>;
  /** Endorsements repeated because an endorser had not yet committed the worker's previous write. */
  retries: number;
  /** Submit-to-commit latencies of the committed transactions, in ms. */
  readonly latenciesMs: number[];
}

export interface ShardLoad {
  readonly channel: string;
  /**
   * Runs `concurrency` workers until `stop()` answers true (checked before each transaction), and
   * tallies what committed. Workers never touch each other's keys: no MVCC conflicts by design.
   */
  run(workload: Workload, concurrency: number, stop: () => boolean): Promise<ShardTally>;
  close(): void;
}

/**
 * Opens Org1's operator and application identities on `channel` and registers the run's
 * metadata-signing anchor there (retrying for up to a minute while a fresh chaincode commit is not
 * yet endorsable across organisations: FABRIC-NOTES).
 */
export async function openShardLoad(
  connectionProfile: string,
  channel: string,
  shard: number,
  anchor: AnchorKey,
): Promise<ShardLoad> {
  const operator = openFileKeyClient(connectionProfile, 'Org1', 'operator', channel);
  const application = openFileKeyClient(connectionProfile, 'Org1', 'application', channel);
  const run = randomBytes(3).toString('hex');
  const signer = await RequestSigner.from(anchor);
  const publicJwk: PublicJwk = {
    kty: 'EC',
    crv: 'P-256',
    x: String(anchor.privateJwk.x),
    y: String(anchor.privateJwk.y),
  };
  const registerAnchor = async () => {
    const r = await signer.sign(
      registerTrustAnchor(`scale-${run}-anchor`, anchor.anchorId, 'metadata-signing', publicJwk),
    );
    try {
      await operator.contract('keyfleet').submitTransaction('RegisterTrustAnchor', r.requestJson, r.jws);
    } catch (err) {
      // A channel holds one active metadata-signing anchor: ours, from an earlier run, is fine.
      if (!errorText(err).includes(`ANCHOR_EXISTS: metadata-signing anchor ${anchor.anchorId} is active`)) throw err;
    }
  };
  // network.sh serves one chaincode package at a time (`deploy` replaces the servers' code), so
  // each workload's readiness is checked when its first round starts, after its deploy.
  const ready = new Map<Workload, Promise<unknown>>();
  const readyFor = async (workload: Workload) => {
    let done = ready.get(workload);
    if (done === undefined) {
      done =
        workload === Workload.Keyfleet
          ? untilEndorsable(registerAnchor)
          : untilEndorsable(() =>
              application.contract('baseline').submitTransaction('Put', `scale-${run}-ready`, 'ready'),
            );
      ready.set(workload, done);
    }
    await done;
  };

  let counter = 0;
  const nextId = (kind: string) => `scale-${run}-${kind}-${String(++counter)}`;
  const keyfleet = operator.contract('keyfleet');
  const baseline = application.contract('baseline');

  return {
    channel,
    async run(workload, concurrency, stop) {
      await readyFor(workload);
      const tally: ShardTally = {
        channel,
        committed: 0,
        retries: 0,
        failures: new Map(),
        failureSamples: new Map(),
        latenciesMs: [],
      };
      const submit = (contract: Contract, fn: string, args: string[]) => submitCounted(contract, fn, args, tally);
      const signed = async (request: Record<string, unknown>) => {
        const s = await signer.sign(request);
        return [s.requestJson, s.jws];
      };
      const keyfleetWorker = async () => {
        while (!stop()) {
          const device = nextId('dev');
          if (!(await submit(keyfleet, 'EnrolDevice', await signed(enrolDevice(nextId('req'), device, shard))))) {
            continue;
          }
          if (stop()) return;
          const key = nextId('key');
          if (!(await submit(keyfleet, 'RegisterKey', await signed(registerKey(nextId('req'), key, device))))) continue;
          if (stop()) return;
          await submit(keyfleet, 'RotateKey', await signed(rotateKey(nextId('req'), key, device, 1)));
        }
      };
      const baselineWorker = async () => {
        while (!stop()) await submit(baseline, 'Put', [nextId('put'), randomBytes(32).toString('hex')]);
      };
      const worker = workload === Workload.Keyfleet ? keyfleetWorker : baselineWorker;
      await Promise.all(Array.from({ length: concurrency }, worker));
      return tally;
    },
    close() {
      operator.close();
      application.close();
    },
  };
}

/**
 * How often a write that reads what this worker's previous write made is endorsed again when an
 * endorser answers `…_NOT_FOUND`: the commit status comes from Org1's peer, and Org2's peer may
 * not have committed that block yet when it endorses the next write (read-your-writes across
 * peers is not given by Fabric). A bounded retry on that named answer, as keyfleet's clients do.
 */
const notYetCommittedRetries = 5;

/** Submits and waits for the commit, as keyfleet's Fabric transport does; true when VALID. */
async function submitCounted(contract: Contract, fn: string, args: string[], tally: ShardTally): Promise<boolean> {
  const started = performance.now();
  let code: string;
  let message = '';
  try {
    let submitted;
    for (let attempt = 0; ; attempt++) {
      try {
        submitted = await contract.submitAsync(fn, { arguments: args });
        break;
      } catch (err) {
        if (attempt >= notYetCommittedRetries || !/\b[A-Z]+_NOT_FOUND: /.test(errorText(err))) throw err;
        tally.retries++;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const status = await submitted.getStatus();
    if (status.successful) {
      tally.committed++;
      tally.latenciesMs.push(performance.now() - started);
      return true;
    }
    code = validationCodeName(status.code);
  } catch (err) {
    code = `${err instanceof Error ? err.name : 'Error'}_${String((err as { code?: unknown }).code)}`;
    message = errorText(err);
  }
  if (!tally.failureSamples.has(code)) tally.failureSamples.set(code, message);
  tally.failures.set(code, (tally.failures.get(code) ?? 0) + 1);
  return false;
}

/** An error's message and the endorsers' answers attached to it (fabric-gateway's `details`). */
function errorText(err: unknown): string {
  const details = (err as { details?: { message?: string }[] }).details ?? [];
  return [err instanceof Error ? err.message : String(err), ...details.map((d) => d.message ?? '')].join('; ');
}

/**
 * The run's metadata-signing anchor: a software key kept in FILE (mode 600, inside the network's
 * git-ignored directory) so that later runs on the same network sign with the anchor registered.
 */
export async function loadOrMakeAnchor(file: string): Promise<AnchorKey> {
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as AnchorKey;
  const { anchor } = await newAnchorKey(`scale-${randomBytes(3).toString('hex')}-metadata`);
  writeFileSync(file, `${JSON.stringify(anchor)}\n`, { mode: 0o600 });
  return anchor;
}

async function untilEndorsable(submit: () => Promise<unknown>): Promise<void> {
  for (const deadline = Date.now() + 60_000; ;) {
    try {
      await submit();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
