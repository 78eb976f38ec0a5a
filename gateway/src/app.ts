import { readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { JSONWebKeySet } from 'jose';
import {
  LocalLedger,
  Msp,
  Role,
  type AttestationBatchRecord,
  type ReferenceValuesRecord,
  type TrustAnchorRecord,
} from '@keyfleet/chaincode';
import { hsmChallengeKey, newAttestationBatcher, newChallengeIssuer, newVerifier } from './attestation';
import { newBearerAuthenticator } from './auth/bearer';
import { newDeviceCa } from './ca/device-ca';
import { newSelfSignedIdentity } from './ca/identity-certificate';
import type { Config } from './config';
import { hsmSigningKey } from './crypto/hsm-key';
import { newDeviceService } from './domain/devices';
import { newKeyService } from './domain/keys';
import { notFoundAs } from './domain/records';
import type { AttestationApi, ReferenceValuesRequest, Services } from './domain/services';
import type { Principal } from './auth/bearer';
import type { EcSigningKey } from './crypto/ec-key';
import { newLedgerClient, type LedgerClient } from './ledger/ledger-client';
import { newRotationService } from './rotation';
import { newApplicationKeyRotation, newKeyOperations } from './key-service';
import { newRotationScheduler, type SchedulerLog } from './scheduler';
import { ensureTrustAnchors } from './domain/trust-anchors';
import { GatewayError, GatewayErrorCode } from './errors';
import { ensureKeys, gatewayKeys, newHsm, type Hsm } from './hsm';
import { newHttpServer } from './http/server';
import { newFabricTransport } from './ledger/fabric';
import { newLocalTransport } from './ledger/local';
import type { LedgerTransport } from './ledger/transport';

export interface Gateway {
  readonly server: FastifyInstance;
  readonly hsm: Hsm;
  /** Anchor ids on the ledger, by kind. */
  readonly anchors: Readonly<Record<string, string>>;
  /** Stops serving, then closes the ledger and the HSM, in reverse order of opening. */
  close(): Promise<void>;
}

export interface OpenGatewayOptions {
  /** Where the Fabric identity certificate is read from in `fabric` mode. */
  readonly fabricCertificateFile?: string;
  /** An already open in-process ledger (tests share one between several gateways). */
  readonly localLedger?: LocalLedger;
}

/**
 * The one composition root: opens the HSM, makes sure its keys and trust anchors exist, opens
 * the ledger with the HSM-held Fabric identity, and builds the REST API (not yet listening).
 */
export async function openGateway(config: Config, options: OpenGatewayOptions = {}): Promise<Gateway> {
  const closers: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const closer of [...closers].reverse()) await closer().catch(() => undefined);
  };
  try {
    const hsm = await newHsm({
      uri: config.hsm.tokenUri,
      modulePath: config.hsm.modulePath,
      pin: config.hsm.pin,
      sessions: config.hsm.sessions,
    });
    closers.push(() => hsm.close());
    await ensureKeys(hsm, gatewayKeys);

    const [identityKey, metadataKey, caKey, verifierKey] = await Promise.all(
      ['fabric-identity', 'metadata-signing', 'device-ca', 'verifier'].map((label) => hsmSigningKey(hsm, label)),
    );
    if (!identityKey || !metadataKey || !caKey || !verifierKey) throw new Error('unreachable: four keys asked for');

    if (config.ledger.kind === 'local' && !options.localLedger) {
      const stateFile = config.ledger.stateFile;
      // Closed last, after every transport onto it: releases the journal and its lock.
      closers.push(() => {
        localLedgers.get(stateFile)?.close();
        localLedgers.delete(stateFile);
        return Promise.resolve();
      });
    }
    const transport = await openTransport(config, options, hsm, identityKey);
    closers.push(() => transport.close());

    const { ids, ledger } = await ensureTrustAnchors(
      transport,
      { key: metadataKey, description: 'HSM metadata-signing key' },
      [
        { kind: 'device-ca', key: caKey, description: 'HSM device CA key' },
        { kind: 'verifier', key: verifierKey, description: 'HSM attestation verifier key' },
      ],
    );

    const ca = await newDeviceCa({ key: caKey, ...(await readCaCertificate(config.dataDir)) });
    await saveCaCertificate(config.dataDir, ca.certificatePem);

    const rotation = newRotationService({
      hsm,
      ledger,
      responseKey: metadataKey,
      deviceCaCertificatePem: ca.certificatePem,
    });
    // Before serving: what a crash left half done in the HSM is settled against the ledger.
    await rotation.reconcile();

    const attestation = await openAttestation(config, options, hsm, {
      ledger,
      verifierKey,
      verifierId: ids.verifier ?? '',
      caCertificatePem: ca.certificatePem,
    });
    closers.push(() => attestation.close());

    // The scheduler logs through the HTTP server's logger, which is made further down.
    const schedulerLog: SchedulerLog & { target?: SchedulerLog } = {
      info(fields, message) {
        this.target?.info(fields, message);
      },
      warn(fields, message) {
        this.target?.warn(fields, message);
      },
    };
    const keyRotation = newApplicationKeyRotation({ hsm, ledger });
    // Due server-side keys are rotated here; due device keys are told to devices at check-in.
    // With several gateways, the ledger's CurrentVersion check lets exactly one rotation win.
    const scheduler = newRotationScheduler({
      ledger,
      rotateApplicationKey: (keyId, o) => keyRotation.rotateApplicationKey(keyId, o),
      afterRun: () => keyRotation.destroyExpiredVersions(),
      intervalMs: Math.max(config.schedulerIntervalMs, 1),
      batchSize: 50,
      log: schedulerLog,
    });

    const services: Services = {
      devices: newDeviceService({
        ledger,
        ca,
        tokenKey: metadataKey,
        defaultTokenTtlSeconds: config.enrolmentTokenTtlSeconds,
        keyExchangePublicKeyPem: (await hsm.getPublicKey({ label: 'device-kex' })).pem,
        metadataSigningPublicKeyPem: metadataKey.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      }),
      keys: newKeyService({ hsm, ledger }),
      rotation: {
        provisionDeviceKey: (request) => rotation.provisionDeviceKey(request),
        rotateDeviceKey: (request, route) => rotation.rotateDeviceKey(request, route),
        acknowledgeRotation: (ack, route) => rotation.acknowledgeRotation(ack, route),
        async checkIn(checkInJws, route) {
          const { deviceId } = await rotation.verifyCheckIn(checkInJws, route);
          return { dueKeys: scheduler.dueForDevice(deviceId) };
        },
      },
      attestation: attestation.api,
      keyOperations: newKeyOperations({ hsm, ledger }),
      keyRotation,
      async health() {
        const [hsmOk, ledgerOk] = await Promise.all([
          hsm.getPublicKey({ label: 'metadata-signing' }).then(
            () => true,
            () => false,
          ),
          transport.evaluate('ListTrustAnchors', []).then(
            () => true,
            () => false,
          ),
        ]);
        return { hsm: hsmOk, ledger: ledgerOk };
      },
    };

    const server = await newHttpServer({
      services,
      authenticator: newBearerAuthenticator({ jwks: jwksFile(config.auth.jwksFile), audience: config.auth.audience }),
      bodyLimit: config.http.bodyLimit,
      logger: { level: config.logLevel },
    });
    closers.push(() => server.close());
    schedulerLog.target = server.log;
    if (config.schedulerIntervalMs > 0) {
      scheduler.start();
      closers.push(() => scheduler.stop());
    }

    return { server, hsm, anchors: ids, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** HMAC key of the attestation challenges; secret, so not in the P-256 inventory. */
const CHALLENGE_KEY = 'attestation-challenge';

/**
 * The attestation verifier inside the gateway. It writes as a verifier (Org2 role) with the
 * HSM verifier key as its anchor; in local mode its identity is self-signed by that key.
 */
async function openAttestation(
  config: Config,
  options: OpenGatewayOptions,
  hsm: Hsm,
  parts: { ledger: LedgerClient; verifierKey: EcSigningKey; verifierId: string; caCertificatePem: string },
): Promise<{ api: AttestationApi; close(): Promise<void> }> {
  if ((await hsm.findKeys({ label: CHALLENGE_KEY })).length === 0) {
    await hsm.generateSecretKey({ label: CHALLENGE_KEY, type: 'hmac-sha256', usage: ['sign', 'verify'] });
  }
  const challenges = newChallengeIssuer({
    key: hsmChallengeKey(hsm, CHALLENGE_KEY),
    ttlSeconds: config.attestation.challengeTtlSeconds,
  });
  const readOnly = {
    setReferenceValues: (_by: Principal, group: string, request: ReferenceValuesRequest) =>
      parts.ledger.write<ReferenceValuesRecord>('SetReferenceValues', {
        Group: group,
        PolicyID: request.policyId,
        Measurements: request.measurements.map((m) => ({ Name: m.name, Algorithm: m.algorithm, Digest: m.digest })),
      }),
    getReferenceValues: (group: string) =>
      notFoundAs(parts.ledger.read<ReferenceValuesRecord>('GetReferenceValues', group), 'REFERENCE_VALUES_NOT_FOUND'),
    getBatch: (batchId: string) =>
      notFoundAs(parts.ledger.read<AttestationBatchRecord>('GetAttestationBatch', batchId), 'BATCH_NOT_FOUND'),
    trustAnchors: () => parts.ledger.read<TrustAnchorRecord[]>('ListTrustAnchors'),
  };
  const challenge = async (deviceId: string) => {
    const { nonce, expiresAt } = await challenges.issue(deviceId);
    return { challenge: nonce, expiresAt: expiresAt.toISOString() };
  };
  if (config.ledger.kind === 'fabric') {
    // On Fabric the verifier writes with an Org2 identity of its own, as a separate process; that
    // process is not built yet, so this gateway answers evidence with a clear refusal.
    const appraise = () =>
      Promise.reject(
        new GatewayError(
          GatewayErrorCode.LedgerUnavailable,
          'attestation is appraised by the verifier organisation, which is not wired for Fabric yet',
        ),
      );
    return { api: { challenge, appraise, ...readOnly }, close: () => Promise.resolve() };
  }
  const verifierTransport = await openTransport(config, options, hsm, parts.verifierKey, {
    label: 'verifier',
    mspId: Msp.Verifier,
    role: Role.Verifier,
    commonName: 'keyfleet-verifier',
    organization: 'org2.keyfleet.local',
  });
  const verifierLedger = newLedgerClient({
    transport: verifierTransport,
    signingKey: parts.verifierKey,
    anchorId: parts.verifierId,
  });
  const batcher =
    config.attestation.batchSize > 1
      ? newAttestationBatcher({
          ledger: verifierLedger,
          verifierId: parts.verifierId,
          maxSize: config.attestation.batchSize,
          maxDelayMs: config.attestation.batchDelayMs,
        })
      : undefined;
  const verifier = newVerifier({
    deviceCaCertificatePem: parts.caCertificatePem,
    ledger: verifierLedger,
    resultKey: parts.verifierKey,
    verifierId: parts.verifierId,
    policyId: 'keyfleet-appraisal-v1',
    challenges,
    ...(batcher === undefined ? {} : { batcher }),
    actions: { reinstateWith: parts.ledger },
  });
  const api: AttestationApi = { challenge, appraise: (evidence) => verifier.appraise(evidence), ...readOnly };
  return {
    api,
    async close() {
      await batcher?.close();
      await verifierTransport.close();
    },
  };
}

/** Who a transport writes as: the gateway (Org1 operator) unless told otherwise. */
interface LedgerIdentity {
  readonly label: string;
  readonly mspId: string;
  readonly role: string;
  readonly commonName: string;
  readonly organization: string;
}

const gatewayIdentity: LedgerIdentity = {
  label: 'fabric-identity',
  mspId: Msp.Operator,
  role: Role.Operator,
  commonName: 'keyfleet-gateway',
  organization: 'org1.keyfleet.local',
};

async function openTransport(
  config: Config,
  options: OpenGatewayOptions,
  hsm: Hsm,
  identityKey: EcSigningKey,
  identity: LedgerIdentity = gatewayIdentity,
): Promise<LedgerTransport> {
  if (config.ledger.kind === 'fabric') {
    const certificateFile = options.fabricCertificateFile ?? join(config.dataDir, 'fabric-identity.pem');
    return newFabricTransport({
      profilePath: config.ledger.connectionProfile,
      org: config.ledger.org,
      certificatePem: readFileSync(certificateFile, 'utf8'),
      signer: hsm.newSigner({ label: identity.label }),
    });
  }
  // No MSP checks an issuer in-process: the identity is self-signed by its own HSM key, shaped
  // as Org1's CA would issue it, with the operator role the chaincode reads.
  const certificatePem = await newSelfSignedIdentity(identityKey, identity);
  return newLocalTransport(localLedgerOf(config.ledger.stateFile, options), { mspId: identity.mspId, certificatePem });
}

/** One in-process ledger per state file, shared by every identity of this process. */
const localLedgers = new Map<string, LocalLedger>();
function localLedgerOf(stateFile: string, options: OpenGatewayOptions): LocalLedger {
  if (options.localLedger) return options.localLedger;
  let ledger = localLedgers.get(stateFile);
  if (!ledger) {
    ledger = new LocalLedger({ file: stateFile });
    localLedgers.set(stateFile, ledger);
  }
  return ledger;
}

/**
 * The JWKS file, re-read when it changes (one stat per request), so credentials added with
 * `keyfleet credentials create` work without a restart. A file that turns unreadable keeps the
 * last good set; one that is bad at start-up stops the start.
 */
function jwksFile(file: string): () => JSONWebKeySet {
  let loaded = { mtimeMs: statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? 0, jwks: readJwks(file) };
  return () => {
    const mtimeMs = statSync(file, { throwIfNoEntry: false })?.mtimeMs;
    if (mtimeMs !== undefined && mtimeMs !== loaded.mtimeMs) {
      try {
        loaded = { mtimeMs, jwks: readJwks(file) };
      } catch {
        // Half-written or broken: keep serving with the last good keys.
      }
    }
    return loaded.jwks;
  };
}

function readJwks(file: string): JSONWebKeySet {
  try {
    const jwks = JSON.parse(readFileSync(file, 'utf8')) as JSONWebKeySet;
    if (!Array.isArray(jwks.keys)) throw new Error('no "keys" array');
    return jwks;
  } catch (err) {
    throw new GatewayError(
      GatewayErrorCode.ConfigInvalid,
      `KEYFLEET_AUTH_JWKS ${file}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

const caFile = (dataDir: string) => join(dataDir, 'device-ca.pem');

async function readCaCertificate(dataDir: string): Promise<{ certificatePem?: string }> {
  try {
    return { certificatePem: await readFile(caFile(dataDir), 'utf8') };
  } catch {
    return {};
  }
}

async function saveCaCertificate(dataDir: string, pem: string): Promise<void> {
  await mkdir(dataDir, { recursive: true });
  await writeFile(caFile(dataDir), pem);
}
