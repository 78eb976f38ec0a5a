import { createHash, webcrypto, type KeyObject } from 'node:crypto';

/**
 * A P-256 private key that the gateway may use but never see: in production a PKCS#11 object,
 * in unit tests a node:crypto key. This is all the CA and the JWS signer need of it.
 */
export interface EcSigningKey {
  /** A short name for logs and `kid`s, e.g. the PKCS#11 label. */
  readonly label: string;
  readonly publicKey: KeyObject;
  /** ECDSA P-256 with SHA-256 over `data`, returning the IEEE P1363 form r||s (64 bytes). */
  sign(data: Uint8Array): Promise<Uint8Array>;
}

export function sha256(data: Uint8Array | string): Buffer {
  return createHash('sha256').update(data).digest();
}

/** A WebCrypto `CryptoKey` stand-in that routes signing to an {@link EcSigningKey}. */
interface DelegatedKey {
  readonly algorithm: { readonly name: 'ECDSA'; readonly namedCurve: 'P-256' };
  readonly type: 'private';
  readonly extractable: false;
  readonly usages: readonly ['sign'];
  readonly [delegate]: EcSigningKey;
}
const delegate = Symbol('delegate');

/**
 * A WebCrypto provider for libraries that sign through `crypto.subtle.sign` (@peculiar/x509):
 * everything is node's WebCrypto, except signing with a delegated key, which goes to the HSM.
 * The private key itself never passes through here.
 */
export function delegatingCrypto(key: EcSigningKey): { crypto: webcrypto.Crypto; signingKey: webcrypto.CryptoKey } {
  const signingKey: DelegatedKey = {
    algorithm: { name: 'ECDSA', namedCurve: 'P-256' },
    type: 'private',
    extractable: false,
    usages: ['sign'],
    [delegate]: key,
  };
  const base = webcrypto.subtle;
  const subtle = new Proxy(base, {
    get(target, prop) {
      if (prop === 'sign') {
        return async (algorithm: unknown, k: unknown, data: ArrayBufferView | ArrayBuffer): Promise<ArrayBuffer> => {
          if (k !== signingKey) return target.sign(algorithm as webcrypto.EcdsaParams, k as webcrypto.CryptoKey, data);
          const bytes = ArrayBuffer.isView(data)
            ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
            : new Uint8Array(data);
          const signature = await key.sign(bytes);
          // A copy with its own ArrayBuffer: the HSM's Buffers may be views into a shared pool.
          return new Uint8Array(signature).buffer;
        };
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  const crypto = {
    subtle,
    getRandomValues: (array: Uint8Array) => webcrypto.getRandomValues(array),
    randomUUID: () => webcrypto.randomUUID(),
  } as unknown as webcrypto.Crypto;
  return { crypto, signingKey: signingKey as unknown as webcrypto.CryptoKey };
}
