/** Roles carried in the caller certificate's `role` attribute. */
export const Role = {
  Operator: 'operator',
  Verifier: 'verifier',
  Auditor: 'auditor',
  Application: 'application',
  Device: 'device',
} as const;
export type Role = (typeof Role)[keyof typeof Role];

/** MSP ids of the two endorsing organisations. */
export const Msp = {
  Operator: 'Org1MSP',
  Verifier: 'Org2MSP',
} as const;

/** Which MSPs may issue a certificate carrying each role; any other pairing is denied. */
export const RoleMsps: Readonly<Record<Role, readonly string[]>> = {
  operator: [Msp.Operator],
  verifier: [Msp.Verifier],
  auditor: [Msp.Verifier],
  application: [Msp.Operator, Msp.Verifier],
  device: [Msp.Operator],
};

export const DeviceStatus = { Active: 'active', Suspended: 'suspended', Revoked: 'revoked' } as const;
export type DeviceStatus = (typeof DeviceStatus)[keyof typeof DeviceStatus];

/** KMIP 2.1 §3.31 key states (Destroyed Compromised folded into Destroyed). */
export const KeyState = {
  PreActive: 'pre-active',
  Active: 'active',
  Deactivated: 'deactivated',
  Compromised: 'compromised',
  Destroyed: 'destroyed',
} as const;
export type KeyState = (typeof KeyState)[keyof typeof KeyState];

/** EAR (draft-ietf-rats-ear) `ear.status` values. */
export const AttestationStatus = {
  Affirming: 'affirming',
  Warning: 'warning',
  Contraindicated: 'contraindicated',
} as const;
export type AttestationStatus = (typeof AttestationStatus)[keyof typeof AttestationStatus];

export const AnchorKind = {
  DeviceCa: 'device-ca',
  MetadataSigning: 'metadata-signing',
  Verifier: 'verifier',
} as const;
export type AnchorKind = (typeof AnchorKind)[keyof typeof AnchorKind];

export const AnchorStatus = { Active: 'active', Retired: 'retired' } as const;
export type AnchorStatus = (typeof AnchorStatus)[keyof typeof AnchorStatus];

export const Permission = { Read: 'Read', Use: 'Use', Rotate: 'Rotate', Administer: 'Administer' } as const;
export type Permission = (typeof Permission)[keyof typeof Permission];

export const NoncePurpose = { Attestation: 'attestation', Rotation: 'rotation', Enrolment: 'enrolment' } as const;
export type NoncePurpose = (typeof NoncePurpose)[keyof typeof NoncePurpose];

export const KeyAlgorithm = [
  'AES-128',
  'AES-256',
  'HMAC-SHA256',
  'EC-P256',
  'EC-P384',
  'Ed25519',
  'RSA-2048',
  'RSA-3072',
] as const;
export type KeyAlgorithm = (typeof KeyAlgorithm)[number];

export const KeyPurpose = ['encrypt', 'sign', 'wrap', 'mac', 'derive', 'agree'] as const;
export type KeyPurpose = (typeof KeyPurpose)[number];

/** `kcv`: AES/HMAC key check value (hex); `spki-sha256`: SHA-256 of the DER SubjectPublicKeyInfo (hex). */
export const FingerprintType = ['kcv', 'spki-sha256'] as const;
export type FingerprintType = (typeof FingerprintType)[number];

export const RotationTrigger = ['attestation-failure', 'compromise'] as const;
export type RotationTrigger = (typeof RotationTrigger)[number];

/** RFC 5280 §5.3.1 reason codes (by name). */
export const RevocationReason = [
  'unspecified',
  'keyCompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'privilegeWithdrawn',
] as const;
export type RevocationReason = (typeof RevocationReason)[number];

export const OwnerType = ['application', 'device'] as const;
export type OwnerType = (typeof OwnerType)[number];

