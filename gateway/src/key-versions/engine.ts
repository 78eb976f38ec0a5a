/**
 * The one key-version engine (docs/protocol-rotation.md §3, §7–8; docs/key-service.md §4), under
 * device and application keys alike. A key's versions live in the HSM; the ledger records which
 * of them exist. Pre-rotation: version n+1 already sits in the HSM and the ledger holds a
 * commitment to its fingerprint, so a rotation commits n+1 and pre-generates n+2.
 *
 * - register: version 1 (and, pre-rotated, version 2) generated, then RegisterKey;
 * - advance: the committed n+1 found, n+2 generated or adopted, then RotateKey;
 * - compensate: after a definite refusal, what this call generated and the ledger does not
 *   account for is destroyed (by CKA_ID); after an unknown outcome (LEDGER_UNAVAILABLE) it is
 *   left to reconcile, which asks the ledger;
 * - reconcile (at start-up): each version object the ledger does not account for is destroyed,
 *   except n+2 (adopted by the next rotation); each ledger version the HSM lacks is reported;
 * - destroyExpired: versions past retention, on the ledger first, then in the HSM.
 *
 * The callers' differences are hooks: a device key's version is wrapped for its device before the
 * commit ({@link AdvanceOptions.deliver}); an application key's policy is checked by its caller
 * before {@link KeyVersionEngine.advance}. One lock per key ({@link KeyVersionEngine.exclusively})
 * serialises both in this process; across gateways the ledger's CurrentVersion check decides.
 */
import {
  isAccountedFor,
  type KeyRecord,
  KeyState,
  nextKeyCommitment,
  parseVersionLabel,
  type RegisterKeyRequest,
  sha256Hex,
} from '@keyfleet/protocol';
import { GatewayError, GatewayErrorCode } from '../errors';
import { failpoint } from '../failpoint';
import { HsmErrorCode, isHsmError, parsePkcs11Uri, type Hsm, type KeyRef } from '../hsm';
import { newKeyedLock, type KeyedLock } from '../keyed-lock';
import type { LedgerClient, Written } from '../ledger/ledger-client';
import { ledgerPort, ledgerRefusalCode, type Fields } from '../ledger/port';
import {
  findVersion,
  findVersionKeys,
  generateVersion,
  shapeOf,
  type VersionObject,
  type VersionShape,
} from './objects';

/** The engine's refusals, in `GatewayError.detail` (the `code` is LEDGER_REJECTED or HSM_FAILURE). */
export const KeyVersionErrorDetail = {
  /** Registration: version 1's label is taken (the key exists, or a registration was interrupted). */
  LabelTaken: 'HSM_KEY_EXISTS',
  /** Rotation: another rotation of this key holds the next version's label. */
  RotationInProgress: 'ROTATION_IN_PROGRESS',
  /** A version the ledger committed to is not in the HSM. */
  KeyMaterialMissing: 'KEY_MATERIAL_MISSING',
} as const;
export type KeyVersionErrorDetail = (typeof KeyVersionErrorDetail)[keyof typeof KeyVersionErrorDetail];

/** RegisterKey's fields but the version ones, which the engine fills in. */
export type KeyRegistrationFields = Omit<Fields<RegisterKeyRequest>, 'InitialVersion' | 'NextKeyCommitment'>;

export interface RegisterOptions {
  /** Version 2 generated too and committed as next, as the device protocol needs from the start. */
  readonly preRotate: boolean;
  /** The versions will be delivered wrapped (device keys), so AES ones are made extractable. */
  readonly delivered: boolean;
}

export interface AdvanceOptions {
  /**
   * Device keys: the new version wrapped for its device, made before the commit (the digest is
   * committed with it) and returned with the result: a wrapped key that leaves the gateway is
   * always on the ledger. With it, AES versions are generated (and adopted) extractable.
   */
  readonly deliver?: (next: VersionObject) => Promise<Uint8Array>;
  /** The request nonce RotateKey consumes (device requests); none for server-side rotations. */
  readonly nonceDigest?: string;
}

export interface Advanced {
  readonly transactionId: string;
  readonly record: KeyRecord;
  /** The version committed: n+1. */
  readonly committed: VersionObject;
  /** What {@link AdvanceOptions.deliver} made, if given. */
  readonly wrapped: Uint8Array | null;
}

