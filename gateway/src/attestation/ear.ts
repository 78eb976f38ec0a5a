import type { KeyObject } from 'node:crypto';
import { compactVerify, decodeProtectedHeader } from 'jose';
import { EarProfile, type EarClaims } from '@keyfleet/protocol';
import type { EcSigningKey } from '../crypto/ec-key';
import { signCompactJws } from '../crypto/jws';

/** Signs an EAR as a JWT (ES256) with the verifier's HSM key; `kid` is its ledger anchor id. */
export function signEar(key: EcSigningKey, anchorId: string, claims: EarClaims): Promise<string> {
  return signCompactJws(key, { kid: anchorId, typ: 'JWT' }, Buffer.from(JSON.stringify(claims), 'utf8'));
}

/**
 * Verifies an EAR with the verifier's public key (a pinned trust anchor) and returns its claims.
 * For devices, relying parties and auditors; throws on any mismatch.
 */
export async function verifyEar(ear: string, verifierKey: KeyObject): Promise<EarClaims> {
  const header = decodeProtectedHeader(ear);
  if (header.typ !== 'JWT') throw new Error('an EAR has typ JWT');
  const { payload } = await compactVerify(ear, verifierKey, { algorithms: ['ES256'] });
  const claims = JSON.parse(Buffer.from(payload).toString('utf8')) as Record<string, unknown>;
  if (claims.eat_profile !== EarProfile) throw new Error(`an EAR has eat_profile ${EarProfile}`);
  return claims as unknown as EarClaims;
}
