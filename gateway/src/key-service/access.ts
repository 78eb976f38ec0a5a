/**
 * Who may do what with which key version: the gateway-side decision for callers that reach the
 * ledger through the gateway's own identity (docs/key-service.md §3). Pure: the same chaincode
 * `isPermitted` (role ceiling → implicit grants → the key's policy) over one `GetKey` record.
 */
import {
  isPermitted,
  KeyState,
  Msp,
  Permission,
  Role,
  type Caller,
  type KeyRecord,
  type KeyVersion,
} from '@keyfleet/chaincode';
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
  const wanted = version ?? key.ActiveVersion;
  if (wanted === null) {
    const latest = key.Versions.find((v) => v.Version === key.LatestVersion);
    if (latest?.State === KeyState.Compromised) {
      fail(GatewayErrorCode.Forbidden, KeyServiceErrorDetail.KeyCompromised, `key ${key.KeyID} is compromised`);
    }
    fail(GatewayErrorCode.Forbidden, KeyServiceErrorDetail.KeyNotUsable, `key ${key.KeyID} has no active version`);
  }
  const found = key.Versions.find((v) => v.Version === wanted);
  if (found === undefined) {
    fail(GatewayErrorCode.NotFound, KeyServiceErrorDetail.VersionNotFound, `key ${key.KeyID} has no version ${wanted}`);
  }
  switch (found.State) {
    case KeyState.Active:
      return found;
    case KeyState.Deactivated:
      if (need.protect) break;
      return found;
    case KeyState.Compromised:
      // KMIP 2.1 §3.31 / NIST SP 800-57 §5.3.5: never to protect; to process (recover data
      // protected before the compromise) only when the caller says so in the request.
      if (!need.protect && use !== KeyUse.Export && options.allowCompromised === true) return found;
      fail(
        GatewayErrorCode.Forbidden,
        KeyServiceErrorDetail.KeyCompromised,
        `key ${key.KeyID} version ${wanted} was marked compromised at ${found.CompromisedAt ?? '?'}`,
      );
    // falls through: fail() never returns
    case KeyState.Destroyed:
      fail(
        GatewayErrorCode.Forbidden,
        KeyServiceErrorDetail.VersionDestroyed,
        `key ${key.KeyID} version ${wanted} was destroyed`,
      );
    // falls through: fail() never returns
    case KeyState.PreActive:
      break;
  }
  fail(
    GatewayErrorCode.Forbidden,
    KeyServiceErrorDetail.KeyNotUsable,
    `key ${key.KeyID} version ${wanted} is ${found.State}: ${use} is not allowed`,
  );
}
