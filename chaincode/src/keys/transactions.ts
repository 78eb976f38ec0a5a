/**
 * Keys: registration, the version lifecycle (activate, rotate, deactivate, compromise, destroy),
 * policies, reads and the key-use check. Each change passes the key's own access policy; the rules
 * are protocol/'s (lifecycle.ts, rotation.ts, key-use.ts) and ./rules.ts.
 */
import { Context, Returns, Transaction } from 'fabric-contract-api';

import {
  DeviceUse,
  activateKeyVersion,
  AnchorKind,
  assertKeyPermission,
  assertPolicyWellFormed,
  canonicalJson,
  type Check,
  compromiseKey,
  deactivateKeyVersion,
  destroyKeyVersionRecord,
  type DueKey,
  ErrorCode,
  EventName,
  isoTime,
  KeyOperations,
  type KeyRecord,
  LedgerError,
  newKeyRecord,
  NoncePurpose,
  oneOf,
  Permission,
  type Proof,
  requests,
  type TxTime,
  Role,
  rotateKeyRecord,
  setKeyRotationPolicy,
  str,
  TransactionName,
  validate,
} from '@keyfleet/protocol';
import { assertNotRevoked } from '../devices/rules.js';
import { nonceRecord } from '../nonces/rules.js';
import { assertNonceUnused, loadDevice, loadKey } from '../records.js';
import { DuePrefix, dueRangeEnd, KeyType, Store } from '../store.js';
import { TransactionGroup } from '../transaction/compose.js';
import { AllRoles, argId, bookmark, Overseers, pageSize, reader } from '../transaction/read.js';
import { type Envelope, type Outcome, submit, type Write } from '../transaction/write.js';
import { dueEntry, dueIndex, keyUse, newlyCompromised } from './rules.js';

type Event = NonNullable<Outcome<unknown>['event']>;

/** A key written: its record, its due-index entry, any further writes, the event. */
function keyOutcome(
  store: Store,
  before: KeyRecord | null,
  after: KeyRecord,
  event: Event,
  extra: [string, unknown][] = [],
): Outcome<KeyRecord> {
  const due = dueIndex(before, after);
  return {
    puts: [[store.key(KeyType.Key, after.KeyID), after], ...due.puts, ...extra],
    deletes: due.deletes,
    event,
    result: after,
  };
}

/** What one change of a key does: the new record (and further writes), and its event. */
interface KeyChange<T extends Envelope> {
  action: TransactionName;
  check: Check<T>;
  permission: Permission;
  change: (
    key: KeyRecord,
    write: Write<T>,
    proof: Proof,
  ) => Promise<{ key: KeyRecord; extra?: [string, unknown][] }> | { key: KeyRecord; extra?: [string, unknown][] };
  event: (before: KeyRecord, after: KeyRecord, request: T) => Event;
}

/** The shared path of the transactions that change one key under one permission of its policy. */
function changeKey<T extends Envelope & { KeyID: string }>(
  ctx: Context,
  rule: KeyChange<T>,
  requestJson: string,
  jws: string,
): Promise<string> {
  return submit(
    ctx,
    {
      action: rule.action,
      roles: [Role.Operator, Role.Application, Role.Device],
      check: rule.check,
      apply: async (write) => {
        const signer = await write.signedBy(AnchorKind.MetadataSigning);
        const before = await loadKey(write.store, write.request.KeyID);
        assertKeyPermission(before, write.caller, rule.permission);
        const { key, extra } = await rule.change(before, write, write.proof(signer.AnchorID));
        return keyOutcome(write.store, before, key, rule.event(before, key, write.request), extra);
      },
    },
    requestJson,
    jws,
  );
}

/** A change of one version's state (activate, deactivate, destroy): the Administer permission, the Version named. */
function changeVersion<T extends Envelope & { KeyID: string; Version: number }>(
  ctx: Context,
  action: TransactionName,
  check: Check<T>,
  to: (key: KeyRecord, version: number, now: TxTime, proof: Proof) => KeyRecord,
  event: EventName,
  requestJson: string,
  jws: string,
): Promise<string> {
  return changeKey(
    ctx,
    {
      action,
      check,
      permission: Permission.Administer,
      change: (key, write, proof) => ({ key: to(key, write.request.Version, write.now, proof) }),
      event: (_before, after, request) => ({ name: event, payload: { KeyID: after.KeyID, Version: request.Version } }),
    },
    requestJson,
    jws,
  );
}

