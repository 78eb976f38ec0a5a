import { readFileSync } from 'node:fs';
import { GatewayError, GatewayErrorCode } from './errors';

/** Which ledger the gateway writes to. */
export const LedgerKind = {
  /** A Fabric network described by a connection profile written by network/network.sh. */
  Fabric: 'fabric',
  /**
   * keyfleet's contract run inside the gateway process over a file-backed store: the same
   * rules, but no endorsement by a second organisation. For development only.
   */
  Local: 'local',
} as const;
export type LedgerKind = (typeof LedgerKind)[keyof typeof LedgerKind];

export interface Config {
  readonly http: { readonly host: string; readonly port: number; readonly bodyLimit: number };
  readonly hsm: {
    readonly modulePath: string;
    /** RFC 7512 URI naming the token, e.g. `pkcs11:token=keyfleet`. */
    readonly tokenUri: string;
    readonly pin: string;
    readonly sessions: number;
  };
  readonly ledger:
    | { readonly kind: 'fabric'; readonly connectionProfile: string; readonly org: string }
    | { readonly kind: 'local'; readonly stateFile: string };
  readonly auth: {
    /** JWKS (RFC 7517) of the keys whose bearer tokens the gateway accepts. */
    readonly jwksFile: string;
    readonly audience: string;
  };
  readonly enrolmentTokenTtlSeconds: number;
  readonly attestation: {
    readonly challengeTtlSeconds: number;
    /** Results per Merkle batch; 1 records each result in its own transaction. */
    readonly batchSize: number;
    /** Longest a result waits for its batch. */
    readonly batchDelayMs: number;
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

  const kind = env.KEYFLEET_LEDGER ?? LedgerKind.Local;
  let ledger: Config['ledger'];
  if (kind === LedgerKind.Fabric) {
    ledger = {
      kind,
      connectionProfile: str('KEYFLEET_FABRIC_CONNECTION'),
      org: str('KEYFLEET_FABRIC_ORG', 'Org1'),
    };
  } else if (kind === LedgerKind.Local) {
    ledger = { kind, stateFile: str('KEYFLEET_LOCAL_LEDGER_FILE', `${dataDir}/local-ledger.jsonl`) };
  } else {
    problems.push(`KEYFLEET_LEDGER must be "fabric" or "local", got "${kind}"`);
    ledger = { kind: LedgerKind.Local, stateFile: '' };
  }

  const config: Config = {
    http: {
      host: str('KEYFLEET_HTTP_HOST', '127.0.0.1'),
      port: int('KEYFLEET_HTTP_PORT', 8080, 0, 65535),
      bodyLimit: int('KEYFLEET_HTTP_BODY_LIMIT', 64 * 1024, 1024, 16 * 1024 * 1024),
    },
    hsm: {
      modulePath: str('KEYFLEET_HSM_MODULE', '/usr/lib/softhsm/libsofthsm2.so'),
      tokenUri: str('KEYFLEET_HSM_URI', 'pkcs11:token=keyfleet'),
      pin,
      sessions: int('KEYFLEET_HSM_SESSIONS', 4, 1, 64),
    },
    ledger,
    auth: {
      jwksFile: str('KEYFLEET_AUTH_JWKS', `${dataDir}/auth/jwks.json`),
      audience: str('KEYFLEET_AUTH_AUDIENCE', 'keyfleet-gateway'),
    },
    enrolmentTokenTtlSeconds: int('KEYFLEET_ENROLMENT_TOKEN_TTL', 3600, 60, 7 * 24 * 3600),
    attestation: {
      challengeTtlSeconds: int('KEYFLEET_CHALLENGE_TTL', 120, 1, 3600),
      batchSize: int('KEYFLEET_ATTESTATION_BATCH_SIZE', 1, 1, 10_000),
      batchDelayMs: int('KEYFLEET_ATTESTATION_BATCH_DELAY_MS', 2000, 1, 60_000),
    },
    schedulerIntervalMs: int('KEYFLEET_SCHEDULER_INTERVAL_MS', 60_000, 0, 24 * 3600 * 1000),
    dataDir,
    logLevel: str('KEYFLEET_LOG_LEVEL', 'info'),
  };

  if (problems.length > 0) {
    throw new GatewayError(GatewayErrorCode.ConfigInvalid, `invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  return config;
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
