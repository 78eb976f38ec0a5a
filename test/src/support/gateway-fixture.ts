import { webcrypto } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type KeyLike } from 'jose';
import { expect } from 'chai';
import {
  openGateway,
  openVerifier,
  loadConfig,
  loadVerifierConfig,
  ApiRole,
  issueBearerToken,
  TLS_CA_FILE,
  type Gateway,
  type VerifierService,
} from '@keyfleet/gateway';
import { x509 } from '@keyfleet/gateway';
import { createSoftHsmStore, softHsmModule, type SoftHsmStore } from '@keyfleet/gateway/testing';

export { softHsmModule };
import { freePort } from '@keyfleet/gateway/testing';
import { fabricEnv, newNamespace, openLedgerView, type LedgerView } from './network';
import { trustCa } from './trust';

export const AUDIENCE = 'keyfleet-gateway';

export interface Caller {
  readonly subject: string;
  readonly role: ApiRole;
  readonly kid: string;
  readonly key: KeyLike;
}

/**
 * A gateway on a fresh SoftHSM token (no key files anywhere) and a fresh chaincode namespace of
 * the real test network, on 127.0.0.1; `ledger` reads that namespace as Org2's auditor.
 */
export interface GatewayFixture {
  readonly gateway: Gateway;
  /** Org2's verifier, on a token of its own; the gateway forwards attestation to it. */
  readonly verifier: VerifierService;
  readonly ledger: LedgerView;
  /** The namespace's chaincode name. */
  readonly chaincode: string;
  readonly store: SoftHsmStore;
  readonly dataDir: string;
  /** The device CA certificate: the gateway's HTTPS certificate chains to it (KEYFLEET_CA_FILE). */
  readonly caCertificate: string;
  /** The verifier's TLS CA certificate (its data directory's tls-ca.pem). */
  readonly verifierCaCertificate: string;
  /** `https://127.0.0.1:<port>` of the verifier. */
  readonly verifierUrl: string;
  /** `https://127.0.0.1:<port>`: this process's fetch trusts both CAs ({@link trustCa}). */
  readonly url: string;
  readonly callers: { operator: Caller; auditor: Caller; application: Caller; payroll: Caller; stranger: Caller };
  bearer(caller: Caller, options?: { audience?: string; ttlSeconds?: number }): Promise<string>;
  /** A call by the operator (alice) that must succeed (status below 300); its JSON answer. */
  operator(method: 'POST' | 'PUT' | 'GET', path: string, body?: unknown): Promise<Record<string, unknown>>;
  /** Writes `caller`'s credentials file, as `keyfleet credentials create` would, and returns its path. */
  credentialsFile(caller: Caller): Promise<string>;
  /** Closes the gateway and opens it again on the same token, ledger and data directory. */
  restart(): Promise<void>;
  /**
   * Another operator gateway on the same token and namespace (as a second host of an HSM cluster
   * would run it), with its own data directory and the same device CA certificate; closed by
   * {@link GatewayFixture.close} if the test has not closed it.
   */
  openSecondGateway(env?: Record<string, string>): Promise<SecondGateway>;
  close(): Promise<void>;
}

export interface SecondGateway {
  readonly gateway: Gateway;
  readonly url: string;
  readonly dataDir: string;
  /**
   * Closes it, runs `whileDown`, and opens it again on the same data directory: a new `/metrics`,
   * the same event checkpoint and deny set.
   */
  restart(whileDown?: () => Promise<void>): Promise<void>;
  close(): Promise<void>;
}

async function newCaller(subject: string, role: ApiRole): Promise<Caller & { jwk: object }> {
  // Extractable so a test can write the caller's credentials file for the CLI.
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const kid = `${subject}-key`;
  return {
    subject,
    role,
    kid,
    key: privateKey,
    jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', sub: subject, role },
  };
}

