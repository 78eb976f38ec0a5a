import { compactVerify, importJWK } from 'jose';
import {
  type AttestationBatchRecord,
  type AttestationResult,
  merkleLeafHash,
  type PublicJwk,
  TransactionName,
  verifyInclusionProof,
} from '@keyfleet/protocol';

/** Why a proof does not hold. */
export const ProofFailure = {
  MalformedResult: 'MALFORMED_RESULT',
  MalformedProof: 'MALFORMED_PROOF',
  /** The proof names another batch, tree size or root than the ledger's record. */
  BatchMismatch: 'BATCH_MISMATCH',
  /** The result was issued by another verifier than the one that anchored the batch. */
  VerifierMismatch: 'VERIFIER_MISMATCH',
  /** The result's IssuedAt lies outside the batch's [FirstIssuedAt, LastIssuedAt]. */
  OutsideBatch: 'OUTSIDE_BATCH',
  /** The audit path does not lead from the result's leaf hash to the recorded Merkle root. */
  NotIncluded: 'NOT_INCLUDED',
} as const;
export type ProofFailure = (typeof ProofFailure)[keyof typeof ProofFailure];

export type ProofCheck =
  { readonly ok: true; readonly leafHash: string } | { readonly ok: false; readonly reason: ProofFailure };

const resultFields = ['DeviceID', 'NonceDigest', 'EvidenceDigest', 'Status', 'PolicyID', 'VerifierID', 'IssuedAt'];
const hex64 = /^[0-9a-f]{64}$/;
const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function asResult(value: unknown): AttestationResult | null {
  if (!isObject(value)) return null;
  const keys = Object.keys(value).sort();
  if (keys.length !== resultFields.length || ![...resultFields].sort().every((k, i) => keys[i] === k)) return null;
  if (!resultFields.every((field) => typeof value[field] === 'string')) return null;
  if (!hex64.test(value.NonceDigest as string) || !hex64.test(value.EvidenceDigest as string)) return null;
  return value as unknown as AttestationResult;
}

/**
 * Checks, without trusting the gateway, that `result` is a member of the batch the ledger
 * recorded: `batchRecord` comes from the auditor's own ledger query (GetAttestationBatch), `result`
 * and `proof` from the device or the gateway. The same check as the contract's
 * VerifyAttestationInclusion, runnable offline (RFC 9162 §2.1.3.2). Pure; never throws.
 */
export function verifyProofAgainstLedger(
  result: unknown,
  proof: unknown,
  batchRecord: AttestationBatchRecord,
): ProofCheck {
  const checked = asResult(result);
  if (checked === null) return { ok: false, reason: ProofFailure.MalformedResult };
  if (
    !isObject(proof) ||
    !Number.isSafeInteger(proof.LeafIndex) ||
    !Array.isArray(proof.AuditPath) ||
    proof.AuditPath.length > 64 ||
    !proof.AuditPath.every((node: unknown) => typeof node === 'string' && hex64.test(node))
  ) {
    return { ok: false, reason: ProofFailure.MalformedProof };
  }
  if (
    (proof.BatchID !== undefined && proof.BatchID !== batchRecord.BatchID) ||
    (proof.TreeSize !== undefined && proof.TreeSize !== batchRecord.Count) ||
    (proof.MerkleRoot !== undefined && proof.MerkleRoot !== batchRecord.MerkleRoot)
  ) {
    return { ok: false, reason: ProofFailure.BatchMismatch };
  }
  if (checked.VerifierID !== batchRecord.VerifierID) return { ok: false, reason: ProofFailure.VerifierMismatch };
  if (checked.IssuedAt < batchRecord.FirstIssuedAt || checked.IssuedAt > batchRecord.LastIssuedAt) {
    return { ok: false, reason: ProofFailure.OutsideBatch };
  }
  const leafHash = merkleLeafHash(checked);
  const included = verifyInclusionProof({
    leafHash,
    leafIndex: proof.LeafIndex as number,
    treeSize: batchRecord.Count,
    auditPath: proof.AuditPath as string[],
    root: batchRecord.MerkleRoot,
  });
  return included ? { ok: true, leafHash } : { ok: false, reason: ProofFailure.NotIncluded };
}

/**
 * Checks that a batch record is what the verifier signed: its `Proof.JWS` verifies with the
 * verifier's anchor key and its payload carries the record's BatchID, VerifierID, MerkleRoot, Count
 * and time range. Guards an auditor against a ledger peer that answers a forged record.
 */
export async function verifyBatchRecordSignature(
  batchRecord: AttestationBatchRecord,
  verifierAnchor: PublicJwk,
): Promise<boolean> {
  try {
    const key = await importJWK({ ...verifierAnchor }, 'ES256');
    const { payload } = await compactVerify(batchRecord.Proof.JWS, key, { algorithms: ['ES256'] });
    const request = JSON.parse(Buffer.from(payload).toString('utf8')) as Record<string, unknown>;
    return (
      request.Action === TransactionName.RecordAttestationBatch &&
      request.BatchID === batchRecord.BatchID &&
      request.VerifierID === batchRecord.VerifierID &&
      request.MerkleRoot === batchRecord.MerkleRoot &&
      request.Count === batchRecord.Count &&
      request.FirstIssuedAt === batchRecord.FirstIssuedAt &&
      request.LastIssuedAt === batchRecord.LastIssuedAt
    );
  } catch {
    return false;
  }
}
