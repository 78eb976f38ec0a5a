import { readFileSync } from 'node:fs';
import { httpUrlProblem } from './env';
import { GatewayError, GatewayErrorCode } from './errors';
import { readListenerSecurity, type ListenerSecurity } from './http/tls';

export interface Config {
  readonly http: {
    readonly host: string;
    readonly port: number;
    readonly bodyLimit: number;
    /** HTTPS (the default; certificate from the device CA) or plain HTTP on loopback (development). */
    readonly security: ListenerSecurity;
  };
  readonly hsm: {
    readonly modulePath: string;
    /** RFC 7512 URI naming the token, e.g. `pkcs11:token=keyfleet`. */
    readonly tokenUri: string;
    readonly pin: string;
    readonly sessions: number;
    /**
     * The other tokens of an HSM cluster (docs/hsm-cluster.md), by RFC 7512 URI, in failover order;
     * empty for a single token. Every member takes the same user PIN.
     */
    readonly replicas: readonly string[];
  };
  /** The Fabric network: always a real one (network/network.sh writes the connection description). */
  readonly ledger: {
    /** The connection description (JSON) that network/network.sh writes. */
    readonly connectionProfile: string;
    /** Which organisation's peer and CA this process uses, e.g. `Org1`. */
    readonly org: string;
    /** The registered Fabric CA enrolment id of this process's HSM-held identity. */
    readonly enrolmentId: string;
    /** The chaincode name, when not the connection description's (a second namespace). */
    readonly chaincode?: string;
  };
  readonly auth: {
    /** JWKS (RFC 7517) of the keys whose bearer tokens the gateway accepts. */
    readonly jwksFile: string;
    readonly audience: string;
  };
  readonly enrolmentTokenTtlSeconds: number;
  /**
   * The attestation verifier: Org2's own service (gateway/src/verifier-main.ts). The gateway
   * forwards the device-facing attestation routes to it and holds no key of Org2's.
   */
  readonly verifier: {
    /** Base URL of the verifier's listener. */
    readonly url: string;
    /**
     * The verifier's TLS CA certificate (PEM file; `KEYFLEET_VERIFIER_CA_FILE`), read at the first
     * forwarded call because the verifier starts after the gateway.
     */
    readonly caFile: string;
    /** Longest wait for one forwarded answer (an evidence answer includes the ledger commit). */
    readonly timeoutMs: number;
  };
  /** How often the rotation scheduler asks the ledger which keys are due; 0 turns it off. */
  readonly schedulerIntervalMs: number;
  readonly dataDir: string;
  readonly logLevel: string;
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Reads and validates the whole configuration from the environment. Every problem is listed
 * in one error, so an operator fixes them all at once. The PIN is never part of a message.
 */
export function loadConfig(env: Env): Config {
  const problems: string[] = [];

  const str = (name: string, fallback?: string): string => {
    const value = env[name] ?? fallback;
    if (value === undefined || value === '') {
      problems.push(`${name} is required`);
      return '';
    }
    return value;
  };
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
      return fallback;
    }
    return value;
  };

  const dataDir = str('KEYFLEET_DATA_DIR', '.keyfleet');
  const pin = readPin(env, problems);

  if (env.KEYFLEET_LEDGER !== undefined && env.KEYFLEET_LEDGER !== 'fabric') {
    problems.push(`KEYFLEET_LEDGER=${env.KEYFLEET_LEDGER} is not supported: the ledger is always a Fabric network`);
  }
  const ledger: Config['ledger'] = {
    connectionProfile: str('KEYFLEET_FABRIC_CONNECTION', '.fabric/network/connection.json'),
    org: str('KEYFLEET_FABRIC_ORG', 'Org1'),
    enrolmentId: str('KEYFLEET_FABRIC_ENROLMENT_ID', 'keyfleet-gateway'),
    ...(env.KEYFLEET_FABRIC_CHAINCODE ? { chaincode: env.KEYFLEET_FABRIC_CHAINCODE } : {}),
  };

  const host = str('KEYFLEET_HTTP_HOST', '127.0.0.1');
  const settings = {
    optional: (name: string) => (env[name] === '' ? undefined : env[name]),
    problem: (message: string) => problems.push(message),
  };
  const config: Config = {
    http: {
      host,
      port: int('KEYFLEET_HTTP_PORT', 8080, 0, 65535),
      bodyLimit: int('KEYFLEET_HTTP_BODY_LIMIT', 64 * 1024, 1024, 16 * 1024 * 1024),
      security: readListenerSecurity(settings, 'KEYFLEET_HTTP_', host),
    },
    hsm: {
      modulePath: str('KEYFLEET_HSM_MODULE', '/usr/lib/softhsm/libsofthsm2.so'),
      tokenUri: str('KEYFLEET_HSM_URI', 'pkcs11:token=keyfleet'),
      pin,
      sessions: int('KEYFLEET_HSM_SESSIONS', 4, 1, 64),
      replicas: replicaUris(env, 'KEYFLEET_', 'pkcs11:token=keyfleet', problems),
    },
    ledger,
    auth: {
      jwksFile: str('KEYFLEET_AUTH_JWKS', `${dataDir}/auth/jwks.json`),
      audience: str('KEYFLEET_AUTH_AUDIENCE', 'keyfleet-gateway'),
    },
    enrolmentTokenTtlSeconds: int('KEYFLEET_ENROLMENT_TOKEN_TTL', 3600, 60, 7 * 24 * 3600),
    verifier: {
      url: verifierUrl(env, problems),
      caFile: settings.optional('KEYFLEET_VERIFIER_CA_FILE') ?? `${verifierDataDir(env)}/tls-ca.pem`,
      timeoutMs: int('KEYFLEET_VERIFIER_TIMEOUT_MS', 90_000, 100, 600_000),
    },
    schedulerIntervalMs: int('KEYFLEET_SCHEDULER_INTERVAL_MS', 60_000, 0, 24 * 3600 * 1000),
    dataDir,
    logLevel: str('KEYFLEET_LOG_LEVEL', 'info'),
  };

  // Attestation moved to the verifier service: an old setting here would silently do nothing.
  for (const [moved, now] of [
    ['KEYFLEET_CHALLENGE_TTL', 'KEYFLEET_VERIFIER_CHALLENGE_TTL'],
    ['KEYFLEET_ATTESTATION_BATCH_SIZE', 'KEYFLEET_VERIFIER_BATCH_SIZE'],
    ['KEYFLEET_ATTESTATION_BATCH_DELAY_MS', 'KEYFLEET_VERIFIER_BATCH_DELAY_MS'],
  ] as const) {
    if (env[moved] !== undefined) problems.push(`${moved} is a setting of the verifier service now: ${now}`);
  }

  if (problems.length > 0) {
    throw new GatewayError(GatewayErrorCode.ConfigInvalid, `invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  return config;
}

/**
 * `<prefix>HSM_REPLICAS` (KEYFLEET_HSM_REPLICAS, KEYFLEET_VERIFIER_HSM_REPLICAS): comma-separated
 * token URIs, each `pkcs11:token=<label>`, none repeated nor the token of `<prefix>HSM_URI`.
 */
export function replicaUris(env: Env, prefix: string, defaultUri: string, problems: string[]): string[] {
  const name = `${prefix}HSM_REPLICAS`;
  const raw = env[name] ?? '';
  if (raw.trim() === '') return [];
  const uris = raw.split(',').map((u) => u.trim());
  const primary = (env[`${prefix}HSM_URI`] ?? defaultUri).trim();
  for (const uri of uris) {
    if (!/^pkcs11:token=[^;,?]{1,32}$/.test(uri)) {
      problems.push(`${name}: "${uri}" is not a token URI (pkcs11:token=<label>)`);
    }
  }
  if (new Set([primary, ...uris]).size !== uris.length + 1) {
    problems.push(`${name} names a token twice, or the token of ${prefix}HSM_URI`);
  }
  return uris;
}

/** KEYFLEET_VERIFIER_URL: where the verifier service listens (by default its port on this host). */
function verifierUrl(env: Env, problems: string[]): string {
  const raw = env.KEYFLEET_VERIFIER_URL ?? 'https://127.0.0.1:8081';
  const problem = httpUrlProblem('KEYFLEET_VERIFIER_URL', raw);
  if (problem !== null) problems.push(problem);
  return raw;
}

/** Where the verifier on this host keeps its TLS CA certificate, unless KEYFLEET_VERIFIER_CA_FILE says. */
function verifierDataDir(env: Env): string {
  return env.KEYFLEET_VERIFIER_DATA_DIR ?? '.keyfleet-verifier';
}

/** The HSM user PIN from KEYFLEET_HSM_PIN or the file named by KEYFLEET_HSM_PIN_FILE. */
function readPin(env: Env, problems: string[]): string {
  if (env.KEYFLEET_HSM_PIN !== undefined && env.KEYFLEET_HSM_PIN !== '') return env.KEYFLEET_HSM_PIN;
  const file = env.KEYFLEET_HSM_PIN_FILE;
  if (file === undefined || file === '') {
    problems.push('one of KEYFLEET_HSM_PIN or KEYFLEET_HSM_PIN_FILE is required');
    return '';
  }
  try {
    const pin = readFileSync(file, 'utf8').trim();
    if (pin === '') problems.push(`KEYFLEET_HSM_PIN_FILE ${file} is empty`);
    return pin;
  } catch (err) {
    problems.push(`KEYFLEET_HSM_PIN_FILE ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    return '';
  }
}
