/**
 * The keys' own rules beyond those in protocol/ (lifecycle, rotation, key use): pure functions over
 * records, no ledger access.
 */
import {
  type Caller,
  callerName,
  type DueKey,
  ErrorCode,
  isProtectingOperation,
  type KeyOperation,
  type KeyRecord,
  KeyState,
  KeyUseRefusal,
  keyVersionForUse,
  LedgerError,
} from '@keyfleet/protocol';
import { dueKey } from '../store.js';

/** The writes that keep the due-for-rotation index in step with a key's NextRotationDue. */
export function dueIndex(before: KeyRecord | null, after: KeyRecord): { puts: [string, unknown][]; deletes: string[] } {
  const oldKey = before?.NextRotationDue == null ? null : dueKey(Date.parse(before.NextRotationDue), before.KeyID);
  const newKey = after.NextRotationDue === null ? null : dueKey(Date.parse(after.NextRotationDue), after.KeyID);
  if (oldKey === newKey) return { puts: [], deletes: [] };
  return {
    puts: newKey === null ? [] : [[newKey, { KeyID: after.KeyID, NextRotationDue: after.NextRotationDue }]],
    deletes: oldKey === null ? [] : [oldKey],
  };
}

/** The versions a compromise marked now (not those compromised before). */
export function newlyCompromised(before: KeyRecord, after: KeyRecord): number[] {
  return after.Versions.filter(
    (version) =>
      version.State === KeyState.Compromised &&
      before.Versions.find((old) => old.Version === version.Version)?.State !== KeyState.Compromised,
  ).map((version) => version.Version);
}

/** A key due by `atMs`, as ListKeysDueForRotation lists it; null if it is due no more. */
export function dueEntry(key: KeyRecord, atMs: number): DueKey | null {
  if (key.NextRotationDue === null) return null;
  const graceEnds = Date.parse(key.NextRotationDue) + key.RotationPolicy.GraceSeconds * 1000;
  return {
    KeyID: key.KeyID,
    NextRotationDue: key.NextRotationDue,
    GraceEndsAt: new Date(graceEnds).toISOString(),
    Overdue: atMs > graceEnds,
    ActiveVersion: key.ActiveVersion,
  };
}

/**
 * The version `operation` may use now, by the one key-use rule (protocol key-use.ts), as
 * AuthorizeKeyUse answers it. The ledger cannot know a caller's consent, so a compromised version
 * may process: the gateway asks its callers before it gets here.
 */
export function keyUse(key: KeyRecord, operation: KeyOperation, wanted: number | null, caller: Caller) {
  const choice = keyVersionForUse(key, wanted, { protect: isProtectingOperation(operation), allowCompromised: true });
  if (!choice.ok) {
    if (choice.refusal === KeyUseRefusal.VersionNotFound) {
      throw new LedgerError(ErrorCode.VersionNotFound, `key ${key.KeyID} has no version ${choice.version ?? '?'}`);
    }
    const found = key.Versions.find((candidate) => candidate.Version === choice.version);
    throw new LedgerError(
      ErrorCode.KeyNotUsable,
      found === undefined
        ? `key ${key.KeyID} has no active version`
        : `key ${key.KeyID} version ${found.Version} is ${found.State}: ${operation} is not allowed`,
    );
  }
  const target = choice.version;
  return {
    KeyID: key.KeyID,
    Version: target.Version,
    State: target.State,
    Operation: operation,
    Pkcs11URI: target.Pkcs11URI,
    Fingerprint: target.Fingerprint,
    Caller: callerName(caller),
  };
}
