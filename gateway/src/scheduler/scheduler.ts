/**
 * The rotation scheduler (docs/key-service.md §6): every `intervalMs` it asks the ledger which keys
 * are due (ListKeysDueForRotation), rotates the application-owned ones through
 * `rotateApplicationKey`, and remembers the device-owned ones so check-in can tell each device.
 * Several gateways may run it at once: the claim is the ledger's RotateKey with CurrentVersion, so
 * a key is rotated once and the others' attempts end as `lost` (STALE_VERSION, ROTATION_IN_PROGRESS)
 * or `not-due` (they read it after the winner committed).
 */
import { asPrincipal, gatewayService } from '../ledger/principal-context';
import { type DueKey, ErrorCode } from '@keyfleet/protocol';
import { GatewayError, GatewayErrorCode } from '../errors';
import { KeyVersionErrorDetail } from '../key-versions/engine';
import type { LedgerClient } from '../ledger/ledger-client';
import { ledgerPort } from '../ledger/port';

/** What `rotateApplicationKey` answers (the key service's result, narrowed to what is needed here). */
export type ScheduledRotation = { readonly outcome: 'rotated' | 'not-due' };

export interface RotationSchedulerOptions {
  readonly ledger: LedgerClient;
  /** The key service's rotation; called with `ifDueBy` so a key rotated meanwhile is left alone. */
  readonly rotateApplicationKey: (keyId: string, options: { ifDueBy: Date }) => Promise<ScheduledRotation>;
  /** Run after each pass, e.g. the key service's `destroyExpiredVersions`. */
  readonly afterRun?: () => Promise<unknown>;
  readonly intervalMs: number;
  /** Page size of ListKeysDueForRotation (1-200), and how many rotations run at once. */
  readonly batchSize: number;
  readonly now?: () => Date;
  readonly log?: SchedulerLog;
}

/** The subset of a pino/fastify logger the scheduler writes to. */
export interface SchedulerLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface DeviceKeyDue {
  readonly keyId: string;
  readonly nextRotationDue: string;
  readonly overdue: boolean;
}

export interface SchedulerRun {
  readonly due: number;
  readonly rotated: readonly string[];
  /** Another gateway rotated them first (ledger STALE_VERSION, HSM label held, or no longer due). */
  readonly lost: readonly string[];
  readonly deviceOwned: readonly string[];
  readonly failed: readonly { readonly keyId: string; readonly code: string; readonly detail?: string }[];
}

export interface RotationScheduler {
  /** One pass over every key due now; never throws for one key's failure. */
  runOnce(): Promise<SchedulerRun>;
  /** Runs a pass every `intervalMs` (the next starts after the previous ends). */
  start(): void;
  /** Stops the timer and waits for a pass in progress. */
  stop(): Promise<void>;
  /**
   * Runs a pass now instead of at the next tick (after the pass in flight, which may have read
   * the ledger too early), e.g. when an event says keys became due. Several wakes during one pass
   * make one more pass. Does nothing while the scheduler is stopped.
   */
  wake(): void;
  /**
   * Device-owned keys of `deviceId` that were due at the last pass, for check-in. At most one
   * interval old; the device's rotation request is checked against the ledger anyway.
   */
  dueForDevice(deviceId: string): readonly DeviceKeyDue[];
}

const lostDetails = new Set<string>([ErrorCode.StaleVersion, KeyVersionErrorDetail.RotationInProgress]);

