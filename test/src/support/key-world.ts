/**
 * Test support for the key service and the scheduler: one fresh SoftHSM token and one in-process
 * ledger (LocalLedger, on an injected clock) shared by any number of "gateways", each with its own
 * Hsm instance (PKCS#11 login is shared within the process, docs/hsm.md), its own Fabric identity
 * and LedgerClient, the application key service and its rotation.
 */
import { LocalLedger, newCa, newIdentity } from '@keyfleet/chaincode/testing';
import {
  asPrincipal,
  currentPrincipal,
  hsmSigningKey,
  newApplicationKeyRotation,
  newDeviceCa,
  newHsm,
  newKeyOperations,
  newKeyService,
  newLedgerClient,
  type ApplicationKeyRotation,
  type DeviceCa,
  type EcSigningKey,
  type Hsm,
  type KeyOperations,
  type KeyRegistration,
  type LedgerClient,
} from '@keyfleet/gateway';
import { createSoftHsmStore, newLocalTransport, softHsmModule, type SoftHsmStore } from '@keyfleet/gateway/testing';

export const MetadataAnchorId = 'hsm-metadata-1';
export const Operator = { subject: 'alice', role: 'operator' } as const;

export interface TestClock {
  now: () => Date;
  advance: (seconds: number) => void;
}

export interface KeyGateway {
  readonly name: string;
  readonly hsm: Hsm;
  readonly ledger: LedgerClient;
  readonly operations: KeyOperations;
  readonly rotation: ApplicationKeyRotation;
}

export interface KeyWorld {
  readonly store: SoftHsmStore;
  readonly local: LocalLedger;
  readonly clock: TestClock;
  readonly metadataKey: EcSigningKey;
  readonly ca: DeviceCa;
  readonly keyExchangePublicKeyPem: string;
  /** The first gateway; more with {@link KeyWorld.addGateway}. */
  readonly gateway: KeyGateway;
  addGateway(name: string): Promise<KeyGateway>;
  /** Registers an application key through the gateway's real registration path (domain/keys). */
  register(keyId: string, overrides?: Partial<KeyRegistration>): Promise<void>;
  close(): Promise<void>;
}

export function applicationKey(
  keyId: string,
  application: string,
  overrides: Partial<KeyRegistration> = {},
): KeyRegistration {
  const app = { mspId: 'Org1MSP', role: 'application' as const, id: application };
  const operators = { mspId: 'Org1MSP', role: 'operator' as const };
  return {
    keyId,
    algorithm: 'AES-256',
    purpose: 'encrypt',
    owner: { type: 'application', id: application },
    rotationIntervalSeconds: 3600,
    retentionSeconds: 600,
    accessPolicy: { read: [app], use: [app], rotate: [operators], administer: [operators] },
    ...overrides,
  };
}

export async function newKeyWorld(): Promise<KeyWorld> {
  const store = createSoftHsmStore('keyfleet-keys');
  let time = Date.parse('2026-03-01T00:00:00.000Z');
  const clock: TestClock = {
    now: () => new Date(time),
    advance: (seconds) => {
      time += seconds * 1000;
    },
  };
  const hsms: Hsm[] = [];
  const first = await newHsm({ uri: store.uri, modulePath: softHsmModule, pin: store.pin });
  hsms.push(first);
  const kex = await first.generateEcKeyPair({ label: 'device-kex', sign: false, derive: true });
  await first.generateEcKeyPair({ label: 'metadata-signing' });
  await first.generateEcKeyPair({ label: 'device-ca' });
  const metadataKey = await hsmSigningKey(first, 'metadata-signing');
  const ca = await newDeviceCa({ key: await hsmSigningKey(first, 'device-ca') });
  const local = new LocalLedger({ now: () => time });
  const org1 = await newCa('Org1');

  async function gatewayOn(name: string, hsm: Hsm): Promise<KeyGateway> {
    const identity = await newIdentity(org1, { mspId: 'Org1MSP', cn: name, ou: 'admin', attrs: { role: 'operator' } });
    const ledger = onBehalfOfAlice(
      newLedgerClient({
        transport: newLocalTransport(local, { mspId: identity.mspId, certificatePem: identity.pem }),
        signingKey: metadataKey,
        anchorId: MetadataAnchorId,
      }),
    );
    return {
      name,
      hsm,
      ledger,
      operations: newKeyOperations({ hsm, ledger, now: clock.now }),
      rotation: newApplicationKeyRotation({ hsm, ledger, now: clock.now }),
    };
  }

  const gateway = await gatewayOn('gateway-1', first);
  const jwk = metadataKey.publicKey.export({ format: 'jwk' });
  await gateway.ledger.write('RegisterTrustAnchor', {
    AnchorID: MetadataAnchorId,
    Kind: 'metadata-signing',
    PublicKey: { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y },
    Description: 'metadata-signing key in the test HSM',
  });
  const keys = newKeyService({ hsm: first, ledger: gateway.ledger });

  return {
    store,
    local,
    clock,
    metadataKey,
    ca,
    keyExchangePublicKeyPem: kex.pem,
    gateway,
    async addGateway(name) {
      const hsm = await newHsm({ uri: store.uri, modulePath: softHsmModule, pin: store.pin });
      hsms.push(hsm);
      return gatewayOn(name, hsm);
    },
    async register(keyId, overrides = {}) {
      await keys.register(Operator, applicationKey(keyId, 'billing', overrides));
    },
    async close() {
      for (const hsm of hsms.reverse()) await hsm.close();
      store.remove();
    },
  };
}

/**
 * These suites call the services as the HTTP layer would after authenticating operator alice: a
 * write outside any principal context runs on her behalf; one inside a context (a service's own
 * work, such as the scheduler's) keeps its own.
 */
function onBehalfOfAlice(ledger: LedgerClient): LedgerClient {
  const hasPrincipal = () => {
    try {
      currentPrincipal();
      return true;
    } catch {
      return false;
    }
  };
  return {
    ...ledger,
    write: (action, fields) =>
      hasPrincipal()
        ? ledger.write(action, fields)
        : asPrincipal({ Kind: 'operator', ID: 'alice' }, () => ledger.write(action, fields)),
  };
}
