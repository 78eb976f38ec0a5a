import { Counter, Gauge, type Registry } from 'prom-client';
import type { LedgerEvents } from '../ledger/events';
import type { DeniedStatus, DeviceDenials } from './device-denials';
import type { FollowerObserver } from './follower';

export interface EventMetrics {
  readonly follower: FollowerObserver;
  /** A malformed event was skipped. */
  readonly malformed: (name: string) => void;
  /** A request was refused from the deny set, without reading the ledger. */
  readonly refused: (status: DeniedStatus) => void;
}

/**
 * The event follower's counters on `/metrics` (docs/gateway.md, "Events"):
 *
 * - `keyfleet_ledger_events_total{event}`: events handled and checkpointed, by name (this process);
 * - `keyfleet_ledger_events_malformed_total{event}`: events skipped because their payload is malformed;
 * - `keyfleet_ledger_events_checkpoint_block`: the block of the last checkpointed event;
 * - `keyfleet_ledger_events_lag_blocks`: blocks committed after that block (read at scrape time);
 * - `keyfleet_ledger_events_stream_up`: 1 while a stream is open;
 * - `keyfleet_ledger_events_reopened_total{reason}`: streams opened again (`renewal`, `failure`);
 * - `keyfleet_device_refusals_total{status}`: requests refused from the deny set;
 * - `keyfleet_device_denials{status}`: devices in the deny set.
 */
export function newEventMetrics(registry: Registry, events: LedgerEvents, denials: () => DeviceDenials): EventMetrics {
  const registers = [registry];
  const handled = new Counter({
    name: 'keyfleet_ledger_events_total',
    help: 'Chaincode events handled and checkpointed, by event name',
    labelNames: ['event'] as const,
    registers,
  });
  const malformed = new Counter({
    name: 'keyfleet_ledger_events_malformed_total',
    help: 'Chaincode events skipped because their payload is malformed, by event name',
    labelNames: ['event'] as const,
    registers,
  });
  const checkpointBlock = (): number | undefined => {
    const block = events.checkpointBlock();
    return block === undefined ? undefined : Number(block);
  };
  new Gauge({
    name: 'keyfleet_ledger_events_checkpoint_block',
    help: 'Block number of the last checkpointed chaincode event (-1 before the first)',
    registers,
    collect() {
      this.set(checkpointBlock() ?? -1);
    },
  });
  new Gauge({
    name: 'keyfleet_ledger_events_lag_blocks',
    help: 'Blocks committed after the block of the last checkpointed event (including blocks with no event of this chaincode)',
    registers,
    async collect() {
      try {
        this.set(Math.max(0, Number(await events.height()) - 1 - (checkpointBlock() ?? -1)));
      } catch {
        // The peer is unreachable: keep the last value; stream_up and the health check say why.
      }
    },
  });
  const streamUp = new Gauge({
    name: 'keyfleet_ledger_events_stream_up',
    help: '1 while a chaincode event stream is open',
    registers,
  });
  const reopened = new Counter({
    name: 'keyfleet_ledger_events_reopened_total',
    help: 'Chaincode event streams opened again from the checkpoint, by reason (renewal after the deadline, failure)',
    labelNames: ['reason'] as const,
    registers,
  });
  const refusals = new Counter({
    name: 'keyfleet_device_refusals_total',
    help: 'Device requests refused from the events deny set, before any ledger read, by device status',
    labelNames: ['status'] as const,
    registers,
  });
  new Gauge({
    name: 'keyfleet_device_denials',
    help: 'Devices in the events deny set, by status',
    labelNames: ['status'] as const,
    registers,
    collect() {
      for (const [status, count] of Object.entries(denials().counts())) this.set({ status }, count);
    },
  });

  return {
    follower: {
      handled: (event) => {
        handled.inc({ event: event.name });
      },
      connected: (up) => {
        streamUp.set(up ? 1 : 0);
      },
      reopening: (reason) => {
        reopened.inc({ reason });
      },
    },
    malformed: (name) => {
      malformed.inc({ event: name });
    },
    refused: (status) => {
      refusals.inc({ status });
    },
  };
}
