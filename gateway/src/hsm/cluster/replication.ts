/**
 * Copying keys between the tokens of an HSM cluster (docs/hsm-cluster.md): each key leaves its
 * token only as an RFC 5649 blob wrapped under the cluster KEK (CKM_AES_KEY_WRAP_PAD), is unwrapped
 * in the target with the same label, CKA_ID and attributes, and counts as copied only once the
 * copy's check value, computed by the target token, equals the source's.
 */
import { createHash, generateKeyPairSync, randomBytes, verify } from 'node:crypto';
import type { KeyAttributes, KeyRef, ReplicaHsm, SecretKeyType, SecretKeyUsage } from '../hsm.js';
import { HsmError, HsmErrorCode } from '../hsm-error.js';
import { clusterKekLabel } from './ceremony.js';

/** One key copied (or found already copied) to a target token, as the ledger records it. */
export interface ReplicatedKey {
  readonly label: string;
  /** CKA_ID, lowercase hex; the same on every member. */
  readonly id: string;
  /** `ec-p256`, `aes-256` or `hmac-sha256`. */
  readonly type: 'ec-p256' | SecretKeyType;
  /**
   * Lowercase hex. AES: the 3-byte KCV, AES-ECB(key, 0¹²⁸). HMAC: the first 3 bytes of
   * HMAC(key, "keyfleet cluster check"). EC: SHA-256 of the public point (Fabric's CKA_ID).
   * Computed by each token for its own copy and found equal before the copy counted.
   */
  readonly checkValue: string;
}

const kek: KeyRef = { label: clusterKekLabel };
const hmacCheckInput = Buffer.from('keyfleet cluster check');

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

/** Whether a key object is one the cluster replicates: a token private or secret key, not the KEK. */
export function isReplicated(attrs: KeyAttributes): boolean {
  return attrs.token && attrs.kind !== 'public' && attrs.label !== clusterKekLabel;
}

/** The check value a token computes for its own object of a key; see {@link ReplicatedKey}. */
export async function checkValueOf(hsm: ReplicaHsm, attrs: KeyAttributes): Promise<string> {
  const ref: KeyRef = { id: attrs.id };
  if (attrs.kind === 'private') {
    if (attrs.usage.includes('sign')) {
      // Proves the private key is the point's: a signature over a fresh message verifies with it.
      const pub = await hsm.getPublicKey(ref);
      const message = randomBytes(32);
      const signature = await hsm.signDigest(ref, createHash('sha256').update(message).digest(), 'der');
      if (!verify('sha256', message, pub.keyObject, signature)) {
        throw new HsmError(HsmErrorCode.IntegrityFailed, `private key "${attrs.label}" does not match its public key`);
      }
      return hex(createHash('sha256').update(pub.point).digest());
    }
    const pub = await hsm.getPublicKey(ref);
    return hex(createHash('sha256').update(pub.point).digest());
  }
  if (attrs.keyType === 'aes' && attrs.usage.includes('encrypt')) return hex(await hsm.aesCheckValue(ref));
  if (attrs.keyType === 'generic-secret' && attrs.usage.includes('sign')) {
    return hex((await hsm.hmacSha256(ref, hmacCheckInput)).subarray(0, 3));
  }
  throw new HsmError(HsmErrorCode.KeyNotPermitted, `key "${attrs.label}" has no check value this cluster can compute`);
}

/**
 * A derive-only EC key (device-kex): ECDH with a fresh software key pair in each token, and the
 * AES check values of the two derived session keys compared. Equal only if the private keys are.
 */
async function ecdhCheck(source: ReplicaHsm, target: ReplicaHsm, attrs: KeyAttributes): Promise<void> {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const values: string[] = [];
  for (const hsm of [source, target]) {
    const label = `cluster-check:${randomBytes(8).toString('hex')}`;
    await hsm.deriveEcdh({ id: attrs.id }, publicKey, { label, type: 'aes-256', usage: ['encrypt'], token: false });
    try {
      values.push(hex(await hsm.aesCheckValue({ label })));
    } finally {
      await hsm.destroyKey({ label }, ['secret']).catch(() => 0);
    }
  }
  if (values[0] !== values[1]) {
    throw new HsmError(HsmErrorCode.IntegrityFailed, `the copy of "${attrs.label}" derives other secrets`);
  }
}

