/**
 * Puts the HSM cluster's replications and failovers on the ledger (docs/hsm-cluster.md) through the
 * `hsm-cluster` contract, as the writing service's own `hsm-cluster` service (the operator
 * gateway's, or the verifier's for its own cluster). The cluster reports them synchronously and must never wait for the ledger (a failover happens exactly when the gateway is
 * busiest), so they queue here in order and are written in the background: consecutive
 * write-throughs between the same two tokens go in one transaction; a refused or failed write is
 * tried again until it succeeds. What is still queued when the process dies is not on the ledger.
 */
import { HsmClusterWriters, Role } from '@keyfleet/protocol';
import type { ClusterListener, FailoverEvent, ReplicationEvent } from '../hsm/cluster/cluster-hsm';
import type { LedgerClient } from './ledger-client';
import { ledgerPort } from './port';
import { asPrincipal } from './principal-context';

export interface HsmClusterRecorder extends ClusterListener {
  /** Starts writing, now that the ledger is open; events before this wait in the queue. */
  attach(ledger: LedgerClient, kekCheckValue: string): void;
  /** Resolves once everything queued so far is on the ledger. */
  flush(): Promise<void>;
  /** Events not yet on the ledger. */
  pending(): number;
  /** Stops writing (what is queued stays unwritten). */
  close(): void;
}

type Queued =
  | { readonly kind: 'failover'; readonly event: FailoverEvent }
  | { readonly kind: 'replication'; readonly event: ReplicationEvent };

const maxKeysPerRecord = 500;

export function newHsmClusterRecorder(options: {
  readonly clusterId: string;
  /** Who writes: the operator gateway (the default) or the verifier, each for its own service. */
  readonly writer?: Role;
  readonly retryMs?: number;
  readonly log?: (message: string, err: unknown) => void;
}): HsmClusterRecorder {
  const retryMs = options.retryMs ?? 1000;
  const queue: Queued[] = [];
  let ledger: LedgerClient | undefined;
  let kek = '';
  let running: Promise<void> | undefined;
  let closed = false;
  const waiters: (() => void)[] = [];

  const writer = HsmClusterWriters[options.writer ?? Role.Operator];
  if (writer === undefined) throw new Error(`role ${String(options.writer)} writes no HSM cluster record`);
  const principal = { Kind: 'service', ID: writer.service } as const;

  /** The head of the queue and the consecutive write-throughs that can share its transaction. */
  const nextBatch = (): Queued[] => {
    const [head] = queue;
    if (head === undefined) return [];
    if (head.kind === 'failover' || head.event.reason !== 'write-through') return [head];
    const batch: Queued[] = [head];
    let keys = head.event.keys.length;
    for (const item of queue.slice(1)) {
      if (
        item.kind !== 'replication' ||
        item.event.reason !== 'write-through' ||
        item.event.source !== head.event.source ||
        item.event.target !== head.event.target ||
        keys + item.event.keys.length > maxKeysPerRecord
      ) {
        break;
      }
      batch.push(item);
      keys += item.event.keys.length;
    }
    return batch;
  };

  const write = async (client: LedgerClient, batch: readonly Queued[]): Promise<void> => {
    const [head] = batch;
    if (head === undefined) return;
    const ledger = ledgerPort(client);
    await asPrincipal(principal, async () => {
      if (head.kind === 'failover') {
        const e = head.event;
        await ledger.hsmCluster.recordFailover({
          ClusterID: options.clusterId,
          From: e.from,
          To: e.to,
          Reason: e.reason.slice(0, 200),
          At: e.at.toISOString(),
        });
        return;
      }
      const events = batch.flatMap((q) => (q.kind === 'replication' ? [q.event] : []));
      await ledger.hsmCluster.recordReplication({
        ClusterID: options.clusterId,
        Source: head.event.source,
        Target: head.event.target,
        Reason: head.event.reason,
        KekCheckValue: kek,
        Keys: events.flatMap((e) =>
          e.keys.map((k) => ({ Label: k.label, ID: k.id, Type: k.type, CheckValue: k.checkValue })),
        ),
        At: (events.at(-1)?.at ?? head.event.at).toISOString(),
      });
    });
  };

  // A function, not the variable: TypeScript would narrow `closed` across the awaits below.
  const isClosed = (): boolean => closed;

  const pump = (): void => {
    if (running !== undefined || ledger === undefined || closed || queue.length === 0) return;
    const client = ledger;
    running = (async () => {
      // Yield first, so `running` is set before this body can finish and clear it.
      await Promise.resolve();
      while (queue.length > 0 && !isClosed()) {
        const batch = nextBatch();
        try {
          await write(client, batch);
          queue.splice(0, batch.length);
        } catch (err) {
          options.log?.('an HSM cluster record could not be written; trying again', err);
          await new Promise((resolve) => setTimeout(resolve, retryMs));
        }
      }
      running = undefined;
      if (queue.length === 0) for (const wake of waiters.splice(0)) wake();
    })();
  };

  const push = (item: Queued): void => {
    queue.push(item);
    pump();
  };

  return {
    replicated: (event) => {
      // A join may copy thousands of keys: one record per contract-sized slice.
      for (let i = 0; i === 0 || i < event.keys.length; i += maxKeysPerRecord) {
        push({ kind: 'replication', event: { ...event, keys: event.keys.slice(i, i + maxKeysPerRecord) } });
      }
    },
    failedOver: (event) => {
      push({ kind: 'failover', event });
    },
    attach(client, kekCheckValue) {
      ledger = client;
      kek = kekCheckValue;
      pump();
    },
    flush: () =>
      queue.length === 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            waiters.push(resolve);
          }),
    pending: () => queue.length,
    close() {
      closed = true;
      for (const wake of waiters.splice(0)) wake();
    },
  };
}
