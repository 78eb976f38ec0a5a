// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata polyfill first.
import 'reflect-metadata';
import { createHash, createPrivateKey, createPublicKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto';

import * as x509 from '@peculiar/x509';
import { CompactSign, compactVerify, decodeProtectedHeader } from 'jose';

import { collectEvidence, type MeasuredFile } from './attestation/index.js';
import { AgentError, AgentErrorCode } from './errors.js';
import { HttpError, newHttpClient, type HttpClient } from './http/client.js';
import type { TlsTrust } from './http/tls.js';
import { newFileKeystore, KeystoreFormat, type Keystore, type KeystoreData, type StoredKey } from './keystore.js';
import {
  deriveDeviceMasterKey,
  deriveKek,
  keyCheckValue,
  rotationNonceDigest,
  RotationMessageType,
  unwrapKey,
} from './protocol.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export interface AgentOptions {
  readonly keystorePath: string;
  /** e.g. `https://gateway.example:8443`; required to enrol, else taken from the keystore. */
  readonly gatewayUrl?: string;
  /** Required to enrol, else taken from the keystore (and checked against it when given). */
  readonly deviceId?: string;
  /**
   * SPKI PEM of the gateway's metadata-signing key, pinned by configuration. When absent, the key
   * the enrolment answer named is pinned (trust on first use, over the enrolment's TLS channel).
   */
  readonly metadataSigningPublicKey?: string;
  /** The operator's CA certificate (KEYFLEET_CA_FILE), and this device's certificate for mutual TLS. */
  readonly tls?: TlsTrust;
  /** A stand-in transport (tests); default a fetch that trusts `tls`. */
  readonly fetch?: typeof fetch;
  /** Another keystore than the file at `keystorePath` (tests, a secure element). */
  readonly keystore?: Keystore;
  readonly now?: () => Date;
  readonly randomBytes?: (size: number) => Uint8Array;
}

export interface EnrolmentResult {
  readonly deviceId: string;
  readonly certificateFingerprint: string;
  readonly transactionId: string;
}

export interface RotationOutcome {
  readonly keyId: string;
  readonly version: number;
  /** 0 when the device held no version before. */
  readonly previousVersion: number;
  readonly kcv: string;
  readonly transactionId: string;
  /** False when the acknowledgement could not be delivered; {@link Agent.checkIn} retries it. */
  readonly acknowledged: boolean;
}

export interface CheckInResult {
  /** Key ids whose pending acknowledgement the gateway recorded now. */
  readonly acknowledged: readonly string[];
  /** Key ids whose acknowledgement is still pending. */
  readonly pending: readonly string[];
  /** Keys the gateway said were due, rotated now. */
  readonly rotated: readonly RotationOutcome[];
}

export interface DataKey {
  readonly keyId: string;
  readonly version: number;
  readonly kcv: string;
  readonly key: Buffer;
}

export interface Agent {
  /** Makes the device key, has it certified with an operator's enrolment token, stores the answer. */
  enrol(enrolmentToken: string): Promise<EnrolmentResult>;
  /**
   * Rotates (or fetches, when the device holds none) the data key `keyId`: signed request with a
   * fresh nonce, verified response, software KEK, RFC 5649 unwrap, KCV check, store, acknowledge.
   */
  rotate(keyId: string): Promise<RotationOutcome>;
  /** Delivers acknowledgements that are still pending. Attestation and due rotations join later. */
  checkIn(): Promise<CheckInResult>;
  /** The stored version of a data key, or null. */
  dataKey(keyId: string): Promise<DataKey | null>;
  /**
   * Proves the device's state (docs/protocol-attestation.md): asks for a challenge, measures the
   * configured files into an EAT signed with the certified key, and returns the verifier's verdict.
   */
  attest(options: AttestOptions): Promise<AttestationOutcome>;
}

/** What the device measures and says about itself in its evidence. */
export interface AttestOptions {
  readonly measuredFiles: readonly MeasuredFile[];
  readonly hwmodel: string;
  readonly swname: string;
  readonly swversion: string;
}