export interface ReconcileResult {
  /** Labels of the version objects destroyed (by CKA_ID) because the ledger does not account for them. */
  readonly destroyed: readonly string[];
  /** Version objects the ledger accounts for, or n+2 kept for adoption. */
  readonly kept: number;
  /**
   * Versions the ledger records (or committed to as next) that the HSM lacks, of the keys the HSM
   * holds AES versions of: a fault to report, never a gap to fill.
   */
  readonly missing: readonly { readonly keyId: string; readonly version: number }[];
}

export interface DestroyedVersion {
  readonly keyId: string;
  readonly version: number;
  /** Empty when only the HSM object was left over from an earlier crash. */
  readonly transactionId: string;
}

export interface DestroyExpiredResult {
  readonly destroyed: readonly DestroyedVersion[];
  /** Versions past retention the ledger refused to destroy (e.g. no Administer), with its code. */
  readonly refused: readonly { readonly keyId: string; readonly version: number; readonly detail: string }[];
}

export interface KeyVersionEngine {
  /** One task per key at a time in this process, in arrival order: rotations read, check and advance inside it. */
  readonly exclusively: KeyedLock;
  /** Generates version 1 (and with `preRotate`, version 2, committed as next) and registers the key. */
  register(fields: KeyRegistrationFields, options: RegisterOptions): Promise<Written<KeyRecord>>;
  /**
   * Rotates `key` (as read inside {@link exclusively}) from LatestVersion n to n+1: the committed n+1
   * (generated when nothing is committed), n+2 generated or adopted, RotateKey with CurrentVersion n.
   * @throws GatewayError HSM_FAILURE/KEY_MATERIAL_MISSING, LEDGER_REJECTED/ROTATION_IN_PROGRESS, the ledger's refusals
   */
  advance(key: KeyRecord, options?: AdvanceOptions): Promise<Advanced>;
  /** Crash recovery, run before serving (docs/protocol-rotation.md §7). */
  reconcile(): Promise<ReconcileResult>;
  /**
   * For every version object in the HSM: a version past retention is destroyed on the ledger first
   * (DestroyKeyVersion), then in the HSM; a version the ledger already records as destroyed (a
   * crash between the two) is destroyed in the HSM.
   */
  destroyExpired(at: Date): Promise<DestroyExpiredResult>;
}

export interface KeyVersionEngineOptions {
  readonly hsm: Hsm;
  /** Writes as the gateway's operator identity, signed by the metadata-signing key. */
  readonly ledger: LedgerClient;
}

function fail(code: GatewayErrorCode, detail: KeyVersionErrorDetail, message: string, cause?: unknown): never {
  throw new GatewayError(code, message, detail, cause === undefined ? undefined : { cause });
}

/** An HSM error as the gateway reports it (HSM_FAILURE, the HSM's code in `detail`); others unchanged. */
export function hsmFailure(err: unknown): unknown {
  return isHsmError(err)
    ? new GatewayError(GatewayErrorCode.HsmFailure, 'the HSM failed', err.code, { cause: err })
    : err;
}

const labelTaken = (err: unknown): boolean => isHsmError(err) && err.code === HsmErrorCode.KeyExists;

