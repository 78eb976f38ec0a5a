import './logging.js';

import { expect } from 'chai';

import {
  type AttestationBatchRecord,
  type AttestationRecord,
  type AttestationResult,
  buildMerkleTree,
  type DeviceRecord,
  ErrorCode,
  EventName,
  type KeyRecord,
  type NonceRecord,
  type Page,
  type ReferenceValuesRecord,
  type RotationAckOutcome,
  TransactionName,
  type TrustAnchorRecord,
} from '@keyfleet/protocol';
import { Harness, expectRejected, hex } from './testing/harness.js';

describe('attestation, nonces and reference values', () => {
  let h: Harness;

  beforeEach(async () => {
    h = await Harness.create();
    await h.bootstrap();
    await h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0001'));
  });

  const record = (extra: Record<string, unknown> = {}) =>
    h.write<AttestationRecord>(
      h.ids.verifier,
      TransactionName.RecordAttestation,
      h.attestationRequest('dev-0001', extra),
      h.signers.verifier,
    );

  it('records an affirming result, consumes its nonce and updates the device', async () => {
    const result = await record({ NonceDigest: hex('n1') });
    expect(result).to.include({
      DeviceID: 'dev-0001',
      Status: 'affirming',
      DeviceSuspended: false,
      VerifierID: 'verifier-1',
    });
    expect(result.Proof.AnchorID).to.equal('verifier-1');
    expect(h.lastEvent.name).to.equal(EventName.AttestationRecorded);
    const device = await h.read<DeviceRecord>(h.ids.operator, TransactionName.GetDevice, 'dev-0001');
    expect(device.LastAttestation).to.include({ ResultID: result.ResultID, Status: 'affirming' });
    const stored = await h.read<AttestationRecord>(
      h.ids.auditor,
      TransactionName.GetAttestation,
      'dev-0001',
      result.ResultID,
    );
    expect(stored).to.deep.equal(result);
    const list = await h.read<Page<AttestationRecord>>(
      h.ids.device,
      TransactionName.ListAttestations,
      'dev-0001',
      '10',
      '',
    );
    expect(list.Records).to.have.length(1);
    await expectRejected(h, record({ NonceDigest: hex('n1') }), ErrorCode.NonceReplayed);
  });

  it('a contraindicated result suspends the device and makes its triggered keys due', async () => {
    await h.write(
      h.ids.operator,
      TransactionName.RegisterKey,
      h.keyRequest('k-dev', {
        Owner: { Type: 'device', ID: 'dev-0001' },
        RotationPolicy: {
          IntervalSeconds: 86_400,
          GraceSeconds: 0,
          RetentionSeconds: 0,
          Triggers: ['attestation-failure'],
        },
      }),
    );
    h.advance(60);
    const result = await record({ Status: 'contraindicated' });
    expect(result.DeviceSuspended).to.equal(true);
    expect(h.lastEvent.payload).to.include({ DeviceSuspended: true });
    expect(h.lastEvent.payload.KeysDueForRotation).to.deep.equal(['k-dev']);
    const device = await h.read<DeviceRecord>(h.ids.operator, TransactionName.GetDevice, 'dev-0001');
    expect(device).to.include({ Status: 'suspended', StatusReason: 'attestation contraindicated' });
    const key = await h.read<KeyRecord>(h.ids.operator, TransactionName.GetKey, 'k-dev');
    expect(key.NextRotationDue).to.equal('2026-01-01T00:01:00.000Z');
  });

  it('a warning result leaves the device active', async () => {
    await record({ Status: 'warning' });
    const device = await h.read<DeviceRecord>(h.ids.operator, TransactionName.GetDevice, 'dev-0001');
    expect(device.Status).to.equal('active');
  });

  it('refuses results for revoked devices and results signed by a verifier other than VerifierID', async () => {
    await expectRejected(h, record({ VerifierID: 'verifier-9' }), ErrorCode.InvalidArgument);
    await h.write(
      h.ids.operator,
      TransactionName.RevokeDevice,
      h.req(TransactionName.RevokeDevice, { DeviceID: 'dev-0001', Reason: 'superseded' }),
    );
    await expectRejected(h, record(), ErrorCode.DeviceRevoked);
  });

  it('refuses attestation writes signed with the metadata key (anchor kind matters)', async () => {
    await expectRejected(
      h,
      h.write(h.ids.verifier, TransactionName.RecordAttestation, h.attestationRequest('dev-0001'), h.signers.metadata),
      ErrorCode.AnchorKindMismatch,
    );
  });

  it('records a batch, suspends its contraindicated devices, and proves every member', async () => {
    await h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0002'));
    const results: AttestationResult[] = Array.from({ length: 7 }, (_, i) => ({
      DeviceID: i === 3 ? 'dev-0002' : 'dev-0001',
      NonceDigest: hex(`batch-nonce-${i}`),
      EvidenceDigest: hex(`batch-evidence-${i}`),
      Status: i === 3 ? 'contraindicated' : 'affirming',
      PolicyID: 'policy-gw-1',
      VerifierID: 'verifier-1',
      IssuedAt: new Date(h.now - (7 - i) * 1000).toISOString(),
    }));
    const tree = buildMerkleTree(results);
    const batch = await h.write<AttestationBatchRecord>(
      h.ids.verifier,
      TransactionName.RecordAttestationBatch,
      h.req(TransactionName.RecordAttestationBatch, {
        BatchID: 'b-1',
        VerifierID: 'verifier-1',
        MerkleRoot: tree.Root,
        Count: results.length,
        FirstIssuedAt: results[0]?.IssuedAt,
        LastIssuedAt: results[6]?.IssuedAt,
        Contraindicated: ['dev-0002'],
        Nonces: results.map(({ NonceDigest, DeviceID }) => ({ NonceDigest, DeviceID })),
      }),
      h.signers.verifier,
    );
    expect(batch.SuspendedDevices).to.deep.equal(['dev-0002']);
    // The members' nonces were consumed by the batch transaction itself.
    for (const { NonceDigest, DeviceID } of results) {
      const nonce = await h.read<NonceRecord>(h.ids.auditor, TransactionName.GetNonce, NonceDigest);
      expect(nonce).to.include({ Purpose: 'attestation', Subject: DeviceID, TxID: batch.Proof.TxID });
    }
    expect(h.lastEvent).to.deep.include({ name: EventName.AttestationBatchRecorded });
    const device = await h.read<DeviceRecord>(h.ids.operator, TransactionName.GetDevice, 'dev-0002');
    expect(device.Status).to.equal('suspended');
    expect(device.LastAttestation).to.include({ BatchID: 'b-1', ResultID: null });
    for (const [index, result] of results.entries()) {
      const answer = await h.read<Record<string, unknown>>(
        h.ids.auditor,
        TransactionName.VerifyAttestationInclusion,
        'b-1',
        JSON.stringify(result),
        JSON.stringify({ LeafIndex: index, AuditPath: tree.proof(index) }),
      );
      expect(answer).to.include({ Included: true, LeafHash: tree.LeafHashes[index], MerkleRoot: tree.Root });
    }
    const forged = { ...results[3], Status: 'affirming' };
    await expectRejected(
      h,
      h.invoke(
        h.ids.auditor,
        TransactionName.VerifyAttestationInclusion,
        'b-1',
        JSON.stringify(forged),
        JSON.stringify({ LeafIndex: 3, AuditPath: tree.proof(3) }),
      ),
      ErrorCode.ProofInvalid,
    );
    await expectRejected(
      h,
      h.invoke(
        h.ids.auditor,
        TransactionName.VerifyAttestationInclusion,
        'b-1',
        JSON.stringify(results[2]),
        JSON.stringify({ LeafIndex: 3, AuditPath: tree.proof(2) }),
      ),
      ErrorCode.ProofInvalid,
    );
    expect(
      (await h.read<AttestationBatchRecord>(h.ids.operator, TransactionName.GetAttestationBatch, 'b-1')).MerkleRoot,
    ).to.equal(tree.Root);
    await expectRejected(
      h,
      h.write(
        h.ids.verifier,
        TransactionName.RecordAttestationBatch,
        h.req(TransactionName.RecordAttestationBatch, {
          BatchID: 'b-1',
          VerifierID: 'verifier-1',
          MerkleRoot: tree.Root,
          Count: 7,
          FirstIssuedAt: results[0]?.IssuedAt,
          LastIssuedAt: results[6]?.IssuedAt,
          Contraindicated: [],
          Nonces: results.map(({ NonceDigest, DeviceID }) => ({ NonceDigest, DeviceID })),
        }),
        h.signers.verifier,
      ),
      ErrorCode.BatchExists,
    );
  });

  describe("a batch consumes its members' nonces in the same transaction", () => {
    const member = (i: number, deviceId = 'dev-0001'): AttestationResult => ({
      DeviceID: deviceId,
      NonceDigest: hex(`member-nonce-${i}`),
      EvidenceDigest: hex(`member-evidence-${i}`),
      Status: 'affirming',
      PolicyID: 'policy-gw-1',
      VerifierID: 'verifier-1',
      IssuedAt: new Date(h.now - 1000).toISOString(),
    });
    const batchOf = (id: string, results: AttestationResult[], extra: Record<string, unknown> = {}) =>
      h.write<AttestationBatchRecord>(
        h.ids.verifier,
        TransactionName.RecordAttestationBatch,
        h.req(TransactionName.RecordAttestationBatch, {
          BatchID: id,
          VerifierID: 'verifier-1',
          MerkleRoot: buildMerkleTree(results).Root,
          Count: results.length,
          FirstIssuedAt: results[0]?.IssuedAt,
          LastIssuedAt: results[0]?.IssuedAt,
          Contraindicated: [],
          Nonces: results.map(({ NonceDigest, DeviceID }) => ({ NonceDigest, DeviceID })),
          ...extra,
        }),
        h.signers.verifier,
      );

    it('refuses a replayed member nonce with NONCE_REPLAYED and writes nothing', async () => {
      await batchOf('b-first', [member(1), member(2)]);
      await record({ NonceDigest: hex('single-nonce') });
      for (const replayed of [member(2), { ...member(3), NonceDigest: hex('single-nonce') }]) {
        const before = h.stub.snapshot();
        await expectRejected(h, batchOf('b-second', [member(4), replayed]), ErrorCode.NonceReplayed);
        expect(h.stub.snapshot()).to.equal(before);
      }
      // A nonce a batch consumed cannot be recorded one by one either.
      await expectRejected(h, record({ NonceDigest: member(1).NonceDigest }), ErrorCode.NonceReplayed);
      await expectRejected(
        h,
        h.invoke(h.ids.auditor, TransactionName.GetNonce, member(4).NonceDigest),
        ErrorCode.NonceNotFound,
      );
    });

    const hostile: {
      name: string;
      extra: (results: AttestationResult[]) => Record<string, unknown>;
      code: ErrorCode;
    }[] = [
      {
        name: 'fewer nonces than Count',
        extra: (r) => ({ Nonces: [{ NonceDigest: r[0]?.NonceDigest, DeviceID: 'dev-0001' }] }),
        code: ErrorCode.InvalidArgument,
      },
      { name: 'no Nonces', extra: () => ({ Nonces: undefined }), code: ErrorCode.InvalidArgument },
      {
        name: 'a digest twice',
        extra: (r) => ({ Nonces: [0, 0].map(() => ({ NonceDigest: r[0]?.NonceDigest, DeviceID: 'dev-0001' })) }),
        code: ErrorCode.InvalidArgument,
      },
      {
        name: 'a digest that is not hex',
        extra: () => ({
          Nonces: [
            { NonceDigest: 'zz', DeviceID: 'dev-0001' },
            { NonceDigest: hex('b'), DeviceID: 'dev-0001' },
          ],
        }),
        code: ErrorCode.InvalidArgument,
      },
      {
        name: 'an unknown device',
        extra: (r) => ({ Nonces: r.map(({ NonceDigest }) => ({ NonceDigest, DeviceID: 'dev-9999' })) }),
        code: ErrorCode.DeviceNotFound,
      },
    ];
    for (const { name, extra, code } of hostile) {
      it(`refuses ${name} with ${code} and writes nothing`, async () => {
        const results = [member(5), member(6)];
        const before = h.stub.snapshot();
        await expectRejected(h, batchOf('b-hostile', results, extra(results)), code);
        expect(h.stub.snapshot()).to.equal(before);
      });
    }

    it('refuses a member of a revoked device with DEVICE_REVOKED and writes nothing', async () => {
      await h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0002'));
      await h.write(
        h.ids.operator,
        TransactionName.RevokeDevice,
        h.req(TransactionName.RevokeDevice, { DeviceID: 'dev-0002', Reason: 'superseded' }),
      );
      const before = h.stub.snapshot();
      await expectRejected(h, batchOf('b-revoked', [member(7), member(8, 'dev-0002')]), ErrorCode.DeviceRevoked);
      expect(h.stub.snapshot()).to.equal(before);
    });
  });

  describe('RecordRotationAcks', () => {
    const acks = (...versions: number[]) =>
      versions.map((v) => ({ NonceDigest: hex(`ack-k-1-${v}`), KeyID: 'k-1', Version: v }));
    const recordAcks = (list: Record<string, unknown>[], who = h.ids.operator) =>
      h.write<{ Acks: RotationAckOutcome[] }>(
        who,
        TransactionName.RecordRotationAcks,
        h.req(TransactionName.RecordRotationAcks, { Acks: list }),
      );

    it('records many acknowledgements in one transaction, and a repeated one answers its first transaction', async () => {
      const first = await recordAcks(acks(2, 3));
      const txId = h.lastEvent.txId;
      expect(first.Acks.map((a) => [a.Version, a.TxID, a.AlreadyRecorded])).to.deep.equal([
        [2, txId, false],
        [3, txId, false],
      ]);
      expect(h.lastEvent.name).to.equal(EventName.RotationAcksRecorded);
      const nonce = await h.read<NonceRecord>(h.ids.auditor, TransactionName.GetNonce, hex('ack-k-1-3'));
      expect(nonce).to.include({ Purpose: 'rotation', Subject: 'k-1', TxID: txId });
      const again = await recordAcks(acks(3, 4));
      expect(again.Acks.map((a) => [a.Version, a.TxID, a.AlreadyRecorded])).to.deep.equal([
        [3, txId, true],
        [4, h.lastEvent.txId, false],
      ]);
    });

    it('refuses a digest that another purpose consumed, and hostile lists, writing nothing', async () => {
      await record({ NonceDigest: hex('ack-k-1-9') });
      const cases: [Record<string, unknown>[], ErrorCode][] = [
        [acks(9), ErrorCode.NonceReplayed],
        [[], ErrorCode.InvalidArgument],
        [[...acks(5), ...acks(5)], ErrorCode.InvalidArgument],
        [[{ NonceDigest: 'nothex', KeyID: 'k-1', Version: 1 }], ErrorCode.InvalidArgument],
        [[{ NonceDigest: hex('v0'), KeyID: 'k-1', Version: 0 }], ErrorCode.InvalidArgument],
        [[{ ...acks(6)[0], Extra: 1 }], ErrorCode.InvalidArgument],
        [Array.from({ length: 257 }, (_, i) => acks(i + 10)[0] ?? {}), ErrorCode.InvalidArgument],
      ];
      for (const [list, code] of cases) {
        const before = h.stub.snapshot();
        await expectRejected(h, recordAcks(list), code);
        expect(h.stub.snapshot()).to.equal(before);
      }
    });

    it('only operators record acknowledgements', async () => {
      for (const who of [h.ids.verifier, h.ids.device, h.ids.app]) {
        await expectRejected(h, recordAcks(acks(2), who), ErrorCode.AccessDenied);
      }
    });
  });

  it('consumes an attestation nonce once across verifiers, and a consumed nonce cannot be recorded', async () => {
    const consume = () =>
      h.write(
        h.ids.verifier,
        TransactionName.ConsumeNonce,
        h.req(TransactionName.ConsumeNonce, {
          NonceDigest: hex('challenge-1'),
          Purpose: 'attestation',
          Subject: 'dev-0001',
        }),
        h.signers.verifier,
      );
    await consume();
    expect(h.lastEvent).to.deep.include({ name: EventName.NonceConsumed });
    await expectRejected(h, consume(), ErrorCode.NonceReplayed);
    await expectRejected(h, record({ NonceDigest: hex('challenge-1') }), ErrorCode.NonceReplayed);
  });

  it('only verifiers consume attestation nonces, verifiers never consume rotation nonces', async () => {
    await expectRejected(
      h,
      h.write(
        h.ids.operator,
        TransactionName.ConsumeNonce,
        h.req(TransactionName.ConsumeNonce, {
          NonceDigest: hex('x'),
          Purpose: 'attestation',
          Subject: 'dev-0001',
        }),
      ),
      ErrorCode.AccessDenied,
    );
    await expectRejected(
      h,
      h.write(
        h.ids.verifier,
        TransactionName.ConsumeNonce,
        h.req(TransactionName.ConsumeNonce, {
          NonceDigest: hex('x'),
          Purpose: 'rotation',
          Subject: 'k-1',
        }),
        h.signers.verifier,
      ),
      ErrorCode.AccessDenied,
    );
  });

  it('consumes a rotation nonce for a key the caller may rotate', async () => {
    await h.write(h.ids.operator, TransactionName.RegisterKey, h.keyRequest('k-1'));
    const body = { NonceDigest: hex('rot-1'), Purpose: 'rotation', Subject: 'k-1' };
    await h.write(h.ids.operator, TransactionName.ConsumeNonce, h.req(TransactionName.ConsumeNonce, body));
    await expectRejected(
      h,
      h.write(h.ids.operator, TransactionName.ConsumeNonce, h.req(TransactionName.ConsumeNonce, body)),
      ErrorCode.NonceReplayed,
    );
    await expectRejected(h, h.invoke(h.ids.auditor, TransactionName.GetNonce, hex('never')), ErrorCode.NonceNotFound);
  });

  it('reference values: operators write revisions, verifiers read, devices may not', async () => {
    const body = (digest: string) => ({
      Group: 'gw-edge',
      PolicyID: 'policy-gw-1',
      Measurements: [{ Name: 'bootloader', Algorithm: 'sha-256', Digest: hex(digest) }],
    });
    const first = await h.write<ReferenceValuesRecord>(
      h.ids.operator,
      TransactionName.SetReferenceValues,
      h.req(TransactionName.SetReferenceValues, body('bl-1')),
    );
    expect(first.Revision).to.equal(1);
    expect(h.lastEvent.name).to.equal(EventName.ReferenceValuesSet);
    const second = await h.write<ReferenceValuesRecord>(
      h.ids.operator,
      TransactionName.SetReferenceValues,
      h.req(TransactionName.SetReferenceValues, body('bl-2')),
    );
    expect(second.Revision).to.equal(2);
    const read = await h.read<ReferenceValuesRecord>(h.ids.verifier, TransactionName.GetReferenceValues, 'gw-edge');
    expect(read.Measurements[0]?.Digest).to.equal(hex('bl-2'));
    await expectRejected(
      h,
      h.invoke(h.ids.device, TransactionName.GetReferenceValues, 'gw-edge'),
      ErrorCode.AccessDenied,
    );
    await expectRejected(
      h,
      h.invoke(h.ids.verifier, TransactionName.GetReferenceValues, 'camera'),
      ErrorCode.ReferenceValuesNotFound,
    );
    await expectRejected(
      h,
      h.write(
        h.ids.verifier,
        TransactionName.SetReferenceValues,
        h.req(TransactionName.SetReferenceValues, body('bl-3')),
        h.signers.verifier,
      ),
      ErrorCode.AccessDenied,
    );
  });
});

