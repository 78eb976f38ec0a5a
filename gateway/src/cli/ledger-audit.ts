import { X509Certificate, type KeyObject } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { compactVerify, decodeProtectedHeader } from 'jose';
import type { Proof } from '@keyfleet/protocol';
import type { BlockTransaction } from '../ledger/blocks';
import type { LedgerReader } from '../ledger/ledger-reader';

/**
 * An auditor's checks of keyfleet writes against the ledger itself: transactions are read from
 * their blocks through Fabric's qscc with the auditor's own organisation identity, never through
 * keyfleet's gateway or contract, and the HSM signatures are checked against a pinned public key.
 */

export type SignatureVerdict = 'not checked' | 'valid' | 'invalid';

/**
 * The HSM's JWS that a keyfleet transaction carries (its second argument) over the request it
 * carries (its first): valid when it verifies under `anchor` and signs exactly those bytes.
 */
async function signedRequest(
  tx: BlockTransaction,
  anchor: KeyObject | undefined,
): Promise<{ signature: SignatureVerdict; request: { Principal?: unknown } }> {
  const [requestJson = '', jws = ''] = tx.args;
  let request: { Principal?: unknown } = {};
  try {
    request = JSON.parse(requestJson) as { Principal?: unknown };
  } catch {
    // Not a keyfleet write: no principal to show, and no signature can match.
  }
  if (anchor === undefined) return { signature: 'not checked', request };
  const signature = await compactVerify(jws, anchor).then(
    ({ payload }) => (Buffer.from(payload).toString() === requestJson ? 'valid' : 'invalid'),
    () => 'invalid' as const,
  );
  return { signature, request };
}

export type TransactionVerdict =
  | { found: false; transactionId: string }
  | {
      found: true;
      transactionId: string;
      blockNumber: number;
      timestamp: string;
      valid: boolean;
      chaincode: string;
      method: string;
      creator: { mspId: string; subject: string };
      principal: unknown;
      signature: SignatureVerdict;
    };

/** One write from its block: where, when, by which Fabric identity, for whom; with an anchor, its signature. */
export async function auditTransaction(
  reader: LedgerReader,
  transactionId: string,
  anchor: KeyObject | undefined,
): Promise<TransactionVerdict> {
  const tx = await reader.transaction(transactionId);
  if (!tx) return { found: false, transactionId };
  const { signature, request } = await signedRequest(tx, anchor);
  return {
    found: true,
    transactionId,
    blockNumber: tx.blockNumber,
    timestamp: tx.timestamp,
    valid: tx.validationCode === 0,
    chaincode: tx.chaincode,
    method: tx.method,
    creator: {
      mspId: tx.creator.mspId,
      subject: new X509Certificate(tx.creator.certificatePem).subject.replace(/\n/g, ', '),
    },
    principal: request.Principal ?? null,
    signature,
  };
}

export function transactionText(v: TransactionVerdict): string {
  if (!v.found) return `NOT FOUND: no block of the channel holds transaction ${v.transactionId}`;
  const principal = v.principal as { Kind?: string; ID?: string } | null;
  return [
    `transaction ${v.transactionId}`,
    `  block        ${String(v.blockNumber)} (${v.valid ? 'valid' : 'INVALID'} in its block)`,
    `  time         ${v.timestamp}`,
    `  function     ${v.chaincode} ${v.method}`,
    `  creator      ${v.creator.mspId}: ${v.creator.subject}`,
    `  asked by     ${principal ? `${principal.Kind ?? '?'}/${principal.ID ?? '?'}` : '-'}`,
    `  signature    ${v.signature === 'valid' ? 'VALID against the pinned anchor' : v.signature === 'invalid' ? 'INVALID against the pinned anchor' : 'not checked (no --anchor)'}`,
  ].join('\n');
}

