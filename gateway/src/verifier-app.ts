import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { Role } from '@keyfleet/protocol';
import { hsmChallengeKey, newAttestationBatcher, newChallengeIssuer, newVerifier } from './attestation';
import { jwksFile } from './auth/jwks-file';
import { newBearerAuthenticator } from './auth/bearer';
import { newDeviceCa } from './ca/device-ca';
import { hsmSigningKey } from './crypto/hsm-key';
import { ledgerPort } from './ledger/port';
import type { AttestationApi } from './domain/services';
import { ensureVerifierAnchor } from './domain/trust-anchors';
import { healthCheck } from './health';
import { GatewayError, GatewayErrorCode } from './errors';
import { verifierKeys, type Hsm } from './hsm';
import { openServiceHsm } from './hsm-setup';
import { httpsOptions } from './http/tls';
import { newVerifierHttpServer } from './http/verifier-server';
import { readOrganization, readShardChannels } from './ledger/fabric';
import { openShardLedger } from './ledger/shard-ledger';
import type { LedgerTransport } from './ledger/transport';
import { newShardBatcher } from './attestation/shard-batcher';
import { openHsmFabricTransport } from './ledger/hsm-fabric';
import { combineContractEvents, openContractEvents } from './events';
import { AttestationError, AttestationErrorCode } from './attestation/errors';
import type { LedgerClient } from './ledger/ledger-client';
import type { VerifierConfig } from './verifier-config';
import { followShardMoves } from './shards/follow-moves';

export interface VerifierService {
  readonly server: FastifyInstance;
  readonly hsm: Hsm;
  /** The verifier's trust-anchor id on the ledger: every result's VerifierID and the EAR `kid`. */
  readonly verifierId: string;
  /** Stops serving, flushes a pending batch, then closes the ledger and the HSM. */
  close(): Promise<void>;
}

/** HMAC key of the attestation challenges; secret, so not in the P-256 inventory. */
const CHALLENGE_KEY = 'attestation-challenge';

/**
 * The verifier service's composition root (Org2's own process, docs/verifier.md): opens its own
 * HSM token, makes sure its keys exist, enrols its Fabric identity with Org2's CA, registers its
 * verifier key as a trust anchor (proof of possession), pins the device CA the ledger names, and
 * builds its REST API (not yet listening). No operator key or identity takes part.
 */
