import { readFileSync } from 'node:fs';
import { importJWK, SignJWT, type JWK, type KeyLike } from 'jose';

/**
 * The one bearer-token minter of keyfleet's clients (the CLI, the fleet simulator, the key client,
 * the tests). Tokens are the gateway's format (docs/gateway.md, "Authentication"): ES256 JWTs
 * with `sub`, `role`, `aud`, `iat`, `exp`, the header's `kid` naming the caller's key.
 */
export interface BearerTokenOptions {
  readonly subject: string;
  readonly role: string;
  readonly audience: string;
  readonly kid: string;
  /** Default 300 s; the gateway refuses longer-lived tokens than its limit. */
  readonly ttlSeconds?: number;
  readonly now?: () => Date;
}

/** Signs one bearer token with a caller's own ES256 private key. */
export async function issueBearerToken(privateKey: KeyLike | Uint8Array, options: BearerTokenOptions): Promise<string> {
  const issuedAt = Math.floor((options.now ?? (() => new Date()))().getTime() / 1000);
  return new SignJWT({ role: options.role })
    .setProtectedHeader({ alg: 'ES256', kid: options.kid, typ: 'JWT' })
    .setSubject(options.subject)
    .setAudience(options.audience)
    .setIssuedAt(issuedAt)
    .setExpirationTime(issuedAt + (options.ttlSeconds ?? 300))
    .sign(privateKey);
}

/** A credentials file as `keyfleet credentials create` writes it (0600, the caller's own key). */
export interface CredentialsFile {
  readonly subject: string;
  readonly role: string;
  readonly kid: string;
  readonly privateJwk: JWK;
}

/** Reads a credentials file; `role`, when given, is the role it must carry. */
export function readCredentialsFile(file: string, roles?: readonly string[]): CredentialsFile {
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<CredentialsFile> | null;
  if (
    typeof parsed !== 'object' ||
    parsed === null ||
    typeof parsed.subject !== 'string' ||
    typeof parsed.kid !== 'string' ||
    typeof parsed.role !== 'string' ||
    typeof parsed.privateJwk !== 'object' ||
    (roles !== undefined && !roles.includes(parsed.role))
  ) {
    const what = roles === undefined ? 'keyfleet' : `keyfleet ${roles.join(' or ')}`;
    throw new Error(`${file} is not a ${what} credentials file`);
  }
  return parsed as CredentialsFile;
}

export interface BearerMinterOptions {
  readonly credentials: CredentialsFile;
  /** Default `keyfleet-gateway`. */
  readonly audience?: string;
  /** Default 120 s. */
  readonly ttlSeconds?: number;
  readonly now?: () => Date;
}

/**
 * `Authorization` header values for a caller: a token is made again when half its life is gone,
 * so a long run (the fleet simulator) signs a few tokens, not one per request.
 */
export function newBearerMinter(options: BearerMinterOptions): () => Promise<string> {
  const { subject, role, kid, privateJwk } = options.credentials;
  const audience = options.audience ?? 'keyfleet-gateway';
  const now = options.now ?? (() => new Date());
  const ttlSeconds = options.ttlSeconds ?? 120;
  let cached: { header: string; renewAt: number } | undefined;
  let key: KeyLike | Uint8Array | undefined;
  return async () => {
    const at = Math.floor(now().getTime() / 1000);
    if (cached !== undefined && at < cached.renewAt) return cached.header;
    key ??= await importJWK(privateJwk, 'ES256');
    const token = await issueBearerToken(key, { subject, role, audience, kid, ttlSeconds, now });
    cached = { header: `Bearer ${token}`, renewAt: at + Math.floor(ttlSeconds / 2) };
    return cached.header;
  };
}
