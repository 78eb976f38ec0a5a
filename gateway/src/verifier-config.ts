import { IdRuleText, isId, PolicyIdMaxLength } from '@keyfleet/protocol';
import { Limits } from '@keyfleet/protocol';
import { replicaUris } from './config';
import { newEnvReader, type Env } from './env';
import { readListenerSecurity, type ListenerSecurity } from './http/tls';

/** The verifier service's configuration: Org2's own process, token, identity and listener. */
export interface VerifierConfig {
  readonly http: {
    readonly host: string;
    readonly port: number;
    readonly bodyLimit: number;
    /** HTTPS (the default; certificate from the verifier's TLS CA) or plain HTTP on loopback. */
    readonly security: ListenerSecurity;
  };
  readonly hsm: {
    readonly modulePath: string;
    /** RFC 7512 URI naming the verifier's own token, e.g. `pkcs11:token=keyfleet-verifier`. */
    readonly tokenUri: string;
    readonly pin: string;
    readonly sessions: number;
    /**
     * The other tokens of the verifier's HSM cluster (docs/hsm-cluster.md), in failover order;
     * empty for a single token. Every member takes the same user PIN.
     */
    readonly replicas: readonly string[];
  };
  readonly ledger: {
    /** The connection description (JSON) that network/network.sh writes. */
    readonly connectionProfile: string;
    /** The verifier's organisation: its peer and its CA (`Org2`). */
    readonly org: string;
    /** The registered Fabric CA enrolment id, with role `verifier` (`keyfleet-verifier`). */
    readonly enrolmentId: string;
    /** The chaincode name, when not the connection description's: the operator gateway's namespace. */
    readonly chaincode: string | undefined;
  };
  /**
   * The device CA certificate (PEM) the operator publishes; trusted only if its key is an active
   * `device-ca` trust anchor on the ledger.
   */
  readonly deviceCaCertificateFile: string;
  readonly auth: {
    /** JWKS of the bearer tokens the read routes accept; without one, they answer 401. */
    readonly jwksFile: string | undefined;
    readonly audience: string;
  };
  readonly attestation: {
    readonly challengeTtlSeconds: number;
    /** Results per Merkle batch; 1 records each result in its own transaction. */
    readonly batchSize: number;
    /** Longest a result waits for its batch. */
    readonly batchDelayMs: number;
    /** Names this verifier's appraisal rules in every result. */
    readonly policyId: string;
  };
  readonly dataDir: string;
  readonly logLevel: string;
}

const verifierTokenUri = 'pkcs11:token=keyfleet-verifier';

/**
 * Reads and validates the verifier's whole configuration from `KEYFLEET_VERIFIER_*` variables.
 * Every problem is listed in one error; the PIN is never part of a message.
 */
export function loadVerifierConfig(env: Env): VerifierConfig {
  const read = newEnvReader(env);
  const dataDir = read.str('KEYFLEET_VERIFIER_DATA_DIR', '.keyfleet-verifier');
  const policyId = read.str('KEYFLEET_VERIFIER_POLICY_ID', 'keyfleet-appraisal-v1');
  const host = read.str('KEYFLEET_VERIFIER_HTTP_HOST', '127.0.0.1');
  const replicaProblems: string[] = [];
  const config: VerifierConfig = {
    http: {
      host,
      security: readListenerSecurity(read, 'KEYFLEET_VERIFIER_HTTP_', host),
      port: read.int('KEYFLEET_VERIFIER_HTTP_PORT', 8081, 0, 65535),
      bodyLimit: read.int('KEYFLEET_VERIFIER_HTTP_BODY_LIMIT', 64 * 1024, 1024, 16 * 1024 * 1024),
    },
    hsm: {
      modulePath: read.str('KEYFLEET_VERIFIER_HSM_MODULE', '/usr/lib/softhsm/libsofthsm2.so'),
      tokenUri: read.str('KEYFLEET_VERIFIER_HSM_URI', verifierTokenUri),
      pin: read.pin('KEYFLEET_VERIFIER_HSM_'),
      sessions: read.int('KEYFLEET_VERIFIER_HSM_SESSIONS', 4, 1, 64),
      replicas: replicaUris(env, 'KEYFLEET_VERIFIER_', verifierTokenUri, replicaProblems),
    },
    ledger: {
      connectionProfile: read.str('KEYFLEET_VERIFIER_FABRIC_CONNECTION', '.fabric/network/connection.json'),
      org: read.str('KEYFLEET_VERIFIER_FABRIC_ORG', 'Org2'),
      enrolmentId: read.str('KEYFLEET_VERIFIER_FABRIC_ENROLMENT_ID', 'keyfleet-verifier'),
      chaincode: read.optional('KEYFLEET_VERIFIER_FABRIC_CHAINCODE'),
    },
    deviceCaCertificateFile: read.str('KEYFLEET_VERIFIER_DEVICE_CA_CERT', '.keyfleet/device-ca.pem'),
    auth: {
      jwksFile: read.optional('KEYFLEET_VERIFIER_AUTH_JWKS'),
      audience: read.str('KEYFLEET_VERIFIER_AUTH_AUDIENCE', 'keyfleet-verifier'),
    },
    attestation: {
      challengeTtlSeconds: read.int('KEYFLEET_VERIFIER_CHALLENGE_TTL', 120, 1, 3600),
      batchSize: read.int('KEYFLEET_VERIFIER_BATCH_SIZE', 1, 1, Limits.BatchMembers),
      batchDelayMs: read.int('KEYFLEET_VERIFIER_BATCH_DELAY_MS', 2000, 1, 60_000),
      policyId,
    },
    dataDir,
    logLevel: read.str('KEYFLEET_VERIFIER_LOG_LEVEL', 'info'),
  };
  if (!isId(policyId, PolicyIdMaxLength)) {
    read.problem(
      `KEYFLEET_VERIFIER_POLICY_ID must be ${IdRuleText}, at most ${PolicyIdMaxLength} characters, got "${policyId}"`,
    );
  }
  for (const problem of replicaProblems) read.problem(problem);
  read.done();
  return config;
}
