import { readFileSync } from 'node:fs';
import { Agent, fetch as undiciFetch } from 'undici';

/**
 * What a client trusts and presents on a keyfleet HTTPS connection. keyfleet's servers hold
 * certificates from the operator's CA, which no public trust store knows: the operator hands out
 * its certificate (`.keyfleet/device-ca.pem` after `npm start`), and clients name it here.
 */
export interface TlsTrust {
  /** The CA certificate(s) to trust, PEM (one file may hold several). */
  readonly ca?: string;
  /** A client certificate chain, PEM, for servers that require mutual TLS (a device's certificate). */
  readonly cert?: string;
  /** Its private key, PEM. */
  readonly key?: string;
}

/** The environment settings every keyfleet client reads (README, "Configuration"). */
export const TlsEnv = {
  /** The operator's CA certificate file: servers' certificates must chain to it. */
  ca: 'KEYFLEET_CA_FILE',
} as const;

/** The trust named by KEYFLEET_CA_FILE, or none (only public CAs are trusted then). */
export function tlsTrustFromEnv(env: Readonly<Record<string, string | undefined>>): TlsTrust {
  const file = env[TlsEnv.ca];
  if (file === undefined || file === '') return {};
  try {
    return { ca: readFileSync(file, 'utf8') };
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    throw new Error(`${TlsEnv.ca}=${file} cannot be read (${typeof code === 'string' ? code : 'error'})`, {
      cause: err,
    });
  }
}

/**
 * A `fetch` that trusts `trust.ca` and presents `trust.cert` (TLS 1.3 only: keyfleet's servers
 * accept nothing older). Without any setting, the global fetch, so plain development URLs and
 * tests' stand-in `fetch` keep working.
 */
export function newTlsFetch(trust: TlsTrust = {}): typeof fetch {
  if (trust.ca === undefined && trust.cert === undefined) return fetch;
  const dispatcher = new Agent({
    connect: {
      minVersion: 'TLSv1.3',
      ...(trust.ca === undefined ? {} : { ca: trust.ca }),
      ...(trust.cert === undefined ? {} : { cert: trust.cert }),
      ...(trust.key === undefined ? {} : { key: trust.key }),
    },
  });
  // undici's own fetch with its own Agent: Node's bundled fetch may be another undici version.
  // Its types are undici's, structurally the same as the DOM's that the global fetch uses.
  const tlsFetch = (input: string | URL, init?: RequestInit) =>
    undiciFetch(input, { ...(init as object), dispatcher }) as unknown as Promise<Response>;
  return tlsFetch as typeof fetch;
}