function secretType(attrs: KeyAttributes): SecretKeyType {
  if (attrs.keyType === 'aes') return 'aes-256';
  if (attrs.keyType === 'generic-secret') return 'hmac-sha256';
  throw new HsmError(HsmErrorCode.KeyNotPermitted, `key "${attrs.label}" is of a type the cluster does not copy`);
}

/**
 * Copies one key (its attributes as the source reports them) from `source` to `target` under the
 * cluster KEK, unless the target has it already, and returns what the ledger records.
 *
 * @throws HsmError `HSM_KEY_NOT_PERMITTED` (the key is not extractable: made before the cluster),
 *   `HSM_INTEGRITY_FAILED` (the copy's check value differs), or the tokens' own errors
 */
export async function copyKey(source: ReplicaHsm, target: ReplicaHsm, attrs: KeyAttributes): Promise<ReplicatedKey> {
  const ref: KeyRef = { id: attrs.id };
  const present = (await target.findKeys({ id: attrs.id, kind: attrs.kind })).length > 0;
  if (attrs.kind === 'private') {
    if (!present) {
      const blob = await source.wrapPrivateKey(kek, ref);
      await target.unwrapPrivateKey(kek, blob, {
        label: attrs.label,
        id: attrs.id,
        sign: attrs.usage.includes('sign'),
        derive: attrs.usage.includes('derive'),
        replicable: attrs.wrapWithTrusted === true,
      });
    }
    if ((await target.findKeys({ id: attrs.id, kind: 'public' })).length === 0) {
      const pub = await source.getPublicKey(ref);
      await target.importEcPublicKey({
        label: attrs.label,
        id: attrs.id,
        point: pub.point,
        verify: attrs.usage.includes('sign'),
        derive: false,
      });
    }
    if (!attrs.usage.includes('sign')) await ecdhCheck(source, target, attrs);
    const [sourceValue, targetValue] = [await checkValueOf(source, attrs), await checkValueOf(target, attrs)];
    if (sourceValue !== targetValue) {
      throw new HsmError(HsmErrorCode.IntegrityFailed, `the copy of "${attrs.label}" has another check value`);
    }
    return { label: attrs.label, id: hex(attrs.id), type: 'ec-p256', checkValue: targetValue };
  }
  const type = secretType(attrs);
  if (!present) {
    const blob = await source.wrapKey(kek, ref);
    const allowed: readonly SecretKeyUsage[] =
      type === 'aes-256' ? ['encrypt', 'decrypt', 'wrap', 'unwrap', 'derive'] : ['sign', 'verify', 'derive'];
    await target.unwrapKey(kek, blob, {
      label: attrs.label,
      type,
      usage: attrs.usage.filter((u) => allowed.includes(u)),
      id: attrs.id,
      token: true,
      extractable: attrs.extractable === true,
      wrapWithTrusted: attrs.wrapWithTrusted === true,
    });
  }
  const sourceValue = await checkValueOf(source, attrs);
  const targetValue = await checkValueOf(target, attrs);
  if (sourceValue !== targetValue) {
    if (!present) await target.destroyKey(ref, ['secret']).catch(() => 0);
    throw new HsmError(HsmErrorCode.IntegrityFailed, `the copy of "${attrs.label}" has another check value`);
  }
  return { label: attrs.label, id: hex(attrs.id), type, checkValue: targetValue };
}

/** Copies every replicated key of `source` that `target` lacks; returns the keys copied. */
export async function copyMissingKeys(source: ReplicaHsm, target: ReplicaHsm): Promise<ReplicatedKey[]> {
  const copied: ReplicatedKey[] = [];
  const have = new Set((await target.findKeys()).map((k) => `${k.kind}:${hex(k.id)}`));
  for (const attrs of await source.findKeys()) {
    if (!isReplicated(attrs) || have.has(`${attrs.kind}:${hex(attrs.id)}`)) continue;
    copied.push(await copyKey(source, target, attrs));
  }
  return copied;
}
