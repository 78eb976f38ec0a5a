import { readFileSync, statSync } from 'node:fs';
import type { JSONWebKeySet } from 'jose';
import { GatewayError, GatewayErrorCode } from '../errors';

/**
 * The JWKS file, re-read when it changes (one stat per request), so credentials added with
 * `keyfleet credentials create` work without a restart. A file that turns unreadable keeps the
 * last good set; one that is bad at start-up stops the start. `setting` names the variable in errors.
 */
export function jwksFile(file: string, setting = 'KEYFLEET_AUTH_JWKS'): () => JSONWebKeySet {
  let loaded = { mtimeMs: statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? 0, jwks: readJwks(file, setting) };
  return () => {
    const mtimeMs = statSync(file, { throwIfNoEntry: false })?.mtimeMs;
    if (mtimeMs !== undefined && mtimeMs !== loaded.mtimeMs) {
      try {
        loaded = { mtimeMs, jwks: readJwks(file, setting) };
      } catch {
        // Half-written or broken: keep serving with the last good keys.
      }
    }
    return loaded.jwks;
  };
}

function readJwks(file: string, setting: string): JSONWebKeySet {
  try {
    const jwks = JSON.parse(readFileSync(file, 'utf8')) as JSONWebKeySet;
    if (!Array.isArray(jwks.keys)) throw new Error('no "keys" array');
    return jwks;
  } catch (err) {
    throw new GatewayError(
      GatewayErrorCode.ConfigInvalid,
      `${setting} ${file}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}