/** Why a record does not check out, first failure only. */
export const RecordProblem = {
  /** The file is not a keyfleet record: no `Proof` with a transaction id and a JWS. */
  Malformed: 'RECORD_MALFORMED',
  /** No block of the channel holds the transaction the record names. */
  TransactionNotFound: 'TX_NOT_FOUND',
  /** The transaction is in a block but the peers marked it invalid: it wrote nothing. */
  TransactionInvalid: 'TX_INVALID',
  /** The record's JWS is not the one its transaction carried. */
  JwsNotInTransaction: 'JWS_NOT_IN_TX',
  /** The JWS does not verify under the pinned anchor, or names another anchor than the record. */
  SignatureInvalid: 'SIGNATURE_INVALID',
  /** The record names another principal than the signed request. */
  PrincipalMismatch: 'PRINCIPAL_MISMATCH',
  /** The transaction wrote no value equal to the record: it was changed after the fact. */
  NotWritten: 'RECORD_NOT_WRITTEN',
} as const;
export type RecordProblem = (typeof RecordProblem)[keyof typeof RecordProblem];

export type RecordVerdict =
  | { verified: true; transactionId: string; blockNumber: number; key: string; principal: unknown }
  | { verified: false; problem: RecordProblem; reason: string; transactionId?: string };

/**
 * A record as any query answered it (the gateway, `peer chaincode query`, a saved file), checked
 * against the ledger: the transaction its `Proof` names is valid in its block, carries the record's
 * JWS, which the pinned anchor signed over a request of the same principal, and wrote exactly this
 * record. One byte changed anywhere in the record fails the last check at least.
 */
export async function auditRecord(reader: LedgerReader, record: unknown, anchor: KeyObject): Promise<RecordVerdict> {
  const proof = (record as { Proof?: Partial<Proof> } | null)?.Proof;
  if (typeof proof?.TxID !== 'string' || typeof proof.JWS !== 'string' || typeof proof.AnchorID !== 'string') {
    return {
      verified: false,
      problem: RecordProblem.Malformed,
      reason: 'the record has no Proof {TxID, JWS, AnchorID}',
    };
  }
  const transactionId = proof.TxID;
  const fail = (problem: RecordProblem, reason: string): RecordVerdict => ({
    verified: false,
    problem,
    reason,
    transactionId,
  });
  const tx = await reader.transaction(transactionId);
  if (!tx) return fail(RecordProblem.TransactionNotFound, `no block of the channel holds transaction ${transactionId}`);
  if (tx.validationCode !== 0) {
    return fail(RecordProblem.TransactionInvalid, `transaction ${transactionId} is invalid in block ${tx.blockNumber}`);
  }
  if (tx.args[1] !== proof.JWS) {
    return fail(RecordProblem.JwsNotInTransaction, `transaction ${transactionId} carries another JWS than the record`);
  }
  const { signature, request } = await signedRequest(tx, anchor);
  if (signature !== 'valid' || protectedKid(proof.JWS) !== proof.AnchorID) {
    return fail(RecordProblem.SignatureInvalid, `the JWS does not verify under the pinned anchor ${proof.AnchorID}`);
  }
  if (!isDeepStrictEqual(request.Principal, proof.Principal)) {
    return fail(RecordProblem.PrincipalMismatch, 'the record names another principal than the signed request');
  }
  const written = tx.writes.find(
    (w) => w.namespace === tx.chaincode && !w.isDelete && isDeepStrictEqual(parsed(w.value), record),
  );
  if (!written) {
    return fail(RecordProblem.NotWritten, `transaction ${transactionId} wrote no value equal to this record`);
  }
  return { verified: true, transactionId, blockNumber: tx.blockNumber, key: written.key, principal: proof.Principal };
}

export function recordText(v: RecordVerdict): string {
  if (!v.verified) return `NOT VERIFIED (${v.problem}): ${v.reason}`;
  const principal = v.principal as { Kind?: string; ID?: string } | undefined;
  return [
    `VERIFIED: written by transaction ${v.transactionId} in block ${String(v.blockNumber)}`,
    `  asked by     ${principal ? `${principal.Kind ?? '?'}/${principal.ID ?? '?'}` : '-'}`,
    `  signature    valid against the pinned anchor`,
  ].join('\n');
}

function protectedKid(jws: string): unknown {
  try {
    return decodeProtectedHeader(jws).kid;
  } catch {
    return undefined;
  }
}

function parsed(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return undefined;
  }
}