export async function startGatewayFixture(
  env: Record<string, string> = {},
  verifierEnv: Record<string, string> = {},
  options: {
    chaincodeLang?: 'ccaas' | 'node';
    /** Another network than the test network (a sharded one), with the chaincode deployed on it. */
    network?: { connectionProfile: string; chaincode: string };
  } = {},
): Promise<GatewayFixture> {
  const chaincode = options.network?.chaincode ?? newNamespace('gw', options.chaincodeLang);
  const fabric =
    options.network === undefined
      ? fabricEnv(chaincode)
      : { KEYFLEET_FABRIC_CONNECTION: options.network.connectionProfile, KEYFLEET_FABRIC_CHAINCODE: chaincode };
  const store = createSoftHsmStore('keyfleet-it');
  // Org2's token: another token (SoftHSM reads one store per process; in production the
  // verifier is its own process with its own module and store).
  const verifierToken = 'keyfleet-verifier-it';
  store.addToken(verifierToken);
  const verifierPort = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'keyfleet-gateway-'));
  // The callers' credentials (their private keys) are theirs, never in the gateway's directory.
  const callersDir = mkdtempSync(join(tmpdir(), 'keyfleet-callers-'));
  const operator = await newCaller('alice', ApiRole.Operator);
  const auditor = await newCaller('audrey', ApiRole.Auditor);
  const application = await newCaller('billing', ApiRole.Application);
  const payroll = await newCaller('payroll', ApiRole.Application);
  // Holds a valid key pair, but its public key is not in the gateway's JWKS.
  const stranger = await newCaller('mallory', ApiRole.Operator);
  const jwksFile = join(dataDir, 'auth', 'jwks.json');
  mkdirSync(join(dataDir, 'auth'));
  writeFileSync(jwksFile, JSON.stringify({ keys: [operator.jwk, auditor.jwk, application.jwk, payroll.jwk] }));

  const configEnv = {
    KEYFLEET_HSM_MODULE: softHsmModule,
    KEYFLEET_HSM_URI: store.uri,
    KEYFLEET_HSM_PIN: store.pin,
    KEYFLEET_DATA_DIR: dataDir,
    KEYFLEET_AUTH_JWKS: jwksFile,
    KEYFLEET_LOG_LEVEL: process.env.KEYFLEET_TEST_LOG_LEVEL ?? 'silent',
    KEYFLEET_SCHEDULER_INTERVAL_MS: '0',
    KEYFLEET_VERIFIER_URL: `https://127.0.0.1:${String(verifierPort)}`,
    KEYFLEET_VERIFIER_CA_FILE: join(dataDir, 'verifier', TLS_CA_FILE),
    ...fabric,
    ...env,
  };
  const config = loadConfig(configEnv);
  const verifierConfig = () =>
    loadVerifierConfig({
      KEYFLEET_VERIFIER_HSM_MODULE: softHsmModule,
      KEYFLEET_VERIFIER_HSM_URI: `pkcs11:token=${verifierToken}`,
      KEYFLEET_VERIFIER_HSM_PIN: store.pin,
      KEYFLEET_VERIFIER_DATA_DIR: join(dataDir, 'verifier'),
      KEYFLEET_VERIFIER_DEVICE_CA_CERT: join(dataDir, 'device-ca.pem'),
      KEYFLEET_VERIFIER_FABRIC_CONNECTION: fabric.KEYFLEET_FABRIC_CONNECTION ?? '',
      KEYFLEET_VERIFIER_FABRIC_CHAINCODE: chaincode,
      KEYFLEET_VERIFIER_LOG_LEVEL: process.env.KEYFLEET_TEST_LOG_LEVEL ?? 'silent',
      ...verifierEnv,
    });
  const ledger = openLedgerView(chaincode, 'auditor', fabric.KEYFLEET_FABRIC_CONNECTION);
  const seconds: SecondGateway[] = [];
  let gateway = await openGateway(config);
  const bearer = async (caller: Caller, options: { audience?: string; ttlSeconds?: number } = {}) => {
    const token = await issueBearerToken(caller.key, {
      subject: caller.subject,
      role: caller.role,
      audience: options.audience ?? AUDIENCE,
      kid: caller.kid,
      ttlSeconds: options.ttlSeconds ?? 120,
    });
    return `Bearer ${token}`;
  };
  let url = await gateway.server.listen({ host: '127.0.0.1', port: 0 });
  const caCertificate = readFileSync(join(dataDir, 'device-ca.pem'), 'utf8');
  trustCa(caCertificate);
  const verifier = await openVerifier(verifierConfig());
  await verifier.server.listen({ host: '127.0.0.1', port: verifierPort });
  const verifierCaCertificate = readFileSync(join(dataDir, 'verifier', TLS_CA_FILE), 'utf8');
  trustCa(verifierCaCertificate);

  return {
    get gateway() {
      return gateway;
    },
    verifier,
    ledger,
    chaincode,
    store,
    dataDir,
    caCertificate,
    verifierCaCertificate,
    verifierUrl: `https://127.0.0.1:${String(verifierPort)}`,
    get url() {
      return url;
    },
    callers: { operator, auditor, application, payroll, stranger },
    bearer,
    async operator(method, path, body) {
      const response = await fetch(`${url}${path}`, {
        method,
        headers: {
          authorization: await bearer(operator),
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const answer = (await response.json()) as Record<string, unknown>;
      expect(response.status, `${method} ${path}: ${JSON.stringify(answer)}`).to.be.below(300);
      return answer;
    },
    async credentialsFile(caller) {
      const file = join(callersDir, `${caller.subject}.json`);
      const privateJwk = { ...(await exportJWK(caller.key)), kid: caller.kid };
      writeFileSync(file, JSON.stringify({ subject: caller.subject, role: caller.role, kid: caller.kid, privateJwk }), {
        mode: 0o600,
      });
      return file;
    },
    async restart() {
      await gateway.close();
      gateway = await openGateway(config);
      url = await gateway.server.listen({ host: '127.0.0.1', port: 0 });
    },
    async openSecondGateway(extraEnv = {}) {
      const secondDir = mkdtempSync(join(tmpdir(), 'keyfleet-gateway-b-'));
      copyFileSync(join(dataDir, 'device-ca.pem'), join(secondDir, 'device-ca.pem'));
      const secondConfig = { ...loadConfig({ ...configEnv, ...extraEnv }), dataDir: secondDir };
      let second = await openGateway(secondConfig);
      let secondUrl = await second.server.listen({ host: '127.0.0.1', port: 0 });
      let open = true;
      const handle: SecondGateway = {
        get gateway() {
          return second;
        },
        get url() {
          return secondUrl;
        },
        dataDir: secondDir,
        async restart(whileDown) {
          await second.close();
          await whileDown?.();
          second = await openGateway(secondConfig);
          secondUrl = await second.server.listen({ host: '127.0.0.1', port: 0 });
        },
        async close() {
          if (!open) return;
          open = false;
          await second.close();
          rmSync(secondDir, { recursive: true, force: true });
        },
      };
      seconds.push(handle);
      return handle;
    },
    async close() {
      for (const second of seconds) await second.close();
      await gateway.close();
      await verifier.close();
      ledger.close();
      store.remove();
      rmSync(dataDir, { recursive: true, force: true });
      rmSync(callersDir, { recursive: true, force: true });
    },
  };
}

/** A device's key pair and its PKCS#10 request, made the way the agent makes them. */
export async function newDeviceCsr(
  commonName: string,
  algorithm: webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' },
): Promise<{ csr: string; keys: webcrypto.CryptoKeyPair }> {
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const signingAlgorithm = algorithm.name === 'ECDSA' ? { name: 'ECDSA', hash: 'SHA-256' } : algorithm;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${commonName}`, keys, signingAlgorithm });
  return { csr: csr.toString('pem'), keys };
}

/** A JWT that looks like a bearer token but is not signed (alg "none"). */
export function unsignedToken(claims: object): string {
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${encode({ alg: 'none' })}.${encode(claims)}.`;
}

/** A bearer token with any claims, signed by `caller`'s key. */
export async function customToken(
  caller: Caller,
  claims: Record<string, unknown>,
  iat: number,
  exp: number,
  header: { kid?: string } = { kid: caller.kid },
) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', ...header })
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .sign(caller.key);
}

export { sha256Hex } from '@keyfleet/protocol';
