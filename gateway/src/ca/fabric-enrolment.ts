import { webcrypto, X509Certificate, type KeyObject } from 'node:crypto';
import { request } from 'node:https';
import { delegatingCrypto, type EcSigningKey } from '../crypto/ec-key';
import * as x509 from '../crypto/x509';
import { GatewayError, GatewayErrorCode } from '../errors';
import { FABRIC_ATTRIBUTE_OID } from './identity-certificate';

/** The attribute that carries the keyfleet role; the chaincode reads it with `getAttributeValue('role')`. */
const ROLE_ATTRIBUTE = 'role';
/** Fabric CA refuses a subject CN longer than this (`csrInputLengthCheck`, RFC 5280 ub-common-name). */
const MAX_COMMON_NAME = 64;
const MAX_RESPONSE_BYTES = 1 << 20;
const DEFAULT_TIMEOUT_MS = 10_000;

/** Why a `FABRIC_ENROLMENT_REFUSED` error was raised: its `detail`. */
export const FabricEnrolmentFailure = {
  /** The CA's TLS certificate does not chain to the pinned root, or does not name the host. */
  CaTlsUntrusted: 'CA_TLS_UNTRUSTED',
  /** Unknown enrolment id or wrong secret: Fabric CA answers both with code 20 and does not say which. */
  AuthenticationFailed: 'CA_AUTHENTICATION_FAILED',
  /** The identity is registered without the `role` attribute (Fabric CA answers code 0, HTTP 500). */
  RoleAttributeMissing: 'CA_ROLE_ATTRIBUTE_MISSING',
  /** Any other refusal by the CA; the message carries the CA's code and words. */
  CaRefused: 'CA_REFUSED',
  /** The answer is not a Fabric CA enrolment response. */
  ResponseInvalid: 'CA_RESPONSE_INVALID',
  /** The certificate certifies another key than the HSM key. */
  KeyMismatch: 'CERTIFICATE_KEY_MISMATCH',
  /** The certificate has no `role` attribute, or another value than expected. */
  RoleMismatch: 'CERTIFICATE_ROLE_MISMATCH',
  /** No certificate of the CA chain issued the certificate. */
  NotIssuedByCa: 'CERTIFICATE_NOT_ISSUED_BY_CA',
  /** The certificate has expired or is not valid yet. */
  NotValidNow: 'CERTIFICATE_NOT_VALID_NOW',
} as const;
export type FabricEnrolmentFailure = (typeof FabricEnrolmentFailure)[keyof typeof FabricEnrolmentFailure];

export interface IdentityCsrOptions {
  /** The subject CN. Fabric CA requires it to equal the enrolment id (its error code 77). */
  readonly commonName: string;
}

export interface FabricEnrolmentOptions {
  /** The CA's base URL, `https://host:port`; credentials never go in it. */
  readonly url: string;
  /** PEM of the root(s) the CA's TLS certificate must chain to; the only roots trusted. */
  readonly tlsRootCertPem: string;
  /** The CA's name (`--ca.name`) when one server hosts several; the default CA otherwise. */
  readonly caName?: string;
  readonly enrolmentId: string;
  readonly enrolmentSecret: string;
  /** The value the certificate's `role` attribute must have, e.g. `operator`. */
  readonly role: string;
  /** Bound on the whole exchange (connect, TLS, answer); default 10 s. */
  readonly timeoutMs?: number;
}

export interface FabricCsrEnrolmentOptions extends FabricEnrolmentOptions {
  /** A PKCS#10 request from {@link newIdentityCsr}. */
  readonly csrPem: string;
  /** The HSM key's public key: the request and the certificate must be for exactly this key. */
  readonly publicKey: KeyObject;
}

export interface FabricEnrolment {
  /** The enrolment certificate (PEM), checked by {@link assertFabricIdentity}. */
  readonly certificatePem: string;
  /** The CA's chain (PEM, issuing CA first) as the CA reports it; the MSP's CA certificates. */
  readonly caChainPem: string;
}

