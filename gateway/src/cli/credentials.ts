import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { newBearerMinter, readCredentialsFile } from '@keyfleet/agent';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JSONWebKeySet, type JWK } from 'jose';
import { ApiRole, type CredentialJwk } from '../auth/bearer';

/**
 * An operator's, auditor's or application's own signing key for bearer tokens. The private
 * half stays in the credentials file (0600); the public half goes into the gateway's JWKS.
 */
export interface Credentials {
  readonly subject: string;
  readonly role: ApiRole;
  readonly kid: string;
  readonly privateJwk: JWK;
}

/** Makes a new key pair, writes the credentials file and adds the public key to the JWKS file. */
export async function createCredentials(
  subject: string,
  role: ApiRole,
  credentialsFile: string,
  jwksFile: string,
): Promise<Credentials> {
  if (existsSync(credentialsFile)) throw new Error(`${credentialsFile} exists; refusing to overwrite it`);
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  const credentials: Credentials = { subject, role, kid, privateJwk: { ...(await exportJWK(privateKey)), kid } };

  mkdirSync(dirname(credentialsFile), { recursive: true });
  writeFileSync(credentialsFile, JSON.stringify(credentials, null, 2) + '\n', { mode: 0o600 });
  chmodSync(credentialsFile, 0o600);

  const jwks: JSONWebKeySet = existsSync(jwksFile)
    ? (JSON.parse(readFileSync(jwksFile, 'utf8')) as JSONWebKeySet)
    : { keys: [] };
  // The entry names its owner: the gateway accepts this key's tokens for this subject and role only.
  const entry: CredentialJwk = { ...publicJwk, kid, alg: 'ES256', use: 'sig', sub: subject, role };
  jwks.keys.push(entry);
  mkdirSync(dirname(jwksFile), { recursive: true });
  writeFileSync(jwksFile, JSON.stringify(jwks, null, 2) + '\n');
  return credentials;
}

export function readCredentials(file: string): Credentials {
  return readCredentialsFile(file, Object.values(ApiRole)) as Credentials;
}

/** A fresh short-lived `Authorization` header value for these credentials. */
export function bearerHeader(credentials: Credentials, audience: string): Promise<string> {
  return newBearerMinter({ credentials, audience, ttlSeconds: 120 })();
}
