import { ErrorCode, LedgerError } from './errors.js';
import {
  AnchorKind,
  DigestHexLength,
  type DigestAlgorithm,
  AttestationStatus,
  FingerprintType,
  KeyAlgorithm,
  KeyPurpose,
  NoncePurpose,
  OwnerType,
  PrincipalKind,
  RevocationReason,
  Role,
  RotationTrigger,
  TransactionName,
} from './types.js';
import {
  Limits,
  arrayOf,
  base64url,
  fingerprint,
  hexDigest,
  id,
  int,
  isoTime,
  literal,
  nullable,
  object,
  oneOf,
  pkcs11Uri,
  sha256HexField,
  str,
  text,
  type Check,
  type Checked,
} from './validate.js';

const requestId = str({ max: Limits.IdLength, pattern: /^[A-Za-z0-9._:-]+$/, what: 'a request id' });
export const envelope = <A extends TransactionName>(action: A) => ({ Action: literal(action), RequestID: requestId });

const principal = object({
  MSPID: str({ max: 64, pattern: /^[A-Za-z0-9._-]+$/, what: 'an MSP id' }),
  Role: oneOf(Object.values(Role)),
  ID: nullable(id),
});
/** Who asked for a write (see {@link PrincipalKind}); checked against the caller before the request's schema. */
export const requestPrincipal = object({ Kind: oneOf(Object.values(PrincipalKind)), ID: id });

const principals = arrayOf(principal, { max: Limits.PrincipalsPerPermission, unique: true });

export const accessPolicy = object({ Read: principals, Use: principals, Rotate: principals, Administer: principals });

const day = 86_400;
export const rotationPolicy = object({
  IntervalSeconds: int(60, 3650 * day),
  GraceSeconds: int(0, 365 * day),
  RetentionSeconds: int(0, 3650 * day),
  Triggers: arrayOf(oneOf(RotationTrigger), { max: RotationTrigger.length, unique: true }),
});

export const publicJwk = object({
  kty: literal('EC'),
  crv: literal('P-256'),
  x: base64url(43),
  y: base64url(43),
});

const newVersion = object({
  Fingerprint: fingerprint,
  FingerprintType: oneOf(FingerprintType),
  Pkcs11URI: pkcs11Uri,
  WrappedKeyDigest: nullable(sha256HexField),
});

export const registerTrustAnchor = object({
  ...envelope(TransactionName.RegisterTrustAnchor),
  AnchorID: id,
  Kind: oneOf(Object.values(AnchorKind)),
  PublicKey: publicJwk,
  Description: text,
});

export const replaceTrustAnchor = object({
  ...envelope(TransactionName.ReplaceTrustAnchor),
  OldAnchorID: id,
  NewAnchorID: id,
  PublicKey: publicJwk,
  Description: text,
});

export const retireTrustAnchor = object({
  ...envelope(TransactionName.RetireTrustAnchor),
  AnchorID: id,
  Reason: text,
});

export const enrolDevice = object({
  ...envelope(TransactionName.EnrolDevice),
  DeviceID: id,
  Group: id,
  Location: text,
  Function: text,
  Shard: int(0, 65_535),
  CertFingerprint: sha256HexField,
  /** SHA-256 of the enrolment token's id, consumed with the enrolment so a token enrols once. */
  EnrolmentNonceDigest: nullable(sha256HexField),
});

export const suspendDevice = object({ ...envelope(TransactionName.SuspendDevice), DeviceID: id, Reason: text });
export const reinstateDevice = object({ ...envelope(TransactionName.ReinstateDevice), DeviceID: id, Reason: text });
export const revokeDevice = object({
  ...envelope(TransactionName.RevokeDevice),
  DeviceID: id,
  Reason: oneOf(RevocationReason),
  Comment: nullable(text),
});

export const registerKey = object({
  ...envelope(TransactionName.RegisterKey),
  KeyID: id,
  Owner: object({ Type: oneOf(OwnerType), ID: id }),
  Algorithm: oneOf(KeyAlgorithm),
  Purpose: oneOf(KeyPurpose),
  RotationPolicy: rotationPolicy,
  AccessPolicy: accessPolicy,
  InitialVersion: newVersion,
  InitialState: oneOf(['active', 'pre-active'] as const),
  NextKeyCommitment: nullable(sha256HexField),
});

const version = int(1, 1_000_000);

export const activateKey = object({ ...envelope(TransactionName.ActivateKey), KeyID: id, Version: version });

export const rotateKey = object({
  ...envelope(TransactionName.RotateKey),
  KeyID: id,
  CurrentVersion: version,
  NewVersion: newVersion,
  NextKeyCommitment: nullable(sha256HexField),
  NonceDigest: nullable(sha256HexField),
});

export const deactivateKey = object({ ...envelope(TransactionName.DeactivateKey), KeyID: id, Version: version });

export const markKeyCompromised = object({
  ...envelope(TransactionName.MarkKeyCompromised),
  KeyID: id,
  Version: nullable(version),
  Reason: text,
});

export const destroyKeyVersion = object({
  ...envelope(TransactionName.DestroyKeyVersion),
  KeyID: id,
  Version: version,
});