export interface FabricIdentityExpectations {
  readonly publicKey: KeyObject;
  readonly role: string;
  /** When given, one of its certificates must have issued the certificate. */
  readonly caChainPem?: string;
  /** The clock the validity period is checked against; default the system clock. */
  readonly now?: () => Date;
}

/**
 * A PKCS#10 certificate request (PEM) for `key`, signed by it: with an HSM key the signature
 * is made in the token. The request's own signature is checked before it is returned, so a key
 * whose public half does not match its private half fails here, not at the CA.
 *
 * @throws GatewayError `CONFIG_INVALID` (empty or over-long common name, not a P-256 key),
 *   `HSM_FAILURE` (the signature does not verify)
 */
export async function newIdentityCsr(key: EcSigningKey, options: IdentityCsrOptions): Promise<string> {
  const { commonName } = options;
  if (commonName.length === 0 || commonName.length > MAX_COMMON_NAME) {
    throw new GatewayError(
      GatewayErrorCode.ConfigInvalid,
      `the common name must be 1 to ${MAX_COMMON_NAME} characters`,
    );
  }
  if (key.publicKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new GatewayError(GatewayErrorCode.ConfigInvalid, `key ${key.label} is not an EC P-256 key`);
  }
  const { crypto, signingKey } = delegatingCrypto(key);
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' } as const;
  const spki = key.publicKey.export({ type: 'spki', format: 'der' });
  const publicKey = await webcrypto.subtle.importKey('spki', spki, algorithm, true, ['verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    {
      // A JSON name, not `CN=${…}`: a comma or `=` in the name must not become another RDN.
      name: [{ CN: [commonName] }],
      keys: { publicKey, privateKey: signingKey },
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    },
    crypto,
  );
  if (!(await csr.verify())) {
    throw new GatewayError(GatewayErrorCode.HsmFailure, `the signature of key ${key.label} does not verify`);
  }
  return csr.toString('pem');
}

/**
 * Enrols `key` with the Fabric CA as `options.enrolmentId`: a request signed in the HSM with
 * CN = enrolment id (which Fabric CA requires), then {@link enrolWithCsr}. The identity the
 * gateway then uses is this certificate and the HSM key.
 *
 * @example
 * ```ts
 * const key = await hsmSigningKey(hsm, 'fabric-identity');
 * const { certificatePem } = await enrolFabricIdentity(key, {
 *   url: 'https://ca.org1.example:7054', tlsRootCertPem, enrolmentId: 'gateway-1', enrolmentSecret, role: 'operator',
 * });
 * ```
 * @throws GatewayError as {@link newIdentityCsr} and {@link enrolWithCsr}
 */
export async function enrolFabricIdentity(
  key: EcSigningKey,
  options: FabricEnrolmentOptions,
): Promise<FabricEnrolment> {
  const csrPem = await newIdentityCsr(key, { commonName: options.enrolmentId });
  return enrolWithCsr({ ...options, csrPem, publicKey: key.publicKey });
}

/**
 * Sends `csrPem` to Fabric CA's `POST /api/v1/enroll` over TLS that trusts only
 * `tlsRootCertPem`, authenticated with the registered enrolment id and secret, asking for the
 * `role` attribute (required), and checks the answer with {@link assertFabricIdentity}.
 * Error messages name the CA and the enrolment id, never the secret.
 *
 * @throws GatewayError `CONFIG_INVALID` (options), `CSR_INVALID` (not a request for `publicKey`;
 *   nothing is sent), `FABRIC_CA_UNAVAILABLE` (unreachable, no answer in time, 5xx without a Fabric
 *   CA body: a retry may help), `FABRIC_ENROLMENT_REFUSED` with a {@link FabricEnrolmentFailure} detail
 */
