/**
 * The rotation protocol's HSM side (docs/protocol-rotation.md §3). Every key stays in the token:
 * the gateway holds labels, the RFC 5649 wrap and a 3-byte check value, never key bytes.
 */
import { randomUUID, type KeyObject } from 'node:crypto';
import { formatPkcs11Uri, type Hsm, type KeyRef } from '../hsm';
import { kekDerivationData, KekIv, nextKeyCommitment, versionLabel } from '@keyfleet/protocol';

/** A device key version on the token. */
export interface VersionKey {
  readonly keyId: string;
  readonly version: number;
  readonly label: string;
  /** CKA_ID: labels are not unique on a shared token (docs/protocol-rotation.md §7), ids are. */
  readonly id: Uint8Array;
  /** Lowercase hex of CKA_CHECK_VALUE (3 bytes): the ledger Fingerprint, type `kcv`. */
  readonly kcv: string;
  readonly uri: string;
}

/**
 * What the ledger expects of a version's object: its Fingerprint (a committed version), or the
 * NextKeyCommitment its check value must hash to (the pre-generated next version).
 */
export type VersionExpectation = { readonly fingerprint: string } | { readonly commitment: string };

/**
 * Generates version `version` of a key as a token object labelled `key:<KeyID>:v<n>`: AES-256,
 * sensitive, usable for encrypt/decrypt. Device keys are extractable only so they can leave
 * wrapped (RFC 5649); application keys never leave. Its key check value (CKA_CHECK_VALUE, read
 * again by {@link findVersionKey}) is the ledger fingerprint. Fails with HSM_KEY_EXISTS if the
 * label is taken.
 */
export async function generateVersionKey(
  hsm: Hsm,
  keyId: string,
  version: number,
  options: { readonly extractable?: boolean } = {},
): Promise<VersionKey> {
  const label = versionLabel(keyId, version);
  const generated = await hsm.generateSecretKey({
    label,
    type: 'aes-256',
    usage: ['encrypt', 'decrypt'],
    extractable: options.extractable ?? true,
    token: true,
  });
  if (generated.checkValue?.length !== 3) {
    await hsm.destroyKey({ id: generated.id }, ['secret']);
    throw new Error('the token gives no CKA_CHECK_VALUE for AES keys; rotation needs one');
  }
  const key: VersionKey = {
    keyId,
    version,
    label,
    id: generated.id,
    kcv: Buffer.from(generated.checkValue).toString('hex'),
    uri: generated.uri,
  };
  generatedHere(hsm).remember(key);
  return key;
}

/**
 * The version keys this process generated, by label, bounded. The next rotation of a key looks
 * for the version it pre-generated; finding it by label would read every object on a SoftHSM
 * file store, so the one made here is tried first, by CKA_ID, and taken only if the token still
 * holds it under that label with the check value the ledger expects (see {@link findVersionKey}).
 */
class GeneratedVersions {
  static readonly #limit = 100_000;
  readonly #byLabel = new Map<string, VersionKey>();

  remember(key: VersionKey): void {
    if (this.#byLabel.size >= GeneratedVersions.#limit) {
      const oldest = this.#byLabel.keys().next();
      if (oldest.done !== true) this.#byLabel.delete(oldest.value);
    }
    this.#byLabel.set(key.label, key);
  }

  get(label: string): VersionKey | undefined {
    return this.#byLabel.get(label);
  }

  forget(label: string): void {
    this.#byLabel.delete(label);
  }
}

const generatedByHsm = new WeakMap<Hsm, GeneratedVersions>();

function generatedHere(hsm: Hsm): GeneratedVersions {
  let generated = generatedByHsm.get(hsm);
  if (generated === undefined) {
    generated = new GeneratedVersions();
    generatedByHsm.set(hsm, generated);
  }
  return generated;
}

/** The key this process generated under `label`, if the token still holds it as expected. */
async function generatedVersionKey(hsm: Hsm, label: string, expected: VersionExpectation): Promise<VersionKey | null> {
  const generated = generatedHere(hsm);
  const known = generated.get(label);
  if (known === undefined || !matchesExpectation(known.kcv, expected)) return null;
  try {
    // By CKA_ID through the HSM's handle cache: no walk over the token's objects.
    const found = await hsm.getKeyAttributes({ id: known.id }, 'secret');
    const kcv = found.checkValue === undefined ? '' : Buffer.from(found.checkValue).toString('hex');
    if (found.label === label && found.token && found.keyType === 'aes' && kcv === known.kcv) return known;
  } catch {
    // Gone or ambiguous: the search by label below decides.
  }
  generated.forget(label);
  return null;
}

/** A unique label for a session object that lives only for one operation. */
const sessionLabel = (what: string): string => `${what}:${randomUUID()}`;

/**
 * Every token AES object labelled as this version that has a check value (made by
 * {@link generateVersionKey}); several when gateways or a crash left duplicates.
 */
export async function findVersionKeys(
  hsm: Hsm,
  keyId: string,
  version: number,
  tokenLabel: string,
): Promise<VersionKey[]> {
  const label = versionLabel(keyId, version);
  const keys: VersionKey[] = [];
  for (const found of await hsm.findKeys({ label, kind: 'secret' })) {
    if (!found.token || found.keyType !== 'aes' || found.checkValue?.length !== 3) continue;
    const id = new Uint8Array(found.id);
    keys.push({
      keyId,
      version,
      label,
      id,
      kcv: Buffer.from(found.checkValue).toString('hex'),
      uri: formatPkcs11Uri({ token: tokenLabel, object: label, id, type: 'secret-key' }),
    });
  }
  return keys;
}

/**
 * The token object of a version: the one whose check value is what the ledger expects, whatever
 * other objects share its label; without an expectation, the only one. Null if there is none.
 */
export async function findVersionKey(
  hsm: Hsm,
  keyId: string,
  version: number,
  tokenLabel: string,
  expected?: VersionExpectation,
): Promise<VersionKey | null> {
  if (expected !== undefined) {
    // The ledger's expectation names one object whatever shares its label, so the one this
    // process generated is the answer if it matches; other gateways' duplicates cannot be.
    const known = await generatedVersionKey(hsm, versionLabel(keyId, version), expected);
    if (known !== null) return known;
  }
  const keys = await findVersionKeys(hsm, keyId, version, tokenLabel);
  if (expected === undefined) return keys.length === 1 ? (keys[0] ?? null) : null;
  return keys.find((key) => matchesExpectation(key.kcv, expected)) ?? null;
}

/** Whether a check value is the one the ledger expects. */
function matchesExpectation(kcv: string, expected: VersionExpectation): boolean {
  return 'fingerprint' in expected ? kcv === expected.fingerprint : nextKeyCommitment(kcv) === expected.commitment;
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
