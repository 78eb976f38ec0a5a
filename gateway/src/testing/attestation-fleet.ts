// fabric-contract-api logs every decorator at info level when the contract class loads.
process.env.CORE_CHAINCODE_LOGGING_LEVEL ??= 'WARNING';
/**
 * Test support: a whole attestation deployment in one process. The HSM keys are real SoftHSM
 * objects, the ledger is keyfleet's contract in process (LocalLedger) reached through the
 * production LedgerClient and transport, the device CA is the gateway's, and devices run the real
 * agent code over real files.
 */
import { asPrincipal } from '../ledger/principal-context';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash, KeyObject, webcrypto } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DeviceRecord, PublicJwk } from '@keyfleet/protocol';
import { LocalLedger, fixtures, type Identities } from '@keyfleet/chaincode/testing';
import { newDeviceCa, type DeviceCa } from '../ca/device-ca';
import type { EcSigningKey } from '../crypto/ec-key';
import { hsmSigningKey } from '../crypto/hsm-key';
import * as x509 from '../crypto/x509';
import { ensureTrustAnchors, ensureVerifierAnchor } from '../domain/trust-anchors';
import { newHsm, type Hsm } from '../hsm';
import { createSoftHsmStore, softHsmModule, type SoftHsmStore } from './softhsm';
import { newLedgerClient, type LedgerClient } from '../ledger/ledger-client';
import { newLocalTransport } from './local-transport';
import { hsmChallengeKey, newChallengeIssuer, type ChallengeIssuer } from '../attestation/challenge';
import { agentAttestationDir, loadAgentAttestation, type AgentAttestation } from '../attestation/testing/agent';

export const Group = 'gw-edge';
export const GroupPolicy = 'gw-edge-golden';
export const StartMs = Date.parse('2026-03-02T10:00:00.000Z');

export interface TestDevice {
  readonly id: string;
  readonly key: KeyObject;
  readonly chainPem: string;
  readonly fingerprint: string;
  /** The device's own copies of the measured files, name → path. */
  readonly files: Readonly<Record<string, string>>;
}

export interface Fleet {
  readonly hsm: Hsm;
  readonly store: SoftHsmStore;
  readonly local: LocalLedger;
  readonly ids: Identities;
  readonly ca: DeviceCa;
  readonly caKey: EcSigningKey;
  readonly verifierKey: EcSigningKey;
  readonly verifierId: string;
  readonly verifierJwk: PublicJwk;
  /** Org1 operator, signing with the metadata-signing anchor. */
  readonly operator: LedgerClient;
  /** Org2 verifier, signing with the verifier anchor. */
  readonly verifierLedger: LedgerClient;
  /** Org2 auditor: reads only. */
  readonly auditor: LedgerClient;
  readonly challenges: ChallengeIssuer;
  readonly agent: AgentAttestation;
  now(): Date;
  advance(seconds: number): void;
  /** Generates a device key, issues its certificate, enrols it on the ledger and gives it measured files. */
  enrol(id: string, group?: string): Promise<TestDevice>;
  /** A fresh challenge answered by the real agent code. */
  attest(device: TestDevice, options?: { nonce?: string; key?: KeyObject; chainPem?: string }): Promise<string>;
  /** Reference digests of the pristine measured files. */
  readonly reference: readonly { Name: string; Algorithm: 'sha-256'; Digest: string }[];
  device(id: string): Promise<DeviceRecord>;
  close(): Promise<void>;
}

const p256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;