export async function enrolWithCsr(options: FabricCsrEnrolmentOptions): Promise<FabricEnrolment> {
  const endpoint = validate(options);
  const secret = options.enrolmentSecret;
  const redact = (text: string): string => (secret === '' ? text : text.split(secret).join('<secret>'));
  const who = `enrolment of ${options.enrolmentId} at ${endpoint.origin}`;
  const refuse = (detail: FabricEnrolmentFailure, message: string, cause?: unknown): GatewayError =>
    new GatewayError(
      GatewayErrorCode.FabricEnrolmentRefused,
      redact(`${who}: ${message}`),
      detail,
      cause === undefined ? undefined : { cause },
    );
  const unavailable = (message: string, cause?: unknown): GatewayError =>
    new GatewayError(
      GatewayErrorCode.FabricCaUnavailable,
      redact(`${who}: ${message}`),
      undefined,
      cause === undefined ? undefined : { cause },
    );

  assertCsrFor(options.csrPem, options.publicKey);
  const body = JSON.stringify({
    certificate_request: options.csrPem,
    ...(options.caName === undefined ? {} : { caname: options.caName }),
    attr_reqs: [{ name: ROLE_ATTRIBUTE, optional: false }],
  });
  const credentials = Buffer.from(`${options.enrolmentId}:${secret}`).toString('base64');

  let answer: HttpAnswer;
  try {
    answer = await postJson(endpoint, body, {
      ca: options.tlsRootCertPem,
      authorization: `Basic ${credentials}`,
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    });
  } catch (err) {
    const code = errorCode(err);
    if (code !== undefined && tlsVerificationErrors.has(code)) {
      throw refuse(
        FabricEnrolmentFailure.CaTlsUntrusted,
        `the CA's TLS certificate is not trusted by the pinned root (${code})`,
        err,
      );
    }
    if (err instanceof ResponseTooLarge) {
      throw refuse(FabricEnrolmentFailure.ResponseInvalid, 'the answer is larger than 1 MiB');
    }
    const reason = err instanceof Timeout ? `no answer within ${err.ms} ms` : (code ?? 'connection failed');
    throw unavailable(`the CA is unreachable (${reason})`, err);
  }

  const parsed = parseCaResponse(answer.text);
  if (parsed === undefined) {
    if (answer.status >= 500) {
      throw unavailable(`the CA answered HTTP ${answer.status}`);
    }
    throw refuse(FabricEnrolmentFailure.ResponseInvalid, `HTTP ${answer.status} without a Fabric CA answer`);
  }
  if (!parsed.success) {
    const caCode = parsed.errorCode;
    // The CA's words are untrusted text: keep them short.
    const caMessage = (parsed.errorMessage ?? 'no reason given').slice(0, 300);
    if (caCode === 20) {
      throw refuse(
        FabricEnrolmentFailure.AuthenticationFailed,
        'authentication failure: the enrolment id is not registered or the secret is wrong',
      );
    }
    // Fabric CA reports this with its generic code 0; the message is attrmgr's fixed text.
    if (/required attributes are missing/.test(caMessage)) {
      throw refuse(
        FabricEnrolmentFailure.RoleAttributeMissing,
        `the identity is not registered with the '${ROLE_ATTRIBUTE}' attribute (register it with --id.attrs '${ROLE_ATTRIBUTE}=${options.role}:ecert')`,
      );
    }
    throw refuse(
      FabricEnrolmentFailure.CaRefused,
      `the CA refused (HTTP ${answer.status}, code ${caCode ?? '?'}): ${caMessage}`,
    );
  }

  const result = asRecord(parsed.result);
  const certificatePem = decodePem(result?.Cert);
  const caChainPem = decodePem(asRecord(result?.ServerInfo)?.CAChain);
  if (certificatePem === undefined || caChainPem === undefined) {
    throw refuse(FabricEnrolmentFailure.ResponseInvalid, 'the answer lacks the certificate or the CA chain');
  }
  const failure = checkIdentity(certificatePem, { publicKey: options.publicKey, role: options.role, caChainPem });
  if (failure !== undefined) throw refuse(failure.detail, failure.message);
  return { certificatePem, caChainPem };
}