describe('trust anchors', () => {
  let h: Harness;

  beforeEach(async () => {
    h = await Harness.create();
  });

  it('bootstraps the metadata-signing anchor only by proof of possession', async () => {
    const { metadata, rogue, deviceCa } = h.signers;
    await expectRejected(
      h,
      h.write(
        h.ids.operator,
        TransactionName.RegisterTrustAnchor,
        h.anchorRequest(deviceCa.anchorId, 'device-ca', deviceCa.publicJwk),
        deviceCa,
      ),
      ErrorCode.AnchorNotFound,
    );
    await expectRejected(
      h,
      h.write(
        h.ids.operator,
        TransactionName.RegisterTrustAnchor,
        h.anchorRequest(metadata.anchorId, 'metadata-signing', metadata.publicJwk),
        rogue,
      ),
      ErrorCode.SignatureInvalid,
    );
    const anchor = await h.write<TrustAnchorRecord>(
      h.ids.operator,
      TransactionName.RegisterTrustAnchor,
      h.anchorRequest(metadata.anchorId, 'metadata-signing', metadata.publicJwk),
    );
    expect(anchor).to.include({ Status: 'active', Kind: 'metadata-signing' });
    expect(anchor.PossessionJWS).to.equal(anchor.Proof.JWS);
    expect(h.lastEvent.payload).to.include({ AnchorID: metadata.anchorId, Thumbprint: anchor.Thumbprint });
    await expectRejected(
      h,
      h.write(
        h.ids.operator,
        TransactionName.RegisterTrustAnchor,
        h.anchorRequest('hsm-metadata-2', 'metadata-signing', h.signers.spare.publicJwk),
        h.signers.spare,
      ),
      ErrorCode.AnchorExists,
    );
  });

  it('registers further anchors under the metadata key, refuses a key registered twice', async () => {
    await h.bootstrap();
    const anchors = await h.read<TrustAnchorRecord[]>(h.ids.device, TransactionName.ListTrustAnchors);
    expect(anchors.map((a) => a.AnchorID).sort()).to.deep.equal(['hsm-device-ca-1', 'hsm-metadata-1', 'verifier-1']);
    await expectRejected(
      h,
      h.write(
        h.ids.operator,
        TransactionName.RegisterTrustAnchor,
        h.anchorRequest('ca-2', 'device-ca', h.signers.verifier.publicJwk),
      ),
      ErrorCode.AnchorExists,
    );
  });

  it('replaces the metadata anchor: old key authorises, new key proves possession; old key then stops working', async () => {
    await h.bootstrap();
    const { metadata, spare } = h.signers;
    const request = h.req(TransactionName.ReplaceTrustAnchor, {
      OldAnchorID: metadata.anchorId,
      NewAnchorID: spare.anchorId,
      PublicKey: spare.publicJwk,
      Description: 'metadata key, 2026 ceremony',
    });
    const jws = await metadata.sign(request);
    await expectRejected(
      h,
      h.invoke(
        h.ids.operator,
        TransactionName.ReplaceTrustAnchor,
        JSON.stringify(request),
        jws,
        await h.signers.rogue.sign(request, { kid: spare.anchorId }),
      ),
      ErrorCode.SignatureInvalid,
    );
    const replaced = JSON.parse(
      await h.invoke(
        h.ids.operator,
        TransactionName.ReplaceTrustAnchor,
        JSON.stringify(request),
        jws,
        await spare.sign(request),
      ),
    ) as TrustAnchorRecord;
    expect(replaced).to.include({ AnchorID: spare.anchorId, Kind: 'metadata-signing', Status: 'active' });
    expect(h.lastEvent.name).to.equal(EventName.TrustAnchorReplaced);
    const old = await h.read<TrustAnchorRecord>(h.ids.auditor, TransactionName.GetTrustAnchor, metadata.anchorId);
    expect(old).to.include({ Status: 'retired', ReplacedBy: spare.anchorId });
    await expectRejected(
      h,
      h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0001')),
      ErrorCode.AnchorInactive,
    );
    const device = await h.write<DeviceRecord>(
      h.ids.operator,
      TransactionName.EnrolDevice,
      h.enrolRequest('dev-0001'),
      spare,
    );
    expect(device.Proof.AnchorID).to.equal(spare.anchorId);
  });

  it('retires a verifier anchor, never the metadata anchor', async () => {
    await h.bootstrap();
    await h.write(
      h.ids.operator,
      TransactionName.RetireTrustAnchor,
      h.req(TransactionName.RetireTrustAnchor, { AnchorID: 'verifier-1', Reason: 'decommissioned' }),
    );
    expect(h.lastEvent.name).to.equal(EventName.TrustAnchorRetired);
    await expectRejected(
      h,
      h.write(
        h.ids.operator,
        TransactionName.RetireTrustAnchor,
        h.req(TransactionName.RetireTrustAnchor, { AnchorID: 'hsm-metadata-1', Reason: 'x' }),
      ),
      ErrorCode.IllegalTransition,
    );
    await h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0001'));
    await expectRejected(
      h,
      h.write(h.ids.verifier, TransactionName.RecordAttestation, h.attestationRequest('dev-0001'), h.signers.verifier),
      ErrorCode.AnchorInactive,
    );
  });
});