export interface AttestationOutcome {
  /** `affirming`, `warning` or `contraindicated`. */
  readonly status: string;
  /** The EAR: a JWT signed by the verifier's HSM key. */
  readonly ear: string;
  /** The attestation result as the ledger holds it (a Merkle leaf when batched). */
  readonly result: unknown;
  /** `{transactionId, resultId}`, or `{batchId, proof}` when batched. */
  readonly recorded: unknown;
}

const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export function newAgent(options: AgentOptions): Agent {
  const keystore = options.keystore ?? newFileKeystore(options.keystorePath);
  const now = options.now ?? (() => new Date());
  const random = options.randomBytes ?? ((size: number) => randomBytes(size));

  // One client per gateway URL (the enrolled one, or another named for one call) and identity.
  const clients = new Map<string, HttpClient>();
  const transport = {
    ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
    ...(options.tls === undefined ? {} : { tls: options.tls }),
  };

  /**
   * POSTs to the gateway; its refusal is AGENT_GATEWAY_REJECTED with its code as the detail. An
   * enrolled `device` presents its certificate when TLS settings are given, for gateways that
   * require mutual TLS (docs/gateway.md, "HTTPS").
   */
  async function post(base: string, path: string, body: unknown, device?: KeystoreData): Promise<unknown> {
    const identity =
      device?.certificate != null && options.tls !== undefined && options.fetch === undefined
        ? { cert: device.certificate, key: device.privateKey }
        : undefined;
    const key = identity === undefined ? base : `${base} as ${device?.deviceId ?? ''}`;
    let client = clients.get(key);
    if (client === undefined) {
      const tls = identity === undefined ? options.tls : { ...options.tls, ...identity };
      client = newHttpClient({ baseUrl: base, serviceName: 'gateway', ...transport, ...(tls ? { tls } : {}) });
      clients.set(key, client);
    }
    try {
      return await client.request('POST', path, body);
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      if (!err.answered) {
        throw new AgentError(AgentErrorCode.GatewayUnavailable, err.message, undefined, { cause: err });
      }
      throw new AgentError(
        AgentErrorCode.GatewayRejected,
        `the gateway refused: ${err.message}`,
        err.detail ?? err.code,
      );
    }
  }

  async function enrolled(): Promise<KeystoreData & { certificate: string; keyExchangePublicKey: string }> {
    const data = await keystore.load();
    if (data?.certificate == null || data.keyExchangePublicKey === null) {
      throw new AgentError(AgentErrorCode.NotEnrolled, 'the device is not enrolled yet');
    }
    if (options.deviceId !== undefined && options.deviceId !== data.deviceId) {
      throw new AgentError(AgentErrorCode.InvalidArgument, `the keystore belongs to ${data.deviceId}`);
    }
    return data as KeystoreData & { certificate: string; keyExchangePublicKey: string };
  }

  function gatewayOf(data: KeystoreData): string {
    return (options.gatewayUrl ?? data.gatewayUrl).replace(/\/+$/, '');
  }

  function deviceJws(data: KeystoreData & { certificate: string }, typ: string, claims: object): Promise<string> {
    const der = new X509Certificate(data.certificate).raw.toString('base64');
    return new CompactSign(Buffer.from(JSON.stringify(claims), 'utf8'))
      .setProtectedHeader({ alg: 'ES256', typ, x5c: [der] })
      .sign(createPrivateKey(data.privateKey));
  }

  async function sendAck(data: KeystoreData, keyId: string, ack: string): Promise<void> {
    await post(
      gatewayOf(data),
      `/v1/devices/${encodeURIComponent(data.deviceId)}/keys/${encodeURIComponent(keyId)}/rotate/ack`,
      { ack },
      data,
    );
  }

  async function clearPendingAck(keyId: string, ack: string): Promise<void> {
    const latest = await keystore.load();
    const stored = latest?.keys[keyId];
    if (latest === null || stored?.pendingAck !== ack) return;
    await keystore.save({ ...latest, keys: { ...latest.keys, [keyId]: { ...stored, pendingAck: null } } });
  }

  return {
    async enrol(enrolmentToken) {
      const deviceId = options.deviceId;
      const gatewayUrl = options.gatewayUrl;
      if (deviceId === undefined || gatewayUrl === undefined || enrolmentToken === '') {
        throw new AgentError(AgentErrorCode.InvalidArgument, 'enrolment needs a device id, a gateway URL and a token');
      }
      let data = await keystore.load();
      if (data?.certificate != null) {
        throw new AgentError(AgentErrorCode.AlreadyEnrolled, `the keystore already holds device ${data.deviceId}`);
      }
      if (data !== null && data.deviceId !== deviceId) {
        throw new AgentError(AgentErrorCode.InvalidArgument, `the keystore belongs to ${data.deviceId}`);
      }
      if (data === null) {
        // The key is stored before it is sent: if the answer is lost, a retry uses the same key.
        const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
        const csr = await x509.Pkcs10CertificateRequestGenerator.create({
          name: `CN=${deviceId}`,
          keys,
          signingAlgorithm: algorithm,
        });
        const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
        data = {
          format: KeystoreFormat,
          deviceId,
          gatewayUrl,
          privateKey: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })
            .export({ format: 'pem', type: 'pkcs8' })
            .toString(),
          csr: csr.toString('pem'),
          certificate: null,
          caCertificate: null,
          keyExchangePublicKey: null,
          metadataSigningPublicKey: options.metadataSigningPublicKey ?? null,
          keys: {},
        };
        await keystore.save(data);
      }
      const answer = (await post(gatewayUrl.replace(/\/+$/, ''), '/v1/devices', {
        enrolmentToken,
        csr: data.csr,
      })) as Record<string, unknown>;
      const enrolment = checkEnrolment(answer, data);
      await keystore.save({
        ...data,
        certificate: enrolment.certificate,
        caCertificate: enrolment.caCertificate,
        keyExchangePublicKey: enrolment.keyExchangePublicKey,
        metadataSigningPublicKey: data.metadataSigningPublicKey ?? enrolment.metadataSigningPublicKey,
      });
      return {
        deviceId,
        certificateFingerprint: enrolment.certificateFingerprint,
        transactionId: enrolment.transactionId,
      };
    },

    async rotate(keyId) {
      let data = await enrolled();
      const pinned = options.metadataSigningPublicKey ?? data.metadataSigningPublicKey;
      if (pinned === null) {
        throw new AgentError(AgentErrorCode.NoTrustAnchor, 'no metadata-signing key is pinned to verify responses');
      }
      const held = data.keys[keyId];
      if (held?.pendingAck != null) {
        // Finish the previous rotation's acknowledgement first; the gateway records it once.
        await sendAck(data, keyId, held.pendingAck);
        await clearPendingAck(keyId, held.pendingAck);
        data = await enrolled();
      }
      const current = held?.version ?? 0;
      const nonce = Buffer.from(random(32)).toString('base64url');
      const request = await deviceJws(data, RotationMessageType.Request, {
        device_id: data.deviceId,
        key_id: keyId,
        current_version: current,
        nonce,
        iat: Math.floor(now().getTime() / 1000),
      });
      const path = `/v1/devices/${encodeURIComponent(data.deviceId)}/keys/${encodeURIComponent(keyId)}/rotate`;
      const answer = (await post(gatewayOf(data), path, { request }, data)) as { response?: unknown };
      if (typeof answer.response !== 'string') {
        throw new AgentError(AgentErrorCode.GatewayUnavailable, 'the gateway answered without a response');
      }
      const delivered = await openResponse(answer.response, pinned, {
        deviceId: data.deviceId,
        keyId,
        currentVersion: current,
        nonceDigest: rotationNonceDigest(nonce),
      });

      const masterKey = deriveDeviceMasterKey(
        createPrivateKey(data.privateKey),
        createPublicKey(data.keyExchangePublicKey),
      );
      const kek = deriveKek(masterKey, data.deviceId, keyId, delivered.version);
      masterKey.fill(0);
      let key: Buffer;
      try {
        key = unwrapKey(kek, delivered.wrappedKey);
      } finally {
        kek.fill(0);
      }
      if (keyCheckValue(key) !== delivered.kcv) {
        key.fill(0);
        throw new AgentError(AgentErrorCode.KcvMismatch, `the key does not have check value ${delivered.kcv}`);
      }
      const ack = await deviceJws(data, RotationMessageType.Ack, {
        device_id: data.deviceId,
        key_id: keyId,
        version: delivered.version,
        kcv: delivered.kcv,
        nonce_digest: delivered.nonceDigest,
        iat: Math.floor(now().getTime() / 1000),
      });
      const stored: StoredKey = {
        version: delivered.version,
        key: key.toString('base64url'),
        kcv: delivered.kcv,
        transactionId: delivered.transactionId,
        receivedAt: now().toISOString(),
        pendingAck: ack,
      };
      key.fill(0);
      // Replacing the entry destroys the old version: the file is rewritten without it.
      await keystore.save({ ...data, keys: { ...data.keys, [keyId]: stored } });

      let acknowledged = true;
      try {
        await sendAck(data, keyId, ack);
        await clearPendingAck(keyId, ack);
      } catch (err) {
        if (!(err instanceof AgentError)) throw err;
        acknowledged = false;
      }
      return {
        keyId,
        version: delivered.version,
        previousVersion: current,
        kcv: delivered.kcv,
        transactionId: delivered.transactionId,
        acknowledged,
      };
    },

    async checkIn() {
      const data = await enrolled();
      const acknowledged: string[] = [];
      const pending: string[] = [];
      for (const [keyId, stored] of Object.entries(data.keys)) {
        if (stored.pendingAck === null) continue;
        try {
          await sendAck(data, keyId, stored.pendingAck);
          await clearPendingAck(keyId, stored.pendingAck);
          acknowledged.push(keyId);
        } catch (err) {
          if (!(err instanceof AgentError)) throw err;
          pending.push(keyId);
        }
      }
      // The gateway answers a signed check-in with this device's keys that are due; rotate them.
      const checkIn = await deviceJws(data, RotationMessageType.CheckIn, {
        device_id: data.deviceId,
        iat: Math.floor(now().getTime() / 1000),
      });
      const checkInPath = `/v1/devices/${encodeURIComponent(data.deviceId)}/check-in`;
      const { dueKeys } = (await post(gatewayOf(data), checkInPath, { checkIn }, data)) as {
        dueKeys: { keyId: string }[];
      };
      const rotated: RotationOutcome[] = [];
      for (const { keyId } of dueKeys) rotated.push(await this.rotate(keyId));
      return { acknowledged, pending, rotated };
    },

    async attest(attestOptions) {
      const data = await enrolled();
      const base = data.gatewayUrl.replace(/\/+$/, '');
      const { challenge } = (await post(base, '/v1/attestation/challenges', { deviceId: data.deviceId }, data)) as {
        challenge: string;
      };
      const evidence = await collectEvidence({
        ...attestOptions,
        deviceKey: createPrivateKey(data.privateKey),
        certificateChainPem: data.certificate,
        nonce: challenge,
        now,
      });
      const answer = (await post(base, '/v1/attestation/evidence', { evidence }, data)) as AttestationOutcome;
      return { status: answer.status, ear: answer.ear, result: answer.result, recorded: answer.recorded };
    },

    async dataKey(keyId) {
      const stored = (await keystore.load())?.keys[keyId];
      if (stored === undefined) return null;
      return { keyId, version: stored.version, kcv: stored.kcv, key: Buffer.from(stored.key, 'base64url') };
    },
  };
}

