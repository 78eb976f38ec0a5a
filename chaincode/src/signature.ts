import { calculateJwkThumbprint, compactVerify, decodeProtectedHeader, importJWK } from 'jose';

import { duplicateMemberInCompact, ErrorCode, LedgerError, type PublicJwk } from '@keyfleet/protocol';

const allowedHeader = new Set(['alg', 'kid', 'typ']);
const compactJws = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** The `kid` of a compact JWS, after checking its shape and protected header (ES256, no extensions). */
export function jwsKeyId(jws: unknown): string {
  if (jws === undefined || jws === null || jws === '') {
    throw new LedgerError(ErrorCode.SignatureMissing, 'the request carries no JWS');
  }
  if (typeof jws !== 'string' || !compactJws.test(jws)) {
    throw new LedgerError(ErrorCode.SignatureInvalid, 'the JWS is not in compact serialisation');
  }
  let header: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(jws);
  } catch {
    throw new LedgerError(ErrorCode.SignatureInvalid, 'the JWS protected header is not valid');
  }
  const repeated = duplicateMemberInCompact(jws);
  if (repeated !== null) {
    throw new LedgerError(ErrorCode.SignatureInvalid, `the JWS repeats the member ${JSON.stringify(repeated)}`);
  }
  for (const name of Object.keys(header)) {
    if (!allowedHeader.has(name)) {
      throw new LedgerError(ErrorCode.SignatureInvalid, `JWS header parameter ${name} is not accepted`);
    }
  }
  if (header.alg !== 'ES256') {
    throw new LedgerError(ErrorCode.SignatureInvalid, 'the JWS must use alg ES256');
  }
  if (typeof header.kid !== 'string' || header.kid === '') {
    throw new LedgerError(ErrorCode.SignatureInvalid, 'the JWS header has no kid');
  }
  return header.kid;
}

async function importAnchorKey(jwk: PublicJwk): Promise<Awaited<ReturnType<typeof importJWK>>> {
  try {
    return await importJWK({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, 'ES256');
  } catch {
    throw new LedgerError(ErrorCode.InvalidArgument, 'public key is not a valid P-256 point');
  }
}

/** Rejects a JWK that is not a usable P-256 public key. */
export async function assertUsablePublicKey(jwk: PublicJwk): Promise<void> {
  await importAnchorKey(jwk);
}

/** RFC 7638 JWK thumbprint (SHA-256, base64url). */
export async function jwkThumbprint(jwk: PublicJwk): Promise<string> {
  return calculateJwkThumbprint({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, 'sha256');
}

/**
 * Verifies an ES256 compact JWS with the anchor's key and checks that its payload is exactly the
 * canonical JSON of the request, byte for byte.
 */
export async function verifyJws(jws: string, jwk: PublicJwk, expectedPayload: Uint8Array): Promise<void> {
  const key = await importAnchorKey(jwk);
  let payload: Uint8Array;
  try {
    ({ payload } = await compactVerify(jws, key, { algorithms: ['ES256'] }));
  } catch {
    throw new LedgerError(ErrorCode.SignatureInvalid, 'the JWS signature does not verify');
  }
  if (Buffer.compare(Buffer.from(payload), Buffer.from(expectedPayload)) !== 0) {
    throw new LedgerError(ErrorCode.SignatureInvalid, 'the JWS payload is not the canonical request');
  }
}
