import { readFileSync } from 'node:fs';
import { importJWK, SignJWT, type JWK } from 'jose';

/** The fields of a `keyfleet credentials create` file the simulator needs. */
interface CredentialsFile {
  readonly subject: string;
  readonly role: string;
  readonly kid: string;
  readonly privateJwk: JWK;
}

export interface OperatorAuthOptions {
  /** A credentials file written by `keyfleet credentials create … --role operator`. */
  readonly credentialsFile: string;
  /** Default `keyfleet-gateway`. */
  readonly audience?: string;
  readonly now?: () => Date;
}

/**
 * Bearer tokens for the operator calls the fleet makes (enrolment tokens, device keys, reference
 * values, audit reads): short-lived ES256 JWTs signed with the operator's own key, made again
 * when half their life is gone. The format is the gateway's (`sub`, `role`, `aud`, `iat`, `exp`).
 */
export function newOperatorAuthorization(options: OperatorAuthOptions): () => Promise<string> {
  const credentials = JSON.parse(readFileSync(options.credentialsFile, 'utf8')) as Partial<CredentialsFile>;
  if (
    typeof credentials.subject !== 'string' ||
    typeof credentials.kid !== 'string' ||
    typeof credentials.privateJwk !== 'object' ||
    credentials.role !== 'operator'
  ) {
    throw new Error(`${options.credentialsFile} is not a keyfleet operator credentials file`);
  }
  const { subject, kid, privateJwk } = credentials as CredentialsFile;
  const audience = options.audience ?? 'keyfleet-gateway';
  const now = options.now ?? (() => new Date());
  const ttl = 120;
  let cached: { header: string; renewAt: number } | undefined;
  let key: Awaited<ReturnType<typeof importJWK>> | undefined;
  return async () => {
    const at = Math.floor(now().getTime() / 1000);
    if (cached !== undefined && at < cached.renewAt) return cached.header;
    key ??= await importJWK(privateJwk, 'ES256');
    const token = await new SignJWT({ role: 'operator' })
      .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
      .setSubject(subject)
      .setAudience(audience)
      .setIssuedAt(at)
      .setExpirationTime(at + ttl)
      .sign(key);
    cached = { header: `Bearer ${token}`, renewAt: at + ttl / 2 };
    return cached.header;
  };
}
