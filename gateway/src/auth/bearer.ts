import { duplicateMemberInCompact } from '@keyfleet/protocol';
import {
  createLocalJWKSet,
  errors as joseErrors,
  jwtVerify,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
} from 'jose';
import { GatewayError, GatewayErrorCode } from '../errors';

/** The roles a bearer token can carry. Devices never use bearer tokens: they sign with their key. */
export const ApiRole = {
  Operator: 'operator',
  Auditor: 'auditor',
  Application: 'application',
} as const;
export type ApiRole = (typeof ApiRole)[keyof typeof ApiRole];

export interface Principal {
  /** The token's `sub`: an operator's name or an application id. */
  readonly subject: string;
  readonly role: ApiRole;
}

export interface Authenticator {
  /** Verifies an HTTP `Authorization` header value; throws UNAUTHENTICATED when it does not verify. */
  authenticate(authorization: string | undefined): Promise<Principal>;
}

export interface BearerAuthenticatorOptions {
  /** The accepted keys, or a function giving the current ones (re-read when it returns a new set). */
  readonly jwks: JSONWebKeySet | (() => JSONWebKeySet);
  readonly audience: string;
  /** Longest accepted `exp - iat`, so a leaked token is short-lived. */
  readonly maxLifetimeSeconds?: number;
  readonly now?: () => Date;
}

const roles = new Set<string>(Object.values(ApiRole));

/**
 * A JWKS entry names whose key it is: a key signs tokens for its own `sub` and `role` only, so
 * holding one credential never lets anyone claim another identity or role.
 */
export interface CredentialJwk extends JWK {
  readonly kid: string;
  readonly sub: string;
  readonly role: ApiRole;
}

interface Owner {
  readonly sub: unknown;
  readonly role: unknown;
}

/** Seconds a token's `iat` may lie ahead of the gateway's clock. */
const CLOCK_SKEW_SECONDS = 60;

/**
 * Bearer tokens are JWTs (RFC 7519) signed ES256 or EdDSA by a key in the configured JWKS,
 * with `sub`, `role`, `aud`, `iat` and `exp`; the header's `kid` names the key, and the token's
 * `sub` and `role` must be the ones that key was issued for.
 */
export function newBearerAuthenticator(options: BearerAuthenticatorOptions): Authenticator {
  const current = typeof options.jwks === 'function' ? options.jwks : () => options.jwks as JSONWebKeySet;
  let loaded:
    { jwks: JSONWebKeySet; keys: ReturnType<typeof createLocalJWKSet>; owners: Map<string, Owner> } | undefined;
  /** The key set to check against, rebuilt only when the provider hands over a new one. */
  const keySet = () => {
    const jwks = current();
    if (loaded?.jwks !== jwks) {
      const owners = new Map<string, Owner>();
      for (const jwk of jwks.keys as (JWK & { sub?: unknown; role?: unknown })[]) {
        if (typeof jwk.kid === 'string') owners.set(jwk.kid, { sub: jwk.sub, role: jwk.role });
      }
      loaded = { jwks, keys: createLocalJWKSet(jwks), owners };
    }
    return loaded;
  };
  const maxLifetime = options.maxLifetimeSeconds ?? 3600;
  const now = options.now ?? (() => new Date());

  return {
    async authenticate(authorization) {
      const match = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/.exec(authorization ?? '');
      if (!match?.[1]) throw unauthenticated('missing or malformed bearer token');
      // A header or claim given twice (e.g. two `role`s): jose's JSON.parse would keep the last.
      if (duplicateMemberInCompact(match[1]) !== null) throw unauthenticated('the bearer token repeats a member');
      const { keys, owners } = keySet();
      let payload: JWTPayload;
      let kid: string | undefined;
      try {
        ({
          payload,
          protectedHeader: { kid },
        } = await jwtVerify(match[1], keys, {
          algorithms: ['ES256', 'EdDSA'],
          audience: options.audience,
          currentDate: now(),
          // jose checks that iat is not in the future only when maxTokenAge is set.
          maxTokenAge: maxLifetime,
          clockTolerance: CLOCK_SKEW_SECONDS,
          requiredClaims: ['sub', 'iat', 'exp'],
        }));
      } catch (err) {
        const reason = err instanceof joseErrors.JOSEError ? err.code : 'invalid token';
        throw unauthenticated(`bearer token rejected (${reason})`);
      }
      const { sub, role, iat, exp } = payload;
      if (typeof sub !== 'string' || sub === '' || sub.length > 128) throw unauthenticated('token has no valid sub');
      if (typeof role !== 'string' || !roles.has(role)) throw unauthenticated('token has no valid role');
      if (iat === undefined || exp === undefined || exp - iat > maxLifetime) {
        throw unauthenticated(`token lifetime exceeds ${maxLifetime} s`);
      }
      const owner = kid === undefined ? undefined : owners.get(kid);
      if (owner?.sub !== sub || owner.role !== role) {
        throw unauthenticated('the token claims another identity or role than its key was issued for');
      }
      return { subject: sub, role: role as ApiRole };
    },
  };
}

/** Tokens are minted by the clients' one minter (agent/src/http/bearer.ts); re-exported for tests. */
export { issueBearerToken, type BearerTokenOptions as IssueBearerTokenOptions } from '@keyfleet/agent';

function unauthenticated(message: string): GatewayError {
  return new GatewayError(GatewayErrorCode.Unauthenticated, message);
}
