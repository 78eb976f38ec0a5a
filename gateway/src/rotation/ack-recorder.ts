import { ledgerPort } from '../ledger/port';
import { Limits } from '@keyfleet/protocol';
import { GatewayErrorCode, isGatewayError } from '../errors';
import type { LedgerClient } from '../ledger/ledger-client';
import { asPrincipal, gatewayService } from '../ledger/principal-context';

/** A device's acknowledgement that it holds `Version` of `KeyID`, under its single-use digest. */
export interface RotationAck {
  readonly NonceDigest: string;
  readonly KeyID: string;
  readonly Version: number;
}

export interface RecordedAck {
  /** The transaction that holds the record: this batch's, or an earlier one's. */
  readonly transactionId: string;
  readonly alreadyRecorded: boolean;
}

export interface AckRecorder {
  /** Resolves once the acknowledgement is committed on the ledger (idempotent per digest). */
  record(ack: RotationAck): Promise<RecordedAck>;
}

export interface AckRecorderOptions {
  /** Writes as the gateway's operator identity, signed by the metadata-signing key. */
  readonly ledger: LedgerClient;
  /** Most acknowledgements per transaction: 1 to the contract's `Limits.BatchMembers` (the default). */
  readonly maxBatch?: number;
}

interface Waiting {
  readonly ack: RotationAck;
  readonly resolve: (recorded: RecordedAck) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * Group commit of rotation acknowledgements (docs/protocol-rotation.md §7): one arriving while no
 * `RecordRotationAcks` is in flight is written at once, alone; those arriving meanwhile wait and
 * are written together as soon as it ends. Under load a transaction carries many, so an
 * acknowledgement costs a fraction of one; alone, it waits for nothing. A batch the contract refuses
 * outright (one member's fault) is written again member by member, so the others are still recorded.
 */
export function newAckRecorder(options: AckRecorderOptions): AckRecorder {
  const maxBatch = options.maxBatch ?? Limits.BatchMembers;
  if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > Limits.BatchMembers) {
    throw new RangeError(`maxBatch must be 1 to ${Limits.BatchMembers}`);
  }
  const ledger = ledgerPort(options.ledger).nonces;
  let queue: Waiting[] = [];
  let writing = false;

  const write = async (batch: readonly Waiting[]): Promise<void> => {
    // A repeated acknowledgement may wait beside its first copy: one member per digest.
    const members = [...new Map(batch.map((w) => [w.ack.NonceDigest, w.ack])).values()];
    try {
      // Many devices' acknowledgements in one write: the gateway's own service asks for it.
      const { record, transactionId } = await asPrincipal(gatewayService('rotation-acks'), () =>
        ledger.recordRotationAcks({
          Acks: members.map(({ NonceDigest, KeyID, Version }) => ({ NonceDigest, KeyID, Version })),
        }),
      );
      const outcomes = new Map(record.Acks.map((outcome) => [outcome.NonceDigest, outcome]));
      for (const waiting of batch) {
        const outcome = outcomes.get(waiting.ack.NonceDigest);
        waiting.resolve({
          transactionId: outcome?.TxID ?? transactionId,
          alreadyRecorded: outcome?.AlreadyRecorded ?? false,
        });
      }
    } catch (err) {
      if (members.length > 1 && isGatewayError(err) && err.code === GatewayErrorCode.LedgerRejected) {
        await Promise.all(members.map((ack) => write(batch.filter((w) => w.ack.NonceDigest === ack.NonceDigest))));
        return;
      }
      for (const waiting of batch) waiting.reject(err);
    }
  };

  const pump = (): void => {
    if (writing || queue.length === 0) return;
    const batch = queue.slice(0, maxBatch);
    queue = queue.slice(maxBatch);
    writing = true;
    void write(batch).finally(() => {
      writing = false;
      pump();
    });
  };

  return {
    record(ack) {
      return new Promise<RecordedAck>((resolve, reject) => {
        queue.push({ ack, resolve, reject });
        pump();
      });
    },
  };
}
