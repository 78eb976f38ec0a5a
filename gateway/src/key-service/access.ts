/**
 * Who may do what with which key version: the gateway-side decision for callers that reach the
 * ledger through the gateway's own identity (docs/key-service.md §3). Pure: the protocol's
 * `isPermitted` (role ceiling → implicit grants → the key's policy) and `keyVersionForUse` (the
 * rule the contract's AuthorizeKeyUse applies too) over one `GetKey` record.
 */
import {
  isPermitted,
  KeyUseRefusal,
  keyVersionForUse,
  Msp,
  Permission,
  Role,
  type Caller,
  type KeyRecord,
  type KeyVersion,
} from '@keyfleet/protocol';
import type { Principal } from '../auth/bearer';
import { GatewayErrorCode } from '../errors';
import { fail, KeyServiceErrorDetail } from './errors';

/** Operations of the key service. */
export const KeyUse = {
  Encrypt: 'encrypt',
  Decrypt: 'decrypt',
  Sign: 'sign',
  Verify: 'verify',
  /** Public key export for a device (EC keys). */
  Export: 'export',
} as const;
export type KeyUse = (typeof KeyUse)[keyof typeof KeyUse];

/** What each operation needs of the key: the ledger permission, algorithm, purposes. */
const requirement: Readonly<
  Record<KeyUse, { permission: Permission; algorithm: string; purposes: readonly string[]; protect: boolean }>
> = {
  encrypt: { permission: Permission.Use, algorithm: 'AES-256', purposes: ['encrypt'], protect: true },
  decrypt: { permission: Permission.Use, algorithm: 'AES-256', purposes: ['encrypt'], protect: false },
  sign: { permission: Permission.Use, algorithm: 'EC-P256', purposes: ['sign'], protect: true },
  verify: { permission: Permission.Use, algorithm: 'EC-P256', purposes: ['sign'], protect: false },
  export: { permission: Permission.Read, algorithm: 'EC-P256', purposes: ['sign', 'agree'], protect: false },
};

/**
 * The ledger caller a bearer principal stands for: operators and applications are Org1MSP
 * identities named by their token subject, auditors Org2MSP (they hold Read only).
 */
export function callerOf(by: Principal): Caller {
  if (by.role === 'auditor') return { MSPID: Msp.Verifier, Role: Role.Auditor, ID: by.subject };
  return { MSPID: Msp.Operator, Role: by.role === 'operator' ? Role.Operator : Role.Application, ID: by.subject };
}

/** Throws FORBIDDEN/ACCESS_DENIED unless the key's policy gives `by` the permission. */
export function assertPermitted(by: Principal, key: KeyRecord, permission: Permission): void {
  if (!isPermitted(key.AccessPolicy, callerOf(by), permission)) {
    fail(
      GatewayErrorCode.Forbidden,
      KeyServiceErrorDetail.AccessDenied,
      `${by.role} ${by.subject} may not ${permission.toLowerCase()} key ${key.KeyID}`,
    );
  }
}

/**
 * The version `use` may run with, or a coded refusal. Checks, in this order so a refusal never
 * tells a stranger more than it may read: access policy → algorithm and purpose → version exists →
 * its state. Encrypt and sign take the active version only; decrypt, verify and export any version
 * that is active or deactivated. A compromised version never protects; it decrypts or verifies
 * only when the caller sets `allowCompromised` (recovery, docs/key-service.md §3) — the
 * chaincode's AuthorizeKeyUse allows that without asking.
 */
export function authorizeUse(
  by: Principal,
  key: KeyRecord,
  use: KeyUse,
  version: number | null = null,
  options: { readonly allowCompromised?: boolean } = {},
): KeyVersion {
  const need = requirement[use];
  assertPermitted(by, key, need.permission);
  if (key.Algorithm !== need.algorithm || !need.purposes.includes(key.Purpose)) {
    fail(
      GatewayErrorCode.Forbidden,
      KeyServiceErrorDetail.PurposeMismatch,
      `key ${key.KeyID} is ${key.Algorithm} for ${key.Purpose}: it cannot ${use}`,
    );
  }
  // The one key-use rule (protocol key-use.ts), worded in the key service's codes.
  const choice = keyVersionForUse(key, version, {
    protect: need.protect,
    allowCompromised: use !== KeyUse.Export && options.allowCompromised === true,
  });
  if (choice.ok) return choice.version;
  const found = key.Versions.find((v) => v.Version === choice.version);
  switch (choice.refusal) {
    case KeyUseRefusal.KeyCompromised:
      fail(GatewayErrorCode.Forbidden, KeyServiceErrorDetail.KeyCompromised, `key ${key.KeyID} is compromised`);
    // falls through: fail() never returns
    case KeyUseRefusal.NoActiveVersion:
      fail(GatewayErrorCode.Forbidden, KeyServiceErrorDetail.KeyNotUsable, `key ${key.KeyID} has no active version`);
    // falls through: fail() never returns
    case KeyUseRefusal.VersionNotFound:
      fail(
        GatewayErrorCode.NotFound,
        KeyServiceErrorDetail.VersionNotFound,
        `key ${key.KeyID} has no version ${choice.version ?? '?'}`,
      );
    // falls through: fail() never returns
    case KeyUseRefusal.VersionCompromised:
      fail(
        GatewayErrorCode.Forbidden,
        KeyServiceErrorDetail.KeyCompromised,
        `key ${key.KeyID} version ${choice.version ?? '?'} was marked compromised at ${found?.CompromisedAt ?? '?'}`,
      );
    // falls through: fail() never returns
    case KeyUseRefusal.VersionDestroyed:
      fail(
        GatewayErrorCode.Forbidden,
        KeyServiceErrorDetail.VersionDestroyed,
        `key ${key.KeyID} version ${choice.version ?? '?'} was destroyed`,
      );
    // falls through: fail() never returns
    case KeyUseRefusal.VersionNotUsable:
      fail(
        GatewayErrorCode.Forbidden,
        KeyServiceErrorDetail.KeyNotUsable,
        `key ${key.KeyID} version ${choice.version ?? '?'} is ${found?.State ?? '?'}: ${use} is not allowed`,
      );
  }
}
