import './logging.js';

import { expect } from 'chai';

import { ErrorCode } from './errors.js';
import type { TestIdentity } from './testing/identities.js';
import { Harness, expectRejected, hex } from './testing/harness.js';
import { TransactionName, type Role } from './types.js';

type Tx = (typeof TransactionName)[keyof typeof TransactionName];
type Call = (h: Harness, who: TestIdentity) => Promise<unknown>;

const signed =
  (tx: Tx, body: (h: Harness) => Record<string, unknown>, signer: 'metadata' | 'verifier' = 'metadata'): Call =>
  async (h, who) => {
    const request = h.req(tx, body(h));
    return h.invoke(who, tx, JSON.stringify(request), await h.signers[signer].sign(request));
  };
const read =
  (tx: Tx, ...args: string[]): Call =>
  (h, who) =>
    h.invoke(who, tx, ...args);

/** A builder's request without its envelope (the caller adds a fresh one). */
function body(request: Record<string, unknown>): Record<string, unknown> {
  const fields = { ...request };
  delete fields.Action;
  delete fields.RequestID;
  return fields;
}

const W = ['verifier', 'auditor', 'application', 'device'] as const;
const R = ['application', 'device'] as const;

/** For each transaction: a valid call, and the roles that must be refused with ACCESS_DENIED. */
const matrix: { tx: Tx; call: Call; denied: readonly Role[] }[] = [
  {
    tx: TransactionName.RegisterTrustAnchor,
    denied: W,
    call: signed(TransactionName.RegisterTrustAnchor, (h) => ({
      AnchorID: 'ca-2',
      Kind: 'device-ca',
      PublicKey: h.signers.spare.publicJwk,
      Description: 'x',
    })),
  },
  {
    tx: TransactionName.ReplaceTrustAnchor,
    denied: W,
    call: async (h, who) => {
      const r = h.req(TransactionName.ReplaceTrustAnchor, {
        OldAnchorID: 'verifier-1',
        NewAnchorID: 'hsm-metadata-2',
        PublicKey: h.signers.spare.publicJwk,
        Description: 'x',
      });
      return h.invoke(
        who,
        TransactionName.ReplaceTrustAnchor,
        JSON.stringify(r),
        await h.signers.metadata.sign(r),
        await h.signers.spare.sign(r),
      );
    },
  },
  {
    tx: TransactionName.RetireTrustAnchor,
    denied: W,
    call: signed(TransactionName.RetireTrustAnchor, () => ({ AnchorID: 'hsm-device-ca-1', Reason: 'x' })),
  },
  {
    tx: TransactionName.EnrolDevice,
    denied: W,
    call: signed(TransactionName.EnrolDevice, (h) => body(h.enrolRequest('dev-0099'))),
  },
  {
    tx: TransactionName.SuspendDevice,
    denied: W,
    call: signed(TransactionName.SuspendDevice, () => ({ DeviceID: 'dev-0001', Reason: 'x' })),
  },
  {
    tx: TransactionName.ReinstateDevice,
    denied: W,
    call: signed(TransactionName.ReinstateDevice, () => ({ DeviceID: 'dev-0001', Reason: 'x' })),
  },
  {
    tx: TransactionName.RevokeDevice,
    denied: W,
    call: signed(TransactionName.RevokeDevice, () => ({ DeviceID: 'dev-0001', Reason: 'unspecified' })),
  },
  {
    tx: TransactionName.RegisterKey,
    denied: W,
    call: signed(TransactionName.RegisterKey, (h) => body(h.keyRequest('k-99'))),
  },
  {
    tx: TransactionName.ActivateKey,
    denied: W,
    call: signed(TransactionName.ActivateKey, () => ({ KeyID: 'k-1', Version: 1 })),
  },
  {
    tx: TransactionName.RotateKey,
    denied: W,
    call: signed(TransactionName.RotateKey, (h) => body(h.rotateRequest('k-1', 1))),
  },
  {
    tx: TransactionName.DeactivateKey,
    denied: W,
    call: signed(TransactionName.DeactivateKey, () => ({ KeyID: 'k-1', Version: 1 })),
  },
  {
    tx: TransactionName.MarkKeyCompromised,
    denied: W,
    call: signed(TransactionName.MarkKeyCompromised, () => ({ KeyID: 'k-1', Version: 1, Reason: 'x' })),
  },
  {
    tx: TransactionName.DestroyKeyVersion,
    denied: W,
    call: signed(TransactionName.DestroyKeyVersion, () => ({ KeyID: 'k-1', Version: 1 })),
  },
  {
    tx: TransactionName.SetAccessPolicy,
    denied: W,
    call: signed(TransactionName.SetAccessPolicy, () => ({
      KeyID: 'k-1',
      AccessPolicy: { Read: [], Use: [], Rotate: [], Administer: [{ MSPID: 'Org1MSP', Role: 'operator', ID: null }] },
    })),
  },
  {
    tx: TransactionName.SetRotationPolicy,
    denied: W,
    call: signed(TransactionName.SetRotationPolicy, () => ({
      KeyID: 'k-1',
      RotationPolicy: { IntervalSeconds: 600, GraceSeconds: 0, RetentionSeconds: 0, Triggers: [] },
    })),
  },
  {
    tx: TransactionName.SetReferenceValues,
    denied: W,
    call: signed(TransactionName.SetReferenceValues, () => ({
      Group: 'gw-edge',
      PolicyID: 'p',
      Measurements: [{ Name: 'bl', Algorithm: 'sha-256', Digest: hex('bl') }],
    })),
  },
  {
    tx: TransactionName.ConsumeNonce,
    denied: ['operator', 'auditor', 'application', 'device'],
    call: signed(
      TransactionName.ConsumeNonce,
      () => ({ NonceDigest: hex('n-roles'), Purpose: 'attestation', Subject: 'dev-0001' }),
      'verifier',
    ),
  },
  {
    tx: TransactionName.RecordAttestation,
    denied: ['operator', 'auditor', 'application', 'device'],
    call: signed(TransactionName.RecordAttestation, (h) => body(h.attestationRequest('dev-0001')), 'verifier'),
  },
  {
    tx: TransactionName.RecordAttestationBatch,
    denied: ['operator', 'auditor', 'application', 'device'],
    call: signed(
      TransactionName.RecordAttestationBatch,
      () => ({
        BatchID: 'b-9',
        VerifierID: 'verifier-1',
        MerkleRoot: hex('r'),
        Count: 1,
        FirstIssuedAt: '2025-12-31T00:00:00.000Z',
        LastIssuedAt: '2025-12-31T00:00:00.000Z',
        Contraindicated: [],
      }),
      'verifier',
    ),
  },
  { tx: TransactionName.GetDeviceHistory, denied: R, call: read(TransactionName.GetDeviceHistory, 'dev-0001') },
  {
    tx: TransactionName.ListDevicesByGroup,
    denied: R,
    call: read(TransactionName.ListDevicesByGroup, 'gw-edge', '10', ''),
  },
  {
    tx: TransactionName.ListKeysDueForRotation,
    denied: R,
    call: read(TransactionName.ListKeysDueForRotation, '2026-06-01T00:00:00.000Z', '10', ''),
  },
  { tx: TransactionName.GetNonce, denied: R, call: read(TransactionName.GetNonce, hex('n-1')) },
  { tx: TransactionName.GetAttestationBatch, denied: R, call: read(TransactionName.GetAttestationBatch, 'b-1') },
  { tx: TransactionName.GetReferenceValues, denied: R, call: read(TransactionName.GetReferenceValues, 'gw-edge') },
  { tx: TransactionName.GetDevice, denied: ['application'], call: read(TransactionName.GetDevice, 'dev-0001') },
  {
    tx: TransactionName.ListAttestations,
    denied: ['application'],
    call: read(TransactionName.ListAttestations, 'dev-0001', '10', ''),
  },
  { tx: TransactionName.GetKey, denied: ['device'], call: read(TransactionName.GetKey, 'k-1') },
  { tx: TransactionName.GetKeyHistory, denied: ['device'], call: read(TransactionName.GetKeyHistory, 'k-1') },
  // The default policy names only app-billing in Use: operators are refused too.
  {
    tx: TransactionName.AuthorizeKeyUse,
    denied: ['operator', 'verifier', 'auditor', 'device'],
    call: read(TransactionName.AuthorizeKeyUse, 'k-1', 'encrypt', ''),
  },
  {
    tx: TransactionName.GetAttestation,
    denied: ['application'],
    call: read(TransactionName.GetAttestation, 'dev-0001', hex('r')),
  },
  {
    tx: TransactionName.VerifyAttestationInclusion,
    denied: R,
    call: read(TransactionName.VerifyAttestationInclusion, 'b-1', '{}', '{}'),
  },
  { tx: TransactionName.GetTrustAnchor, denied: [], call: read(TransactionName.GetTrustAnchor, 'hsm-metadata-1') },
  { tx: TransactionName.ListTrustAnchors, denied: [], call: read(TransactionName.ListTrustAnchors) },
];

