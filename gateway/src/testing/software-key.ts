import { generateKeyPairSync, sign } from 'node:crypto';
import type { EcSigningKey } from '../crypto/ec-key';

/** A node:crypto P-256 key behind the HSM key's interface, for fast unit tests only. */
export function newSoftwareKey(label = 'software'): EcSigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    label,
    publicKey,
    sign: (data) => Promise.resolve(sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' })),
  };
}