export class KeyTransactions extends TransactionGroup {
  @Transaction()
  @Returns('string')
  async RegisterKey(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return submit(
      ctx,
      {
        action: TransactionName.RegisterKey,
        roles: [Role.Operator],
        check: requests.registerKey,
        apply: async (write) => {
          const { request, store } = write;
          const signer = await write.signedBy(AnchorKind.MetadataSigning);
          assertPolicyWellFormed(request.AccessPolicy);
          if ((await store.get(store.key(KeyType.Key, request.KeyID))) !== null) {
            throw new LedgerError(ErrorCode.KeyExists, `key ${request.KeyID} is already registered`);
          }
          if (request.Owner.Type === 'device') assertNotRevoked(await loadDevice(store, request.Owner.ID));
          const key = newKeyRecord(request, write.now, write.by, write.proof(signer.AnchorID));
          return keyOutcome(
            store,
            null,
            key,
            {
              name: EventName.KeyRegistered,
              payload: { KeyID: key.KeyID, Owner: key.Owner, Version: 1, State: request.InitialState },
            },
            [[store.key(KeyType.KeyByOwner, key.Owner.Type, key.Owner.ID, key.KeyID), { KeyID: key.KeyID }]],
          );
        },
      },
      requestJson,
      jws,
    );
  }

  @Transaction()
  @Returns('string')
  async ActivateKey(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return changeVersion(
      ctx,
      TransactionName.ActivateKey,
      requests.activateKey,
      activateKeyVersion,
      EventName.KeyActivated,
      requestJson,
      jws,
    );
  }

  /**
   * Rotates: the new version becomes active, the previous active one deactivated. `CurrentVersion` must
   * be the latest version (so of several gateways racing, one wins). A next-key commitment, when set,
   * must match the new version; a `NonceDigest`, when given, is consumed as a rotation nonce.
   */
  @Transaction()
  @Returns('string')
  async RotateKey(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return changeKey(
      ctx,
      {
        action: TransactionName.RotateKey,
        check: requests.rotateKey,
        permission: Permission.Rotate,
        change: async (key, write, proof) => {
          const rotated = rotateKeyRecord(key, write.request, write.now, proof);
          const digest = write.request.NonceDigest;
          if (digest === null) return { key: rotated };
          await assertNonceUnused(write.store, digest);
          const nonce = nonceRecord(write, digest, NoncePurpose.Rotation, key.KeyID);
          return { key: rotated, extra: [[write.store.key(KeyType.Nonce, digest), nonce]] };
        },
        event: (before, after, request) => ({
          name: EventName.KeyRotated,
          payload: {
            KeyID: after.KeyID,
            Version: after.LatestVersion,
            PreviousVersion: before.ActiveVersion,
            NonceDigest: request.NonceDigest,
          },
        }),
      },
      requestJson,
      jws,
    );
  }

  @Transaction()
  @Returns('string')
  async DeactivateKey(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return changeVersion(
      ctx,
      TransactionName.DeactivateKey,
      requests.deactivateKey,
      deactivateKeyVersion,
      EventName.KeyDeactivated,
      requestJson,
      jws,
    );
  }

  @Transaction()
  @Returns('string')
  async MarkKeyCompromised(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return changeKey(
      ctx,
      {
        action: TransactionName.MarkKeyCompromised,
        check: requests.markKeyCompromised,
        permission: Permission.Administer,
        change: (key, write, proof) => ({ key: compromiseKey(key, write.request.Version, write.now, proof) }),
        event: (before, after, request) => ({
          name: EventName.KeyCompromised,
          payload: {
            KeyID: after.KeyID,
            Versions: newlyCompromised(before, after),
            Reason: request.Reason,
            NextRotationDue: after.NextRotationDue,
          },
        }),
      },
      requestJson,
      jws,
    );
  }

  @Transaction()
  @Returns('string')
  async DestroyKeyVersion(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return changeVersion(
      ctx,
      TransactionName.DestroyKeyVersion,
      requests.destroyKeyVersion,
      destroyKeyVersionRecord,
      EventName.KeyVersionDestroyed,
      requestJson,
      jws,
    );
  }

