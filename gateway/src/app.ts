import { Role, type DigestAlgorithm } from '@keyfleet/protocol';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { newBearerAuthenticator } from './auth/bearer';
import { jwksFile } from './auth/jwks-file';
import { newDeviceCa } from './ca/device-ca';
import type { Config } from './config';
import { hsmSigningKey } from './crypto/hsm-key';
import { newDeviceService } from './domain/devices';
import { newKeyService } from './domain/keys';
import { newReinstatement } from './domain/reinstatement';
import type { OperatorAttestationApi, Services } from './domain/services';
import type { LedgerClient } from './ledger/ledger-client';
import { ledgerPort } from './ledger/port';
import { newKeyVersionEngine } from './key-versions/engine';
import { newRotationService } from './rotation';
import { newApplicationKeyRotation, newKeyOperations } from './key-service';
import { newRotationScheduler, type SchedulerLog } from './scheduler';
import { ensureTrustAnchors } from './domain/trust-anchors';
import { gatewayKeys, type Hsm } from './hsm';
import { openServiceHsm } from './hsm-setup';
import type { HsmClusterRecorder } from './ledger/hsm-cluster-records';
import { healthCheck } from './health';
import { newHttpServer } from './http/server';
import { httpsOptions } from './http/tls';
import { newVerifierClient } from './http/verifier-client';
import { newOwnPeerWait } from './domain/own-peer';
import { openHsmFabricTransport } from './ledger/hsm-fabric';
import { combineContractEvents, openContractEvents } from './events';
import { readOrganization, readShardChannels } from './ledger/fabric';
import { newShardsApi } from './domain/shards';
import { newShardMovesApi } from './domain/shard-moves';
import { followShardMoves } from './shards/follow-moves';
import { newMoveGate } from './shards/move-gate';
import { newShardMover } from './shards/mover';
import { asPrincipal, gatewayService } from './ledger/principal-context';
import { openShardLedger } from './ledger/shard-ledger';
import type { ShardRouter } from './ledger/shard-router';
import type { LedgerTransport } from './ledger/transport';

export interface Gateway {
  readonly server: FastifyInstance;
  readonly hsm: Hsm;
  /** With KEYFLEET_HSM_REPLICAS: the HSM cluster's ledger records (replications, failovers). */
  readonly clusterRecords?: HsmClusterRecorder;
  /** On a sharded network: the shard router every service writes through (docs/gateway.md, "Shards"). */
  readonly shardRouter?: ShardRouter;
  /** Anchor ids on the ledger, by kind. */
  readonly anchors: Readonly<Record<string, string>>;
  /** Stops serving, then closes the ledger and the HSM, in reverse order of opening. */
  close(): Promise<void>;
}

/**
 * The one composition root: opens the HSM, makes sure its keys and trust anchors exist, opens
 * the ledger with the HSM-held Fabric identity, and builds the REST API (not yet listening).
 */
