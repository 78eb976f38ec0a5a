import { randomUUID } from 'node:crypto';
import { asPrincipal, verifierService } from '../ledger/principal-context';
import { type AttestationResult, Limits, merkleLeafHash } from '@keyfleet/protocol';
import type { LedgerClient } from '../ledger/ledger-client';
import { ledgerPort } from '../ledger/port';
import { AttestationError, AttestationErrorCode, attestationRefusalOf } from './errors';
import { merkleLevels } from './merkle-levels';

/**
 * A result's place in an anchored batch: everything an auditor needs, with the batch record read
 * from the ledger, to check it ({@link verifyProofAgainstLedger}).
 */
export interface BatchInclusionProof {
  readonly BatchID: string;
  readonly LeafIndex: number;
  readonly TreeSize: number;
  /** RFC 9162 §2.1.3.1 audit path, nearest sibling first, lower-case hex. */
  readonly AuditPath: readonly string[];
  readonly MerkleRoot: string;
  /** The RecordAttestationBatch transaction. */
  readonly TransactionID: string;
}

export interface AttestationBatcher {
  /** Queues a result; resolves with its inclusion proof once its batch is committed on the ledger. */
  add(result: AttestationResult): Promise<BatchInclusionProof>;
  /** Anchors whatever is queued now. */
  flush(): Promise<void>;
  /** Flushes and stops the timer; later `add`s are refused. */
  close(): Promise<void>;
  /** Results queued and not yet anchored. */
  readonly pending: number;
}

export interface AttestationBatcherOptions {
  /** Signs with the verifier anchor, as a verifier (Org2MSP) identity. */
  readonly ledger: LedgerClient;
  readonly verifierId: string;
  /** Results per batch, 1 to 256 (the contract's `Limits.BatchMembers`: one nonce each in the request); default 256. */
  readonly maxSize?: number;
  /** Longest a result waits for its batch, ms; default 2000. */
  readonly maxDelayMs?: number;
  readonly newBatchId?: () => string;
}

/** At most this many devices may be listed as contraindicated in one batch (chaincode Limits). */
const MaxContraindicated = 1000;

interface Queued {
  readonly result: AttestationResult;
  readonly resolve: (proof: BatchInclusionProof) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * Collects attestation results and records them as one RecordAttestationBatch, anchored by the RFC
 * 9162 Merkle root of their canonical JSON, after `maxSize` results or `maxDelayMs`. The batch
 * transaction also consumes every member's single-use nonce, so a batch of N costs one transaction,
 * not N + 1. The contract refuses a whole batch for one bad member (a nonce consumed meanwhile by
 * another verifier, a device revoked meanwhile): the batch is then recorded again member by member,
 * so the others are still recorded and the bad one gets its own refusal.
 */
export function newAttestationBatcher(options: AttestationBatcherOptions): AttestationBatcher {
  const maxSize = options.maxSize ?? 256;
  const maxDelayMs = options.maxDelayMs ?? 2000;
  if (!Number.isInteger(maxSize) || maxSize < 1 || maxSize > Limits.BatchMembers) {
    throw new RangeError(`maxSize must be 1 to ${Limits.BatchMembers}`);
  }
  if (!Number.isInteger(maxDelayMs) || maxDelayMs < 0) throw new RangeError('maxDelayMs must be a whole number');
  const newBatchId = options.newBatchId ?? (() => `batch-${randomUUID()}`);
  let queue: Queued[] = [];
  let contraindicated = new Set<string>();
  /** Nonce digests queued or in flight: a second result with one of them is a replay. */
  const pendingNonces = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const inFlight = new Set<Promise<void>>();

  const anchor = async (batch: Queued[]): Promise<void> => {
    const results = batch.map((queued) => queued.result);
    const tree = merkleLevels(results.map((result) => merkleLeafHash(result)));
    const issued = results.map((result) => result.IssuedAt).sort();
    const batchId = newBatchId();
    try {
      // A batch anchors many devices' results: the verifier's own batching service asks for it.
      const { transactionId } = await asPrincipal(verifierService('batcher'), () =>
        ledgerPort(options.ledger).attestations.recordBatch({
          BatchID: batchId,
          VerifierID: options.verifierId,
          MerkleRoot: tree.root,
          Count: results.length,
          // A batch is never empty.
          FirstIssuedAt: issued[0] as string,
          LastIssuedAt: issued.at(-1) as string,
          Contraindicated: [...new Set(results.filter((r) => r.Status === 'contraindicated').map((r) => r.DeviceID))],
          Nonces: results.map(({ NonceDigest, DeviceID }) => ({ NonceDigest, DeviceID })),
        }),
      );
      batch.forEach((queued, index) => {
        queued.resolve({
          BatchID: batchId,
          LeafIndex: index,
          TreeSize: results.length,
          AuditPath: tree.proof(index),
          MerkleRoot: tree.root,
          TransactionID: transactionId,
        });
      });
    } catch (err) {
      // A definite refusal of one member refuses the batch: record the members one by one.
      if (batch.length > 1 && attestationRefusalOf(err) !== null) {
        await Promise.all(batch.map((queued) => anchor([queued])));
        return;
      }
      const failure =
        attestationRefusalOf(err) ??
        new AttestationError(AttestationErrorCode.BatchFailed, `batch ${batchId} was not recorded`, { cause: err });
      for (const queued of batch) queued.reject(failure);
    }
  };

  const flushNow = (): Promise<void> => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const batch = queue;
    queue = [];
    contraindicated = new Set();
    if (batch.length === 0) return Promise.resolve();
    const running = anchor(batch).finally(() => {
      inFlight.delete(running);
      for (const queued of batch) pendingNonces.delete(queued.result.NonceDigest);
    });
    inFlight.add(running);
    return running;
  };

  return {
    add(result) {
      if (closed)
        return Promise.reject(new AttestationError(AttestationErrorCode.BatchFailed, 'the batcher is closed'));
      if (pendingNonces.has(result.NonceDigest)) {
        return Promise.reject(
          new AttestationError(AttestationErrorCode.NonceReplayed, `nonce ${result.NonceDigest} is already in a batch`),
        );
      }
      pendingNonces.add(result.NonceDigest);
      return new Promise<BatchInclusionProof>((resolve, reject) => {
        queue.push({ result, resolve, reject });
        if (result.Status === 'contraindicated') contraindicated.add(result.DeviceID);
        if (queue.length >= maxSize || contraindicated.size >= MaxContraindicated) void flushNow();
        else timer ??= setTimeout(() => void flushNow(), maxDelayMs);
      });
    },
    async flush() {
      await flushNow();
      await Promise.all(inFlight);
    },
    async close() {
      closed = true;
      await this.flush();
    },
    get pending() {
      return queue.length;
    },
  };
}
