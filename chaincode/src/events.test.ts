import './logging.js';

import { expect } from 'chai';

import {
  type AttestationResult,
  buildMerkleTree,
  canonicalBytes,
  decodeContractEvent,
  EventName,
  MalformedEventError,
  TransactionName,
} from '@keyfleet/protocol';
import { Harness, hex } from './testing/harness.js';

/**
 * The event payloads that gateways act on, as the contract really emits them: each decodes with
 * `decodeContractEvent`, so a change to an emitted payload fails here before a gateway misreads it.
 */
describe('contract events that clients act on', () => {
  let h: Harness;

  const decodeLast = () => {
    const event = h.lastEvent;
    return decodeContractEvent(event.name, canonicalBytes(event.payload));
  };

  beforeEach(async () => {
    h = await Harness.create();
    await h.bootstrap();
    await h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0001'));
  });

  it('decodes the device status changes', async () => {
    const change = async (tx: TransactionName, fields: Record<string, unknown>) => {
      await h.write(h.ids.operator, tx, h.req(tx, { DeviceID: 'dev-0001', ...fields }));
      return decodeLast();
    };
    expect(await change(TransactionName.SuspendDevice, { Reason: 'lost in transit' })).to.deep.equal({
      name: EventName.DeviceSuspended,
      payload: { DeviceID: 'dev-0001', From: 'active', Reason: 'lost in transit', TxID: h.lastEvent.txId },
    });
    expect(await change(TransactionName.ReinstateDevice, { Reason: 'found' })).to.deep.include({
      name: EventName.DeviceReinstated,
    });
    expect(decodeLast()?.payload).to.include({ From: 'suspended' });
    expect(await change(TransactionName.RevokeDevice, { Reason: 'keyCompromise', Comment: null })).to.deep.equal({
      name: EventName.DeviceRevoked,
      payload: { DeviceID: 'dev-0001', From: 'active', Reason: 'keyCompromise', TxID: h.lastEvent.txId },
    });
  });

  it('decodes a contraindicated result: the device suspended, its triggered keys due', async () => {
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
    await h.write(
      h.ids.verifier,
      TransactionName.RecordAttestation,
      h.attestationRequest('dev-0001', { Status: 'contraindicated' }),
      h.signers.verifier,
    );
    const decoded = decodeLast();
    expect(decoded?.name).to.equal(EventName.AttestationRecorded);
    expect(decoded?.payload).to.deep.include({
      DeviceID: 'dev-0001',
      Status: 'contraindicated',
      DeviceSuspended: true,
      KeysDueForRotation: ['k-dev'],
    });
  });

  it('decodes a batch with a contraindicated member', async () => {
    await h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0002'));
    const results: AttestationResult[] = [0, 1].map((i) => ({
      DeviceID: i === 1 ? 'dev-0002' : 'dev-0001',
      NonceDigest: hex(`n-${i}`),
      EvidenceDigest: hex(`e-${i}`),
      Status: i === 1 ? 'contraindicated' : 'affirming',
      PolicyID: 'policy-gw-1',
      VerifierID: 'verifier-1',
      IssuedAt: new Date(h.now - 1000).toISOString(),
    }));
    const tree = buildMerkleTree(results);
    await h.write(
      h.ids.verifier,
      TransactionName.RecordAttestationBatch,
      h.req(TransactionName.RecordAttestationBatch, {
        BatchID: 'b-1',
        VerifierID: 'verifier-1',
        MerkleRoot: tree.Root,
        Count: 2,
        FirstIssuedAt: results[0]?.IssuedAt,
        LastIssuedAt: results[1]?.IssuedAt,
        Contraindicated: ['dev-0002'],
        Nonces: results.map(({ NonceDigest, DeviceID }) => ({ NonceDigest, DeviceID })),
      }),
      h.signers.verifier,
    );
    expect(decodeLast()).to.deep.include({ name: EventName.AttestationBatchRecorded });
    expect(decodeLast()?.payload).to.deep.include({ BatchID: 'b-1', Count: 2, SuspendedDevices: ['dev-0002'] });
  });

  it('answers null for the events no client acts on', () => {
    expect(h.lastEvent.name).to.equal(EventName.DeviceEnrolled);
    expect(decodeLast()).to.equal(null);
    expect(decodeContractEvent('SomethingNew', new Uint8Array())).to.equal(null);
  });

  const bytes = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));
  const hostile: [string, string, Uint8Array][] = [
    ['not JSON', EventName.DeviceSuspended, bytes('{')],
    ['not UTF-8', EventName.DeviceSuspended, Buffer.from([0xff, 0xfe])],
    ['an array', EventName.DeviceRevoked, bytes([])],
    ['no DeviceID', EventName.DeviceSuspended, bytes({ From: 'active', Reason: 'x', TxID: 't' })],
    ['an unknown From', EventName.DeviceSuspended, bytes({ DeviceID: 'd', From: 'lost', Reason: 'x', TxID: 't' })],
    [
      'DeviceSuspended a string',
      EventName.AttestationRecorded,
      bytes({
        DeviceID: 'd',
        ResultID: 'r',
        Status: 'affirming',
        VerifierID: 'v',
        DeviceSuspended: 'yes',
        KeysDueForRotation: [],
        TxID: 't',
      }),
    ],
    [
      'a key id that is a number',
      EventName.AttestationRecorded,
      bytes({
        DeviceID: 'd',
        ResultID: 'r',
        Status: 'affirming',
        VerifierID: 'v',
        DeviceSuspended: false,
        KeysDueForRotation: [7],
        TxID: 't',
      }),
    ],
    [
      'a negative Count',
      EventName.AttestationBatchRecorded,
      bytes({
        BatchID: 'b',
        VerifierID: 'v',
        MerkleRoot: 'm',
        Count: -1,
        SuspendedDevices: [],
        KeysDueForRotation: [],
        TxID: 't',
      }),
    ],
  ];
  for (const [what, name, payload] of hostile) {
    it(`refuses a ${name} payload with ${what}`, () => {
      expect(() => decodeContractEvent(name, payload)).to.throw(MalformedEventError);
    });
  }
});