export function newRotationScheduler(options: RotationSchedulerOptions): RotationScheduler {
  const { rotateApplicationKey, intervalMs, batchSize } = options;
  const ledger = ledgerPort(options.ledger);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 200) {
    throw new RangeError('batchSize must be an integer from 1 to 200 (the ledger page limit)');
  }
  if (!(intervalMs > 0)) throw new RangeError('intervalMs must be positive');
  const now = options.now ?? (() => new Date());
  const log = options.log;
  let deviceDue = new Map<string, DeviceKeyDue[]>();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let stopped = true;
  let wokenDuringPass = false;

  async function handle(entry: DueKey, at: Date, run: MutableRun, devices: Map<string, DeviceKeyDue[]>) {
    try {
      const key = await ledger.keys.require(entry.KeyID);
      if (key.Owner.Type === 'device') {
        run.deviceOwned.push(key.KeyID);
        const list = devices.get(key.Owner.ID) ?? [];
        list.push({ keyId: key.KeyID, nextRotationDue: entry.NextRotationDue, overdue: entry.Overdue });
        devices.set(key.Owner.ID, list);
        return;
      }
      const result = await rotateApplicationKey(key.KeyID, { ifDueBy: at });
      (result.outcome === 'rotated' ? run.rotated : run.lost).push(key.KeyID);
    } catch (err) {
      if (
        err instanceof GatewayError &&
        err.code === GatewayErrorCode.LedgerRejected &&
        lostDetails.has(err.detail ?? '')
      ) {
        run.lost.push(entry.KeyID);
        return;
      }
      const code = err instanceof GatewayError ? err.code : GatewayErrorCode.Internal;
      const detail = err instanceof GatewayError ? err.detail : undefined;
      run.failed.push(detail === undefined ? { keyId: entry.KeyID, code } : { keyId: entry.KeyID, code, detail });
      log?.warn({ keyId: entry.KeyID, code, detail, err }, 'scheduled rotation failed');
    }
  }

  /** A pass is the scheduler's own work, whoever starts it: its writes name `gateway.scheduler`. */
  function runOnce(): Promise<SchedulerRun> {
    return asPrincipal(gatewayService('scheduler'), runPass);
  }

  async function runPass(): Promise<SchedulerRun> {
    const at = now();
    const run: MutableRun = { due: 0, rotated: [], lost: [], deviceOwned: [], failed: [] };
    const devices = new Map<string, DeviceKeyDue[]>();
    // Collect first, rotate after: rotating moves keys out of the due range and would shift pages.
    const due: DueKey[] = [];
    let bookmark = '';
    do {
      const page = await ledger.keys.dueForRotation(at.toISOString(), batchSize, bookmark);
      due.push(...page.Records);
      bookmark = page.Bookmark;
    } while (bookmark !== '');
    run.due = due.length;
    // A random order per gateway: several gateways mostly take different keys instead of racing on each.
    for (let i = due.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [due[i], due[j]] = [due[j] as DueKey, due[i] as DueKey];
    }
    for (let i = 0; i < due.length; i += batchSize) {
      await Promise.all(due.slice(i, i + batchSize).map((entry) => handle(entry, at, run, devices)));
    }
    deviceDue = devices;
    if (options.afterRun !== undefined) await options.afterRun();
    if (run.due > 0) {
      log?.info(
        {
          due: run.due,
          rotated: run.rotated.length,
          lost: run.lost.length,
          devices: run.deviceOwned.length,
          failed: run.failed.length,
        },
        'rotation pass',
      );
    }
    return run;
  }

  function pass(): void {
    running = runOnce()
      .catch((err: unknown) => log?.warn({ err }, 'rotation pass failed'))
      .finally(() => {
        running = undefined;
        if (wokenDuringPass && !stopped) {
          wokenDuringPass = false;
          pass();
        } else {
          schedule();
        }
      });
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(pass, intervalMs);
    timer.unref();
  }

  return {
    runOnce,
    start() {
      if (!stopped) return;
      stopped = false;
      schedule();
    },
    async stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      await running;
    },
    wake() {
      if (stopped) return;
      if (running !== undefined) {
        wokenDuringPass = true;
        return;
      }
      if (timer !== undefined) clearTimeout(timer);
      pass();
    },
    dueForDevice(deviceId) {
      return deviceDue.get(deviceId) ?? [];
    },
  };
}

interface MutableRun {
  due: number;
  rotated: string[];
  lost: string[];
  deviceOwned: string[];
  failed: { keyId: string; code: string; detail?: string }[];
}
