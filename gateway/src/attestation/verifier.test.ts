import { expect } from 'chai';
import { asPrincipal, devicePrincipal } from '../ledger/principal-context';
import { appendFileSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import type {
  AttestationBatchRecord,
  AttestationRecord,
  AttestationResult,
  KeyRecord,
  NonceRecord,
  TrustAnchorRecord,
} from '@keyfleet/protocol';
import { newDeviceCa } from '../ca/device-ca';
import { hsmSigningKey } from '../crypto/hsm-key';
import { ensureVerifierAnchor } from '../domain/trust-anchors';
import { newLocalTransport } from '../testing/local-transport';
import { newSoftwareKey } from '../testing/software-key';
import { verifyBatchRecordSignature, verifyProofAgainstLedger } from './audit';
import { newAttestationBatcher } from './batcher';
import { nonceDigestOf } from './challenge';
import { EarProfile, EarSubmodule } from '@keyfleet/protocol';
import { verifyEar } from './ear';
import { AttestationError } from './errors';
import { GroupPolicy, newCsr, newFleet, type Fleet, type TestDevice } from '../testing/attestation-fleet';
import { newVerifier, type Verifier, type VerifierOptions } from './verifier';

async function refusal(promise: Promise<unknown>): Promise<AttestationError> {
  try {
    await promise;
  } catch (err) {
    expect(err, String(err)).to.be.instanceOf(AttestationError);
    return err as AttestationError;
  }
  return expect.fail('expected a refusal');
}

describe('attestation verifier on SoftHSM and the in-process contract', function () {
  this.timeout(60_000);
  let fleet: Fleet;
  let verifier: Verifier;
  let rotations: string[];

  const options = (extra: Partial<VerifierOptions> = {}): VerifierOptions => ({
    deviceCaCertificatePem: fleet.ca.certificatePem,
    ledger: fleet.verifierLedger,
    resultKey: fleet.verifierKey,
    verifierId: fleet.verifierId,
    policyId: 'keyfleet-appraisal-v1',
    challenges: fleet.challenges,
    now: () => fleet.now(),
    actions: {
      reinstateWith: fleet.operator,
      onContraindicated: (deviceId) => {
        rotations.push(deviceId);
        return Promise.resolve();
      },
    },
    ...extra,
  });

  before(async () => {
    fleet = await newFleet();
  });
  after(async () => {
    await fleet.close();
  });
  beforeEach(() => {
    rotations = [];
    verifier = newVerifier(options());
  });

  describe('appraisal', () => {
    it('affirms a healthy device: EAR signed by the HSM verifier key, result and nonce on the ledger', async () => {
      const device = await fleet.enrol('dev-healthy');
      const evidence = await fleet.attest(device);
      const outcome = await verifier.appraise(evidence);

      expect(outcome.status).to.equal('affirming');
      expect(outcome.findings).to.deep.equal([]);
      expect(outcome.actions).to.deep.equal({
        suspended: false,
        reinstated: false,
        rotationRequested: false,
        failures: [],
      });
      // The EAR's bytes verify with the HSM's public key (RFC 7518 §3.4: r||s).
      const [header, payload, signature] = outcome.ear.split('.') as [string, string, string];
      const signed = verify(
        'sha256',
        Buffer.from(`${header}.${payload}`),
        { key: fleet.verifierKey.publicKey, dsaEncoding: 'ieee-p1363' },
        Buffer.from(signature, 'base64url'),
      );
      expect(signed).to.equal(true);
      const ear = await verifyEar(outcome.ear, fleet.verifierKey.publicKey);
      const nonce = JSON.parse(Buffer.from(evidence.split('.')[1] as string, 'base64url').toString()) as {
        eat_nonce: string;
      };
      expect(ear.eat_profile).to.equal(EarProfile);
      expect(ear.eat_nonce).to.equal(nonce.eat_nonce);
      expect(ear['ear.verifier-id'].developer).to.equal(fleet.verifierId);
      expect(ear.submods[EarSubmodule]).to.deep.equal({
        'ear.status': 'affirming',
        'ear.trustworthiness-vector': {
          'instance-identity': 2,
          configuration: 2,
          executables: 2,
          'file-system': 2,
          hardware: 0,
          'runtime-opaque': 0,
          'storage-opaque': 0,
          'sourced-data': 0,
        },
        'ear.appraisal-policy-id': `keyfleet-appraisal-v1:${GroupPolicy}@1`,
      });

      if (!('resultId' in outcome.recorded)) return expect.fail('recorded one by one');
      const record = await fleet.auditor.read<AttestationRecord>(
        'GetAttestation',
        device.id,
        outcome.recorded.resultId,
      );
      expect(record).to.include({ ...ear['keyfleet.result'], DeviceSuspended: false, VerifierID: fleet.verifierId });
      expect(record.NonceDigest).to.equal(nonceDigestOf(nonce.eat_nonce));
      const used = await fleet.auditor.read<NonceRecord>('GetNonce', record.NonceDigest);
      expect(used).to.include({ Purpose: 'attestation', Subject: device.id });
      expect((await fleet.device(device.id)).LastAttestation).to.include({ Status: 'affirming' });
    });

    it('contraindicates a device whose measured file changed: suspended, keys due, rotation asked; reinstated when healthy again', async () => {
      const device = await fleet.enrol('dev-tampered');
      await asPrincipal({ Kind: 'operator', ID: 'alice' }, () =>
        fleet.operator.write('RegisterKey', {
          KeyID: 'dev-tampered-data',
          Owner: { Type: 'device', ID: device.id },
          Algorithm: 'AES-256',
          Purpose: 'encrypt',
          RotationPolicy: {
            IntervalSeconds: 86_400,
            GraceSeconds: 3_600,
            RetentionSeconds: 86_400,
            Triggers: ['attestation-failure'],
          },
          AccessPolicy: {
            Read: [{ MSPID: 'Org1MSP', Role: 'device', ID: device.id }],
            Use: [{ MSPID: 'Org1MSP', Role: 'device', ID: device.id }],
            Rotate: [{ MSPID: 'Org1MSP', Role: 'operator', ID: null }],
            Administer: [{ MSPID: 'Org1MSP', Role: 'operator', ID: null }],
          },
          InitialVersion: {
            Fingerprint: 'a1b2c3',
            FingerprintType: 'kcv',
            Pkcs11URI: 'pkcs11:token=keyfleet;object=dev-tampered-data-v1;type=secret-key',
            WrappedKeyDigest: null,
          },
          InitialState: 'active',
          NextKeyCommitment: null,
        }),
      );
      const original = device.files['agent.json'] as string;
      appendFileSync(original, ' ');

      const outcome = await verifier.appraise(await fleet.attest(device));
      expect(outcome.status).to.equal('contraindicated');
      expect(outcome.trustworthinessVector.executables).to.equal(96);
      expect(outcome.findings).to.deep.equal(['agent.json: sha-256 digest differs from the reference value']);
      expect(outcome.actions).to.include({ suspended: true, rotationRequested: true, reinstated: false });
      expect(rotations).to.deep.equal([device.id]);
      const ear = await verifyEar(outcome.ear, fleet.verifierKey.publicKey);
      expect(ear.submods[EarSubmodule]?.['ear.status']).to.equal('contraindicated');
      const suspended = await fleet.device(device.id);
      expect(suspended).to.include({ Status: 'suspended', StatusReason: 'attestation contraindicated' });
      const key = await fleet.operator.read<KeyRecord>('GetKey', 'dev-tampered-data');
      expect(key.NextRotationDue).to.equal(fleet.now().toISOString());

      // Restored: the next affirming result reinstates the device (an operator-side action).
      writeFileSync(original, JSON.stringify({ gateway: 'https://gw.example', interval: 60 }));
      fleet.advance(5);
      const healthy = await verifier.appraise(await fleet.attest(device));
      expect(healthy.status).to.equal('affirming');
      expect(healthy.actions.reinstated).to.equal(true);
      expect(await fleet.device(device.id)).to.include({ Status: 'active' });
    });

    it('does not reinstate a device an operator suspended for another reason', async () => {
      const device = await fleet.enrol('dev-held');
      await asPrincipal({ Kind: 'operator', ID: 'alice' }, () =>
        fleet.operator.write('SuspendDevice', { DeviceID: device.id, Reason: 'maintenance' }),
      );
      const outcome = await verifier.appraise(await fleet.attest(device));
      expect(outcome.status).to.equal('affirming');
      expect(outcome.actions.reinstated).to.equal(false);
      expect(await fleet.device(device.id)).to.include({ Status: 'suspended', StatusReason: 'maintenance' });
    });

    it('warns on an unrecognised extra file and on an open debugger', async () => {
      const device = await fleet.enrol('dev-debug');
      const evidence = await fleet.agent.collectEvidence({
        deviceKey: device.key,
        certificateChainPem: device.chainPem,
        nonce: (await fleet.challenges.issue(device.id)).nonce,
        measuredFiles: [
          ...Object.entries(device.files).map(([name, path]) => ({ name, path })),
          { name: 'extra.sh', path: device.files['app.js'] as string },
        ],
        hwmodel: 'rpi-cm4',
        swname: 'keyfleet-agent',
        swversion: '0.1.0',
        dbgstat: 0,
        now: () => fleet.now(),
      });
      const outcome = await verifier.appraise(evidence);
      expect(outcome.status).to.equal('warning');
      expect(outcome.trustworthinessVector).to.include({ configuration: 32, 'file-system': 32, executables: 2 });
    });
  });

  describe('refusals write nothing', () => {
    let healthy: TestDevice;
    let other: TestDevice;

    before(async () => {
      healthy = await fleet.enrol('dev-r1');
      other = await fleet.enrol('dev-r2');
    });

    async function expectRefused(evidence: Promise<string> | string, code: string, v: Verifier = verifier) {
      const input = await evidence;
      const before = fleet.local.snapshot();
      const err = await refusal(v.appraise(input));
      expect(err.code, err.message).to.equal(code);
      expect(fleet.local.snapshot(), 'ledger state after a refusal').to.equal(before);
    }

    it('a replayed nonce, at the same verifier and at another verifier with its own anchor', async () => {
      const evidence = await fleet.attest(healthy);
      await verifier.appraise(evidence);
      await expectRefused(evidence, 'NONCE_REPLAYED');

      await fleet.hsm.generateEcKeyPair({ label: 'verifier-2' });
      const key2 = await hsmSigningKey(fleet.hsm, 'verifier-2');
      const transport = newLocalTransport(fleet.local, {
        mspId: fleet.ids.verifier.mspId,
        certificatePem: fleet.ids.verifier.pem,
      });
      // The second verifier registers its own anchor, as every verifier of Org2 does.
      const { anchorId, ledger } = await ensureVerifierAnchor(transport, { key: key2, description: 'second verifier' });
      const second = newVerifier(options({ ledger, resultKey: key2, verifierId: anchorId }));
      await expectRefused(evidence, 'NONCE_REPLAYED', second);
      // …which is otherwise a working verifier.
      expect((await second.appraise(await fleet.attest(healthy))).result.VerifierID).to.equal(anchorId);
    });

    it('an expired nonce', async () => {
      const { nonce } = await fleet.challenges.issue(healthy.id);
      fleet.advance(61);
      await expectRefused(fleet.attest(healthy, { nonce }), 'NONCE_EXPIRED');
    });

    it('a nonce issued to another device', async () => {
      const { nonce } = await fleet.challenges.issue(other.id);
      await expectRefused(fleet.attest(healthy, { nonce }), 'NONCE_WRONG_DEVICE');
    });

    it('a nonce not issued by the challenge key', async () => {
      await expectRefused(fleet.attest(healthy, { nonce: randomBytes(53).toString('base64url') }), 'NONCE_INVALID');
    });

    it('evidence signed by an unenrolled key, four ways', async () => {
      // A certificate from another CA, for an enrolled device id.
      const rogueCa = await newDeviceCa({ key: newSoftwareKey('rogue-ca') });
      const rogue = await newCsr(healthy.id);
      const rogueCert = await rogueCa.issue(rogue.csrPem, healthy.id);
      await expectRefused(fleet.attest(healthy, { key: rogue.key, chainPem: rogueCert.pem }), 'CERTIFICATE_UNTRUSTED');
      // A genuine certificate for a device that was never enrolled.
      const stray = await newCsr('dev-stray');
      const strayCert = await fleet.ca.issue(stray.csrPem, 'dev-stray');
      const nonce = (await fleet.challenges.issue('dev-stray')).nonce;
      await expectRefused(fleet.attest(healthy, { key: stray.key, chainPem: strayCert.pem, nonce }), 'DEVICE_UNKNOWN');
      // A genuine certificate for an enrolled device, but not the enrolled one (another key).
      const twin = await newCsr(healthy.id);
      const twinCert = await fleet.ca.issue(twin.csrPem, healthy.id);
      await expectRefused(fleet.attest(healthy, { key: twin.key, chainPem: twinCert.pem }), 'KEY_NOT_ENROLLED');
      // The enrolled certificate in x5c, signed by another key (the agent refuses this, so forge it).
      const evidence = await fleet.attest(healthy);
      const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      const [h, p] = evidence.split('.') as [string, string];
      const forged = `${h}.${p}.${sign('sha256', Buffer.from(`${h}.${p}`), { key: other, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
      await expectRefused(forged, 'EVIDENCE_SIGNATURE_INVALID');
    });

    it('a revoked device', async () => {
      const device = await fleet.enrol('dev-revoked');
      const evidence = await fleet.attest(device);
      await asPrincipal({ Kind: 'operator', ID: 'alice' }, () =>
        fleet.operator.write('RevokeDevice', { DeviceID: device.id, Reason: 'keyCompromise', Comment: null }),
      );
      await expectRefused(evidence, 'DEVICE_REVOKED');
    });

    it('a device its events show revoked: refused before the ledger, which would still accept it', async () => {
      const device = await fleet.enrol('dev-revoked-by-event');
      const evidence = await fleet.attest(device);
      const withEvents = newVerifier(options({ deviceRefusal: (id) => (id === device.id ? 'revoked' : undefined) }));
      await expectRefused(evidence, 'DEVICE_REVOKED', withEvents);
      // The refusal was the events' alone: the ledger shows the device active, and the same
      // evidence (its nonce unspent) is appraised by a verifier that follows no events.
      expect((await verifier.appraise(evidence)).status).to.equal('affirming');
    });

    it('a device its events show suspended still attests (that is how it recovers)', async () => {
      const withEvents = newVerifier(options({ deviceRefusal: () => 'suspended' }));
      expect((await withEvents.appraise(await fleet.attest(healthy))).status).to.equal('affirming');
    });

    it('a device whose group has no reference values', async () => {
      const device = await fleet.enrol('dev-nogroup', 'unconfigured-group');
      await expectRefused(fleet.attest(device), 'REFERENCE_VALUES_MISSING');
    });

    it('stale evidence', async () => {
      const evidence = await fleet.attest(healthy);
      fleet.advance(59);
      const stale = newVerifier(options({ maxEvidenceAgeSeconds: 30 }));
      await expectRefused(evidence, 'EVIDENCE_NOT_FRESH', stale);
    });
  });

  describe('batches', () => {
    it('anchors results in a Merkle batch; each device gets a proof the auditor checks against the ledger', async () => {
      const devices = await Promise.all(['dev-b1', 'dev-b2', 'dev-b3', 'dev-b4'].map((id) => fleet.enrol(id)));
      appendFileSync((devices[3] as TestDevice).files['app.js'] as string, '// injected\n');
      const batcher = newAttestationBatcher({
        ledger: fleet.verifierLedger,
        verifierId: fleet.verifierId,
        maxSize: 4,
        maxDelayMs: 10_000,
      });
      const batched = newVerifier(options({ batcher }));
      const evidence = await Promise.all(devices.map((device) => fleet.attest(device)));
      const outcomes = await Promise.all(evidence.map((e) => batched.appraise(e)));

      expect(outcomes.map((o) => o.status)).to.deep.equal(['affirming', 'affirming', 'affirming', 'contraindicated']);
      const first = outcomes[0]?.recorded;
      if (first === undefined || !('batchId' in first)) return expect.fail('recorded in a batch');
      const batch = await fleet.auditor.read<AttestationBatchRecord>('GetAttestationBatch', first.batchId);
      expect(batch).to.include({ Count: 4, VerifierID: fleet.verifierId });
      expect(batch.SuspendedDevices).to.deep.equal(['dev-b4']);
      expect(await fleet.device('dev-b4')).to.include({ Status: 'suspended' });
      expect(await verifyBatchRecordSignature(batch, fleet.verifierJwk)).to.equal(true);
      for (const outcome of outcomes) {
        if (!('proof' in outcome.recorded)) return expect.fail('recorded in a batch');
        const ear = await verifyEar(outcome.ear, fleet.verifierKey.publicKey);
        // The device holds the EAR and the proof; the auditor holds the ledger's batch record.
        expect(verifyProofAgainstLedger(ear['keyfleet.result'], outcome.recorded.proof, batch).ok).to.equal(true);
        const onLedger = await fleet.auditor.read<{ Included: boolean }>(
          'VerifyAttestationInclusion',
          batch.BatchID,
          JSON.stringify(outcome.result),
          JSON.stringify({ LeafIndex: outcome.recorded.proof.LeafIndex, AuditPath: outcome.recorded.proof.AuditPath }),
        );
        expect(onLedger.Included).to.equal(true);
      }
      // One transaction recorded the batch and consumed its four nonces: no ConsumeNonce.
      const writes = fleet.local
        .transactions()
        .filter((t) => t.method.startsWith('Record') || t.method === 'ConsumeNonce');
      expect(writes.slice(-1).map((t) => t.method)).to.deep.equal(['RecordAttestationBatch']);
      expect(fleet.local.transactions().some((t) => t.method === 'ConsumeNonce')).to.equal(false);
      for (const outcome of outcomes) {
        const nonce = await fleet.auditor.read<NonceRecord>('GetNonce', outcome.result.NonceDigest);
        expect(nonce.TxID).to.equal(first.proof.TransactionID);
      }
      // A replay is refused, and writes nothing.
      const before = fleet.local.snapshot();
      expect((await refusal(batched.appraise(evidence[0]))).code).to.equal('NONCE_REPLAYED');
      expect(fleet.local.snapshot()).to.equal(before);
      await batcher.close();
    });

    it('a member whose nonce another verifier consumed meanwhile is refused alone; the others are recorded', async () => {
      const devices = await Promise.all(['dev-s1', 'dev-s2', 'dev-s3'].map((id) => fleet.enrol(id)));
      const batcher = newAttestationBatcher({
        ledger: fleet.verifierLedger,
        verifierId: fleet.verifierId,
        maxSize: 3,
        maxDelayMs: 60_000,
      });
      const results = devices.map((device) => ({
        DeviceID: device.id,
        NonceDigest: randomBytes(32).toString('hex'),
        EvidenceDigest: randomBytes(32).toString('hex'),
        Status: 'affirming' as const,
        PolicyID: `keyfleet-appraisal-v1:${GroupPolicy}@1`,
        VerifierID: fleet.verifierId,
        IssuedAt: fleet.now().toISOString(),
      }));
      const [r0, r1, r2] = results as [AttestationResult, AttestationResult, AttestationResult];
      const first = batcher.add(r0);
      const second = batcher.add(r1);
      // Another transaction consumes the second nonce after it joined the batch, before the batch is written.
      await asPrincipal(devicePrincipal(r1.DeviceID), () => fleet.verifierLedger.write('RecordAttestation', { ...r1 }));
      const third = batcher.add(r2);
      expect((await refusal(second)).code).to.equal('NONCE_REPLAYED');
      const [p0, p2] = await Promise.all([first, third]);
      // The refused batch of three was recorded again member by member.
      expect([p0.TreeSize, p2.TreeSize]).to.deep.equal([1, 1]);
      for (const [result, proof] of [
        [r0, p0],
        [r2, p2],
      ] as const) {
        const nonce = await fleet.auditor.read<NonceRecord>('GetNonce', result.NonceDigest);
        expect(nonce.TxID).to.equal(proof.TransactionID);
      }
      await batcher.close();
    });

    it('refuses the same nonce twice in one batch before it is written', async () => {
      const batcher = newAttestationBatcher({ ledger: fleet.verifierLedger, verifierId: fleet.verifierId, maxSize: 8 });
      const device = await fleet.enrol('dev-dup');
      const result = (await newVerifier(options()).appraise(await fleet.attest(device))).result;
      const fresh = { ...result, NonceDigest: randomBytes(32).toString('hex') };
      const first = batcher.add(fresh);
      expect((await refusal(batcher.add({ ...fresh, EvidenceDigest: randomBytes(32).toString('hex') }))).code).to.equal(
        'NONCE_REPLAYED',
      );
      await batcher.close();
      expect((await first).TreeSize).to.equal(1);
    });

    it('anchors a partial batch after the maximum delay', async () => {
      const device = await fleet.enrol('dev-late');
      const batcher = newAttestationBatcher({
        ledger: fleet.verifierLedger,
        verifierId: fleet.verifierId,
        maxSize: 100,
        maxDelayMs: 20,
      });
      const outcome = await newVerifier(options({ batcher })).appraise(await fleet.attest(device));
      if (!('proof' in outcome.recorded)) return expect.fail('recorded in a batch');
      expect(outcome.recorded.proof).to.include({ TreeSize: 1, LeafIndex: 0 });
      expect(batcher.pending).to.equal(0);
      await batcher.close();
    });

    it('256 results, the most one batch holds: every inclusion proof verifies against the ledger; one changed byte fails', async () => {
      const batcher = newAttestationBatcher({
        ledger: fleet.verifierLedger,
        verifierId: fleet.verifierId,
        maxSize: 256,
        maxDelayMs: 60_000,
      });
      expect(() => newAttestationBatcher({ ledger: fleet.verifierLedger, verifierId: 'v', maxSize: 257 })).to.throw(
        RangeError,
      );
      const enrolled = await Promise.all(['dev-m0', 'dev-m1', 'dev-m2'].map((id) => fleet.enrol(id)));
      const issuedAt = fleet.now().getTime();
      const results = Array.from({ length: 256 }, (_, i) => ({
        DeviceID: (enrolled[i % 3] as TestDevice).id,
        NonceDigest: randomBytes(32).toString('hex'),
        EvidenceDigest: randomBytes(32).toString('hex'),
        Status: i % 7 === 0 ? ('warning' as const) : ('affirming' as const),
        PolicyID: `keyfleet-appraisal-v1:${GroupPolicy}@1`,
        VerifierID: fleet.verifierId,
        IssuedAt: new Date(issuedAt - (256 - i) * 10).toISOString(),
      }));
      const proofs = await Promise.all(results.map((result) => batcher.add(result)));
      await batcher.close();
      const batchId = (proofs[0] as { BatchID: string }).BatchID;
      expect(new Set(proofs.map((p) => p.BatchID)).size).to.equal(1);
      const batch = await fleet.auditor.read<AttestationBatchRecord>('GetAttestationBatch', batchId);
      expect(batch.Count).to.equal(256);
      expect(await verifyBatchRecordSignature(batch, fleet.verifierJwk)).to.equal(true);

      results.forEach((result, i) => {
        const check = verifyProofAgainstLedger(result, proofs[i], batch);
        expect(check.ok, `result ${i}`).to.equal(true);
      });
      // A sample through the contract's own check, on the ledger.
      for (const i of [0, 1, 127, 128, 254, 255]) {
        const proof = proofs[i] as { LeafIndex: number; AuditPath: readonly string[] };
        const answer = await fleet.auditor.read<{ Included: boolean }>(
          'VerifyAttestationInclusion',
          batchId,
          JSON.stringify(results[i]),
          JSON.stringify({ LeafIndex: proof.LeafIndex, AuditPath: proof.AuditPath }),
        );
        expect(answer.Included).to.equal(true);
      }

      const flip = (hex: string, at = 0): string =>
        hex.slice(0, at) + (parseInt(hex[at] as string, 16) ^ 1).toString(16) + hex.slice(at + 1);
      const result = results[201] as (typeof results)[number];
      const proof = proofs[201] as (typeof proofs)[number];
      const changed: [string, unknown, unknown, AttestationBatchRecord, string][] = [
        [
          'an audit-path byte',
          result,
          { ...proof, AuditPath: [flip(proof.AuditPath[0] as string), ...proof.AuditPath.slice(1)] },
          batch,
          'NOT_INCLUDED',
        ],
        [
          'the last audit-path byte',
          result,
          { ...proof, AuditPath: [...proof.AuditPath.slice(0, -1), flip(proof.AuditPath.at(-1) as string, 63)] },
          batch,
          'NOT_INCLUDED',
        ],
        [
          'an evidence-digest byte',
          { ...result, EvidenceDigest: flip(result.EvidenceDigest, 10) },
          proof,
          batch,
          'NOT_INCLUDED',
        ],
        ['a nonce-digest byte', { ...result, NonceDigest: flip(result.NonceDigest, 63) }, proof, batch, 'NOT_INCLUDED'],
        ['the status', { ...result, Status: 'contraindicated' }, proof, batch, 'NOT_INCLUDED'],
        ['the leaf index', result, { ...proof, LeafIndex: 202 }, batch, 'NOT_INCLUDED'],
        [
          'the recorded root',
          result,
          { ...proof, MerkleRoot: undefined },
          { ...batch, MerkleRoot: flip(batch.MerkleRoot, 5) },
          'NOT_INCLUDED',
        ],
        ['the proof root', result, { ...proof, MerkleRoot: flip(proof.MerkleRoot, 5) }, batch, 'BATCH_MISMATCH'],
        ['the verifier', { ...result, VerifierID: 'verifier-2' }, proof, batch, 'VERIFIER_MISMATCH'],
        ['the issue time', { ...result, IssuedAt: '2030-01-01T00:00:00.000Z' }, proof, batch, 'OUTSIDE_BATCH'],
      ];
      for (const [what, r, p, b, reason] of changed) {
        expect(verifyProofAgainstLedger(r, p, b), what).to.deep.equal({ ok: false, reason });
      }
      const rootFlipped = { ...batch, MerkleRoot: flip(batch.MerkleRoot, 5) };
      expect(await verifyBatchRecordSignature(rootFlipped, fleet.verifierJwk)).to.equal(false);
      const anchors = await fleet.auditor.read<TrustAnchorRecord[]>('ListTrustAnchors');
      expect(anchors.some((a) => a.AnchorID === fleet.verifierId && a.Kind === 'verifier')).to.equal(true);
    });
  });
});