export async function newCsr(id: string): Promise<{ key: KeyObject; csrPem: string }> {
  const keys = await webcrypto.subtle.generateKey(p256, true, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${id}`,
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  return { key: KeyObject.from(keys.privateKey), csrPem: csr.toString('pem') };
}

export async function newFleet(): Promise<Fleet> {
  let clock = StartMs;
  const now = () => new Date(clock);
  const store = createSoftHsmStore('keyfleet-attest');
  const hsm = await newHsm({ uri: store.uri, modulePath: softHsmModule, pin: store.pin });
  for (const label of ['metadata-signing', 'device-ca', 'verifier']) await hsm.generateEcKeyPair({ label });
  await hsm.generateSecretKey({ label: 'attestation-challenge', type: 'hmac-sha256', usage: ['sign'] });
  const [metadataKey, caKey, verifierKey] = await Promise.all(
    ['metadata-signing', 'device-ca', 'verifier'].map((label) => hsmSigningKey(hsm, label)),
  );
  if (metadataKey === undefined || caKey === undefined || verifierKey === undefined) throw new Error('keys');
  const local = new LocalLedger({ now: () => clock });
  const { ids } = await fixtures();
  const transport = (who: { mspId: string; pem: string }) =>
    newLocalTransport(local, { mspId: who.mspId, certificatePem: who.pem });
  const anchors = await ensureTrustAnchors(transport(ids.operator), { key: metadataKey, description: 'HSM metadata' }, [
    { kind: 'device-ca', key: caKey, description: 'HSM device CA' },
  ]);
  // Org2 registers its own verifier key (proof of possession), as the verifier process does.
  const { anchorId: verifierId, ledger: verifierLedger } = await ensureVerifierAnchor(transport(ids.verifier), {
    key: verifierKey,
    description: 'HSM verifier',
  });
  const verifierJwk = verifierKey.publicKey.export({ format: 'jwk' });
  const auditor = newLedgerClient({ transport: transport(ids.auditor), signingKey: metadataKey, anchorId: 'none' });
  const ca = await newDeviceCa({ key: caKey, now });

  // The device's "code and configuration": a script, its JSON configuration, and the agent's real
  // compiled evidence module.
  const pristine = mkdtempSync(join(tmpdir(), 'keyfleet-attest-'));
  writeFileSync(join(pristine, 'app.js'), "console.log('temperature gateway');\n");
  writeFileSync(join(pristine, 'agent.json'), JSON.stringify({ gateway: 'https://gw.example', interval: 60 }));
  const sources: Record<string, string> = {
    'app.js': join(pristine, 'app.js'),
    'agent.json': join(pristine, 'agent.json'),
    'agent-evidence.js': join(agentAttestationDir, 'evidence.js'),
  };
  const reference = Object.entries(sources).map(([name, path]) => ({
    Name: name,
    Algorithm: 'sha-256' as const,
    Digest: createHash('sha256').update(readFileSync(path)).digest('hex'),
  }));
  await asPrincipal({ Kind: 'operator', ID: 'alice' }, () =>
    anchors.ledger.write('SetReferenceValues', { Group, PolicyID: GroupPolicy, Measurements: reference }),
  );

  const challenges = newChallengeIssuer({ key: hsmChallengeKey(hsm, 'attestation-challenge'), ttlSeconds: 60, now });
  const agent = loadAgentAttestation();
  const dirs: string[] = [pristine];

  return {
    hsm,
    store,
    local,
    ids,
    ca,
    caKey,
    verifierKey,
    verifierId,
    verifierJwk: { kty: 'EC', crv: 'P-256', x: verifierJwk.x as string, y: verifierJwk.y as string },
    operator: anchors.ledger,
    verifierLedger,
    auditor,
    challenges,
    agent,
    reference,
    now,
    advance(seconds) {
      clock += seconds * 1000;
    },
    async enrol(id, group = Group) {
      const { key, csrPem } = await newCsr(id);
      const cert = await ca.issue(csrPem, id);
      await asPrincipal({ Kind: 'operator', ID: 'alice' }, () =>
        anchors.ledger.write('EnrolDevice', {
          DeviceID: id,
          Group: group,
          Location: 'plant-7/hall-2',
          Function: 'temperature gateway',
          Shard: 0,
          CertFingerprint: cert.fingerprint,
        }),
      );
      const dir = mkdtempSync(join(tmpdir(), `keyfleet-${id}-`));
      dirs.push(dir);
      const files: Record<string, string> = {};
      for (const [name, path] of Object.entries(sources)) {
        if (name === 'agent-evidence.js') {
          files[name] = path; // shared, never modified
        } else {
          files[name] = join(dir, name);
          copyFileSync(path, files[name]);
        }
      }
      return { id, key, chainPem: cert.pem + ca.certificatePem, fingerprint: cert.fingerprint, files };
    },
    async attest(device, options = {}) {
      const nonce = options.nonce ?? (await challenges.issue(device.id)).nonce;
      return agent.collectEvidence({
        deviceKey: options.key ?? device.key,
        certificateChainPem: options.chainPem ?? device.chainPem,
        nonce,
        measuredFiles: Object.entries(device.files).map(([name, path]) => ({ name, path })),
        hwmodel: 'rpi-cm4',
        swname: 'keyfleet-agent',
        swversion: '0.1.0',
        dbgstat: 1,
        now,
      });
    },
    device: (id) => auditor.read<DeviceRecord>('GetDevice', id),
    async close() {
      await hsm.close();
      store.remove();
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    },
  };
}
