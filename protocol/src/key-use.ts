/**
 * Which version of a key an operation may use: the one rule the contract's AuthorizeKeyUse and the
 * gateway's key service both apply (after the access policy, policy.ts `isPermitted`). Each side
 * words its refusal in its own error codes; the decision is this function's.
 */
import { KeyState, type KeyRecord, type KeyVersion } from './types.js';

/** Operations on a key the ledger can authorise: protecting data needs the active version. */
export const KeyOperation = {
  protect: ['encrypt', 'sign', 'wrap', 'mac-generate'],
  process: ['decrypt', 'verify', 'unwrap', 'mac-verify'],
} as const;
export type KeyOperation = (typeof KeyOperation)['protect' | 'process'][number];
export const KeyOperations: readonly KeyOperation[] = [...KeyOperation.protect, ...KeyOperation.process];

export function isProtectingOperation(operation: string): boolean {
  return (KeyOperation.protect as readonly string[]).includes(operation);
}

/** Why no version may be used. */
export const KeyUseRefusal = {
  /** No version was named and the key has no active one; its latest version is compromised. */
  KeyCompromised: 'key-compromised',
  /** No version was named and the key has no active one. */
  NoActiveVersion: 'no-active-version',
  VersionNotFound: 'version-not-found',
  VersionCompromised: 'version-compromised',
  VersionDestroyed: 'version-destroyed',
  /** Pre-active, or deactivated for an operation that protects. */
  VersionNotUsable: 'version-not-usable',
} as const;
export type KeyUseRefusal = (typeof KeyUseRefusal)[keyof typeof KeyUseRefusal];

export type KeyVersionChoice =
  | { readonly ok: true; readonly version: KeyVersion }
  | { readonly ok: false; readonly refusal: KeyUseRefusal; readonly version: number | null };

/**
 * The version an operation may run with. `wanted` null means the active version. Protecting
 * (encrypt, sign, …) takes the active version only; processing (decrypt, verify, …) any active or
 * deactivated one, and a compromised one only when `allowCompromised` (KMIP 2.1 §3.31, NIST SP
 * 800-57 §5.3.5: never to protect; to process data protected before the compromise, on request).
 */
export function keyVersionForUse(
  key: KeyRecord,
  wanted: number | null,
  use: { readonly protect: boolean; readonly allowCompromised: boolean },
): KeyVersionChoice {
  const number = wanted ?? key.ActiveVersion;
  if (number === null) {
    const latest = key.Versions.find((v) => v.Version === key.LatestVersion);
    const refusal =
      latest?.State === KeyState.Compromised ? KeyUseRefusal.KeyCompromised : KeyUseRefusal.NoActiveVersion;
    return { ok: false, refusal, version: null };
  }
  const found = key.Versions.find((v) => v.Version === number);
  if (found === undefined) return { ok: false, refusal: KeyUseRefusal.VersionNotFound, version: number };
  const refuse = (refusal: KeyUseRefusal): KeyVersionChoice => ({ ok: false, refusal, version: number });
  switch (found.State) {
    case KeyState.Active:
      return { ok: true, version: found };
    case KeyState.Deactivated:
      return use.protect ? refuse(KeyUseRefusal.VersionNotUsable) : { ok: true, version: found };
    case KeyState.Compromised:
      return !use.protect && use.allowCompromised
        ? { ok: true, version: found }
        : refuse(KeyUseRefusal.VersionCompromised);
    case KeyState.Destroyed:
      return refuse(KeyUseRefusal.VersionDestroyed);
    case KeyState.PreActive:
      return refuse(KeyUseRefusal.VersionNotUsable);
  }
}
