import './logging.js';

import { expect } from 'chai';

import { ErrorCode, type Role, TransactionName } from '@keyfleet/protocol';
import type { TestIdentity } from './testing/identities.js';
import { Harness, expectRejected, hex } from './testing/harness.js';

type Tx = (typeof TransactionName)[keyof typeof TransactionName];
type Call = (h: Harness, who: TestIdentity) => Promise<unknown>;

const signed =
  (tx: Tx, body: (h: Harness) => Record<string, unknown>, signer: 'metadata' | 'verifier' = 'metadata'): Call =>
  async (h, who) => {
    const request = h.as(who, h.req(tx, body(h)));
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

/**
 * For each transaction: a valid call, the roles that must be refused with ACCESS_DENIED, and what
 * every other role gets: success, or (`dispatched`) the transaction's own domain error for this
 * fixture's data. Either proves the call reached the transaction past its role check; a deleted or
 * renamed transaction answers UNKNOWN_TRANSACTION and fails its rows.
 */
const matrix: { tx: Tx; call: Call; denied: readonly Role[]; dispatched?: ErrorCode }[] = [
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
      const r = h.as(
        who,
        h.req(TransactionName.ReplaceTrustAnchor, {
          OldAnchorID: 'hsm-device-ca-1',
          NewAnchorID: 'hsm-metadata-2',
          PublicKey: h.signers.spare.publicJwk,
          Description: 'x',
        }),
      );
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
    dispatched: ErrorCode.IllegalTransition, // dev-0001 is active
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
    dispatched: ErrorCode.IllegalTransition, // k-1 version 1 is pre-active
    call: signed(TransactionName.RotateKey, (h) => body(h.rotateRequest('k-1', 1))),
  },
  {
    tx: TransactionName.DeactivateKey,
    denied: W,
    dispatched: ErrorCode.IllegalTransition,
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
        Nonces: [{ NonceDigest: hex('n-batch-roles'), DeviceID: 'dev-0001' }],
      }),
      'verifier',
    ),
  },
  {
    tx: TransactionName.RecordRotationAcks,
    denied: W,
    call: signed(TransactionName.RecordRotationAcks, () => ({
      Acks: [{ NonceDigest: hex('ack-roles'), KeyID: 'k-1', Version: 1 }],
    })),
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
  {
    tx: TransactionName.GetNonce,
    denied: R,
    dispatched: ErrorCode.NonceNotFound,
    call: read(TransactionName.GetNonce, hex('n-1')),
  },
  {
    tx: TransactionName.GetAttestationBatch,
    denied: R,
    dispatched: ErrorCode.BatchNotFound,
    call: read(TransactionName.GetAttestationBatch, 'b-1'),
  },
  {
    tx: TransactionName.GetReferenceValues,
    denied: R,
    dispatched: ErrorCode.ReferenceValuesNotFound,
    call: read(TransactionName.GetReferenceValues, 'gw-edge'),
  },
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
    dispatched: ErrorCode.KeyNotUsable, // no active version yet
    call: read(TransactionName.AuthorizeKeyUse, 'k-1', 'encrypt', ''),
  },
  {
    tx: TransactionName.GetAttestation,
    denied: ['application'],
    dispatched: ErrorCode.AttestationNotFound,
    call: read(TransactionName.GetAttestation, 'dev-0001', hex('r')),
  },
  {
    tx: TransactionName.VerifyAttestationInclusion,
    denied: R,
    dispatched: ErrorCode.BatchNotFound,
    call: read(TransactionName.VerifyAttestationInclusion, 'b-1', '{}', '{}'),
  },
  { tx: TransactionName.GetTrustAnchor, denied: [], call: read(TransactionName.GetTrustAnchor, 'hsm-metadata-1') },
  { tx: TransactionName.ListTrustAnchors, denied: [], call: read(TransactionName.ListTrustAnchors) },
  // The shard map: operators write it, every role reads it (contract-shards.test.ts).
  {
    tx: TransactionName.SetShardMap,
    denied: W,
    call: signed(TransactionName.SetShardMap, () => ({
      ExpectedRevision: 0,
      Shards: ['keyfleet'],
      Rules: [],
      Default: 'keyfleet',
    })),
  },
  {
    tx: TransactionName.GetShardMap,
    denied: [],
    dispatched: ErrorCode.ShardMapNotFound,
    call: read(TransactionName.GetShardMap),
  },
  {
    tx: TransactionName.ResolveShard,
    denied: [],
    dispatched: ErrorCode.ShardMapNotFound,
    call: read(TransactionName.ResolveShard, 'meters', '', ''),
  },
  { tx: TransactionName.GetShardLoad, denied: R, call: read(TransactionName.GetShardLoad) },
];

/**
 * The call ran the transaction: it succeeded, or failed with `dispatched`, the transaction's own
 * domain error. Never ACCESS_DENIED, never UNKNOWN_TRANSACTION.
 */
async function expectDispatched(h: Harness, promise: Promise<unknown>, dispatched: ErrorCode | undefined) {
  if (dispatched === undefined) await promise;
  else await expectRejected(h, promise, dispatched);
}

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

  it('names only domain errors as proof of dispatch', () => {
    for (const { dispatched } of matrix) {
      expect(dispatched).to.not.be.oneOf([ErrorCode.AccessDenied, ErrorCode.UnknownTransaction]);
    }
  });

  it('fails an allowed row whose transaction is not there', async () => {
    const missing = () => h.invoke(h.ids.operator, 'DeletedTransaction', 'dev-0001');
    await expectRejected(h, missing(), ErrorCode.UnknownTransaction);
    for (const dispatched of [undefined, ErrorCode.DeviceNotFound]) {
      let failed = false;
      try {
        await expectDispatched(h, missing(), dispatched);
      } catch {
        failed = true;
      }
      expect(failed, `expected ${dispatched ?? 'success'}`).to.equal(true);
    }
  });

  for (const { tx, call, denied, dispatched } of matrix) {
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
        await expectDispatched(h, call(h, as(role)), dispatched);
      });
    }
  }
});