export async function openGateway(config: Config): Promise<Gateway> {
  const closers: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const closer of [...closers].reverse()) await closer().catch(() => undefined);
  };
  try {
    // The cluster's ledger records log through the HTTP server's logger, made further down.
    const clusterLog: { target?: FastifyInstance['log'] } = {};
    const { hsm, cluster } = await openServiceHsm({
      ...config.hsm,
      keys: gatewayKeys,
      writer: Role.Operator,
      log: (message, err) => clusterLog.target?.warn({ err }, message),
    });
    const clusterRecords = cluster?.records;
    closers.push(() => hsm.close());

    const [identityKey, metadataKey, caKey] = await Promise.all(
      ['fabric-identity', 'metadata-signing', 'device-ca'].map((label) => hsmSigningKey(hsm, label)),
    );
    if (!identityKey || !metadataKey || !caKey) throw new Error('unreachable: three keys asked for');

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

    const anchorsOn = (on: LedgerTransport) =>
      ensureTrustAnchors(on, { key: metadataKey, description: 'HSM metadata-signing key' }, [
        { kind: 'device-ca', key: caKey, description: 'HSM device CA key' },
      ]);
    const home = await anchorsOn(transport);
    const { ids } = home;
    // A sharded network (docs/gateway.md, "Shards"): every service speaks to the shard router, a
    // LedgerClient that sends each call to the channel holding its record. Unsharded: the one channel.
    const shardChannels = readShardChannels(config.ledger.connectionProfile);
    const sharded =
      shardChannels === null
        ? undefined
        : await openShardLedger({
            channels: shardChannels,
            home: { transport, client: home.ledger },
            openTransport,
            clientOn: async (on) => (await anchorsOn(on)).ledger,
          });
    if (sharded !== undefined) closers.push(() => sharded.close());
    // Requests that meet a device mid-move follow it (shards/follow-moves.ts); the mover moves them.
    const gate = newMoveGate();
    const ledger: LedgerClient =
      sharded === undefined ? home.ledger : followShardMoves(sharded.router, sharded.router, { gate });
    const mover = sharded === undefined ? undefined : newShardMover({ shards: sharded.router, gate });
    // Before serving: moves a crash left in flight are finished (or aborted) from the ledger's records.
    if (mover !== undefined) await asPrincipal(gatewayService('shard-mover'), () => mover.resume());

    // The contract's events (docs/gateway.md, "Events"): a suspended or revoked device is refused at
    // once. One stream per shard channel.
    const shardEvents = [];
    for (const on of sharded?.shardTransports ?? [transport]) {
      const opened = await openContractEvents({ transport: on, dataDir: config.dataDir });
      closers.push(() => opened.close());
      shardEvents.push(opened);
    }
    const events = combineContractEvents(shardEvents);

    // Replications and failovers of the HSM cluster go on the ledger from here on (docs/hsm-cluster.md).
    if (cluster !== undefined) {
      cluster.records.attach(ledger, cluster.kekCheckValue);
      closers.push(() => {
        cluster.records.close();
        return Promise.resolve();
      });
    }

    const ca = await newDeviceCa({ key: caKey, ...(await readCaCertificate(config.dataDir)) });
    await saveCaCertificate(config.dataDir, ca.certificatePem);

    // One engine, so one lock per key, under device keys, application keys and registration.
    const engine = newKeyVersionEngine({ hsm, ledger });
    const rotation = newRotationService({
      hsm,
      ledger,
      engine,
      responseKey: metadataKey,
      deviceCaCertificatePem: ca.certificatePem,
      deviceRefusal: events.denials.refusal,
    });
    // Before serving: what a crash left half done in the HSM is settled against the ledger.
    const reconciled = await engine.reconcile();

    const attestation = forwardedAttestation(config, ledger);

    // The scheduler logs through the HTTP server's logger, which is made further down.
    const schedulerLog: SchedulerLog & { target?: SchedulerLog } = {
      info(fields, message) {
        this.target?.info(fields, message);
      },
      warn(fields, message) {
        this.target?.warn(fields, message);
      },
    };
    const keyRotation = newApplicationKeyRotation({ hsm, ledger, engine });
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
      keys: newKeyService({ hsm, ledger, engine }),
      rotation: {
        provisionDeviceKey: (request) => rotation.provisionDeviceKey(request),
        rotateDeviceKey: (request, route) => rotation.rotateDeviceKey(request, route),
        acknowledgeRotation: (ack, route) => rotation.acknowledgeRotation(ack, route),
        async checkIn(checkInJws, route) {
          const { deviceId } = await rotation.verifyCheckIn(checkInJws, route);
          return { dueKeys: scheduler.dueForDevice(deviceId) };
        },
      },
      attestation,
      keyOperations: newKeyOperations({ hsm, ledger, deviceRefusal: events.denials.refusal }),
      keyRotation,
      ...(cluster === undefined ? {} : { hsmCluster: cluster.admin }),
      shards: newShardsApi({
        router: sharded?.router,
        home: {
          channel: readOrganization(config.ledger.connectionProfile, config.ledger.org).channel,
          client: home.ledger,
        },
        height: (shard) => (sharded?.shardTransports[shard] ?? transport).height(),
      }),
      ...(mover === undefined ? {} : { shardMoves: newShardMovesApi(mover) }),
      health: healthCheck(hsm, 'metadata-signing', transport),
    };

    // HTTPS by default: a certificate from the device CA for a key that exists only in memory.
    const https = await httpsOptions(config.http.security, ca);
    const server = await newHttpServer({
      services,
      authenticator: newBearerAuthenticator({ jwks: jwksFile(config.auth.jwksFile), audience: config.auth.audience }),
      bodyLimit: config.http.bodyLimit,
      logger: { level: config.logLevel },
      metrics: events.metrics,
      ...(https === undefined ? {} : { https }),
    });
    closers.push(() => server.close());
    schedulerLog.target = server.log;
    if (reconciled.missing.length > 0) {
      // Not repaired here: a committed version the HSM lacks is a fault for an operator.
      server.log.error({ missing: reconciled.missing }, 'the HSM lacks key versions the ledger records');
    }
    clusterLog.target = server.log;
    if (config.schedulerIntervalMs > 0) {
      scheduler.start();
      closers.push(() => scheduler.stop());
    }
    // Keys an attestation failure made due (the contract marks them in that transaction) reach
    // check-in with the next pass: the event runs it now instead of at the next tick.
    events.start({
      onKeysDue: () => {
        scheduler.wake();
      },
      log: server.log,
    });

    return {
      server,
      hsm,
      anchors: ids,
      close,
      ...(clusterRecords === undefined ? {} : { clusterRecords }),
      ...(sharded === undefined ? {} : { shardRouter: sharded.router }),
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * Attestation as the operator gateway answers it. The verifier is Org2's own service with its own
 * token and identity (docs/verifier.md): devices keep one address, the gateway's, which forwards
 * challenges and evidence to `KEYFLEET_VERIFIER_URL`, and reinstates, as the operator, a device
 * that an affirming result on the ledger shows healthy again. It answers once its own peer shows the
 * verifier's result, so what a caller reads next reflects it. Reference values are the operator's
 * to set; reads come from the gateway's own peer.
 */
function forwardedAttestation(config: Config, client: LedgerClient): OperatorAttestationApi {
  const verifier = newVerifierClient({
    url: config.verifier.url,
    timeoutMs: config.verifier.timeoutMs,
    caFile: config.verifier.caFile,
  });
  const reinstate = newReinstatement({ ledger: client });
  const ledger = ledgerPort(client);
  const ownPeer = newOwnPeerWait({ ledger });
  return {
    challenge: (deviceId) => verifier.challenge(deviceId),
    appraise: async (evidence) => {
      const answer = await verifier.appraise(evidence);
      await ownPeer(answer);
      return reinstate(answer);
    },
    setReferenceValues: (_by, group, request) =>
      ledger.referenceValues.set({
        Group: group,
        PolicyID: request.policyId,
        // The route's schema allows only the ledger's digest algorithms.
        Measurements: request.measurements.map((m) => ({
          Name: m.name,
          Algorithm: m.algorithm as DigestAlgorithm,
          Digest: m.digest,
        })),
      }),
    getReferenceValues: (group) => ledger.referenceValues.require(group),
    getBatch: (batchId) => ledger.attestations.requireBatch(batchId),
    trustAnchors: () => ledger.anchors.list(),
  };
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
