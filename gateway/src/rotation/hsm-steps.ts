/**
 * The rotation protocol's HSM side (docs/protocol-rotation.md §3). Every key stays in the token:
 * the gateway holds labels, the RFC 5649 wrap and a 3-byte check value, never key bytes.
 */
import { randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { formatPkcs11Uri, type Hsm, type KeyRef } from '../hsm';
import { KekIv, kekDerivationData, versionLabel } from './protocol';

/** A device key version on the token. */
export interface VersionKey {
  readonly keyId: string;
  readonly version: number;
  readonly label: string;
  /** Lowercase hex of CKA_CHECK_VALUE (3 bytes): the ledger Fingerprint, type `kcv`. */
  readonly kcv: string;
  readonly uri: string;
}

/**
 * CKA_ID of a version key: "KCV" ‖ check value (3 bytes) ‖ 10 random bytes. The check value is
 * kept on the object because the Hsm interface reads CKA_CHECK_VALUE only at generation, and
 * the pre-generated next version's value is needed again when it is delivered.
 */
const kcvIdPrefix = Buffer.from('KCV', 'ascii');

function kcvFromId(id: Uint8Array): string | null {
  const bytes = Buffer.from(id);
  if (bytes.length !== 16 || !bytes.subarray(0, 3).equals(kcvIdPrefix)) return null;
  return bytes.subarray(3, 6).toString('hex');
}

const sessionLabel = (what: string): string => `${what}:${randomUUID()}`;

/**
 * Generates version `version` of a device key: AES-256, sensitive, extractable only so it can
 * leave wrapped, usable for encrypt/decrypt. It is made as a session key, then moved under a
 * session transport key into its token object so its CKA_ID can carry the check value; the
 * transport key and the session copy are destroyed. Fails with HSM_KEY_EXISTS if the label is taken.
 */
export async function generateVersionKey(hsm: Hsm, keyId: string, version: number): Promise<VersionKey> {
  const label = versionLabel(keyId, version);
  const fresh = sessionLabel(`new:${label}`);
  const transport = sessionLabel('transport');
  try {
    const generated = await hsm.generateSecretKey({
      label: fresh,
      type: 'aes-256',
      usage: ['encrypt', 'decrypt'],
      extractable: true,
      token: false,
    });
    if (generated.checkValue?.length !== 3) {
      throw new Error('the token gives no CKA_CHECK_VALUE for AES keys; rotation needs one');
    }
    await hsm.generateSecretKey({ label: transport, type: 'aes-256', usage: ['wrap', 'unwrap'], token: false });
    const wrapped = await hsm.wrapKey({ label: transport }, { label: fresh });
    const id = Buffer.concat([kcvIdPrefix, Buffer.from(generated.checkValue), randomBytes(10)]);
    const stored = await hsm.unwrapKey({ label: transport }, wrapped, {
      label,
      id,
      type: 'aes-256',
      usage: ['encrypt', 'decrypt'],
      extractable: true,
      token: true,
    });
    return { keyId, version, label, kcv: Buffer.from(generated.checkValue).toString('hex'), uri: stored.uri };
  } finally {
    await destroyQuietly(hsm, { label: fresh });
    await destroyQuietly(hsm, { label: transport });
  }
}

/** The token object of a version, or null if there is none (or it was not made by {@link generateVersionKey}). */
export async function findVersionKey(
  hsm: Hsm,
  keyId: string,
  version: number,
  tokenLabel: string,
): Promise<VersionKey | null> {
  const label = versionLabel(keyId, version);
  const [found, ...more] = await hsm.findKeys({ label, kind: 'secret' });
  if (found === undefined || more.length > 0) return null;
  const kcv = kcvFromId(found.id);
  if (kcv === null) return null;
  return {
    keyId,
    version,
    label,
    kcv,
    uri: formatPkcs11Uri({ token: tokenLabel, object: label, id: found.id, type: 'secret-key' }),
  };
}

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
