/**
 * Server-side rotation of application keys (docs/key-service.md §4), consistent with the device
 * design's pre-rotation (docs/protocol-rotation.md §8): the key-version engine commits the
 * pre-generated n+1 and pre-generates (or adopts) n+2 (key-versions/engine.ts). What is particular
 * to application keys is here: the caller's Rotate policy, the owner and algorithm checks, and
 * the scheduler's "only if still due" — all before anything is generated.
 */
import { type KeyRecord, Permission } from '@keyfleet/protocol';
import type { Principal } from '../auth/bearer';
import { GatewayErrorCode } from '../errors';
import type { Hsm } from '../hsm';
import { newKeyVersionEngine, type DestroyExpiredResult, type KeyVersionEngine } from '../key-versions/engine';
import type { LedgerClient } from '../ledger/ledger-client';
import { ledgerPort } from '../ledger/port';
import { assertPermitted } from './access';
import { fail, KeyServiceErrorDetail } from './errors';

export type { DestroyedVersion, DestroyExpiredResult } from '../key-versions/engine';

export interface ApplicationKeyRotationOptions {
  readonly hsm: Hsm;
  /** Writes as the gateway's operator identity; the key's policy must give it Rotate (and Administer to destroy). */
  readonly ledger: LedgerClient;
  readonly now?: () => Date;
  /** Default one of its own over `hsm` and `ledger`. */
  readonly engine?: KeyVersionEngine;
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
  /** Versions past retention destroyed, on the ledger then in the HSM (the engine's `destroyExpired`). */
  destroyExpiredVersions(): Promise<DestroyExpiredResult>;
}

export function newApplicationKeyRotation(options: ApplicationKeyRotationOptions): ApplicationKeyRotation {
  const ledger = ledgerPort(options.ledger);
  const now = options.now ?? (() => new Date());
  const engine = options.engine ?? newKeyVersionEngine(options);

  /** Why this key may not be rotated here now, checked before anything is generated. */
  function assertRotatable(key: KeyRecord, by: Principal | undefined): void {
    // The caller's policy first: a refusal writes nothing and tells a stranger no more.
    if (by !== undefined) assertPermitted(by, key, Permission.Rotate);
    if (key.Owner.Type !== 'application') {
      fail(
        GatewayErrorCode.Forbidden,
        KeyServiceErrorDetail.KeyDeviceOwned,
        `key ${key.KeyID} belongs to device ${key.Owner.ID}: the device rotates it`,
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
  }

  return {
    rotateApplicationKey(keyId, { ifDueBy, by } = {}) {
      return engine.exclusively(keyId, async () => {
        const key = await ledger.keys.get(keyId);
        if (key === null)
          fail(GatewayErrorCode.NotFound, KeyServiceErrorDetail.KeyNotFound, `key ${keyId} does not exist`);
        assertRotatable(key, by);
        const due = key.NextRotationDue === null ? Infinity : Date.parse(key.NextRotationDue);
        if (ifDueBy !== undefined && due > ifDueBy.getTime()) return { outcome: 'not-due', keyId };
        const { transactionId } = await engine.advance(key);
        const previousVersion = key.LatestVersion;
        return { outcome: 'rotated', keyId, version: previousVersion + 1, previousVersion, transactionId };
      });
    },

    destroyExpiredVersions: () => engine.destroyExpired(now()),
  };
}
