/**
 * keyfleet's PKCS#11 layer: one token chosen by an RFC 7512 URI, a pool of logged-in sessions,
 * and the operations the protocols need. Keys never leave the token in the clear.
 *
 * Nothing here loads native code until {@link newHsm} is called.
 *
 * @packageDocumentation
 */
import type { Hsm, HsmOptions } from './hsm.js';
import { openPkcs11Hsm } from './pkcs11-hsm.js';

export type {
  AesCbcDerivation,
  AesGcmCiphertext,
  EcKeyPairTemplate,
  EcPublicKey,
  Hsm,
  HsmOptions,
  KeyAttributes,
  KeyKind,
  KeyRef,
  PinSource,
  ReplicaHsm,
  EcPrivateKeyTemplate,
  SecretKeyInfo,
  SecretKeyTemplate,
  SecretKeyType,
  SecretKeyUsage,
  Signer,
} from './hsm.js';
export { HsmError, HsmErrorCode, isHsmError } from './hsm-error.js';
export { formatPkcs11Uri, parsePkcs11Uri } from './pkcs11-uri.js';
export type { Pkcs11ObjectType, Pkcs11Uri } from './pkcs11-uri.js';
export { gatewayKeys, verifierKeys, ensureKeys } from './key-inventory.js';
export type { GatewayKey, EnsureKeysResult } from './key-inventory.js';

/**
 * Opens the token named by `options.uri` (loading the PKCS#11 library and calling C_Initialize
 * with CKF_OS_LOCKING_OK on first use in the process) and logs in with the user PIN.
 *
 * @example
 * ```ts
 * const hsm = await newHsm({ uri: 'pkcs11:token=keyfleet', modulePath, pin: { env: 'KEYFLEET_HSM_PIN' } });
 * const gateway = connect({ client, identity, signer: hsm.newSigner({ label: 'fabric-identity' }) });
 * ```
 * @throws HsmError `HSM_INVALID_URI`, `HSM_PIN_UNAVAILABLE`, `HSM_MODULE_FAILED`, `HSM_TOKEN_NOT_FOUND`,
 *   `HSM_PIN_INCORRECT`, `HSM_PIN_LOCKED`, `HSM_SESSION_FAILED`
 */
export function newHsm(options: HsmOptions): Promise<Hsm> {
  return openPkcs11Hsm(options);
}
