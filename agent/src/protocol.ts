/**
 * The rotation protocol's device side in software (docs/protocol-rotation.md §3): the same
 * derivations the gateway runs inside its HSM, with node:crypto, over the derivation inputs of
 * @keyfleet/protocol.
 */
import { createCipheriv, createDecipheriv, diffieHellman, type KeyObject } from 'node:crypto';
import { kekDerivationData } from '@keyfleet/protocol';

import { AgentError, AgentErrorCode } from './errors.js';

// The protocol's names, labels and digests are the gateway's too: written once in @keyfleet/protocol.
export {
  RotationMessageType,
  RotationLabel,
  kekDerivationData,
  nextKeyCommitment,
  rotationAckDigest,
  rotationNonceDigest,
} from '@keyfleet/protocol';

/** RFC 5649 §3 alternative initial value prefix; node wants it as the cipher IV. */
const rfc5649Aiv = Buffer.from('a65959a6', 'hex');

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