/**
 * Checks a Fabric CA enrolment certificate: it certifies `publicKey`, its Fabric attribute
 * extension (OID 1.2.3.4.5.6.7.8.1, `{"attrs":{…}}`) carries `role` with the expected value,
 * it is within its validity period, and, with `caChainPem`, a certificate of that chain issued
 * it. Use it also on a stored certificate before reusing it.
 *
 * @throws GatewayError `FABRIC_ENROLMENT_REFUSED` with a {@link FabricEnrolmentFailure} detail
 */
export function assertFabricIdentity(certificatePem: string, expected: FabricIdentityExpectations): void {
  const failure = checkIdentity(certificatePem, expected);
  if (failure !== undefined) {
    throw new GatewayError(GatewayErrorCode.FabricEnrolmentRefused, failure.message, failure.detail);
  }
}

interface Failure {
  readonly detail: FabricEnrolmentFailure;
  readonly message: string;
}

function checkIdentity(certificatePem: string, expected: FabricIdentityExpectations): Failure | undefined {
  let cert: X509Certificate;
  let role: string | undefined;
  try {
    cert = new X509Certificate(certificatePem);
    role = roleOf(new x509.X509Certificate(certificatePem));
  } catch {
    return { detail: FabricEnrolmentFailure.ResponseInvalid, message: 'the certificate is not valid X.509' };
  }
  const spki = (k: KeyObject): Buffer => k.export({ type: 'spki', format: 'der' });
  if (!spki(cert.publicKey).equals(spki(expected.publicKey))) {
    return {
      detail: FabricEnrolmentFailure.KeyMismatch,
      message: 'the certificate is for another key than the HSM key',
    };
  }
  if (role !== expected.role) {
    return {
      detail: FabricEnrolmentFailure.RoleMismatch,
      message:
        role === undefined
          ? `the certificate has no '${ROLE_ATTRIBUTE}' attribute`
          : `the certificate's '${ROLE_ATTRIBUTE}' attribute is '${role.slice(0, 64)}', not '${expected.role}'`,
    };
  }
  const now = (expected.now ?? (() => new Date()))();
  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  if (now < notBefore || now > notAfter) {
    return {
      detail: FabricEnrolmentFailure.NotValidNow,
      message: `the certificate is valid from ${notBefore.toISOString()} to ${notAfter.toISOString()}, not at ${now.toISOString()}`,
    };
  }
  if (expected.caChainPem !== undefined) {
    const issuers = splitPem(expected.caChainPem).flatMap((pem) => {
      try {
        return [new X509Certificate(pem)];
      } catch {
        return [];
      }
    });
    if (!issuers.some((issuer) => cert.checkIssued(issuer) && cert.verify(issuer.publicKey))) {
      return {
        detail: FabricEnrolmentFailure.NotIssuedByCa,
        message: 'no certificate of the CA chain issued the certificate',
      };
    }
  }
  return undefined;
}

