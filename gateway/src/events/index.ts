/**
 * Following the contract's chaincode events (docs/gateway.md, "Events"): a persistent checkpoint,
 * a deny set of suspended and revoked devices that routes consult before any work, the
 * attestation-failure rotation trigger, and their counters on `/metrics`.
 *
 * @packageDocumentation
 */
import { join } from 'node:path';
import { Registry } from 'prom-client';
import type { FabricTransport } from '../ledger/fabric';
import { denialFile } from './denial-file';
import { newDeviceDenials, type DeniedStatus, type DeviceDenials } from './device-denials';
import { newEventDispatcher, type EventLog } from './dispatch';
import { newEventFollower, type EventFollowerOptions } from './follower';
import { newEventMetrics } from './metrics';

export { newDeviceDenials, type DeniedStatus, type DenialStore, type DeviceDenials } from './device-denials';
export { denialFile } from './denial-file';
export { newEventDispatcher, type EventDispatcherOptions, type EventLog } from './dispatch';
export { newEventFollower, type EventFollower, type EventFollowerOptions, type FollowerObserver } from './follower';
export { newEventMetrics, type EventMetrics } from './metrics';

export interface ContractEventsOptions {
  readonly transport: Pick<FabricTransport, 'openEvents'>;
  /** The service's data directory; the state lives in `events/<channel>/<chaincode>/` under it. */
  readonly dataDir: string;
  /** Which statuses are refused at once: both for the gateway, `revoked` for the verifier. */
  readonly refuse?: readonly DeniedStatus[];
  readonly backoff?: EventFollowerOptions['backoff'];
}

export interface ContractEvents {
  /** Consulted by the routes before any work; fed by the events once {@link ContractEvents.start} ran. */
  readonly denials: DeviceDenials;
  /** The counters, for the HTTP server's `/metrics`. */
  readonly metrics: Registry;
  /** Starts following; `onKeysDue` runs when an attestation failure made keys due. */
  start(handlers?: { readonly onKeysDue?: (keyIds: readonly string[]) => void; readonly log?: EventLog }): void;
  /** Closes the stream; before the transport. */
  close(): Promise<void>;
}

/**
 * Opens the contract's events with the checkpoint and deny set kept from the last run (a restart
 * resumes right after the last event handled), ready to {@link ContractEvents.start}.
 */
export async function openContractEvents(options: ContractEventsOptions): Promise<ContractEvents> {
  const { events, stateDir } = await options.transport.openEvents(join(options.dataDir, 'events'));
  const store = denialFile(join(stateDir, 'denied-devices.json'));
  const registry = new Registry();
  const initial = await store.load();
  // The metrics read the set, and the set counts refusals in the metrics: the set is read lazily.
  const metrics = newEventMetrics(registry, events, () => deny);
  const deny: DeviceDenials = newDeviceDenials(initial, {
    ...(options.refuse === undefined ? {} : { refuse: options.refuse }),
    onRefusal: metrics.refused,
  });
  let follower: ReturnType<typeof newEventFollower> | undefined;

  return {
    denials: deny,
    metrics: registry,
    start(handlers = {}) {
      follower ??= newEventFollower({
        events,
        handle: newEventDispatcher({
          denials: deny,
          store,
          ...(handlers.onKeysDue === undefined ? {} : { onKeysDue: handlers.onKeysDue }),
          onMalformed: metrics.malformed,
          ...(handlers.log === undefined ? {} : { log: handlers.log }),
        }),
        observer: metrics.follower,
        ...(handlers.log === undefined ? {} : { log: handlers.log }),
        ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
      });
      follower.start();
    },
    async close() {
      await follower?.close();
    },
  };
}

/**
 * The events of several shard channels as one (docs/gateway.md, "Shards"): a device is refused when
 * its shard's events show it suspended or revoked, and keys made due on any shard wake the
 * scheduler. Each shard keeps its own checkpoint and deny file (under its channel's directory).
 * `/metrics` shows shard 0's event counters only: the shards' would repeat the same names.
 */
export function combineContractEvents(shards: readonly ContractEvents[]): ContractEvents {
  const [first] = shards;
  if (first === undefined) throw new RangeError('no shard events to combine');
  if (shards.length === 1) return first;
  const denials: DeviceDenials = {
    refusal: (deviceId) => {
      for (const shard of shards) {
        const status = shard.denials.refusal(deviceId);
        if (status !== undefined) return status;
      }
      return undefined;
    },
    apply: (event) => shards.map((s) => s.denials.apply(event)).some(Boolean),
    counts: () => {
      const total = { suspended: 0, revoked: 0 };
      for (const shard of shards) {
        const counts = shard.denials.counts();
        total.suspended += counts.suspended;
        total.revoked += counts.revoked;
      }
      return total;
    },
    entries: () => new Map(shards.flatMap((s) => [...s.denials.entries()])),
  };
  return {
    denials,
    metrics: first.metrics,
    start(handlers) {
      for (const shard of shards) shard.start(handlers);
    },
    async close() {
      for (const shard of shards) await shard.close();
    },
  };
}