export const setAccessPolicy = object({
  ...envelope(TransactionName.SetAccessPolicy),
  KeyID: id,
  AccessPolicy: accessPolicy,
});

export const setRotationPolicy = object({
  ...envelope(TransactionName.SetRotationPolicy),
  KeyID: id,
  RotationPolicy: rotationPolicy,
});

export const consumeNonce = object({
  ...envelope(TransactionName.ConsumeNonce),
  NonceDigest: sha256HexField,
  // Enrolment nonces are consumed only by EnrolDevice itself, atomically with the enrolment.
  Purpose: oneOf([NoncePurpose.Attestation, NoncePurpose.Rotation]),
  Subject: id,
});

/**
 * Device acknowledgements of rotations, recorded together by the gateway's group commit: each is
 * the single-use digest `D("keyfleet/rotation-ack/v1", KeyID, Version)` (docs/protocol-rotation.md §7).
 */
export const recordRotationAcks = object({
  ...envelope(TransactionName.RecordRotationAcks),
  Acks: arrayOf(object({ NonceDigest: sha256HexField, KeyID: id, Version: version }), {
    min: 1,
    max: Limits.BatchMembers,
  }),
});

const attestationResultFields = {
  DeviceID: id,
  NonceDigest: sha256HexField,
  EvidenceDigest: sha256HexField,
  Status: oneOf(Object.values(AttestationStatus)),
  PolicyID: id,
  VerifierID: id,
  IssuedAt: isoTime,
};

export const attestationResult = object(attestationResultFields);

export const recordAttestation = object({
  ...envelope(TransactionName.RecordAttestation),
  ...attestationResultFields,
});

export const recordAttestationBatch = object({
  ...envelope(TransactionName.RecordAttestationBatch),
  BatchID: id,
  VerifierID: id,
  MerkleRoot: sha256HexField,
  Count: int(1, Limits.BatchCount),
  FirstIssuedAt: isoTime,
  LastIssuedAt: isoTime,
  Contraindicated: arrayOf(id, { max: Limits.BatchContraindicated, unique: true }),
  /** Every member's nonce, consumed by this transaction: as many as Count, no digest twice. */
  Nonces: arrayOf(object({ NonceDigest: sha256HexField, DeviceID: id }), { min: 1, max: Limits.BatchMembers }),
});

export const inclusionProof = object({
  LeafIndex: int(0, Limits.BatchCount - 1),
  AuditPath: arrayOf(sha256HexField, { max: 32 }),
});

const measurementShape = object({
  Name: id,
  Algorithm: oneOf(Object.keys(DigestHexLength) as DigestAlgorithm[]),
  Digest: hexDigest,
});
/** A reference measurement whose digest has its algorithm's length. */
const measurement: Check<Checked<typeof measurementShape>> = (value, path) => {
  const checked = measurementShape(value, path);
  const digits = DigestHexLength[checked.Algorithm];
  if (checked.Digest.length !== digits) {
    throw new LedgerError(
      ErrorCode.InvalidArgument,
      `${path}.Digest must have ${digits} hex digits for ${checked.Algorithm}`,
    );
  }
  return checked;
};

export const setReferenceValues = object({
  ...envelope(TransactionName.SetReferenceValues),
  Group: id,
  PolicyID: id,
  Measurements: arrayOf(measurement, { min: 1, max: Limits.Measurements, unique: true }),
});

export type RegisterTrustAnchorRequest = Checked<typeof registerTrustAnchor>;
export type ReplaceTrustAnchorRequest = Checked<typeof replaceTrustAnchor>;
export type RetireTrustAnchorRequest = Checked<typeof retireTrustAnchor>;
export type EnrolDeviceRequest = Checked<typeof enrolDevice>;
export type SuspendDeviceRequest = Checked<typeof suspendDevice>;
export type ReinstateDeviceRequest = Checked<typeof reinstateDevice>;
export type RevokeDeviceRequest = Checked<typeof revokeDevice>;
export type RegisterKeyRequest = Checked<typeof registerKey>;
export type ActivateKeyRequest = Checked<typeof activateKey>;
export type RotateKeyRequest = Checked<typeof rotateKey>;
export type DeactivateKeyRequest = Checked<typeof deactivateKey>;
export type MarkKeyCompromisedRequest = Checked<typeof markKeyCompromised>;
export type DestroyKeyVersionRequest = Checked<typeof destroyKeyVersion>;
export type SetAccessPolicyRequest = Checked<typeof setAccessPolicy>;
export type SetRotationPolicyRequest = Checked<typeof setRotationPolicy>;
export type ConsumeNonceRequest = Checked<typeof consumeNonce>;
export type RecordRotationAcksRequest = Checked<typeof recordRotationAcks>;
export type RecordAttestationRequest = Checked<typeof recordAttestation>;
export type RecordAttestationBatchRequest = Checked<typeof recordAttestationBatch>;
export type SetReferenceValuesRequest = Checked<typeof setReferenceValues>;
export type InclusionProof = Checked<typeof inclusionProof>;
