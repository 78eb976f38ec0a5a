import { generateKeyPairSync, sign } from 'node:crypto';
import type { EcSigningKey } from '../crypto/ec-key';

/** A node:crypto P-256 key behind the HSM key's interface, for fast unit tests only. */
export function newSoftwareKey(label = 'software'): EcSigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    label,
    publicKey,
    // Buffer.from copies into Node's shared pool, as the HSM layer's small Buffers are: code that
    // takes `.buffer` of a signature must cope with a view that is not the whole ArrayBuffer.
    sign: (data) => Promise.resolve(Buffer.from(sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' }))),
  };
}
