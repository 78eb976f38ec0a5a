import { sha256Hex } from './canonical.js';
import { ErrorCode, LedgerError } from './errors.js';
import type { RegisterKeyRequest, RotateKeyRequest } from './requests.js';
import {
  DeviceStatus,
  KeyState,
  type KeyRecord,
  type KeyVersion,
  type Proof,
  type RotationPolicy,
  type RotationTrigger,
} from './types.js';

/** The moment of a transaction, from its header: ISO text for records, milliseconds for arithmetic. */
export interface TxTime {
  iso: string;
  ms: number;
}

export function txTimeOf(ms: number): TxTime {
  return { iso: new Date(ms).toISOString(), ms };
}

/**
 * Legal key-version transitions, after KMIP 2.1 §3.31 (Figure "Cryptographic Object States and
 * Transitions"): Destroyed Compromised is folded into Destroyed; a state never moves to itself.
 */
export const KeyTransitions: Readonly<Record<KeyState, readonly KeyState[]>> = {
  'pre-active': [KeyState.Active, KeyState.Compromised, KeyState.Destroyed],
  active: [KeyState.Deactivated, KeyState.Compromised],
  deactivated: [KeyState.Compromised, KeyState.Destroyed],
  compromised: [KeyState.Destroyed],
  destroyed: [],
};

/** Legal device transitions: suspension is reversible, revocation is final. */
export const DeviceTransitions: Readonly<Record<DeviceStatus, readonly DeviceStatus[]>> = {
  active: [DeviceStatus.Suspended, DeviceStatus.Revoked],
  suspended: [DeviceStatus.Active, DeviceStatus.Revoked],
  revoked: [],
};

export function isLegalKeyTransition(from: KeyState, to: KeyState): boolean {
  return KeyTransitions[from].includes(to);
}

export function assertKeyTransition(keyId: string, version: KeyVersion, to: KeyState): void {
  if (!isLegalKeyTransition(version.State, to)) {
    throw new LedgerError(
      ErrorCode.IllegalTransition,
      `key ${keyId} version ${version.Version} cannot go from ${version.State} to ${to}`,
    );
  }
}

export function assertDeviceTransition(deviceId: string, from: DeviceStatus, to: DeviceStatus): void {
  if (!DeviceTransitions[from].includes(to)) {
    const code = from === DeviceStatus.Revoked ? ErrorCode.DeviceRevoked : ErrorCode.IllegalTransition;
    throw new LedgerError(code, `device ${deviceId} cannot go from ${from} to ${to}`);
  }
}

/** KERI-style pre-rotation: the commitment is SHA-256 over the UTF-8 of the next version's Fingerprint. */
export function nextKeyCommitment(fingerprint: string): string {
  return sha256Hex(Buffer.from(fingerprint, 'utf8'));
}

function addSeconds(time: TxTime, seconds: number): string {
  return new Date(time.ms + seconds * 1000).toISOString();
}

function cloneKey(key: KeyRecord): KeyRecord {
  return structuredClone(key);
}

function versionOf(key: KeyRecord, version: number): KeyVersion {
  const found = key.Versions.find((candidate) => candidate.Version === version);
  if (found === undefined) {
    throw new LedgerError(ErrorCode.VersionNotFound, `key ${key.KeyID} has no version ${version}`);
  }
  return found;
}

function hasTrigger(policy: RotationPolicy, trigger: RotationTrigger): boolean {
  return policy.Triggers.includes(trigger);
}

function leaveActive(version: KeyVersion, to: KeyState, now: TxTime): void {
  if (version.State === KeyState.Active) version.DeactivatedAt = now.iso;
  version.State = to;
}