describe('role checks on every transaction', () => {
  let h: Harness;
  const as = (role: Role): TestIdentity =>
    ({
      operator: h.ids.operator,
      verifier: h.ids.verifier,
      auditor: h.ids.auditor,
      application: h.ids.app,
      device: h.ids.device,
    })[role];

  beforeEach(async () => {
    h = await Harness.create();
    await h.bootstrap();
    await h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0001'));
    await h.write(h.ids.operator, TransactionName.RegisterKey, h.keyRequest('k-1', { InitialState: 'pre-active' }));
  });

  it('covers every transaction', () => {
    expect(matrix.map((row) => row.tx).sort()).to.deep.equal(Object.values(TransactionName).sort());
  });

  for (const { tx, call, denied } of matrix) {
    for (const role of denied) {
      it(`${tx} refuses ${role}`, async () => {
        const before = h.stub.snapshot();
        await expectRejected(h, call(h, as(role)), ErrorCode.AccessDenied);
        expect(h.stub.snapshot()).to.equal(before);
      });
    }
    for (const role of ['operator', 'verifier', 'auditor', 'application', 'device'] as const) {
      if (denied.includes(role)) continue;
      it(`${tx} lets ${role} past the role check`, async () => {
        try {
          await call(h, as(role));
        } catch (err) {
          // Allowed callers may still fail on data (no such batch, wrong state): never on access.
          expect((err as Error).message).to.not.match(/^ACCESS_DENIED/);
        }
      });
    }
  }
});