export async function openVerifier(config: VerifierConfig): Promise<VerifierService> {
  const closers: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const closer of [...closers].reverse()) await closer().catch(() => undefined);
  };
  try {
    assertVerifierEnrolment(config);
    // One token, or with KEYFLEET_VERIFIER_HSM_REPLICAS a cluster of Org2's own (docs/hsm-cluster.md).
    // Its records log through the HTTP server's logger, made further down.
    const clusterLog: { target?: FastifyInstance['log'] } = {};
    const { hsm, cluster } = await openServiceHsm({
      ...config.hsm,
      keys: verifierKeys,
      writer: Role.Verifier,
      log: (message, err) => clusterLog.target?.warn({ err }, message),
    });
    closers.push(() => hsm.close());
    if ((await hsm.findKeys({ label: CHALLENGE_KEY })).length === 0) {
      await hsm.generateSecretKey({ label: CHALLENGE_KEY, type: 'hmac-sha256', usage: ['sign', 'verify'] });
    }
    const [verifierKey, identityKey, tlsCaKey] = await Promise.all(
      ['verifier', 'fabric-identity', 'tls-ca'].map((label) => hsmSigningKey(hsm, label)),
    );
    if (!verifierKey || !identityKey || !tlsCaKey) throw new Error('unreachable: three keys asked for');

    const openTransport = (channel?: string) =>
      openHsmFabricTransport({
        profilePath: config.ledger.connectionProfile,
        org: config.ledger.org,
        enrolmentId: config.ledger.enrolmentId,
        hsm,
        key: identityKey,
        dataDir: config.dataDir,
        chaincode: config.ledger.chaincode,
        channel,
      });
    const transport = await openTransport();
    closers.push(() => transport.close());

    const anchorOn = (on: LedgerTransport) =>
      ensureVerifierAnchor(on, {
        key: verifierKey,
        description: `HSM attestation verifier key (${config.ledger.org}, ${config.ledger.enrolmentId})`,
      });
    const home = await anchorOn(transport);
    const verifierId = home.anchorId;
    // A sharded network: the verifier reads and records each device on its shard (shard-router.ts).
    const shardChannels = readShardChannels(config.ledger.connectionProfile);
    const sharded =
      shardChannels === null
        ? undefined
        : await openShardLedger({
            channels: shardChannels,
            home: { transport, client: home.ledger },
            openTransport,
            clientOn: async (on) => (await anchorOn(on)).ledger,
          });
    if (sharded !== undefined) closers.push(() => sharded.close());
    // A device that moved shards is followed there; one moving is retried (shards/follow-moves.ts).
    const ledger: LedgerClient = sharded === undefined ? home.ledger : followShardMoves(sharded.router, sharded.router);

    // The contract's events (docs/verifier.md, "Events"): a revoked device is refused at once; a
    // suspended one still attests, which is how it shows it is healthy again. One stream per shard.
    const shardEvents = [];
    for (const on of sharded?.shardTransports ?? [transport]) {
      const opened = await openContractEvents({ transport: on, dataDir: config.dataDir, refuse: ['revoked'] });
      closers.push(() => opened.close());
      shardEvents.push(opened);
    }
    const events = combineContractEvents(shardEvents);
    const deviceCaCertificatePem = await trustedDeviceCa(config.deviceCaCertificateFile, ledger);
    // The cluster's replications and failovers, signed by the verifier anchor like its other writes.
    if (cluster !== undefined) {
      cluster.records.attach(ledger, cluster.kekCheckValue);
      closers.push(() => {
        cluster.records.close();
        return Promise.resolve();
      });
    }

    const challenges = newChallengeIssuer({
      key: hsmChallengeKey(hsm, CHALLENGE_KEY),
      ttlSeconds: config.attestation.challengeTtlSeconds,
    });
    const newBatcher = () =>
      newAttestationBatcher({
        ledger,
        verifierId,
        maxSize: config.attestation.batchSize,
        maxDelayMs: config.attestation.batchDelayMs,
      });
    const router = sharded?.router;
    const batcher =
      config.attestation.batchSize <= 1
        ? undefined
        : router === undefined
          ? newBatcher()
          : newShardBatcher((deviceId) => router.directory.deviceShard(deviceId), newBatcher);
    if (batcher !== undefined) closers.push(() => batcher.close());
    // No `reinstateWith`: reinstating a device is an operator's write (ReinstateDevice is Org1's);
    // the operator gateway does it when an affirming answer passes through it.
    const verifier = newVerifier({
      deviceCaCertificatePem,
      ledger,
      resultKey: verifierKey,
      verifierId,
      policyId: config.attestation.policyId,
      challenges,
      ...(batcher === undefined ? {} : { batcher }),
      deviceRefusal: events.denials.refusal,
    });

    const attestation: AttestationApi = {
      async challenge(deviceId) {
        if (events.denials.refusal(deviceId) !== undefined) {
          throw new AttestationError(AttestationErrorCode.DeviceRevoked, `device ${deviceId} is revoked`);
        }
        const { nonce, expiresAt } = await challenges.issue(deviceId);
        return { challenge: nonce, expiresAt: expiresAt.toISOString() };
      },
      appraise: (evidence) => verifier.appraise(evidence),
      getReferenceValues: (group) => ledgerPort(ledger).referenceValues.require(group),
      getBatch: (batchId) => ledgerPort(ledger).attestations.requireBatch(batchId),
      trustAnchors: () => ledgerPort(ledger).anchors.list(),
    };
    // HTTPS by default: Org2's own TLS CA (a key of its token) certifies a key made in memory now;
    // its certificate is published beside the service's data for the gateway to trust.
    const tlsCa = await newDeviceCa({
      key: tlsCaKey,
      name: 'CN=keyfleet verifier TLS CA, O=keyfleet',
      ...(await readPem(join(config.dataDir, TLS_CA_FILE))),
    });
    await mkdir(config.dataDir, { recursive: true });
    await writeFile(join(config.dataDir, TLS_CA_FILE), tlsCa.certificatePem);
    const https = await httpsOptions(config.http.security, tlsCa, deviceCaCertificatePem);
    const server = await newVerifierHttpServer({
      attestation,
      health: healthCheck(hsm, 'verifier', transport),
      authenticator: newBearerAuthenticator({
        jwks:
          config.auth.jwksFile === undefined
            ? { keys: [] }
            : jwksFile(config.auth.jwksFile, 'KEYFLEET_VERIFIER_AUTH_JWKS'),
        audience: config.auth.audience,
      }),
      bodyLimit: config.http.bodyLimit,
      logger: { level: config.logLevel },
      metrics: events.metrics,
      ...(https === undefined ? {} : { https }),
    });
    closers.push(() => server.close());
    clusterLog.target = server.log;
    events.start({ log: server.log });
    return { server, hsm, verifierId, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** The verifier's TLS CA certificate in its data directory: public, what its clients trust. */
export const TLS_CA_FILE = 'tls-ca.pem';

async function readPem(file: string): Promise<{ certificatePem?: string }> {
  try {
    return { certificatePem: await readFile(file, 'utf8') };
  } catch {
    return {};
  }
}

/** The enrolment must be a registered `verifier` of the organisation: anything else writes nothing. */
function assertVerifierEnrolment(config: VerifierConfig): void {
  const { connectionProfile, org, enrolmentId } = config.ledger;
  const enrolment = readOrganization(connectionProfile, org).enrolments[enrolmentId];
  if (enrolment !== undefined && enrolment.role !== 'verifier') {
    throw new GatewayError(
      GatewayErrorCode.ConfigInvalid,
      `${enrolmentId} of ${org} is registered with role ${enrolment.role}; the verifier needs role verifier`,
    );
  }
}

/**
 * The device CA certificate, trusted only when its key is an active `device-ca` trust anchor on the
 * ledger: the file is how the operator publishes the certificate, the ledger (endorsed by both
 * organisations) is what makes it the device CA.
 */
async function trustedDeviceCa(file: string, ledger: LedgerClient): Promise<string> {
  const invalid = (why: string) =>
    new GatewayError(GatewayErrorCode.ConfigInvalid, `KEYFLEET_VERIFIER_DEVICE_CA_CERT ${file}: ${why}`);
  const pem = await readFile(file, 'utf8').catch((err: unknown) => {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw invalid(`cannot be read (${code}); the operator gateway publishes it in its data directory at start-up`);
  });
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(pem);
  } catch {
    throw invalid('is not a PEM X.509 certificate');
  }
  if (!certificate.ca || !certificate.verify(certificate.publicKey))
    throw invalid('is not a self-signed CA certificate');
  const thumbprint = await calculateJwkThumbprint(await exportJWK(certificate.publicKey));
  const anchors = await ledgerPort(ledger).anchors.list();
  const anchor = anchors.find((a) => a.Thumbprint === thumbprint);
  if (anchor?.Kind !== 'device-ca' || anchor.Status !== 'active') {
    throw invalid(`its key is not an active device-ca trust anchor on the ledger (${anchor?.AnchorID ?? 'no anchor'})`);
  }
  return pem;
}