export function newKeyRecord(request: RegisterKeyRequest, now: TxTime, createdBy: string, proof: Proof): KeyRecord {
  const active = request.InitialState === 'active';
  const first: KeyVersion = {
    Version: 1,
    State: active ? KeyState.Active : KeyState.PreActive,
    Fingerprint: request.InitialVersion.Fingerprint,
    FingerprintType: request.InitialVersion.FingerprintType,
    Pkcs11URI: request.InitialVersion.Pkcs11URI,
    WrappedKeyDigest: request.InitialVersion.WrappedKeyDigest,
    CreatedAt: now.iso,
    ActivatedAt: active ? now.iso : null,
    DeactivatedAt: null,
    CompromisedAt: null,
    DestroyedAt: null,
    Proof: proof,
  };
  return {
    DocType: 'key',
    KeyID: request.KeyID,
    Owner: request.Owner,
    Algorithm: request.Algorithm,
    Purpose: request.Purpose,
    RotationPolicy: request.RotationPolicy,
    AccessPolicy: request.AccessPolicy,
    LatestVersion: 1,
    ActiveVersion: active ? 1 : null,
    NextKeyCommitment: request.NextKeyCommitment,
    NextRotationDue: active ? addSeconds(now, request.RotationPolicy.IntervalSeconds) : null,
    CreatedAt: now.iso,
    CreatedBy: createdBy,
    UpdatedAt: now.iso,
    Versions: [first],
    Proof: proof,
  };
}

export function activateKeyVersion(current: KeyRecord, version: number, now: TxTime, proof: Proof): KeyRecord {
  const key = cloneKey(current);
  const target = versionOf(key, version);
  assertKeyTransition(key.KeyID, target, KeyState.Active);
  if (key.ActiveVersion !== null) leaveActive(versionOf(key, key.ActiveVersion), KeyState.Deactivated, now);
  target.State = KeyState.Active;
  target.ActivatedAt = now.iso;
  key.ActiveVersion = version;
  key.NextRotationDue = addSeconds(now, key.RotationPolicy.IntervalSeconds);
  key.UpdatedAt = now.iso;
  key.Proof = proof;
  return key;
}

export function rotateKeyRecord(current: KeyRecord, request: RotateKeyRequest, now: TxTime, proof: Proof): KeyRecord {
  const key = cloneKey(current);
  if (request.CurrentVersion !== key.LatestVersion) {
    throw new LedgerError(
      ErrorCode.StaleVersion,
      `key ${key.KeyID} is at version ${key.LatestVersion}, not ${request.CurrentVersion}`,
    );
  }
  const latest = versionOf(key, key.LatestVersion);
  if (latest.State === KeyState.PreActive) {
    throw new LedgerError(
      ErrorCode.IllegalTransition,
      `key ${key.KeyID} version ${latest.Version} is pre-active: activate or destroy it before rotating`,
    );
  }
  if (key.NextKeyCommitment !== null && nextKeyCommitment(request.NewVersion.Fingerprint) !== key.NextKeyCommitment) {
    throw new LedgerError(
      ErrorCode.NextKeyMismatch,
      `new version of key ${key.KeyID} does not match the committed next key`,
    );
  }
  const reused = key.Versions.find((candidate) => candidate.Fingerprint === request.NewVersion.Fingerprint);
  if (reused !== undefined) {
    throw new LedgerError(
      ErrorCode.InvalidArgument,
      `fingerprint of the new version repeats version ${reused.Version} of key ${key.KeyID}`,
    );
  }
  if (key.ActiveVersion !== null) {
    const previous = versionOf(key, key.ActiveVersion);
    assertKeyTransition(key.KeyID, previous, KeyState.Deactivated);
    leaveActive(previous, KeyState.Deactivated, now);
  }
  const next = key.LatestVersion + 1;
  key.Versions.push({
    Version: next,
    State: KeyState.Active,
    Fingerprint: request.NewVersion.Fingerprint,
    FingerprintType: request.NewVersion.FingerprintType,
    Pkcs11URI: request.NewVersion.Pkcs11URI,
    WrappedKeyDigest: request.NewVersion.WrappedKeyDigest,
    CreatedAt: now.iso,
    ActivatedAt: now.iso,
    DeactivatedAt: null,
    CompromisedAt: null,
    DestroyedAt: null,
    Proof: proof,
  });
  key.LatestVersion = next;
  key.ActiveVersion = next;
  key.NextKeyCommitment = request.NextKeyCommitment;
  key.NextRotationDue = addSeconds(now, key.RotationPolicy.IntervalSeconds);
  key.UpdatedAt = now.iso;
  key.Proof = proof;
  return key;
}

