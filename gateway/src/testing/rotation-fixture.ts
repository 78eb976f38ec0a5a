/**
 * Test support for rotation: a real SoftHSM token with the gateway's keys, the real contract
 * in-process (LocalLedger) behind a real LedgerClient, a device CA over the HSM, and devices that
 * follow docs/protocol-rotation.md in software (written from the spec, independently of agent/).
 */
import { asPrincipal } from '../ledger/principal-context';
import { createHash, createPrivateKey, createPublicKey, webcrypto, X509Certificate, type KeyObject } from 'node:crypto';
import { LocalLedger, newCa, newIdentity } from '@keyfleet/chaincode/testing';
import { CompactSign } from 'jose';
import { newDeviceCa, type DeviceCa } from '../ca/device-ca';
import { hsmSigningKey } from '../crypto/hsm-key';
import type { EcSigningKey } from '../crypto/ec-key';
import * as x509 from '../crypto/x509';
import { newHsm, type Hsm } from '../hsm';
import { createSoftHsmStore, softHsmModule, type SoftHsmStore } from './softhsm';
import { newLedgerClient, type LedgerClient } from '../ledger/ledger-client';
import { newLocalTransport } from './local-transport';

export const MetadataAnchorId = 'hsm-metadata-1';

export interface RotationWorld {
  readonly store: SoftHsmStore;
  readonly hsm: Hsm;
  readonly local: LocalLedger;
  readonly ledger: LedgerClient;
  readonly metadataKey: EcSigningKey;
  readonly ca: DeviceCa;
  /** SPKI PEM of `device-kex`, as the enrolment answer gives it. */
  readonly keyExchangePublicKeyPem: string;
  close(): Promise<void>;
}

export async function newRotationWorld(): Promise<RotationWorld> {
  const store = createSoftHsmStore();
  const hsm = await newHsm({ uri: store.uri, modulePath: softHsmModule, pin: store.pin });
  const kex = await hsm.generateEcKeyPair({ label: 'device-kex', sign: false, derive: true });
  await hsm.generateEcKeyPair({ label: 'metadata-signing' });
  await hsm.generateEcKeyPair({ label: 'device-ca' });
  const metadataKey = await hsmSigningKey(hsm, 'metadata-signing');
  const caKey = await hsmSigningKey(hsm, 'device-ca');
  const ca = await newDeviceCa({ key: caKey });

  const org1 = await newCa('Org1');
  const operator = await newIdentity(org1, {
    mspId: 'Org1MSP',
    cn: 'gateway-1',
    ou: 'admin',
    attrs: { role: 'operator' },
  });
  const local = new LocalLedger();
  const ledger = newLedgerClient({
    transport: newLocalTransport(local, { mspId: operator.mspId, certificatePem: operator.pem }),
    signingKey: metadataKey,
    anchorId: MetadataAnchorId,
  });
  const jwk = metadataKey.publicKey.export({ format: 'jwk' });
  await asPrincipal({ Kind: 'operator', ID: 'alice' }, () =>
    ledger.write('RegisterTrustAnchor', {
      AnchorID: MetadataAnchorId,
      Kind: 'metadata-signing',
      PublicKey: { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y },
      Description: 'metadata-signing key in the test HSM',
    }),
  );
  return {
    store,
    hsm,
    local,
    ledger,
    metadataKey,
    ca,
    keyExchangePublicKeyPem: kex.pem,
    async close() {
      await hsm.close();
      store.remove();
    },
  };
}

/** A device as the spec describes it: own P-256 key, certificate from the device CA, enrolled on the ledger. */
export interface TestDevice {
  readonly id: string;
  readonly privateKey: KeyObject;
  readonly certificatePem: string;
  readonly certificateDer: Buffer;
}

export async function enrolTestDevice(world: RotationWorld, id: string, ca: DeviceCa = world.ca): Promise<TestDevice> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${id}`,
    keys,
    signingAlgorithm: algorithm,
  });
  const certificate = await ca.issue(csr.toString('pem'), id);
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const device: TestDevice = {
    id,
    privateKey: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }),
    certificatePem: certificate.pem,
    certificateDer: new X509Certificate(certificate.pem).raw,
  };
  if (ca === world.ca) {
    await asPrincipal({ Kind: 'operator', ID: 'alice' }, () =>
      world.ledger.write('EnrolDevice', {
        DeviceID: id,
        Group: 'edge',
        Location: 'lab',
        Function: 'sensor',
        Shard: 0,
        CertFingerprint: createHash('sha256').update(device.certificateDer).digest('hex'),
      }),
    );
  }
  return device;
}

export interface RequestOverrides {
  readonly claims?: Record<string, unknown>;
  /** Sign with this key instead of the device's own. */
  readonly signingKey?: KeyObject;
  /** Put this certificate (DER) in x5c instead of the device's own. */
  readonly certificateDer?: Buffer;
  readonly typ?: string;
}

/** A signed request or acknowledgement, as a device makes it (compact JWS, ES256, x5c). */
export function deviceJws(
  device: TestDevice,
  typ: string,
  claims: Record<string, unknown>,
  overrides: RequestOverrides = {},
): Promise<string> {
  return new CompactSign(Buffer.from(JSON.stringify({ ...claims, ...overrides.claims })))
    .setProtectedHeader({
      alg: 'ES256',
      typ: overrides.typ ?? typ,
      x5c: [(overrides.certificateDer ?? device.certificateDer).toString('base64')],
    })
    .sign(overrides.signingKey ?? device.privateKey);
}

export function publicKeyOfPem(pem: string): KeyObject {
  return createPublicKey(pem);
}