export function newKeyVersionEngine(options: KeyVersionEngineOptions): KeyVersionEngine {
  const { hsm } = options;
  const ledger = ledgerPort(options.ledger);
  const exclusively = newKeyedLock();

  /** A fresh version; a taken label refuses with `detail` (nothing of ours to destroy). */
  async function generate(keyId: string, version: number, shape: VersionShape, detail: KeyVersionErrorDetail) {
    try {
      return await generateVersion(hsm, keyId, version, shape);
    } catch (err) {
      if (!labelTaken(err)) throw hsmFailure(err);
      fail(
        GatewayErrorCode.LedgerRejected,
        detail,
        `version ${version} of key ${keyId} is already in the HSM: another rotation or registration holds it, or reconcile() is due`,
        err,
      );
    }
  }

  /**
   * n+2: generated, or, when its label is taken, the uncommitted AES object of this key's shape
   * adopted. The ledger never accounts for an n+2, so such an object was left by an ambiguous
   * failure or is in flight on another gateway; it never left the HSM and is as good as a fresh
   * one. Adopted objects are not ours to destroy. EC pairs are not adopted: their CKA_ID is set
   * after generation, so a pair in flight has no stable id yet.
   */
  async function generateOrAdopt(key: KeyRecord, version: number, shape: VersionShape) {
    try {
      return { made: await generateVersion(hsm, key.KeyID, version, shape), generated: true };
    } catch (err) {
      if (!labelTaken(err)) throw hsmFailure(err);
      const [leftover] =
        shape.type === 'aes' ? await findVersionKeys(hsm, key.KeyID, version, hsm.tokenLabel, shape.extractable) : [];
      if (leftover !== undefined) return { made: leftover, generated: false };
      fail(
        GatewayErrorCode.LedgerRejected,
        KeyVersionErrorDetail.RotationInProgress,
        `version ${version} of key ${key.KeyID} is being created in the HSM by another rotation`,
        err,
      );
    }
  }

  /**
   * Runs `work`, which pushes each object it generates onto its list; on failure, compensates:
   * a definite refusal destroys what the ledger (read again) does not account for; an unknown
   * outcome (LEDGER_UNAVAILABLE: the write may yet commit) or an unreadable ledger leaves them to
   * reconcile. A generated object the ledger accounts for is kept: another gateway adopted our
   * n+2 and won the race with it.
   */
  async function compensating<T>(keyId: string, work: (made: VersionObject[]) => Promise<T>): Promise<T> {
    const made: VersionObject[] = [];
    try {
      return await work(made);
    } catch (err) {
      const ambiguous = err instanceof GatewayError && err.code === GatewayErrorCode.LedgerUnavailable;
      if (!ambiguous && made.length > 0) {
        const key = await ledger.keys.get(keyId).catch(() => undefined);
        const unaccounted = made.filter((o) => key !== undefined && !isAccountedFor(key, o.version, o.fingerprint));
        // By CKA_ID: another object may share the label (a duplicate), and it is not ours.
        for (const o of unaccounted) await hsm.destroyKey({ id: o.id }, o.kinds).catch(() => undefined);
      }
      throw err;
    }
  }

  const ledgerVersion = (object: VersionObject, wrapped: Uint8Array | null) => ({
    Fingerprint: object.fingerprint,
    FingerprintType: object.fingerprintType,
    Pkcs11URI: object.uri,
    WrappedKeyDigest: wrapped === null ? null : sha256Hex(wrapped),
  });

  return {
    exclusively,

    register(fields, { preRotate, delivered }) {
      const shape = shapeOf(fields, delivered);
      return exclusively(fields.KeyID, () =>
        compensating(fields.KeyID, async (made) => {
          const first = await generate(fields.KeyID, 1, shape, KeyVersionErrorDetail.LabelTaken);
          made.push(first);
          let next: VersionObject | null = null;
          if (preRotate) {
            next = await generate(fields.KeyID, 2, shape, KeyVersionErrorDetail.LabelTaken);
            made.push(next);
          }
          return ledger.keys.register({
            ...fields,
            // A device's wrap is bound to its certificate, not known here: no WrappedKeyDigest yet.
            InitialVersion: ledgerVersion(first, null),
            NextKeyCommitment: next === null ? null : nextKeyCommitment(next.fingerprint),
          });
        }),
      );
    },

    advance(key, advanceOptions = {}) {
      const shape = shapeOf(key, advanceOptions.deliver !== undefined);
      const n = key.LatestVersion;
      return compensating(key.KeyID, async (made) => {
        let next: VersionObject | null;
        if (key.NextKeyCommitment === null) {
          next = await generate(key.KeyID, n + 1, shape, KeyVersionErrorDetail.RotationInProgress);
          made.push(next);
        } else {
          // Of several objects labelled n+1, the one whose fingerprint the ledger committed to. Any
          // other would be refused (NEXT_KEY_MISMATCH), so its absence is a fault, not a gap to fill.
          next = await findVersion(hsm, key.KeyID, n + 1, shape, { commitment: key.NextKeyCommitment });
          if (next === null) {
            fail(
              GatewayErrorCode.HsmFailure,
              KeyVersionErrorDetail.KeyMaterialMissing,
              `the committed next version ${n + 1} of key ${key.KeyID} is not in the HSM`,
            );
          }
        }
        const following = await generateOrAdopt(key, n + 2, shape);
        if (following.generated) made.push(following.made);
        const wrapped = (await advanceOptions.deliver?.(next)) ?? null;
        failpoint('rotation-before-commit');
        const { transactionId, record } = await ledger.keys.rotate({
          KeyID: key.KeyID,
          CurrentVersion: n,
          NewVersion: ledgerVersion(next, wrapped),
          NextKeyCommitment: nextKeyCommitment(following.made.fingerprint),
          NonceDigest: advanceOptions.nonceDigest ?? null,
        });
        failpoint('rotation-after-commit');
        return { transactionId, record, committed: next, wrapped };
      });
    },

    async reconcile() {
      // Per object (CKA_ID), never per label: a duplicated label must not take the committed key with it.
      const byKey = new Map<string, { label: string; version: number; id: Uint8Array; kcv: string | null }[]>();
      for (const found of await hsm.findKeys({ kind: 'secret' })) {
        const parsed = parseVersionLabel(found.label);
        if (parsed === null || !found.token) continue;
        const kcv = found.checkValue?.length === 3 ? Buffer.from(found.checkValue).toString('hex') : null;
        const list = byKey.get(parsed.keyId) ?? [];
        list.push({ label: found.label, version: parsed.version, id: found.id, kcv });
        byKey.set(parsed.keyId, list);
      }
      const destroyed: string[] = [];
      const missing: { keyId: string; version: number }[] = [];
      let kept = 0;
      for (const [keyId, objects] of byKey) {
        const key = await ledger.keys.get(keyId);
        for (const { label, version, id, kcv } of objects) {
          // LatestVersion+2 may be another gateway's rotation in flight; the next rotation adopts it.
          if (isAccountedFor(key, version, kcv) || (key !== null && version === key.LatestVersion + 2)) {
            kept++;
            continue;
          }
          await hsm.destroyKey({ id }, ['secret']);
          destroyed.push(label);
        }
        if (key === null) continue;
        const held = (version: number) =>
          objects.some((o) => o.version === version && isAccountedFor(key, version, o.kcv));
        const expected = key.Versions.filter((v) => v.State !== KeyState.Destroyed).map((v) => v.Version);
        if (key.NextKeyCommitment !== null) expected.push(key.LatestVersion + 1);
        for (const version of expected) if (!held(version)) missing.push({ keyId, version });
      }
      return { destroyed, kept, missing };
    },

    async destroyExpired(at) {
      const byKey = new Map<string, Map<number, KeyRef[]>>();
      for (const found of await hsm.findKeys()) {
        if (found.kind === 'public' || !found.token) continue;
        const parsed = parseVersionLabel(found.label);
        if (parsed === null) continue;
        const versions = byKey.get(parsed.keyId) ?? new Map<number, KeyRef[]>();
        versions.set(parsed.version, [...(versions.get(parsed.version) ?? []), { id: found.id }]);
        byKey.set(parsed.keyId, versions);
      }
      const destroyed: DestroyedVersion[] = [];
      const refused: { keyId: string; version: number; detail: string }[] = [];
      for (const [keyId, versions] of byKey) {
        const key = await ledger.keys.get(keyId);
        if (key === null) continue; // uncommitted: reconcile's case
        for (const record of key.Versions) {
          const objects = versions.get(record.Version);
          if (objects === undefined) continue;
          let transactionId = '';
          if (record.State === KeyState.Deactivated || record.State === KeyState.Compromised) {
            const stoppedAt = record.DeactivatedAt ?? record.CompromisedAt;
            const retentionEnds =
              stoppedAt === null ? -Infinity : Date.parse(stoppedAt) + key.RotationPolicy.RetentionSeconds * 1000;
            if (at.getTime() < retentionEnds) continue;
            try {
              // Ledger first: once it says destroyed, no call uses the version, whatever the HSM still holds.
              ({ transactionId } = await ledger.keys.destroyVersion({ KeyID: keyId, Version: record.Version }));
            } catch (err) {
              const detail = ledgerRefusalCode(err);
              if (detail === undefined) throw err;
              refused.push({ keyId, version: record.Version, detail });
              continue;
            }
          } else if (record.State !== KeyState.Destroyed) {
            continue;
          }
          // Only the object the ledger names; a label lookalike is not ours to judge here.
          const ledgerId = idOf(record.Pkcs11URI);
          for (const ref of objects) {
            if (ledgerId !== undefined && 'id' in ref && Buffer.from(ref.id).equals(Buffer.from(ledgerId))) {
              await hsm.destroyKey(ref);
            }
          }
          destroyed.push({ keyId, version: record.Version, transactionId });
        }
      }
      return { destroyed, refused };
    },
  };
}

function idOf(uri: string): Uint8Array | undefined {
  try {
    return parsePkcs11Uri(uri).id;
  } catch {
    return undefined;
  }
}