export function deactivateKeyVersion(current: KeyRecord, version: number, now: TxTime, proof: Proof): KeyRecord {
  const key = cloneKey(current);
  const target = versionOf(key, version);
  assertKeyTransition(key.KeyID, target, KeyState.Deactivated);
  leaveActive(target, KeyState.Deactivated, now);
  if (key.ActiveVersion === version) {
    key.ActiveVersion = null;
    key.NextRotationDue = null;
  }
  key.UpdatedAt = now.iso;
  key.Proof = proof;
  return key;
}

/** Marks one version, or (version null) every version not yet compromised or destroyed. */
export function compromiseKey(current: KeyRecord, version: number | null, now: TxTime, proof: Proof): KeyRecord {
  const key = cloneKey(current);
  const targets =
    version === null
      ? key.Versions.filter((candidate) => isLegalKeyTransition(candidate.State, KeyState.Compromised))
      : [versionOf(key, version)];
  if (targets.length === 0) {
    throw new LedgerError(ErrorCode.IllegalTransition, `key ${key.KeyID} has no version that can be compromised`);
  }
  for (const target of targets) {
    assertKeyTransition(key.KeyID, target, KeyState.Compromised);
    leaveActive(target, KeyState.Compromised, now);
    target.CompromisedAt = now.iso;
    if (key.ActiveVersion === target.Version) key.ActiveVersion = null;
  }
  if (hasTrigger(key.RotationPolicy, 'compromise')) key.NextRotationDue = now.iso;
  else if (key.ActiveVersion === null) key.NextRotationDue = null;
  key.UpdatedAt = now.iso;
  key.Proof = proof;
  return key;
}

/** Destroys a version once its retention (counted from when it stopped being active) has passed. */
export function destroyKeyVersionRecord(current: KeyRecord, version: number, now: TxTime, proof: Proof): KeyRecord {
  const key = cloneKey(current);
  const target = versionOf(key, version);
  assertKeyTransition(key.KeyID, target, KeyState.Destroyed);
  if (target.DeactivatedAt !== null) {
    const retentionEnds = Date.parse(target.DeactivatedAt) + key.RotationPolicy.RetentionSeconds * 1000;
    if (now.ms < retentionEnds) {
      throw new LedgerError(
        ErrorCode.RetentionNotElapsed,
        `key ${key.KeyID} version ${version} must be kept until ${new Date(retentionEnds).toISOString()}`,
      );
    }
  }
  target.State = KeyState.Destroyed;
  target.DestroyedAt = now.iso;
  key.UpdatedAt = now.iso;
  key.Proof = proof;
  return key;
}

export function setKeyRotationPolicy(current: KeyRecord, policy: RotationPolicy, now: TxTime, proof: Proof): KeyRecord {
  const key = cloneKey(current);
  key.RotationPolicy = policy;
  if (key.ActiveVersion !== null) {
    const activatedAt = versionOf(key, key.ActiveVersion).ActivatedAt ?? now.iso;
    key.NextRotationDue = new Date(Date.parse(activatedAt) + policy.IntervalSeconds * 1000).toISOString();
  }
  key.UpdatedAt = now.iso;
  key.Proof = proof;
  return key;
}

/** Attestation failure of the owning device makes a key due now, if its policy says so. */
export function triggerOnAttestationFailure(current: KeyRecord, now: TxTime): KeyRecord | null {
  if (!hasTrigger(current.RotationPolicy, 'attestation-failure') || current.ActiveVersion === null) return null;
  if (current.NextRotationDue !== null && current.NextRotationDue <= now.iso) return null;
  const key = cloneKey(current);
  key.NextRotationDue = now.iso;
  key.UpdatedAt = now.iso;
  return key;
}
