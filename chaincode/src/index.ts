/**
 * @keyfleet/chaincode: the Fabric contract, and the record types, constants, error codes and pure
 * helpers (canonical JSON, Merkle proofs, key state machine, access-policy checks) that the gateway and
 * the auditor CLI share with it.
 */
import './logging.js';
import { KeyfleetContract } from './contract.js';
import { HsmClusterContract } from './contract-hsm-cluster.js';

/**
 * What fabric-contract-api loads from the package main: `keyfleet`, the default, and `hsm-cluster`
 * (the gateway's HSM cluster records, called as `hsm-cluster:<transaction>`).
 */
export const contracts: (typeof KeyfleetContract | typeof HsmClusterContract)[] = [
  KeyfleetContract,
  HsmClusterContract,
];

export { KeyOperation } from './contract.js';
export {
  HsmClusterContractName,
  HsmClusterService,
  HsmClusterTransaction,
  type HsmClusterEventRecord,
  type HsmReplicatedKey,
} from './contract-hsm-cluster.js';
export { canonicalBytes, canonicalJson, MaxJsonDepth, sha256Hex } from './canonical.js';
export { ErrorCode, LedgerError, errorCodeOf, isLedgerError } from './errors.js';
export {
  decodeContractEvent,
  MalformedEventError,
  type AttestationBatchRecordedEvent,
  type AttestationRecordedEvent,
  type ContractEvent,
  type DeviceStatusEvent,
} from './events.js';
export { RoleAttribute } from './identity.js';
export { DeviceTransitions, KeyTransitions, isLegalKeyTransition, nextKeyCommitment } from './lifecycle.js';
export {
  buildMerkleTree,
  merkleInclusionProof,
  merkleLeafHash,
  merkleNodeHash,
  merkleRoot,
  verifyInclusionProof,
  type InclusionProofInput,
  type MerkleTree,
} from './merkle.js';
export {
  RoleCeiling,
  RoleImplicit,
  assertPolicyWellFormed,
  callerName,
  isPermitted,
  principalMatches,
  type Caller,
} from './policy.js';
export type {
  ActivateKeyRequest,
  ConsumeNonceRequest,
  DeactivateKeyRequest,
  DestroyKeyVersionRequest,
  EnrolDeviceRequest,
  InclusionProof,
  MarkKeyCompromisedRequest,
  RecordAttestationBatchRequest,
  RecordAttestationRequest,
  RecordRotationAcksRequest,
  RegisterKeyRequest,
  RegisterTrustAnchorRequest,
  ReinstateDeviceRequest,
  ReplaceTrustAnchorRequest,
  RetireTrustAnchorRequest,
  RevokeDeviceRequest,
  RotateKeyRequest,
  SetAccessPolicyRequest,
  SetReferenceValuesRequest,
  SetRotationPolicyRequest,
  SuspendDeviceRequest,
} from './requests.js';
export * from './types.js';
export { Limits, PrintableTextPattern } from './validate.js';
export { duplicateMember, duplicateMemberInCompact } from './json-text.js';
