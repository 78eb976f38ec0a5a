import { decodeContractEvent, EventName, MalformedEventError } from '@keyfleet/protocol';
import type { LedgerEvent } from '../ledger/events';
import type { DeviceDenials, DenialStore } from './device-denials';

/** The subset of a pino/fastify logger the event code writes to. */
export interface EventLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface EventDispatcherOptions {
  readonly denials: DeviceDenials;
  /** Keeps the deny set; saved before the event that changed it is checkpointed. */
  readonly store?: DenialStore;
  /**
   * An attestation failure made these keys due (the contract marked them in the same transaction,
   * by their rotation policy's `attestation-failure` trigger). The gateway wakes its scheduler.
   */
  readonly onKeysDue?: (keyIds: readonly string[]) => void;
  /** A payload the decoder refuses: counted and skipped (the ledger stays the authority). */
  readonly onMalformed?: (name: string) => void;
  readonly log?: EventLog;
}

/**
 * Acts on one chaincode event: the deny set first (saved when it changed), then the rotation
 * trigger. Safe to apply twice (after a crash between acting and checkpointing). Throws only when
 * the deny set cannot be saved, so that the event is not checkpointed and comes again.
 */
export function newEventDispatcher(options: EventDispatcherOptions): (event: LedgerEvent) => Promise<void> {
  const { denials, store, onKeysDue, onMalformed, log } = options;
  return async (event) => {
    let decoded;
    try {
      decoded = decodeContractEvent(event.name, event.payload);
    } catch (err) {
      if (!(err instanceof MalformedEventError)) throw err;
      onMalformed?.(event.name);
      log?.warn({ event: event.name, transactionId: event.transactionId, err }, 'malformed chaincode event skipped');
      return;
    }
    if (decoded === null) return;
    if (denials.apply(decoded)) {
      await store?.save(denials.entries());
      log?.info({ event: decoded.name, transactionId: event.transactionId, ...denials.counts() }, 'deny set changed');
    }
    if (
      (decoded.name === EventName.AttestationRecorded || decoded.name === EventName.AttestationBatchRecorded) &&
      decoded.payload.KeysDueForRotation.length > 0
    ) {
      onKeysDue?.(decoded.payload.KeysDueForRotation);
    }
  };
}
