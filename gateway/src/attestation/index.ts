/**
 * Device attestation, verifier side (docs/protocol-attestation.md): stateless device-bound
 * challenges, appraisal of Entity Attestation Tokens (RFC 9711) against the ledger's reference
 * values, EAR results signed by the HSM verifier key, recorded one by one or in Merkle batches,
 * and the auditor's offline inclusion check.
 *
 * @packageDocumentation
 */
export { TrustClaim, appraise, statusOf, type Appraisal } from './appraisal';
export { ProofFailure, verifyBatchRecordSignature, verifyProofAgainstLedger, type ProofCheck } from './audit';
export {
  newAttestationBatcher,
  type AttestationBatcher,
  type AttestationBatcherOptions,
  type BatchInclusionProof,
} from './batcher';
export {
  hsmChallengeKey,
  newChallengeIssuer,
  nonceDigestOf,
  type Challenge,
  type ChallengeIssuer,
  type ChallengeIssuerOptions,
  type ChallengeKey,
  type CheckedNonce,
} from './challenge';
export { signEar, verifyEar } from './ear';
export { AttestationError, AttestationErrorCode, isAttestationError } from './errors';
export { MaxEvidenceBytes, newEvidenceVerifier, type VerifiedEvidence } from './evidence';
export {
  newVerifier,
  type ActionsTaken,
  type AppraisalOutcome,
  type PolicyActionsOptions,
  type Recorded,
  type Verifier,
  type VerifierOptions,
} from './verifier';
