import {
  ackClaimsProblem,
  type DeviceRecord,
  duplicateMemberInCompact,
  type KeyRecord,
  Msp,
  requestClaimsProblem,
  Role,
  type RotationAckClaims,
  rotationAckDigest,
  RotationMessageType,
  rotationNonceDigest,
  type RotationPolicy,
  type RotationRequestClaims,
  type RotationResponseClaims,
  sha256Hex,
} from '@keyfleet/protocol';
import { X509Certificate } from 'node:crypto';
import { devicePrincipal, enterPrincipal } from '../ledger/principal-context';
import { compactVerify, decodeProtectedHeader } from 'jose';
import type { EcSigningKey } from '../crypto/ec-key';
import { signCompactJws } from '../crypto/jws';
import { GatewayError, GatewayErrorCode } from '../errors';
import type { Hsm } from '../hsm';
import { newAckRecorder, type AckRecorder } from './ack-recorder';
import type { LedgerClient } from '../ledger/ledger-client';
import { ledgerPort } from '../ledger/port';
import {
  hsmFailure,
  KeyVersionErrorDetail,
  newKeyVersionEngine,
  type KeyVersionEngine,
  type ReconcileResult,
} from '../key-versions/engine';
import { findVersionKey, type VersionObject } from '../key-versions/objects';
import { withDeviceMasterKey, wrapForDevice } from './device-wrap';

/**
 * The machine-readable reasons a rotation is refused, carried in `GatewayError.detail` (the
 * `code` is the HTTP-facing class: BAD_REQUEST, UNAUTHENTICATED, FORBIDDEN, NOT_FOUND,
 * LEDGER_REJECTED, HSM_FAILURE). Ledger refusals keep the chaincode's own code
 * (NONCE_REPLAYED, NEXT_KEY_MISMATCH, STALE_VERSION).
 */
export const RotationErrorDetail = {
  RequestMalformed: 'ROTATION_REQUEST_MALFORMED',
  RequestStale: 'ROTATION_REQUEST_STALE',
  SignatureInvalid: 'ROTATION_SIGNATURE_INVALID',
  CertificateInvalid: 'DEVICE_CERTIFICATE_INVALID',
  CertificateNotEnrolled: 'DEVICE_CERTIFICATE_NOT_ENROLLED',
  DeviceMismatch: 'DEVICE_MISMATCH',
  DeviceNotFound: 'DEVICE_NOT_FOUND',
  DeviceRevoked: 'DEVICE_REVOKED',
  DeviceSuspended: 'DEVICE_SUSPENDED',
  KeyNotFound: 'KEY_NOT_FOUND',
  KeyNotOwned: 'KEY_NOT_OWNED',
  KeyNotUsable: 'KEY_NOT_USABLE',
  NonceReplayed: 'NONCE_REPLAYED',
  StaleVersion: 'STALE_VERSION',
  RotationInProgress: KeyVersionErrorDetail.RotationInProgress,
  AckMismatch: 'ROTATION_ACK_MISMATCH',
  KeyMaterialMissing: KeyVersionErrorDetail.KeyMaterialMissing,
} as const;
export type RotationErrorDetail = (typeof RotationErrorDetail)[keyof typeof RotationErrorDetail];

export interface RotationServiceOptions {
  readonly hsm: Hsm;
  /** Writes as the gateway's operator identity, signed by the metadata-signing key. */
  readonly ledger: LedgerClient;
  /** Signs responses: the HSM `metadata-signing` key, which devices pin. */
  readonly responseKey: EcSigningKey;
  /** The device CA certificate (PEM); request certificates must be issued by it. */
  readonly deviceCaCertificatePem: string;
  /** Label of the HSM ECDH key the device master keys derive from; default `device-kex`. */
  readonly deviceKeyExchangeLabel?: string;
  /** How far a request's `iat` may be from now, either way; default 300 s. */
  readonly maxClockSkewSeconds?: number;
  readonly now?: () => Date;
  /**
   * The status for which the ledger's events already refuse a device (events/device-denials.ts):
   * asked once the device's signature is checked and before the ledger is read, so a suspended
   * or revoked device is refused at once. Devices it does not name are checked on the ledger.
   */
  readonly deviceRefusal?: (deviceId: string) => 'suspended' | 'revoked' | undefined;
  /** Records acknowledgements; default a group commit ({@link newAckRecorder}) over `ledger`. */
  readonly acks?: AckRecorder;
  /** Generates, commits and reconciles the key's versions; default one of its own over `hsm` and `ledger`. */
  readonly engine?: KeyVersionEngine;
}