/** Names of every transaction; write requests carry theirs as `Action` so a signature cannot be reused elsewhere. */
export const TransactionName = {
  RegisterTrustAnchor: 'RegisterTrustAnchor',
  ReplaceTrustAnchor: 'ReplaceTrustAnchor',
  RetireTrustAnchor: 'RetireTrustAnchor',
  GetTrustAnchor: 'GetTrustAnchor',
  ListTrustAnchors: 'ListTrustAnchors',
  EnrolDevice: 'EnrolDevice',
  GetDevice: 'GetDevice',
  GetDeviceHistory: 'GetDeviceHistory',
  ListDevicesByGroup: 'ListDevicesByGroup',
  SuspendDevice: 'SuspendDevice',
  ReinstateDevice: 'ReinstateDevice',
  RevokeDevice: 'RevokeDevice',
  RegisterKey: 'RegisterKey',
  GetKey: 'GetKey',
  GetKeyHistory: 'GetKeyHistory',
  ListKeysDueForRotation: 'ListKeysDueForRotation',
  AuthorizeKeyUse: 'AuthorizeKeyUse',
  ActivateKey: 'ActivateKey',
  RotateKey: 'RotateKey',
  DeactivateKey: 'DeactivateKey',
  MarkKeyCompromised: 'MarkKeyCompromised',
  DestroyKeyVersion: 'DestroyKeyVersion',
  SetAccessPolicy: 'SetAccessPolicy',
  SetRotationPolicy: 'SetRotationPolicy',
  ConsumeNonce: 'ConsumeNonce',
  RecordRotationAcks: 'RecordRotationAcks',
  GetNonce: 'GetNonce',
  RecordAttestation: 'RecordAttestation',
  GetAttestation: 'GetAttestation',
  ListAttestations: 'ListAttestations',
  RecordAttestationBatch: 'RecordAttestationBatch',
  GetAttestationBatch: 'GetAttestationBatch',
  VerifyAttestationInclusion: 'VerifyAttestationInclusion',
  SetReferenceValues: 'SetReferenceValues',
  GetReferenceValues: 'GetReferenceValues',
  SetShardMap: 'SetShardMap',
  GetShardMap: 'GetShardMap',
  ResolveShard: 'ResolveShard',
  GetShardLoad: 'GetShardLoad',
} as const;
export type TransactionName = (typeof TransactionName)[keyof typeof TransactionName];

/** Chaincode event names: one event per write transaction (Fabric keeps only the last `setEvent`). */
export const EventName = {
  TrustAnchorRegistered: 'TrustAnchorRegistered',
  TrustAnchorReplaced: 'TrustAnchorReplaced',
  TrustAnchorRetired: 'TrustAnchorRetired',
  DeviceEnrolled: 'DeviceEnrolled',
  DeviceSuspended: 'DeviceSuspended',
  DeviceReinstated: 'DeviceReinstated',
  DeviceRevoked: 'DeviceRevoked',
  KeyRegistered: 'KeyRegistered',
  KeyActivated: 'KeyActivated',
  KeyRotated: 'KeyRotated',
  KeyDeactivated: 'KeyDeactivated',
  KeyCompromised: 'KeyCompromised',
  KeyVersionDestroyed: 'KeyVersionDestroyed',
  AccessPolicyChanged: 'AccessPolicyChanged',
  RotationPolicyChanged: 'RotationPolicyChanged',
  NonceConsumed: 'NonceConsumed',
  RotationAcksRecorded: 'RotationAcksRecorded',
  AttestationRecorded: 'AttestationRecorded',
  AttestationBatchRecorded: 'AttestationBatchRecorded',
  ReferenceValuesSet: 'ReferenceValuesSet',
  ShardMapChanged: 'ShardMapChanged',
} as const;
export type EventName = (typeof EventName)[keyof typeof EventName];

/** A set of identities: an MSP, a role and, optionally, one identity (certificate subject CN). */
export interface Principal {
  MSPID: string;
  Role: Role;
  ID: string | null;
}

export interface AccessPolicy {
  Read: Principal[];
  Use: Principal[];
  Rotate: Principal[];
  Administer: Principal[];
}

export interface RotationPolicy {
  IntervalSeconds: number;
  GraceSeconds: number;
  RetentionSeconds: number;
  Triggers: RotationTrigger[];
}

/** The JWS that authorised a write, kept beside the record so any client can re-verify it. */
/**
 * Who asked for a write, as the gateway authenticated them: an operator, an application, a device, or
 * a named service for an organisation process's own work (a scheduler, a reconciler, the verifier).
 * Carried inside the HSM-signed request as `Principal`; the chaincode checks it against the caller's role.
 */
export const PrincipalKind = {
  Operator: 'operator',
  Application: 'application',
  Device: 'device',
  Service: 'service',
} as const;
export type PrincipalKind = (typeof PrincipalKind)[keyof typeof PrincipalKind];

export interface RequestPrincipal {
  Kind: PrincipalKind;
  ID: string;
}

/**
 * Service principals are named `<prefix>.<name>`; the prefix says whose process runs the service, so
 * one organisation cannot attribute a write to the other's services (`gateway.scheduler`, `verifier.appraisal`).
 */
export const ServicePrefix = { operator: 'gateway', verifier: 'verifier' } as const satisfies Partial<
  Record<Role, string>
>;

export interface Proof {
  AnchorID: string;
  JWS: string;
  TxID: string;
  /** Who asked for the write (the request's `Principal`). */
  Principal: RequestPrincipal;
}

export interface PublicJwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
}

