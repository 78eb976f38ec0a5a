import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import type { SecureContextOptions, TlsOptions } from 'node:tls';
import type { EnvReader } from '../env';

/** What {@link readListenerSecurity} reads with. */
export type SettingsReader = Pick<EnvReader, 'optional' | 'problem'>;

/**
 * How a keyfleet service listens (docs/gateway.md, "HTTPS"). HTTPS is the default: TLS 1.3 only,
 * a certificate issued at each start by a CA key in the service's HSM token, for a P-256 key made
 * in memory at that start, so no TLS private key is ever written to disk (Node's TLS cannot use a
 * PKCS#11 key directly). Plain HTTP is a development option, and only on a loopback address.
 */
export type ListenerSecurity =
  | {
      readonly kind: 'https';
      /** DNS names and IP addresses the certificate is valid for. */
      readonly names: readonly string[];
      /** Mutual TLS: every client presents a certificate of the device CA (a device's). */
      readonly requireClientCertificate: boolean;
    }
  | { readonly kind: 'plain-http' };

/** Whether `host` is a loopback address, where plain HTTP may be allowed for development. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

/** Whether a server certificate may name `name`: a DNS name or an IP address. */
export function isServerName(name: string): boolean {
  return isIP(name) !== 0 || /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$/.test(name);
}

/**
 * Reads `<prefix>TLS`: `on` (the default) is true; `off` (plain HTTP) is false, and refused unless
 * the service listens on loopback. Every keyfleet listener (gateway, verifier, console) obeys this.
 */
export function readTlsSwitch(read: SettingsReader, prefix: string, host: string): boolean {
  const mode = read.optional(`${prefix}TLS`) ?? 'on';
  if (mode === 'off' && !isLoopback(host)) {
    read.problem(`${prefix}TLS=off (plain HTTP) is a development option allowed only on loopback, not on ${host}`);
  }
  if (mode !== 'on' && mode !== 'off') read.problem(`${prefix}TLS must be on or off, got "${mode}"`);
  return mode !== 'off';
}

/**
 * Reads `<prefix>TLS` (`on`, the default, or `off`), `<prefix>TLS_NAMES` (comma-separated; default
 * the listening host, `localhost`, `127.0.0.1` and `::1`) and `<prefix>TLS_CLIENT_AUTH` (`none`,
 * the default, or `require`). `off` is refused unless the service listens on loopback.
 */
export function readListenerSecurity(read: SettingsReader, prefix: string, host: string): ListenerSecurity {
  const clientAuth = read.optional(`${prefix}TLS_CLIENT_AUTH`) ?? 'none';
  if (!readTlsSwitch(read, prefix, host)) {
    if (clientAuth !== 'none') read.problem(`${prefix}TLS_CLIENT_AUTH=${clientAuth} needs ${prefix}TLS=on`);
    return { kind: 'plain-http' };
  }
  if (clientAuth !== 'none' && clientAuth !== 'require') {
    read.problem(`${prefix}TLS_CLIENT_AUTH must be none or require, got "${clientAuth}"`);
  }
  const wildcard = host === '0.0.0.0' || host === '::';
  const defaults = [...(wildcard ? [] : [host]), 'localhost', '127.0.0.1', '::1'];
  const names = (read.optional(`${prefix}TLS_NAMES`)?.split(',') ?? defaults).map((n) => n.trim()).filter(Boolean);
  for (const name of names) {
    if (!isServerName(name)) {
      read.problem(`${prefix}TLS_NAMES: "${name}" is neither a DNS name nor an IP address`);
    }
  }
  if (names.length === 0) read.problem(`${prefix}TLS_NAMES names no host`);
  return { kind: 'https', names: [...new Set(names)], requireClientCertificate: clientAuth === 'require' };
}

/** What issues the service's certificate: its CA, over a key in the HSM. */
export interface ServerCertificateIssuer {
  /** The CA certificate, PEM: what clients trust (and, for mutual TLS, what client certificates chain to). */
  readonly certificatePem: string;
  issueServer(publicKey: KeyObject, names: readonly string[]): Promise<string>;
}

/** Node TLS server options for a listener: TLS 1.3 only, a fresh in-memory key, optional mutual TLS. */
export type HttpsOptions = TlsOptions & SecureContextOptions;

/**
 * The HTTPS options of a listener, or undefined for plain HTTP. The private key is made here and
 * lives only in this process's memory; its certificate is signed by the HSM-held CA key.
 */
export async function httpsOptions(
  security: ListenerSecurity,
  issuer: ServerCertificateIssuer,
  clientCaPem: string = issuer.certificatePem,
): Promise<HttpsOptions | undefined> {
  if (security.kind === 'plain-http') return undefined;
  return {
    ...(await issueServerKeyPair(issuer, security.names)),
    ...TLS13_ONLY,
    ...(security.requireClientCertificate
      ? { requestCert: true, rejectUnauthorized: true, ca: clientCaPem }
      : { requestCert: false }),
  };
}

/** TLS 1.3 and nothing older: the protocol range of every keyfleet listener. */
export const TLS13_ONLY = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' } as const;

/** A server's key (PKCS#8 PEM) and its certificate (PEM) for `names`, signed by `issuer`. */
export interface ServerKeyPair {
  readonly key: string;
  /** The chain up to, not including, the root: clients hold the root (the CA file they trust). */
  readonly cert: string;
}

/** Makes a fresh P-256 key and has `issuer` certify it as a TLS server for `names`. */
export async function issueServerKeyPair(
  issuer: ServerCertificateIssuer,
  names: readonly string[],
): Promise<ServerKeyPair> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const cert = await issuer.issueServer(publicKey, names);
  return { key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), cert };
}
