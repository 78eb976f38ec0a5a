import { readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { JSONWebKeySet } from 'jose';
import { LocalLedger, Msp, Role } from '@keyfleet/chaincode';
import { newBearerAuthenticator } from './auth/bearer';
import { newDeviceCa } from './ca/device-ca';
import { newSelfSignedIdentity } from './ca/identity-certificate';
import type { Config } from './config';
import { hsmSigningKey } from './crypto/hsm-key';
import { newDeviceService } from './domain/devices';
import { newKeyService } from './domain/keys';
import type { Services } from './domain/services';
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
    for (const closer of closers.reverse()) await closer().catch(() => undefined);
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
      authenticator: newBearerAuthenticator({ jwks: readJwks(config.auth.jwksFile), audience: config.auth.audience }),
      bodyLimit: config.http.bodyLimit,
      logger: { level: config.logLevel },
    });
    closers.push(() => server.close());

    return { server, hsm, anchors: ids, close };
  } catch (err) {
    await close();
    throw err;
  }
}

async function openTransport(
  config: Config,
  options: OpenGatewayOptions,
  hsm: Hsm,
  identityKey: Awaited<ReturnType<typeof hsmSigningKey>>,
): Promise<LedgerTransport> {
  if (config.ledger.kind === 'fabric') {
    const certificateFile = options.fabricCertificateFile ?? join(config.dataDir, 'fabric-identity.pem');
    return newFabricTransport({
      profilePath: config.ledger.connectionProfile,
      org: config.ledger.org,
      certificatePem: readFileSync(certificateFile, 'utf8'),
      signer: hsm.newSigner({ label: 'fabric-identity' }),
    });
  }
  // No MSP checks an issuer in-process: the identity is self-signed by its own HSM key, shaped
  // as Org1's CA would issue it, with the operator role the chaincode reads.
  const certificatePem = await newSelfSignedIdentity(identityKey, {
    commonName: 'keyfleet-gateway',
    organization: 'org1.keyfleet.local',
    role: Role.Operator,
  });
  const ledger = options.localLedger ?? new LocalLedger({ file: config.ledger.stateFile });
  return newLocalTransport(ledger, { mspId: Msp.Operator, certificatePem });
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
