import type { PublicJwk } from './verify.mjs';

/**
 * The trust anchors this auditor pinned, kept in the browser (localStorage): AnchorID → public
 * key. Records verify against these copies, never against what the ledger says today.
 */
const storageKey = 'keyfleet.console.pinned-anchors';

export function pinnedAnchors(): Map<string, PublicJwk> {
  try {
    const stored = JSON.parse(localStorage.getItem(storageKey) ?? '{}') as Record<string, PublicJwk>;
    return new Map(Object.entries(stored));
  } catch {
    return new Map();
  }
}

export function pinAnchor(anchorId: string, jwk: PublicJwk): void {
  const pins = pinnedAnchors();
  pins.set(anchorId, { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y });
  localStorage.setItem(storageKey, JSON.stringify(Object.fromEntries(pins)));
}

export function unpinAnchor(anchorId: string): void {
  const pins = pinnedAnchors();
  pins.delete(anchorId);
  localStorage.setItem(storageKey, JSON.stringify(Object.fromEntries(pins)));
}

/** A pasted JWK, if it is a P-256 public key (no private part). */
export function asPublicJwk(value: unknown): PublicJwk | null {
  if (typeof value !== 'object' || value === null) return null;
  const jwk = value as Record<string, unknown>;
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.x !== 'string' || typeof jwk.y !== 'string') return null;
  if ('d' in jwk) return null;
  return { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y };
}
