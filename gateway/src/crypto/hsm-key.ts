import type { Hsm } from '../hsm';
import { sha256, type EcSigningKey } from './ec-key';

/** The HSM's private key `label` seen as an {@link EcSigningKey}: signing happens in the token. */
export async function hsmSigningKey(hsm: Hsm, label: string): Promise<EcSigningKey> {
  const { keyObject } = await hsm.getPublicKey({ label });
  return {
    label,
    publicKey: keyObject,
    sign: (data) => hsm.signDigest({ label }, sha256(data), 'ieee-p1363'),
  };
}