  @Transaction()
  @Returns('string')
  async SetAccessPolicy(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return changeKey(
      ctx,
      {
        action: TransactionName.SetAccessPolicy,
        check: requests.setAccessPolicy,
        permission: Permission.Administer,
        change: (key, write, proof) => {
          assertPolicyWellFormed(write.request.AccessPolicy);
          return {
            key: { ...key, AccessPolicy: write.request.AccessPolicy, UpdatedAt: write.now.iso, Proof: proof },
          };
        },
        event: (_before, after) => ({
          name: EventName.AccessPolicyChanged,
          payload: { KeyID: after.KeyID, AccessPolicy: after.AccessPolicy },
        }),
      },
      requestJson,
      jws,
    );
  }

  @Transaction()
  @Returns('string')
  async SetRotationPolicy(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return changeKey(
      ctx,
      {
        action: TransactionName.SetRotationPolicy,
        check: requests.setRotationPolicy,
        permission: Permission.Administer,
        change: (key, write, proof) => ({
          key: setKeyRotationPolicy(key, write.request.RotationPolicy, write.now, proof),
        }),
        event: (_before, after) => ({
          name: EventName.RotationPolicyChanged,
          payload: { KeyID: after.KeyID, RotationPolicy: after.RotationPolicy, NextRotationDue: after.NextRotationDue },
        }),
      },
      requestJson,
      jws,
    );
  }

  @Transaction(false)
  @Returns('string')
  async GetKey(ctx: Context, keyId: string): Promise<string> {
    const caller = reader(ctx, AllRoles, TransactionName.GetKey);
    const key = await loadKey(new Store(ctx.stub), argId(keyId, 'keyId'), DeviceUse.Read);
    assertKeyPermission(key, caller, Permission.Read);
    return canonicalJson(key);
  }

  /** Every committed state of the key record: each version and state change with its TxID and time. */
  @Transaction(false)
  @Returns('string')
  async GetKeyHistory(ctx: Context, keyId: string): Promise<string> {
    const caller = reader(ctx, AllRoles, TransactionName.GetKeyHistory);
    const store = new Store(ctx.stub);
    const key = await loadKey(store, argId(keyId, 'keyId'), DeviceUse.History);
    assertKeyPermission(key, caller, Permission.Read);
    return canonicalJson(await store.history<KeyRecord>(store.key(KeyType.Key, key.KeyID)));
  }

  /** Keys whose NextRotationDue is at or before `at` (ISO time), earliest first. */
  @Transaction(false)
  @Returns('string')
  async ListKeysDueForRotation(ctx: Context, at: string, size: string, mark: string): Promise<string> {
    reader(ctx, Overseers, TransactionName.ListKeysDueForRotation);
    const atMs = Date.parse(validate(isoTime, at, 'at'));
    const store = new Store(ctx.stub);
    const page = await store.pageByRange<{ KeyID: string }>(
      DuePrefix,
      dueRangeEnd(atMs),
      pageSize(size),
      bookmark(mark),
    );
    const due: DueKey[] = [];
    for (const entry of page.Records) {
      const listed = dueEntry(await loadKey(store, entry.KeyID, DeviceUse.Read), atMs);
      if (listed !== null) due.push(listed);
    }
    return canonicalJson({ ...page, Records: due });
  }

  /**
   * Whether the caller may perform `operation` with a key now: needs Use permission; protect operations
   * (encrypt, sign, wrap, mac-generate) need the active version, process operations (decrypt, verify,
   * unwrap, mac-verify) any version not destroyed. `version` empty means the active version.
   */
  @Transaction(false)
  @Returns('string')
  async AuthorizeKeyUse(ctx: Context, keyId: string, operation: string, version: string): Promise<string> {
    const caller = reader(ctx, AllRoles, TransactionName.AuthorizeKeyUse);
    const op = validate(oneOf(KeyOperations), operation, 'operation');
    const wanted = version === '' ? null : validate(str({ max: 7, pattern: /^[1-9]\d*$/ }), version, 'version');
    const key = await loadKey(new Store(ctx.stub), argId(keyId, 'keyId'), DeviceUse.Read);
    assertKeyPermission(key, caller, Permission.Use);
    return canonicalJson(keyUse(key, op, wanted === null ? null : Number(wanted), caller));
  }
}
