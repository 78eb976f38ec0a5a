/** Attestation records' own rules: pure functions over requests and records, no ledger access. */
import {
  type AttestationBatchRecord,
  type AttestationResult,
  ErrorCode,
  type InclusionProof,
  LedgerError,
  merkleLeafHash,
  type RecordAttestationBatchRequest,
  type RecordAttestationRequest,
  type TrustAnchorRecord,
  type TxTime,
  verifyInclusionProof,
} from '@keyfleet/protocol';

/** How far an attestation result's IssuedAt may lie ahead of the transaction time (clock skew). */
export const MaxIssuedAtSkewMs = 5 * 60 * 1000;

/** A verdict names its verifier: the anchor that signed it. */
export function assertVerifierBinding(verifierId: string, signer: TrustAnchorRecord): void {
  if (verifierId !== signer.AnchorID) {
    throw new LedgerError(
      ErrorCode.InvalidArgument,
      `VerifierID ${verifierId} is not the signing verifier anchor ${signer.AnchorID}`,
    );
  }
}

function assertNotAhead(what: string, iso: string, now: TxTime): void {
  if (Date.parse(iso) > now.ms + MaxIssuedAtSkewMs) {
    throw new LedgerError(ErrorCode.InvalidArgument, `${what} ${iso} lies in the future`);
  }
}

export function assertResultInTime(request: RecordAttestationRequest, now: TxTime): void {
  assertNotAhead('IssuedAt', request.IssuedAt, now);
}

/** A batch's own fields agree with each other and with the time (its members' nonces are checked on the ledger). */
export function assertBatchConsistent(request: RecordAttestationBatchRequest, now: TxTime): void {
  if (request.FirstIssuedAt > request.LastIssuedAt) {
    throw new LedgerError(ErrorCode.InvalidArgument, 'FirstIssuedAt is after LastIssuedAt');
  }
  assertNotAhead('LastIssuedAt', request.LastIssuedAt, now);
  if (request.Contraindicated.length > request.Count) {
    throw new LedgerError(ErrorCode.InvalidArgument, 'more contraindicated devices than results in the batch');
  }
  if (request.Nonces.length !== request.Count) {
    throw new LedgerError(ErrorCode.InvalidArgument, `request.Nonces must name the ${request.Count} members' nonces`);
  }
}

/** The result a verifier signed, as it is hashed into a batch's Merkle tree. */
export function resultOf(request: RecordAttestationRequest): AttestationResult {
  return {
    DeviceID: request.DeviceID,
    NonceDigest: request.NonceDigest,
    EvidenceDigest: request.EvidenceDigest,
    Status: request.Status,
    PolicyID: request.PolicyID,
    VerifierID: request.VerifierID,
    IssuedAt: request.IssuedAt,
  };
}

/**
 * Proves that `result` is a member of `batch` with `proof` (RFC 9162); answers what
 * VerifyAttestationInclusion returns, or throws PROOF_INVALID.
 */
export function inclusionOf(batch: AttestationBatchRecord, result: AttestationResult, proof: InclusionProof) {
  if (result.VerifierID !== batch.VerifierID) {
    throw new LedgerError(ErrorCode.ProofInvalid, `result was not issued by the batch verifier ${batch.VerifierID}`);
  }
  if (result.IssuedAt < batch.FirstIssuedAt || result.IssuedAt > batch.LastIssuedAt) {
    throw new LedgerError(ErrorCode.ProofInvalid, 'result IssuedAt lies outside the batch range');
  }
  const leafHash = merkleLeafHash(result);
  const included = verifyInclusionProof({
    leafHash,
    leafIndex: proof.LeafIndex,
    treeSize: batch.Count,
    auditPath: proof.AuditPath,
    root: batch.MerkleRoot,
  });
  if (!included) {
    throw new LedgerError(ErrorCode.ProofInvalid, `result is not leaf ${proof.LeafIndex} of batch ${batch.BatchID}`);
  }
  return {
    BatchID: batch.BatchID,
    Included: true,
    LeafHash: leafHash,
    LeafIndex: proof.LeafIndex,
    MerkleRoot: batch.MerkleRoot,
  };
}