/** What the route should answer: `{ response }`, plus facts for logs and metrics. */
export interface RotationResult {
  /** Compact JWS ({@link RotationResponseClaims}) by the response key. */
  readonly response: string;
  readonly deviceId: string;
  readonly keyId: string;
  readonly version: number;
  readonly transactionId: string;
  /** True when an already committed version was delivered again (the device was behind). */
  readonly redelivered: boolean;
}

export interface AckResult {
  readonly keyId: string;
  readonly version: number;
  readonly transactionId: string;
  /** True when this version's acknowledgement had been recorded before. */
  readonly alreadyRecorded: boolean;
}

export interface ProvisionRequest {
  readonly deviceId: string;
  readonly keyId: string;
  readonly rotationPolicy?: RotationPolicy;
}

export interface ProvisionResult {
  readonly keyId: string;
  readonly version: 1;
  readonly transactionId: string;
}

/** When the route names a device and key, the signed claims must name the same. */
export interface RouteBinding {
  readonly deviceId?: string;
  readonly keyId?: string;
}

export interface RotationService {
  /**
   * Registers a new device-owned AES-256 key: version 1 and (pre-rotation) version 2 are generated
   * in the HSM, the ledger records version 1 active with a commitment to version 2. The device
   * fetches version 1 with a request whose `current_version` is 0.
   */
  provisionDeviceKey(request: ProvisionRequest): Promise<ProvisionResult>;
  /**
   * Answers a device's signed rotation request (docs/protocol-rotation.md §4): verifies it, commits
   * the new version on the ledger, and only then returns the wrapped key in a signed response.
   */
  rotateDeviceKey(requestJws: string, route?: RouteBinding): Promise<RotationResult>;
  /** Records the device's signed acknowledgement that it holds `version` (idempotent). */
  acknowledgeRotation(ackJws: string, route?: RouteBinding): Promise<AckResult>;
  /**
   * Checks a device's signed check-in (typ `keyfleet-check-in+jwt`, claims `device_id`, `iat`):
   * a certificate of this CA, the one the device was enrolled with, an active device.
   */
  verifyCheckIn(checkInJws: string, route?: RouteBinding): Promise<{ readonly deviceId: string }>;
  /**
   * Crash recovery, run before serving: destroys, by CKA_ID, each version object the ledger does not
   * account for (generated, never committed, so never delivered), except version LatestVersion+2,
   * which may be in flight on another gateway and is adopted by the next rotation; reports ledger
   * versions the HSM lacks. See docs/protocol-rotation.md §7 and key-versions/engine.ts.
   */
  reconcile(): Promise<ReconcileResult>;
}

const defaultRotationPolicy: RotationPolicy = {
  IntervalSeconds: 30 * 86_400,
  GraceSeconds: 7 * 86_400,
  RetentionSeconds: 90 * 86_400,
  Triggers: ['attestation-failure', 'compromise'],
};

interface VerifiedDeviceMessage {
  readonly claims: unknown;
  readonly certificate: X509Certificate;
  readonly deviceId: string;
}

/** The protected header of a device's rotation request, acknowledgement or check-in: nothing else. */
const deviceHeaderMembers: ReadonlySet<string> = new Set(['alg', 'typ', 'x5c']);

function fail(code: GatewayErrorCode, detail: RotationErrorDetail, message: string, cause?: unknown): never {
  throw new GatewayError(code, message, detail, cause === undefined ? undefined : { cause });
}