export interface TrustAnchorRecord {
  DocType: 'anchor';
  AnchorID: string;
  Kind: AnchorKind;
  PublicKey: PublicJwk;
  Thumbprint: string;
  Description: string;
  Status: AnchorStatus;
  RegisteredAt: string;
  RegisteredBy: string;
  RetiredAt: string | null;
  ReplacedBy: string | null;
  /** JWS by the anchor's own key over the registering request (proof of possession), when one was given. */
  PossessionJWS: string | null;
  Proof: Proof;
}

export interface AttestationSummary {
  ResultID: string | null;
  Status: AttestationStatus;
  VerifierID: string;
  At: string;
  BatchID: string | null;
}

export interface DeviceRecord {
  DocType: 'device';
  DeviceID: string;
  Group: string;
  Location: string;
  Function: string;
  Shard: number;
  CertFingerprint: string;
  Status: DeviceStatus;
  StatusReason: string | null;
  RevocationReason: RevocationReason | null;
  EnrolledAt: string;
  EnrolledBy: string;
  UpdatedAt: string;
  LastAttestation: AttestationSummary | null;
  Proof: Proof;
}

export interface KeyVersion {
  Version: number;
  State: KeyState;
  Fingerprint: string;
  FingerprintType: FingerprintType;
  Pkcs11URI: string;
  WrappedKeyDigest: string | null;
  CreatedAt: string;
  ActivatedAt: string | null;
  DeactivatedAt: string | null;
  CompromisedAt: string | null;
  DestroyedAt: string | null;
  Proof: Proof;
}

export interface KeyOwner {
  Type: OwnerType;
  ID: string;
}

export interface KeyRecord {
  DocType: 'key';
  KeyID: string;
  Owner: KeyOwner;
  Algorithm: KeyAlgorithm;
  Purpose: KeyPurpose;
  RotationPolicy: RotationPolicy;
  AccessPolicy: AccessPolicy;
  LatestVersion: number;
  ActiveVersion: number | null;
  NextKeyCommitment: string | null;
  NextRotationDue: string | null;
  CreatedAt: string;
  CreatedBy: string;
  UpdatedAt: string;
  Versions: KeyVersion[];
  Proof: Proof;
}

export interface NonceRecord {
  DocType: 'nonce';
  NonceDigest: string;
  Purpose: NoncePurpose;
  Subject: string;
  ConsumedAt: string;
  ConsumedBy: string;
  TxID: string;
}

/** One device acknowledgement in a RecordRotationAcks answer: the transaction that holds its record. */
export interface RotationAckOutcome {
  NonceDigest: string;
  KeyID: string;
  Version: number;
  TxID: string;
  /** True when an earlier transaction had recorded it (acknowledgements are idempotent). */
  AlreadyRecorded: boolean;
}

/** The content of one attestation result; a batch's Merkle leaves are exactly these records. */
export interface AttestationResult {
  DeviceID: string;
  NonceDigest: string;
  EvidenceDigest: string;
  Status: AttestationStatus;
  PolicyID: string;
  VerifierID: string;
  IssuedAt: string;
}

export interface AttestationRecord extends AttestationResult {
  DocType: 'attestation';
  ResultID: string;
  RecordedAt: string;
  RecordedBy: string;
  DeviceSuspended: boolean;
  Proof: Proof;
}

export interface AttestationBatchRecord {
  DocType: 'attestation-batch';
  BatchID: string;
  VerifierID: string;
  MerkleRoot: string;
  Count: number;
  FirstIssuedAt: string;
  LastIssuedAt: string;
  Contraindicated: string[];
  SuspendedDevices: string[];
  RecordedAt: string;
  RecordedBy: string;
  Proof: Proof;
}

/** Hex digits of a digest of each measurement algorithm: a digest of another length can match no evidence. */
export const DigestHexLength = { 'sha-256': 64, 'sha-384': 96, 'sha-512': 128 } as const;
export type DigestAlgorithm = keyof typeof DigestHexLength;

export interface Measurement {
  Name: string;
  Algorithm: DigestAlgorithm;
  Digest: string;
}

export interface ReferenceValuesRecord {
  DocType: 'reference-values';
  Group: string;
  Revision: number;
  PolicyID: string;
  Measurements: Measurement[];
  UpdatedAt: string;
  UpdatedBy: string;
  Proof: Proof;
}

/** One page of a paginated read. `Bookmark` is empty when there is nothing more. */
export interface Page<T> {
  Records: T[];
  FetchedCount: number;
  Bookmark: string;
}

/** One entry of a record's history (Fabric `getHistoryForKey`). */
export interface HistoryEntry<T> {
  TxID: string;
  Timestamp: string;
  IsDelete: boolean;
  Value: T | null;
}

/** Due-for-rotation entry returned by `ListKeysDueForRotation`. */
export interface DueKey {
  KeyID: string;
  NextRotationDue: string;
  GraceEndsAt: string;
  Overdue: boolean;
  ActiveVersion: number | null;
}