interface Enrolment {
  readonly certificate: string;
  readonly caCertificate: string;
  readonly keyExchangePublicKey: string;
  readonly metadataSigningPublicKey: string | null;
  readonly certificateFingerprint: string;
  readonly transactionId: string;
}

/** The certificate must be for our key and our name, issued by the CA the answer names. */
function checkEnrolment(answer: Record<string, unknown>, data: KeystoreData): Enrolment {
  const invalid = (why: string, cause?: unknown): never => {
    throw new AgentError(AgentErrorCode.EnrolmentInvalid, `enrolment answer refused: ${why}`, undefined, { cause });
  };
  const text = (name: string): string => {
    const value = answer[name];
    return typeof value === 'string' && value !== '' ? value : invalid(`${name} is missing`);
  };
  const certificatePem = text('certificate');
  const caPem = text('caCertificate');
  const kexPem = text('keyExchangePublicKey');
  const metadata = answer.metadataSigningPublicKey;
  let certificate: X509Certificate;
  let ca: X509Certificate;
  try {
    certificate = new X509Certificate(certificatePem);
    ca = new X509Certificate(caPem);
    const kex = createPublicKey(kexPem);
    if (kex.asymmetricKeyType !== 'ec' || kex.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      invalid('keyExchangePublicKey is not a P-256 key');
    }
    if (typeof metadata === 'string') createPublicKey(metadata);
  } catch (err) {
    if (err instanceof AgentError) throw err;
    return invalid('a certificate or key does not parse', err);
  }
  const ours = createPublicKey(createPrivateKey(data.privateKey)).export({ format: 'der', type: 'spki' });
  if (!certificate.publicKey.export({ format: 'der', type: 'spki' }).equals(ours)) {
    invalid('the certificate is not for our key');
  }
  if (!certificate.checkIssued(ca) || !certificate.verify(ca.publicKey)) invalid('the CA did not issue it');
  if (/^CN=([^\n]+)$/m.exec(certificate.subject)?.[1] !== data.deviceId) invalid(`it does not name ${data.deviceId}`);
  const fingerprint = createHash('sha256').update(certificate.raw).digest('hex');
  if (answer.certificateFingerprint !== undefined && answer.certificateFingerprint !== fingerprint) {
    invalid('certificateFingerprint is not the certificate’s');
  }
  return {
    certificate: certificatePem,
    caCertificate: caPem,
    keyExchangePublicKey: kexPem,
    metadataSigningPublicKey: typeof metadata === 'string' ? metadata : null,
    certificateFingerprint: fingerprint,
    transactionId: typeof answer.transactionId === 'string' ? answer.transactionId : '',
  };
}

