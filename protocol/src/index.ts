/**
 * @keyfleet/protocol: every rule the chaincode, the gateway, the agent and the console share,
 * written once and pure (no I/O, no native code): the id grammar, canonical JSON, the ledger's
 * records, requests, transaction names and error codes, the access and key-use rules, the key
 * state machine and next-key commitment, the rotation protocol's derivations and claims, the
 * attestation profile's claims, and RFC 9162 Merkle trees and proofs.
 */
export * from './ids.js';
export * from './errors.js';
export * from './canonical.js';
export { duplicateMember, duplicateMemberInCompact } from './json-text.js';
export * from './types.js';
export * from './validate.js';
/** The contract's request validators, one per write transaction. */
export * as requests from './requests.js';
export type {
  RegisterTrustAnchorRequest,
  ReplaceTrustAnchorRequest,
  RetireTrustAnchorRequest,
  EnrolDeviceRequest,
  SuspendDeviceRequest,
  ReinstateDeviceRequest,
  RevokeDeviceRequest,
  RegisterKeyRequest,
  ActivateKeyRequest,
  RotateKeyRequest,
  DeactivateKeyRequest,
  MarkKeyCompromisedRequest,
  DestroyKeyVersionRequest,
  SetAccessPolicyRequest,
  SetRotationPolicyRequest,
  ConsumeNonceRequest,
  RecordRotationAcksRequest,
  RecordAttestationRequest,
  RecordAttestationBatchRequest,
  SetReferenceValuesRequest,
  InclusionProof,
} from './requests.js';
export * from './policy.js';
export * from './lifecycle.js';
export * from './key-use.js';
export * from './events.js';
export * from './merkle.js';
export * from './rotation.js';
export * from './attestation.js';
export * from './shard-map.js';
export * from './hsm-cluster.js';
export * from './api-errors.js';
export * from './shard-move.js';