/** The `role` value in Fabric CA's attribute extension, whose value is raw JSON, not DER. */
function roleOf(cert: x509.X509Certificate): string | undefined {
  const extension = cert.getExtension(FABRIC_ATTRIBUTE_OID);
  if (extension === null) return undefined;
  try {
    const json: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(extension.value));
    const value = asRecord(asRecord(json)?.attrs)?.[ROLE_ATTRIBUTE];
    return typeof value === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Checks the options and returns the enrolment endpoint. */
function validate(options: FabricCsrEnrolmentOptions): URL {
  const invalid = (message: string): GatewayError => new GatewayError(GatewayErrorCode.ConfigInvalid, message);
  let base: URL;
  try {
    base = new URL(options.url);
  } catch {
    throw invalid('the Fabric CA URL is not a URL');
  }
  if (base.protocol !== 'https:') throw invalid('the Fabric CA URL must be https');
  if (base.username !== '' || base.password !== '') {
    throw invalid('the Fabric CA URL must not carry credentials; give the enrolment id and secret instead');
  }
  // Go's BasicAuth splits at the first colon: an id with one would authenticate as another.
  if (options.enrolmentId === '' || options.enrolmentId.includes(':')) {
    throw invalid('the enrolment id must be non-empty and free of colons');
  }
  if (options.enrolmentSecret === '') throw invalid('the enrolment secret is empty');
  if (!/-----BEGIN CERTIFICATE-----/.test(options.tlsRootCertPem)) {
    throw invalid('the Fabric CA TLS root must be a PEM certificate');
  }
  return new URL(`${base.pathname.replace(/\/+$/, '')}/api/v1/enroll`, base.origin);
}

function assertCsrFor(csrPem: string, publicKey: KeyObject): void {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw new GatewayError(GatewayErrorCode.CsrInvalid, 'the request is not a valid PKCS#10 structure', undefined, {
      cause: err,
    });
  }
  const expected = publicKey.export({ type: 'spki', format: 'der' });
  if (!Buffer.from(csr.publicKey.rawData).equals(expected)) {
    throw new GatewayError(GatewayErrorCode.CsrInvalid, 'the request is for another key than the HSM key');
  }
}

/** OpenSSL's certificate verification failures as node reports them (`err.code`). */
const tlsVerificationErrors: ReadonlySet<string> = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function errorCode(err: unknown): string | undefined {
  const code: unknown = err !== null && typeof err === 'object' ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

class Timeout extends Error {
  constructor(readonly ms: number) {
    super(`no answer within ${ms} ms`);
  }
}
class ResponseTooLarge extends Error {}

interface HttpAnswer {
  readonly status: number;
  readonly text: string;
}

function postJson(
  url: URL,
  body: string,
  options: { readonly ca: string; readonly authorization: string; readonly timeoutMs: number },
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        ca: options.ca,
        // One connection per enrolment: nothing pooled outlives the call.
        agent: false,
        headers: {
          authorization: options.authorization,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) req.destroy(new ResponseTooLarge());
          else chunks.push(chunk);
        });
        res.on('end', () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
      },
    );
    const timer = setTimeout(() => req.destroy(new Timeout(options.timeoutMs)), options.timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(body);
  });
}

interface CaResponse {
  readonly success: boolean;
  readonly result: unknown;
  /** The first of `errors`. */
  readonly errorCode: number | undefined;
  readonly errorMessage: string | undefined;
}

/** Fabric CA's (cfssl's) envelope `{success, result, errors: [{code, message}], messages}`, or undefined. */
function parseCaResponse(text: string): CaResponse | undefined {
  let envelope: Readonly<Record<string, unknown>> | undefined;
  try {
    envelope = asRecord(JSON.parse(text));
  } catch {
    return undefined;
  }
  if (envelope === undefined || !('success' in envelope)) return undefined;
  const first = asRecord(Array.isArray(envelope.errors) ? (envelope.errors as unknown[])[0] : undefined);
  return {
    success: envelope.success === true,
    result: envelope.result,
    errorCode: typeof first?.code === 'number' ? first.code : undefined,
    errorMessage: typeof first?.message === 'string' ? first.message : undefined,
  };
}

function asRecord(value: unknown): Readonly<Record<string, unknown>> | undefined {
  return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
}

/** Fabric CA sends PEM text base64-encoded once more (`Cert`, `ServerInfo.CAChain`). */
function decodePem(value: unknown): string | undefined {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return undefined;
  const pem = Buffer.from(value, 'base64').toString('utf8');
  return splitPem(pem).length > 0 ? pem : undefined;
}

function splitPem(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----/g) ?? [];
}