interface Delivered {
  readonly version: number;
  readonly wrappedKey: Buffer;
  readonly kcv: string;
  readonly nonceDigest: string;
  readonly transactionId: string;
}

/** Verifies the response with the pinned key, then that it answers exactly our request. */
async function openResponse(
  response: string,
  pinnedPem: string,
  expected: { deviceId: string; keyId: string; currentVersion: number; nonceDigest: string },
): Promise<Delivered> {
  let payload: Uint8Array;
  try {
    if (decodeProtectedHeader(response).typ !== RotationMessageType.Response) throw new Error('wrong typ');
    ({ payload } = await compactVerify(response, createPublicKey(pinnedPem), { algorithms: ['ES256'] }));
  } catch (err) {
    throw new AgentError(
      AgentErrorCode.ResponseSignatureInvalid,
      'the response does not verify with the pinned metadata-signing key',
      undefined,
      { cause: err },
    );
  }
  let claims: Record<string, unknown>;
  try {
    claims = JSON.parse(Buffer.from(payload).toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new AgentError(AgentErrorCode.ResponseMismatch, 'the response payload is not JSON', undefined, {
      cause: err,
    });
  }
  if (claims.nonce_digest !== expected.nonceDigest) {
    throw new AgentError(AgentErrorCode.NonceMismatch, 'the response answers another request (nonce digest)');
  }
  const version = claims.version;
  if (
    claims.device_id !== expected.deviceId ||
    claims.key_id !== expected.keyId ||
    claims.previous_version !== expected.currentVersion ||
    typeof version !== 'number' ||
    !Number.isSafeInteger(version) ||
    version <= expected.currentVersion ||
    typeof claims.wrapped_key !== 'string' ||
    !/^[A-Za-z0-9_-]{54}$/.test(claims.wrapped_key) ||
    typeof claims.kcv !== 'string' ||
    !/^[0-9a-f]{6}$/.test(claims.kcv) ||
    typeof claims.transaction_id !== 'string'
  ) {
    throw new AgentError(AgentErrorCode.ResponseMismatch, 'the response is not for this device, key and version');
  }
  return {
    version,
    wrappedKey: Buffer.from(claims.wrapped_key, 'base64url'),
    kcv: claims.kcv,
    nonceDigest: expected.nonceDigest,
    transactionId: claims.transaction_id,
  };
}