function refuseDevice(deviceId: string, status: 'suspended' | 'revoked'): never {
  return status === 'revoked'
    ? fail(GatewayErrorCode.Forbidden, RotationErrorDetail.DeviceRevoked, `device ${deviceId} is revoked`)
    : fail(GatewayErrorCode.Forbidden, RotationErrorDetail.DeviceSuspended, `device ${deviceId} is suspended`);
}

export function newRotationService(options: RotationServiceOptions): RotationService {
  const { hsm, responseKey } = options;
  const ledger = ledgerPort(options.ledger);
  const kexLabel = options.deviceKeyExchangeLabel ?? 'device-kex';
  const now = options.now ?? (() => new Date());
  const skewMs = (options.maxClockSkewSeconds ?? 300) * 1000;
  const caCertificate = new X509Certificate(options.deviceCaCertificatePem);

  const acks = options.acks ?? newAckRecorder({ ledger: options.ledger });
  const engine = options.engine ?? newKeyVersionEngine({ hsm, ledger: options.ledger });

  async function verifyDeviceMessage(jws: string, typ: string): Promise<VerifiedDeviceMessage> {
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(jws);
    } catch (err) {
      fail(GatewayErrorCode.BadRequest, RotationErrorDetail.RequestMalformed, 'not a compact JWS', err);
    }
    if (header.alg !== 'ES256' || header.typ !== typ) {
      fail(GatewayErrorCode.BadRequest, RotationErrorDetail.RequestMalformed, `the JWS must be ES256 with typ ${typ}`);
    }
    // A closed header, as attestation evidence has: no kid/jku/x5u/jwk/cty/crit to steer key choice
    // (RFC 8725 §3.10), and no member given twice (the signature covers both, JSON.parse keeps one).
    const extra = Object.keys(header).find((name) => !deviceHeaderMembers.has(name));
    const repeated = duplicateMemberInCompact(jws);
    if (extra !== undefined || repeated !== null) {
      const name = JSON.stringify(extra ?? repeated);
      fail(
        GatewayErrorCode.BadRequest,
        RotationErrorDetail.RequestMalformed,
        extra === undefined ? `the JWS repeats the member ${name}` : `JWS header member ${name} is not accepted`,
      );
    }
    const leaf = Array.isArray(header.x5c) && header.x5c.length === 1 ? header.x5c[0] : undefined;
    if (typeof leaf !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(leaf)) {
      fail(GatewayErrorCode.BadRequest, RotationErrorDetail.RequestMalformed, 'x5c must hold the device certificate');
    }
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(Buffer.from(leaf, 'base64'));
    } catch (err) {
      fail(GatewayErrorCode.BadRequest, RotationErrorDetail.RequestMalformed, 'x5c is not a certificate', err);
    }
    const at = now().getTime();
    if (
      !certificate.checkIssued(caCertificate) ||
      !certificate.verify(caCertificate.publicKey) ||
      at < Date.parse(certificate.validFrom) ||
      at > Date.parse(certificate.validTo) ||
      certificate.ca
    ) {
      fail(
        GatewayErrorCode.Unauthenticated,
        RotationErrorDetail.CertificateInvalid,
        'the certificate is not a valid device certificate of this CA',
      );
    }
    let payload: Uint8Array;
    try {
      ({ payload } = await compactVerify(jws, certificate.publicKey, { algorithms: ['ES256'] }));
    } catch (err) {
      fail(
        GatewayErrorCode.Unauthenticated,
        RotationErrorDetail.SignatureInvalid,
        'the signature does not verify with the certificate',
        err,
      );
    }
    let claims: unknown;
    try {
      claims = JSON.parse(Buffer.from(payload).toString('utf8'));
    } catch (err) {
      fail(GatewayErrorCode.BadRequest, RotationErrorDetail.RequestMalformed, 'the payload is not JSON', err);
    }
    const deviceId = /^CN=([^\n]+)$/m.exec(certificate.subject)?.[1];
    if (deviceId === undefined) {
      fail(GatewayErrorCode.Unauthenticated, RotationErrorDetail.CertificateInvalid, 'the certificate names no device');
    }
    return { claims, certificate, deviceId };
  }

  /** The claims' device is the certificate's, the route's, and an active enrolled device holding this certificate. */
  async function assertEnrolledDevice(
    message: VerifiedDeviceMessage,
    claims: { device_id: string; iat: number; key_id?: string },
    route: RouteBinding | undefined,
  ): Promise<DeviceRecord> {
    if (claims.device_id !== message.deviceId) {
      fail(
        GatewayErrorCode.Unauthenticated,
        RotationErrorDetail.DeviceMismatch,
        `signed by device ${message.deviceId}, not ${claims.device_id}`,
      );
    }
    if (
      (route?.deviceId !== undefined && route.deviceId !== claims.device_id) ||
      (route?.keyId !== undefined && route.keyId !== claims.key_id)
    ) {
      fail(GatewayErrorCode.BadRequest, RotationErrorDetail.RequestMalformed, 'the path and the signed claims differ');
    }
    if (Math.abs(claims.iat * 1000 - now().getTime()) > skewMs) {
      fail(GatewayErrorCode.Unauthenticated, RotationErrorDetail.RequestStale, 'iat is too far from the current time');
    }
    const refused = options.deviceRefusal?.(claims.device_id);
    if (refused !== undefined) refuseDevice(claims.device_id, refused);
    const device = await ledger.devices.get(claims.device_id);
    if (device === null) {
      fail(
        GatewayErrorCode.Forbidden,
        RotationErrorDetail.DeviceNotFound,
        `device ${claims.device_id} is not enrolled`,
      );
    }
    if (device.Status !== 'active') refuseDevice(device.DeviceID, device.Status);
    if (sha256Hex(message.certificate.raw) !== device.CertFingerprint) {
      fail(
        GatewayErrorCode.Unauthenticated,
        RotationErrorDetail.CertificateNotEnrolled,
        'the certificate is not the one the device was enrolled with',
      );
    }
    return device;
  }

  /** As {@link assertEnrolledDevice}, and the key exists and belongs to the device. */
  async function assertDevice(
    message: VerifiedDeviceMessage,
    claims: { device_id: string; key_id: string; iat: number },
    route: RouteBinding | undefined,
  ): Promise<KeyRecord> {
    await assertEnrolledDevice(message, claims, route);
    const key = await ledger.keys.get(claims.key_id);
    if (key === null) {
      fail(GatewayErrorCode.NotFound, RotationErrorDetail.KeyNotFound, `key ${claims.key_id} does not exist`);
    }
    if (key.Owner.Type !== 'device' || key.Owner.ID !== claims.device_id || key.Algorithm !== 'AES-256') {
      fail(
        GatewayErrorCode.Forbidden,
        RotationErrorDetail.KeyNotOwned,
        `key ${key.KeyID} is not an AES-256 key of device ${claims.device_id}`,
      );
    }
    return key;
  }

  async function assertNonceUnused(digest: string): Promise<void> {
    const used = await ledger.nonces.get(digest);
    if (used !== null) {
      fail(
        GatewayErrorCode.LedgerRejected,
        RotationErrorDetail.NonceReplayed,
        `nonce ${digest} was consumed in transaction ${used.TxID}`,
      );
    }
  }

  async function wrapVersion(certificate: X509Certificate, deviceId: string, key: VersionObject): Promise<Uint8Array> {
    try {
      return await withDeviceMasterKey(hsm, kexLabel, certificate.publicKey, (dmk) =>
        wrapForDevice(hsm, dmk, { deviceId, keyId: key.keyId, version: key.version }, { id: key.id }),
      );
    } catch (err) {
      throw hsmFailure(err);
    }
  }

  async function respond(
    claims: RotationRequestClaims,
    delivered: VersionObject,
    wrapped: Uint8Array,
    transactionId: string,
    nonceDigest: string,
    redelivered: boolean,
  ): Promise<RotationResult> {
    const payload: RotationResponseClaims = {
      device_id: claims.device_id,
      key_id: claims.key_id,
      version: delivered.version,
      previous_version: claims.current_version,
      nonce_digest: nonceDigest,
      wrapped_key: Buffer.from(wrapped).toString('base64url'),
      kcv: delivered.fingerprint,
      transaction_id: transactionId,
      iat: Math.floor(now().getTime() / 1000),
    };
    const response = await signCompactJws(
      responseKey,
      { kid: responseKey.label, typ: RotationMessageType.Response },
      Buffer.from(JSON.stringify(payload)),
    );
    return {
      response,
      deviceId: claims.device_id,
      keyId: claims.key_id,
      version: delivered.version,
      transactionId,
      redelivered,
    };
  }

  /** current_version = latest: the HSM's pre-generated next version is committed, then delivered. */
  async function rotate(
    claims: RotationRequestClaims,
    key: KeyRecord,
    certificate: X509Certificate,
    nonceDigest: string,
  ): Promise<RotationResult> {
    // The delivery hook wraps before the commit: a wrapped key that left the gateway is always on the ledger.
    const deliver = (next: VersionObject) => wrapVersion(certificate, claims.device_id, next);
    const { committed, wrapped, transactionId } = await engine.advance(key, { deliver, nonceDigest });
    if (wrapped === null) throw new Error('the key-version engine skipped the delivery hook');
    return respond(claims, committed, wrapped, transactionId, nonceDigest, false);
  }

  /** current_version < latest: the device missed a delivery; the active version is wrapped again. */
  async function redeliver(
    claims: RotationRequestClaims,
    key: KeyRecord,
    certificate: X509Certificate,
    nonceDigest: string,
  ): Promise<RotationResult> {
    const active = key.ActiveVersion;
    const record = key.Versions.find((v) => v.Version === active);
    if (active === null || active !== key.LatestVersion || record?.State !== 'active') {
      fail(GatewayErrorCode.Forbidden, RotationErrorDetail.KeyNotUsable, `key ${key.KeyID} has no deliverable version`);
    }
    const stored = await findVersionKey(hsm, key.KeyID, active, hsm.tokenLabel, { fingerprint: record.Fingerprint });
    if (stored === null || stored.kcv !== record.Fingerprint) {
      fail(
        GatewayErrorCode.HsmFailure,
        RotationErrorDetail.KeyMaterialMissing,
        `version ${active} of key ${key.KeyID} is not in the HSM`,
      );
    }
    const wrapped = await wrapVersion(certificate, claims.device_id, stored);
    if (record.WrappedKeyDigest !== null && record.WrappedKeyDigest !== sha256Hex(wrapped)) {
      // RFC 5649 is deterministic: another digest means another key or KEK than the ledger's.
      fail(GatewayErrorCode.HsmFailure, RotationErrorDetail.KeyMaterialMissing, 'the wrap differs from the ledger');
    }
    const { transactionId } = await ledger.nonces.consume({
      NonceDigest: nonceDigest,
      Purpose: 'rotation',
      Subject: key.KeyID,
    });
    return respond(claims, stored, wrapped, transactionId, nonceDigest, true);
  }

  return {
    async provisionDeviceKey(request) {
      const device = await ledger.devices.require(request.deviceId);
      if (device.Status !== 'active') {
        fail(GatewayErrorCode.Forbidden, RotationErrorDetail.DeviceRevoked, `device ${device.DeviceID} is not active`);
      }
      const owner = { MSPID: Msp.Operator, Role: Role.Device, ID: request.deviceId };
      const operator = { MSPID: Msp.Operator, Role: Role.Operator, ID: null };
      const { transactionId } = await engine.register(
        {
          KeyID: request.keyId,
          Owner: { Type: 'device', ID: request.deviceId },
          Algorithm: 'AES-256',
          Purpose: 'encrypt',
          RotationPolicy: request.rotationPolicy ?? defaultRotationPolicy,
          AccessPolicy: { Read: [owner], Use: [owner], Rotate: [operator], Administer: [operator] },
          InitialState: 'active',
        },
        // Pre-rotation from the start (version 2 committed as next); every version leaves wrapped.
        { preRotate: true, delivered: true },
      );
      return { keyId: request.keyId, version: 1, transactionId };
    },

    async verifyCheckIn(checkInJws, route) {
      const message = await verifyDeviceMessage(checkInJws, RotationMessageType.CheckIn);
      // The verified device is who asked for whatever this call writes.
      enterPrincipal(devicePrincipal(message.deviceId));
      const claims = message.claims as { device_id?: unknown; iat?: unknown } | null;
      if (
        claims === null ||
        typeof claims !== 'object' ||
        typeof claims.device_id !== 'string' ||
        typeof claims.iat !== 'number' ||
        Object.keys(claims).length !== 2
      ) {
        fail(GatewayErrorCode.BadRequest, RotationErrorDetail.RequestMalformed, 'a check-in carries device_id and iat');
      }
      const device = await assertEnrolledDevice(message, { device_id: claims.device_id, iat: claims.iat }, route);
      return { deviceId: device.DeviceID };
    },

    async rotateDeviceKey(requestJws, route) {
      const message = await verifyDeviceMessage(requestJws, RotationMessageType.Request);
      // The verified device is who asked for whatever this call writes.
      enterPrincipal(devicePrincipal(message.deviceId));
      const problem = requestClaimsProblem(message.claims);
      if (problem !== null) fail(GatewayErrorCode.BadRequest, RotationErrorDetail.RequestMalformed, problem);
      const claims = message.claims as RotationRequestClaims;
      const nonceDigest = rotationNonceDigest(claims.nonce);
      return engine.exclusively(claims.key_id, async () => {
        // Inside the lock: a device suspended or revoked while this request waited is refused.
        await assertDevice(message, claims, route);
        await assertNonceUnused(nonceDigest);
        // Read again inside the lock: the version may have moved while we waited.
        const key = await ledger.keys.require(claims.key_id);
        if (claims.current_version > key.LatestVersion) {
          fail(
            GatewayErrorCode.LedgerRejected,
            RotationErrorDetail.StaleVersion,
            `key ${key.KeyID} is at version ${key.LatestVersion}, not ${claims.current_version}`,
          );
        }
        return claims.current_version === key.LatestVersion
          ? rotate(claims, key, message.certificate, nonceDigest)
          : redeliver(claims, key, message.certificate, nonceDigest);
      });
    },

    async acknowledgeRotation(ackJws, route) {
      const message = await verifyDeviceMessage(ackJws, RotationMessageType.Ack);
      // The verified device is who asked for whatever this call writes.
      enterPrincipal(devicePrincipal(message.deviceId));
      const problem = ackClaimsProblem(message.claims);
      if (problem !== null) fail(GatewayErrorCode.BadRequest, RotationErrorDetail.RequestMalformed, problem);
      const claims = message.claims as RotationAckClaims;
      const key = await assertDevice(message, claims, route);
      const version = key.Versions.find((v) => v.Version === claims.version);
      if (version === undefined || version.Fingerprint !== claims.kcv) {
        fail(
          GatewayErrorCode.BadRequest,
          RotationErrorDetail.AckMismatch,
          `key ${key.KeyID} has no version ${claims.version} with check value ${claims.kcv}`,
        );
      }
      // Group-committed with other devices' acknowledgements: under load, a fraction of a transaction each.
      const recorded = await acks.record({
        NonceDigest: rotationAckDigest(key.KeyID, claims.version),
        KeyID: key.KeyID,
        Version: claims.version,
      });
      return { keyId: key.KeyID, version: claims.version, ...recorded };
    },

    reconcile: () => engine.reconcile(),
  };
}
