import { expect } from 'chai';
import { type ContractEvent, decodeContractEvent } from '@keyfleet/protocol';
import { newDeviceDenials, type DeniedStatus } from './device-denials';

const event = (name: string, payload: Record<string, unknown>): ContractEvent => {
  const decoded = decodeContractEvent(name, Buffer.from(JSON.stringify({ TxID: 'tx', ...payload })));
  if (decoded === null) throw new Error(`${name} is not an event the deny set reads`);
  return decoded;
};
const suspended = (id: string, From = 'active') => event('DeviceSuspended', { DeviceID: id, From, Reason: 'r' });
const revoked = (id: string, From = 'active') =>
  event('DeviceRevoked', { DeviceID: id, From, Reason: 'keyCompromise' });
const reinstated = (id: string) => event('DeviceReinstated', { DeviceID: id, From: 'suspended', Reason: 'r' });
const attested = (id: string, status: string, deviceSuspended: boolean) =>
  event('AttestationRecorded', {
    DeviceID: id,
    ResultID: 'r1',
    Status: status,
    VerifierID: 'v',
    DeviceSuspended: deviceSuspended,
    KeysDueForRotation: [],
  });
const batch = (suspendedDevices: string[]) =>
  event('AttestationBatchRecorded', {
    BatchID: 'b',
    VerifierID: 'v',
    MerkleRoot: 'm',
    Count: 10,
    SuspendedDevices: suspendedDevices,
    KeysDueForRotation: [],
  });

describe('device deny set', () => {
  const table: { name: string; events: ContractEvent[]; expected: Record<string, DeniedStatus> }[] = [
    { name: 'a suspension', events: [suspended('d1')], expected: { d1: 'suspended' } },
    { name: 'a revocation', events: [revoked('d1')], expected: { d1: 'revoked' } },
    { name: 'suspended, then reinstated', events: [suspended('d1'), reinstated('d1')], expected: {} },
    {
      name: 'suspended, then revoked',
      events: [suspended('d1'), revoked('d1', 'suspended')],
      expected: { d1: 'revoked' },
    },
    {
      name: 'revoked stays revoked',
      events: [revoked('d1'), reinstated('d1'), suspended('d1')],
      expected: { d1: 'revoked' },
    },
    {
      name: 'a contraindicated result that suspended',
      events: [attested('d2', 'contraindicated', true)],
      expected: { d2: 'suspended' },
    },
    { name: 'a result that suspended nothing', events: [attested('d2', 'affirming', false)], expected: {} },
    {
      name: "a batch's suspended members",
      events: [batch(['d3', 'd4'])],
      expected: { d3: 'suspended', d4: 'suspended' },
    },
    { name: 'a reinstatement of a device it never saw', events: [reinstated('d5')], expected: {} },
    {
      name: 'several devices, in commit order',
      events: [suspended('a'), suspended('b'), revoked('c'), reinstated('a'), batch(['a'])],
      expected: { a: 'suspended', b: 'suspended', c: 'revoked' },
    },
  ];
  for (const row of table) {
    it(`folds ${row.name}`, () => {
      const denials = newDeviceDenials();
      for (const e of row.events) denials.apply(e);
      expect(Object.fromEntries(denials.entries())).to.deep.equal(row.expected);
    });
  }

  it('says whether an event changed it, so an event applied twice changes nothing', () => {
    const denials = newDeviceDenials();
    expect(denials.apply(suspended('d1'))).to.equal(true);
    expect(denials.apply(suspended('d1'))).to.equal(false);
    expect(denials.apply(reinstated('d1'))).to.equal(true);
    expect(denials.apply(reinstated('d1'))).to.equal(false);
    expect(denials.apply(batch([]))).to.equal(false);
  });

  it('refuses what it holds, counts each refusal, and answers nothing for other devices', () => {
    const refusals: DeniedStatus[] = [];
    const denials = newDeviceDenials(new Map([['d1', 'suspended']]), { onRefusal: (s) => refusals.push(s) });
    denials.apply(revoked('d2'));
    expect(denials.refusal('d1')).to.equal('suspended');
    expect(denials.refusal('d2')).to.equal('revoked');
    expect(denials.refusal('d3')).to.equal(undefined);
    expect(refusals).to.deep.equal(['suspended', 'revoked']);
    expect(denials.counts()).to.deep.equal({ suspended: 1, revoked: 1 });
  });

  it('refuses only the statuses it is told to (the verifier: revoked), yet keeps both', () => {
    const refusals: DeniedStatus[] = [];
    const denials = newDeviceDenials(new Map(), { refuse: ['revoked'], onRefusal: (s) => refusals.push(s) });
    denials.apply(suspended('d1'));
    denials.apply(revoked('d2'));
    expect(denials.refusal('d1')).to.equal(undefined);
    expect(denials.refusal('d2')).to.equal('revoked');
    expect(refusals).to.deep.equal(['revoked']);
    expect(denials.counts()).to.deep.equal({ suspended: 1, revoked: 1 });
  });
});
