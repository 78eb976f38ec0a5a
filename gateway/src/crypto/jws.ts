import type { EcSigningKey } from './ec-key';

export interface JwsHeader {
  readonly kid: string;
  readonly typ?: string;
  readonly x5c?: readonly string[];
}

/**
 * Signs `payload` as an RFC 7515 compact JWS with ES256 (RFC 7518 §3.4: the signature is
 * r||s, not DER). Only the signing is ours; verification is left to jose everywhere.
 */
export async function signCompactJws(key: EcSigningKey, header: JwsHeader, payload: Uint8Array): Promise<string> {
  const protectedHeader = Buffer.from(JSON.stringify({ alg: 'ES256', ...header })).toString('base64url');
  const signingInput = `${protectedHeader}.${Buffer.from(payload).toString('base64url')}`;
  const signature = await key.sign(Buffer.from(signingInput));
  return `${signingInput}.${Buffer.from(signature).toString('base64url')}`;
}
