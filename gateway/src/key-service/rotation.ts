/**
 * Server-side rotation of application keys (docs/key-service.md §4), consistent with the device
 * design's pre-rotation (docs/protocol-rotation.md §8): version n+1 already sits in the HSM and the
 * ledger holds a commitment to its fingerprint; rotating commits it with `RotateKey {CurrentVersion:
 * n}` and pre-generates n+2 (or adopts an uncommitted AES n+2 already on the token). Of several
 * gateways racing, the ledger's CurrentVersion check lets one win; every loser destroys exactly the
 * objects it generated that the ledger does not account for (by CKA_ID, never by label).
 */
import { ledgerPort, ledgerRefusalCode } from '../ledger/port';
import {
  isAccountedFor,
  type KeyRecord,
  KeyState,
  nextKeyCommitment,
  parseVersionLabel,
  Permission,
  sha256Hex,
  versionLabel,
} from '@keyfleet/protocol';
import type { Principal } from '../auth/bearer';
import { newKeyedLock } from '../keyed-lock';
import { GatewayError, GatewayErrorCode } from '../errors';
import { formatPkcs11Uri, isHsmError, parsePkcs11Uri, type Hsm, type KeyKind, type KeyRef } from '../hsm';
import type { LedgerClient } from '../ledger/ledger-client';
import { generateVersionKey } from '../rotation/hsm-steps';
import { assertPermitted } from './access';
import { fail, KeyServiceErrorDetail } from './errors';

export interface ApplicationKeyRotationOptions {
  readonly hsm: Hsm;
  /** Writes as the gateway's operator identity; the key's policy must give it Rotate (and Administer to destroy). */
  readonly ledger: LedgerClient;
  readonly now?: () => Date;
}

export interface RotateOptions {
  /** Rotate only if the ledger still says the key is due by this time (the scheduler's case). */
  readonly ifDueBy?: Date;
  /**
   * The caller, checked against the key's Rotate policy before anything is generated. Absent only
   * when the gateway acts for itself (the scheduler); the ledger then checks the gateway's identity.
   */
  readonly by?: Principal;
}

export type ApplicationRotationResult =
  | {
      readonly outcome: 'rotated';
      readonly keyId: string;
      readonly version: number;
      readonly previousVersion: number;
      readonly transactionId: string;
    }
  | { readonly outcome: 'not-due'; readonly keyId: string };

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

export interface ApplicationKeyRotation {
  /**
   * Rotates an application-owned key now: commits the pre-generated next version (or generates
   * one for a key that has no commitment yet) and pre-generates the one after (or adopts the
   * uncommitted AES one a crash or another gateway left under that label).
   * @throws GatewayError LEDGER_REJECTED/STALE_VERSION or ROTATION_IN_PROGRESS when another rotation
   *   won; FORBIDDEN/ACCESS_DENIED (`by` may not rotate it); FORBIDDEN/KEY_DEVICE_OWNED;
   *   NOT_FOUND/KEY_NOT_FOUND; HSM_FAILURE/KEY_MATERIAL_MISSING
   */
  rotateApplicationKey(keyId: string, options?: RotateOptions): Promise<ApplicationRotationResult>;
  /**
   * For every `key:<KeyID>:v<n>` object in the HSM: a version past retention is destroyed on the
   * ledger first (DestroyKeyVersion), then in the HSM; a version the ledger already records as
   * destroyed (a crash between the two) is destroyed in the HSM.
   */
  destroyExpiredVersions(): Promise<DestroyExpiredResult>;
}

/** A generated or found version object: what RotateKey records and how to destroy it again. */
interface Material {
  readonly version: number;
  readonly fingerprint: string;
  readonly fingerprintType: 'kcv' | 'spki-sha256';
  readonly uri: string;
  readonly ref: KeyRef;
  readonly kinds: readonly KeyKind[];
}

