import { expect } from 'chai';
import type { LedgerClient } from './ledger-client';
import { currentPrincipal } from './principal-context';
import { newHsmClusterRecorder } from './hsm-cluster-records';

interface Call {
  readonly action: string;
  readonly fields: Readonly<Record<string, unknown>>;
  readonly principal: unknown;
}

function fakeLedger(failFirst = 0): { ledger: LedgerClient; calls: Call[] } {
  const calls: Call[] = [];
  let failures = failFirst;
  const ledger: LedgerClient = {
    write: (action, fields) => {
      if (failures-- > 0) return Promise.reject(new Error('peer unavailable'));
      calls.push({ action, fields, principal: currentPrincipal() });
      return Promise.resolve({ transactionId: `tx${calls.length}`, record: {} as never });
    },
    read: () => Promise.reject(new Error('not used')),
  };
  return { ledger, calls };
}

const key = (n: number) =>
  ({ label: `key:k:v${n}`, id: `0${n % 10}`.padEnd(32, 'a'), type: 'aes-256', checkValue: 'abcdef' }) as const;
const at = new Date('2026-01-01T00:00:00Z');

describe('HSM cluster records on the ledger (queue, batches, retries)', () => {
  it('keeps what happens before the ledger opens, in order, and writes it as the hsm-cluster service', async () => {
    const recorder = newHsmClusterRecorder({ clusterId: 'kf', retryMs: 1 });
    recorder.replicated?.({ source: 'a', target: 'b', reason: 'join', keys: [key(1)], at });
    recorder.failedOver?.({ from: 'a', to: 'b', reason: 'HSM_KEY_NOT_FOUND', at });
    expect(recorder.pending()).to.equal(2);
    const { ledger, calls } = fakeLedger();
    recorder.attach(ledger, 'a1b2c3');
    await recorder.flush();
    expect(calls.map((c) => c.action)).to.deep.equal([
      'hsm-cluster:RecordHsmReplication',
      'hsm-cluster:RecordHsmFailover',
    ]);
    expect(calls[0]?.fields).to.deep.include({
      ClusterID: 'kf',
      Source: 'a',
      Target: 'b',
      Reason: 'join',
      KekCheckValue: 'a1b2c3',
    });
    expect(calls[0]?.fields.Keys).to.deep.equal([
      { Label: 'key:k:v1', ID: key(1).id, Type: 'aes-256', CheckValue: 'abcdef' },
    ]);
    expect(calls[1]?.fields).to.deep.include({ From: 'a', To: 'b', Reason: 'HSM_KEY_NOT_FOUND', At: at.toISOString() });
    expect(calls[0]?.principal).to.deep.equal({ Kind: 'service', ID: 'gateway.hsm-cluster' });
  });

  it('puts consecutive write-throughs between the same tokens in one record, and splits a large join', async () => {
    const recorder = newHsmClusterRecorder({ clusterId: 'kf', retryMs: 1 });
    for (let i = 0; i < 5; i++)
      recorder.replicated?.({ source: 'a', target: 'b', reason: 'write-through', keys: [key(i)], at });
    recorder.replicated?.({ source: 'a', target: 'c', reason: 'write-through', keys: [key(9)], at });
    const big = Array.from({ length: 1001 }, (_, i) => key(i));
    recorder.replicated?.({ source: 'b', target: 'c', reason: 'join', keys: big, at });
    const { ledger, calls } = fakeLedger();
    recorder.attach(ledger, 'a1b2c3');
    await recorder.flush();
    expect(calls.map((c) => [c.fields.Target, (c.fields.Keys as unknown[]).length])).to.deep.equal([
      ['b', 5],
      ['c', 1],
      ['c', 500],
      ['c', 500],
      ['c', 1],
    ]);
  });

  it('tries a failed write again until it is on the ledger, losing nothing', async () => {
    const recorder = newHsmClusterRecorder({ clusterId: 'kf', retryMs: 1 });
    const { ledger, calls } = fakeLedger(3);
    recorder.attach(ledger, 'a1b2c3');
    recorder.failedOver?.({ from: 'a', to: 'b', reason: 'x', at });
    recorder.failedOver?.({ from: 'b', to: 'c', reason: 'y', at });
    await recorder.flush();
    expect(calls.map((c) => c.fields.To)).to.deep.equal(['b', 'c']);
    expect(recorder.pending()).to.equal(0);
  });
});
