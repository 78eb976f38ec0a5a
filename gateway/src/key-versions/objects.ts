/**
 * The HSM side of key versions: one token object (AES) or pair (EC) per version, labelled
 * `key:<KeyID>:v<n>`, found again by CKA_ID and by the fingerprint the ledger records. The
 * gateway holds labels, ids and fingerprints, never key bytes.
 */
import type { KeyRecord } from '@keyfleet/protocol';
import { nextKeyCommitment, sha256Hex, versionLabel } from '@keyfleet/protocol';
import { GatewayError, GatewayErrorCode } from '../errors';
import { formatPkcs11Uri, type Hsm, type KeyKind, type SecretKeyUsage } from '../hsm';

/** A version's object on the token: what the ledger records of it, and how to destroy it. */
export interface VersionObject {
  readonly keyId: string;
  readonly version: number;
  readonly label: string;
  /** CKA_ID: labels are not unique on a shared token (docs/protocol-rotation.md §7), ids are. */
  readonly id: Uint8Array;
  readonly uri: string;
  /** The ledger Fingerprint: an AES key's check value, or SHA-256 of an EC key's SPKI. */
  readonly fingerprint: string;
  readonly fingerprintType: 'kcv' | 'spki-sha256';
  readonly kinds: readonly KeyKind[];
}

/** An AES version: its fingerprint is `kcv`, the lowercase hex of CKA_CHECK_VALUE (3 bytes). */
export interface VersionKey extends VersionObject {
  readonly kcv: string;
}

/** What a key's versions are made as, from its ledger record. */
export type VersionShape =
  | { readonly type: 'ec' }
  | { readonly type: 'aes'; readonly usage: readonly SecretKeyUsage[]; readonly extractable: boolean };

/**
 * EC-P256 keys are signing pairs. AES-256 keys wrap or encrypt as their purpose says, and are
 * extractable only if they are delivered: a device key leaves wrapped for its device (RFC 5649).
 */
export function shapeOf(key: Pick<KeyRecord, 'Algorithm' | 'Purpose'>, delivered: boolean): VersionShape {
  if (key.Algorithm === 'EC-P256') return { type: 'ec' };
  const usage: SecretKeyUsage[] = key.Purpose === 'wrap' ? ['wrap', 'unwrap'] : ['encrypt', 'decrypt'];
  return { type: 'aes', usage, extractable: delivered };
}

/** What the ledger expects of an object: its Fingerprint, or the NextKeyCommitment it hashes to. */
export type VersionExpectation = { readonly fingerprint: string } | { readonly commitment: string };

function matches(fingerprint: string, expected: VersionExpectation): boolean {
  return 'fingerprint' in expected
    ? fingerprint === expected.fingerprint
    : nextKeyCommitment(fingerprint) === expected.commitment;
}

/** Generates a version as its shape says. Fails with HSM_KEY_EXISTS if the label is taken. */
export async function generateVersion(
  hsm: Hsm,
  keyId: string,
  version: number,
  shape: VersionShape,
): Promise<VersionObject> {
  if (shape.type === 'aes') return generateVersionKey(hsm, keyId, version, shape);
  const made = await hsm.generateEcKeyPair({ label: versionLabel(keyId, version), sign: true });
  const fingerprint = sha256Hex(made.spki);
  return ecVersion(keyId, version, made.id, made.uri, fingerprint);
}

/**
 * Generates an AES-256 version as a sensitive token object; its key check value (CKA_CHECK_VALUE)
 * is the ledger fingerprint. Extractable (default true) only for device keys. Fails with
 * HSM_KEY_EXISTS if the label is taken.
 */
export async function generateVersionKey(
  hsm: Hsm,
  keyId: string,
  version: number,
  options: { readonly extractable?: boolean; readonly usage?: readonly SecretKeyUsage[] } = {},
): Promise<VersionKey> {
  const label = versionLabel(keyId, version);
  const generated = await hsm.generateSecretKey({
    label,
    type: 'aes-256',
    usage: options.usage ?? ['encrypt', 'decrypt'],
    extractable: options.extractable ?? true,
    token: true,
  });
  if (generated.checkValue?.length !== 3) {
    await hsm.destroyKey({ id: generated.id }, ['secret']);
    throw new GatewayError(GatewayErrorCode.HsmFailure, 'the token gives no CKA_CHECK_VALUE for AES keys');
  }
  const key = aesVersion(keyId, version, generated.id, generated.checkValue, generated.uri);
  generatedHere(hsm).remember(key);
  return key;
}

function aesVersion(keyId: string, version: number, id: Uint8Array, checkValue: Uint8Array, uri: string): VersionKey {
  const kcv = Buffer.from(checkValue).toString('hex');
  const label = versionLabel(keyId, version);
  return { keyId, version, label, id, uri, kcv, fingerprint: kcv, fingerprintType: 'kcv', kinds: ['secret'] };
}

function ecVersion(keyId: string, version: number, id: Uint8Array, uri: string, fingerprint: string): VersionObject {
  const label = versionLabel(keyId, version);
  return { keyId, version, label, id, uri, fingerprint, fingerprintType: 'spki-sha256', kinds: ['private', 'public'] };
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
  if (known === undefined || !matches(known.kcv, expected)) return null;
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

/**
 * Every token AES object labelled as this version that has a check value; several when gateways
 * or a crash left duplicates. With `extractable`, only those whose CKA_EXTRACTABLE is that.
 */
export async function findVersionKeys(
  hsm: Hsm,
  keyId: string,
  version: number,
  tokenLabel: string,
  extractable?: boolean,
): Promise<VersionKey[]> {
  const label = versionLabel(keyId, version);
  const keys: VersionKey[] = [];
  for (const found of await hsm.findKeys({ label, kind: 'secret' })) {
    if (!found.token || found.keyType !== 'aes' || found.checkValue?.length !== 3) continue;
    if (extractable !== undefined && (found.extractable ?? false) !== extractable) continue;
    const id = new Uint8Array(found.id);
    const uri = formatPkcs11Uri({ token: tokenLabel, object: label, id, type: 'secret-key' });
    keys.push(aesVersion(keyId, version, id, found.checkValue, uri));
  }
  return keys;
}

/**
 * The AES object of a version: the one whose check value is what the ledger expects, whatever
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
  return keys.find((key) => matches(key.kcv, expected)) ?? null;
}

/** The object (AES key or EC pair) of a version that is what the ledger expects, or null. */
export async function findVersion(
  hsm: Hsm,
  keyId: string,
  version: number,
  shape: VersionShape,
  expected: VersionExpectation,
): Promise<VersionObject | null> {
  if (shape.type === 'aes') return findVersionKey(hsm, keyId, version, hsm.tokenLabel, expected);
  const label = versionLabel(keyId, version);
  for (const found of await hsm.findKeys({ label, kind: 'public' })) {
    const pub = await hsm.getPublicKey({ id: found.id });
    const fingerprint = sha256Hex(pub.spki);
    if (!matches(fingerprint, expected)) continue;
    return ecVersion(keyId, version, pub.id, pub.uri, fingerprint);
  }
  return null;
}
