/**
 * Device delivery on the HSM side (docs/protocol-rotation.md §3): a key version leaves the token
 * only wrapped (RFC 5649) under a KEK bound to (device, key, version), derived from the device
 * master key. Both derived keys are session objects, destroyed after use.
 */
import { randomUUID, type KeyObject } from 'node:crypto';
import { kekDerivationData, KekIv } from '@keyfleet/protocol';
import type { Hsm, KeyRef } from '../hsm';

/** A unique label for a session object that lives only for one operation. */
const sessionLabel = (what: string): string => `${what}:${randomUUID()}`;

/**
 * Runs `use` with the device master key: ECDH (CKM_ECDH1_DERIVE, CKD_NULL) between the HSM's
 * key-exchange key and the device's certified P-256 key, as a session object that is destroyed
 * afterwards. It is deterministic, so it is derived again whenever needed rather than kept.
 */
export async function withDeviceMasterKey<T>(
  hsm: Hsm,
  keyExchangeLabel: string,
  devicePublicKey: KeyObject | Uint8Array,
  use: (dmk: KeyRef) => Promise<T>,
): Promise<T> {
  const dmk = { label: sessionLabel('dmk') };
  try {
    await hsm.deriveEcdh({ label: keyExchangeLabel }, devicePublicKey, {
      label: dmk.label,
      type: 'aes-256',
      usage: ['derive'],
      token: false,
    });
    return await use(dmk);
  } finally {
    await destroyQuietly(hsm, dmk);
  }
}

/**
 * Derives the KEK of (device, key, version) from the master key with CKM_AES_CBC_ENCRYPT_DATA
 * (IV zero, data = {@link kekDerivationData}) as a wrap-only session object, wraps `key` under it
 * with CKM_AES_KEY_WRAP_PAD (RFC 5649), and destroys the KEK.
 */
export async function wrapForDevice(
  hsm: Hsm,
  dmk: KeyRef,
  binding: { readonly deviceId: string; readonly keyId: string; readonly version: number },
  key: KeyRef,
): Promise<Uint8Array> {
  const kek = { label: sessionLabel('kek') };
  try {
    await hsm.deriveAesCbc(
      dmk,
      { iv: KekIv, data: kekDerivationData(binding.deviceId, binding.keyId, binding.version) },
      { label: kek.label, type: 'aes-256', usage: ['wrap'], token: false },
    );
    return await hsm.wrapKey(kek, key);
  } finally {
    await destroyQuietly(hsm, kek);
  }
}

/** Destroys a session object; a failure here must not hide the error that got us here. */
async function destroyQuietly(hsm: Hsm, ref: KeyRef): Promise<void> {
  try {
    await hsm.destroyKey(ref, ['secret']);
  } catch {
    // Session objects vanish with their session anyway (PKCS#11 v2.40 §4.4: CKA_TOKEN false).
  }
}
