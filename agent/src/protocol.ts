/**
 * The rotation protocol's device side in software (docs/protocol-rotation.md §3): the same
 * derivations the gateway runs inside its HSM, with node:crypto.
 */
import { createCipheriv, createDecipheriv, createHash, diffieHellman, type KeyObject } from 'node:crypto';

import { AgentError, AgentErrorCode } from './errors.js';

export const RotationMessageType = {
  Request: 'keyfleet-rotation-request+jwt',
  Response: 'keyfleet-rotation-response+jwt',
  Ack: 'keyfleet-rotation-ack+jwt',
  /** A signed check-in (claims `device_id`, `iat`); the gateway answers with the device's due keys. */
  CheckIn: 'keyfleet-check-in+jwt',
} as const;

export const RotationLabel = {
  Kek: 'keyfleet/rotation-kek/v1',
  Nonce: 'keyfleet/rotation-nonce/v1',
  Ack: 'keyfleet/rotation-ack/v1',
} as const;

/** RFC 5649 §3 alternative initial value prefix; node wants it as the cipher IV. */
const rfc5649Aiv = Buffer.from('a65959a6', 'hex');

function labelledDigest(label: string, ...parts: readonly string[]): Buffer {
  return createHash('sha256')
    .update([label, ...parts].join('\0'), 'utf8')
    .digest();
}

export function kekDerivationData(deviceId: string, keyId: string, version: number): Buffer {
  return labelledDigest(RotationLabel.Kek, deviceId, keyId, String(version));
}

export function rotationNonceDigest(nonce: string): string {
  return labelledDigest(RotationLabel.Nonce, nonce).toString('hex');
}

export function rotationAckDigest(keyId: string, version: number): string {
  return labelledDigest(RotationLabel.Ack, keyId, String(version)).toString('hex');
}

export function nextKeyCommitment(kcv: string): string {
  return createHash('sha256').update(kcv, 'utf8').digest('hex');
}

/** Device master key: the x-coordinate of ECDH(device key, gateway `device-kex` key), SEC 1 §3.3.1. */
export function deriveDeviceMasterKey(devicePrivateKey: KeyObject, keyExchangePublicKey: KeyObject): Buffer {
  return diffieHellman({ privateKey: devicePrivateKey, publicKey: keyExchangePublicKey });
}

/**
 * The KEK of (device, key, version): AES-256-CBC over the 32-byte derivation data with a zero IV
 * and no padding, as PKCS#11 CKM_AES_CBC_ENCRYPT_DATA (v2.40 §2.15.2) computes it.
 */
export function deriveKek(masterKey: Uint8Array, deviceId: string, keyId: string, version: number): Buffer {
  const cipher = createCipheriv('aes-256-cbc', masterKey, Buffer.alloc(16)).setAutoPadding(false);
  return Buffer.concat([cipher.update(kekDerivationData(deviceId, keyId, version)), cipher.final()]);
}

/** RFC 5649 unwrap (AES key wrap with padding); a failed integrity check is AGENT_UNWRAP_FAILED. */
export function unwrapKey(kek: Uint8Array, wrapped: Uint8Array): Buffer {
  try {
    const decipher = createDecipheriv('id-aes256-wrap-pad', kek, rfc5649Aiv);
    const key = Buffer.concat([decipher.update(wrapped), decipher.final()]);
    if (key.length !== 32) throw new Error(`unwrapped ${key.length} bytes, not 32`);
    return key;
  } catch (err) {
    throw new AgentError(AgentErrorCode.UnwrapFailed, 'the wrapped key fails its RFC 5649 integrity check', undefined, {
      cause: err,
    });
  }
}

/** RFC 5649 wrap, for tests and fleet simulators that play the gateway. */
export function wrapKey(kek: Uint8Array, key: Uint8Array): Buffer {
  const cipher = createCipheriv('id-aes256-wrap-pad', kek, rfc5649Aiv);
  return Buffer.concat([cipher.update(key), cipher.final()]);
}

/** Key check value: first 3 bytes of AES-256-ECB(key, 0¹²⁸), lowercase hex (PKCS#11 v2.40 §4.10). */
export function keyCheckValue(key: Uint8Array): string {
  const cipher = createCipheriv('aes-256-ecb', key, null).setAutoPadding(false);
  return cipher.update(Buffer.alloc(16)).subarray(0, 3).toString('hex');
}