export function newApplicationKeyRotation(options: ApplicationKeyRotationOptions): ApplicationKeyRotation {
  const { hsm } = options;
  const ledger = ledgerPort(options.ledger);
  const now = options.now ?? (() => new Date());

  /** One rotation per key at a time in this process; across processes the ledger decides. */
  const exclusively = newKeyedLock();

  async function readKey(keyId: string): Promise<KeyRecord> {
    const key = await ledger.keys.get(keyId);
    if (key === null) fail(GatewayErrorCode.NotFound, KeyServiceErrorDetail.KeyNotFound, `key ${keyId} does not exist`);
    return key;
  }

  function hsmError(err: unknown): unknown {
    if (isHsmError(err) && err.code === 'HSM_KEY_EXISTS') {
      return new GatewayError(
        GatewayErrorCode.LedgerRejected,
        'another rotation of this key holds the next version in the HSM',
        KeyServiceErrorDetail.RotationInProgress,
        { cause: err },
      );
    }
    return isHsmError(err)
      ? new GatewayError(GatewayErrorCode.HsmFailure, 'the HSM failed', err.code, { cause: err })
      : err;
  }

  async function generate(key: KeyRecord, version: number): Promise<Material> {
    try {
      if (key.Algorithm === 'AES-256') {
        // The device design's helper: AES-256, encrypt/decrypt, its check value the fingerprint.
        const made = await generateVersionKey(hsm, key.KeyID, version, { extractable: false });
        const id = parsePkcs11Uri(made.uri).id;
        if (id === undefined) throw new Error('the generated key has no CKA_ID');
        return {
          version,
          fingerprint: made.kcv,
          fingerprintType: 'kcv',
          uri: made.uri,
          ref: { id },
          kinds: ['secret'],
        };
      }
      const made = await hsm.generateEcKeyPair({ label: versionLabel(key.KeyID, version), sign: true });
      return {
        version,
        fingerprint: sha256Hex(made.spki),
        fingerprintType: 'spki-sha256',
        uri: made.uri,
        ref: { id: made.id },
        kinds: ['private', 'public'],
      };
    } catch (err) {
      throw hsmError(err);
    }
  }

  /** The pre-generated object of `version` whose fingerprint hashes to the ledger's commitment. */
  async function findCommitted(key: KeyRecord, version: number, commitment: string): Promise<Material | null> {
    const label = versionLabel(key.KeyID, version);
    if (key.Algorithm === 'AES-256') {
      for (const found of await hsm.findKeys({ label, kind: 'secret' })) {
        if (found.checkValue?.length !== 3) continue;
        const id = Buffer.from(found.id);
        const kcv = Buffer.from(found.checkValue).toString('hex');
        if (nextKeyCommitment(kcv) !== commitment) continue;
        const uri = formatPkcs11Uri({ token: hsm.tokenLabel, object: label, id, type: 'secret-key' });
        return { version, fingerprint: kcv, fingerprintType: 'kcv', uri, ref: { id }, kinds: ['secret'] };
      }
      return null;
    }
    for (const found of await hsm.findKeys({ label, kind: 'public' })) {
      const pub = await hsm.getPublicKey({ id: found.id });
      const fingerprint = sha256Hex(pub.spki);
      if (nextKeyCommitment(fingerprint) !== commitment) continue;
      return {
        version,
        fingerprint,
        fingerprintType: 'spki-sha256',
        uri: pub.uri,
        ref: { id: pub.id },
        kinds: ['private', 'public'],
      };
    }
    return null;
  }

  /**
   * An AES object of `version` (n+2) left on the token: by an ambiguous failure, or by another
   * gateway's rotation in flight. The ledger never accounts for an n+2, it never left the HSM, and
   * it is as good as a fresh key, so the rotation adopts it (docs/key-service.md §4). EC pairs are
   * not adopted: their CKA_ID is set after generation, so an object in flight has no stable id yet.
   */
  async function findLeftover(key: KeyRecord, version: number): Promise<Material | null> {
    if (key.Algorithm !== 'AES-256') return null;
    const label = versionLabel(key.KeyID, version);
    for (const found of await hsm.findKeys({ label, kind: 'secret' })) {
      if (!found.token || found.keyType !== 'aes' || found.extractable !== false) continue;
      if (found.checkValue?.length !== 3) continue;
      const id = Buffer.from(found.id);
      const kcv = Buffer.from(found.checkValue).toString('hex');
      const uri = formatPkcs11Uri({ token: hsm.tokenLabel, object: label, id, type: 'secret-key' });
      return { version, fingerprint: kcv, fingerprintType: 'kcv', uri, ref: { id }, kinds: ['secret'] };
    }
    return null;
  }

  /** Version n+2: generated, or adopted when the label is taken by an uncommitted AES object. */
  async function generateOrAdopt(key: KeyRecord, version: number): Promise<{ material: Material; generated: boolean }> {
    try {
      return { material: await generate(key, version), generated: true };
    } catch (err) {
      if (!(err instanceof GatewayError && err.detail === KeyServiceErrorDetail.RotationInProgress)) throw err;
      const leftover = await findLeftover(key, version);
      if (leftover === null) throw err;
      return { material: leftover, generated: false };
    }
  }

  /**
   * After a definite refusal: destroys what this call generated, except what the ledger now
   * accounts for (another gateway adopted our n+2 and won with it). If the ledger cannot be read,
   * everything is left to reconcile.
   */
  async function destroyGenerated(keyId: string, made: readonly Material[]): Promise<void> {
    if (made.length === 0) return;
    let key: KeyRecord | null;
    try {
      key = await ledger.keys.get(keyId);
    } catch {
      return;
    }
    if (key === null) return;
    for (const m of made) {
      if (isAccountedFor(key, m.version, m.fingerprint)) continue;
      await hsm.destroyKey(m.ref, m.kinds).catch(() => 0);
    }
  }

  async function rotate(keyId: string, options: RotateOptions): Promise<ApplicationRotationResult> {
    const key = await readKey(keyId);
    // First, before anything is generated: a refusal writes nothing and tells a stranger no more.
    if (options.by !== undefined) assertPermitted(options.by, key, Permission.Rotate);
    if (key.Owner.Type !== 'application') {
      fail(
        GatewayErrorCode.Forbidden,
        KeyServiceErrorDetail.KeyDeviceOwned,
        `key ${keyId} belongs to device ${key.Owner.ID}: the device rotates it`,
      );
    }
    if (key.Algorithm !== 'AES-256' && key.Algorithm !== 'EC-P256') {
      fail(
        GatewayErrorCode.Forbidden,
        KeyServiceErrorDetail.AlgorithmUnsupported,
        `${key.Algorithm} keys are not rotated here`,
      );
    }
    if (key.Algorithm === 'AES-256' && key.Purpose !== 'encrypt') {
      fail(
        GatewayErrorCode.Forbidden,
        KeyServiceErrorDetail.AlgorithmUnsupported,
        `AES-256 ${key.Purpose} keys are not rotated here`,
      );
    }
    if (
      options.ifDueBy !== undefined &&
      (key.NextRotationDue === null || Date.parse(key.NextRotationDue) > options.ifDueBy.getTime())
    ) {
      return { outcome: 'not-due', keyId };
    }
    const n = key.LatestVersion;
    const made: Material[] = [];
    let committed = false;
    try {
      // n+2 first. Its label taken means a rotation in flight elsewhere or a leftover of an
      // ambiguous failure: either way an uncommitted AES key, adopted rather than refused, so a
      // leftover never blocks the key's rotations (the ledger still lets one rotation win).
      const { material: following, generated } = await generateOrAdopt(key, n + 2);
      if (generated) made.push(following);
      let next: Material | null;
      if (key.NextKeyCommitment === null) {
        next = await generate(key, n + 1);
        made.push(next);
      } else {
        next = await findCommitted(key, n + 1, key.NextKeyCommitment);
        if (next === null) {
          fail(
            GatewayErrorCode.HsmFailure,
            KeyServiceErrorDetail.KeyMaterialMissing,
            `the committed next version ${n + 1} of key ${keyId} is not in the HSM`,
          );
        }
      }
      const { transactionId } = await ledger.keys.rotate({
        KeyID: keyId,
        CurrentVersion: n,
        NewVersion: {
          Fingerprint: next.fingerprint,
          FingerprintType: next.fingerprintType,
          Pkcs11URI: next.uri,
          WrappedKeyDigest: null,
        },
        NextKeyCommitment: nextKeyCommitment(following.fingerprint),
        NonceDigest: null,
      });
      committed = true;
      return { outcome: 'rotated', keyId, version: n + 1, previousVersion: n, transactionId };
    } catch (err) {
      // A definite refusal (STALE_VERSION: another gateway won) leaves nothing behind; an unknown
      // outcome (LEDGER_UNAVAILABLE) leaves the objects to reconcile, which asks the ledger.
      const ambiguous = err instanceof GatewayError && err.code === GatewayErrorCode.LedgerUnavailable;
      if (!committed && !ambiguous) await destroyGenerated(keyId, made);
      throw err;
    }
  }

  return {
    rotateApplicationKey(keyId, rotateOptions = {}) {
      return exclusively(keyId, () => rotate(keyId, rotateOptions));
    },

    async destroyExpiredVersions() {
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
      const at = now().getTime();
      for (const [keyId, versions] of byKey) {
        const key = await ledger.keys.get(keyId);
        if (key === null) continue; // uncommitted: the rotation reconcile's case
        for (const record of key.Versions) {
          const objects = versions.get(record.Version);
          if (objects === undefined) continue;
          const ledgerId = idOf(record.Pkcs11URI);
          let transactionId = '';
          if (record.State === KeyState.Deactivated || record.State === KeyState.Compromised) {
            const stoppedAt = record.DeactivatedAt ?? record.CompromisedAt;
            const retentionEnds =
              stoppedAt === null ? -Infinity : Date.parse(stoppedAt) + key.RotationPolicy.RetentionSeconds * 1000;
            if (at < retentionEnds) continue;
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
