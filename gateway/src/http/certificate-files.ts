import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { issueServerKeyPair, type ServerCertificateIssuer } from './tls';

/** Where {@link writeServerCertificateFiles} put a service's certificate and key. */
export interface CertificateFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

/**
 * Issues a TLS server certificate for a service that holds no HSM (the auditor's console): a fresh
 * P-256 key, certified by `issuer`, written as `tls-cert.pem` and `tls-key.pem` (mode 0600) into
 * `dir`. The key file is that service's secret: it stays in its data directory, never in git.
 */
export async function writeServerCertificateFiles(
  issuer: ServerCertificateIssuer,
  names: readonly string[],
  dir: string,
): Promise<CertificateFiles> {
  const { key, cert } = await issueServerKeyPair(issuer, names);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files = { certFile: join(dir, 'tls-cert.pem'), keyFile: join(dir, 'tls-key.pem') };
  // Written 0600 from the start (and again if the file existed with a looser mode).
  await writeFile(files.keyFile, key, { mode: 0o600 });
  await chmod(files.keyFile, 0o600);
  await writeFile(files.certFile, cert);
  return files;
}
