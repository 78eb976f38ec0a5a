import { expect } from 'chai';
import { ErrorCode } from '@keyfleet/chaincode';
import { GatewayError, GatewayErrorCode } from '../errors';
import type { LedgerClient } from '../ledger/ledger-client';
import { newOwnPeerWait } from './own-peer';
import type { AppraisalAnswer } from './services';

const notFound = (code: string) => new GatewayError(GatewayErrorCode.LedgerRejected, 'not on this peer yet', code);

/** A ledger whose reads fail with `failures` in turn, then answer; it records what was read. */
function laggingLedger(failures: readonly Error[]): { ledger: LedgerClient; reads: string[][] } {
  const reads: string[][] = [];
  let left = [...failures];
  const ledger: LedgerClient = {
    write: () => Promise.reject(new Error('no writes here')),
    read: <T>(transaction: string, ...args: string[]): Promise<T> => {
      reads.push([transaction, ...args]);
      const failure = left[0];
      left = left.slice(1);
      return failure === undefined ? Promise.resolve({} as T) : Promise.reject(failure);
    },
  };
  return { ledger, reads };
}

const single = { deviceId: 'edge-1', recorded: { transactionId: 'tx-1', resultId: 'a'.repeat(64) } } as AppraisalAnswer;
const batched = {
  deviceId: 'edge-1',
  recorded: { batchId: 'batch-7', proof: { LeafIndex: 0, AuditPath: [] } },
} as unknown as AppraisalAnswer;

describe('waiting for the operator’s own peer to show the verifier’s result', () => {
  const cases: readonly {
    name: string;
    answer: AppraisalAnswer;
    failures: readonly Error[];
    timeoutMs: number;
    outcome: boolean | string;
    read: readonly string[];
  }[] = [
    {
      name: 'a result already there',
      answer: single,
      failures: [],
      timeoutMs: 1000,
      outcome: true,
      read: ['GetAttestation', 'edge-1', 'a'.repeat(64)],
    },
    {
      name: 'a result that arrives on the third read',
      answer: single,
      failures: [notFound(ErrorCode.AttestationNotFound), notFound(ErrorCode.AttestationNotFound)],
      timeoutMs: 1000,
      outcome: true,
      read: ['GetAttestation', 'edge-1', 'a'.repeat(64)],
    },
    {
      name: 'a batch that arrives on the second read',
      answer: batched,
      failures: [notFound(ErrorCode.BatchNotFound)],
      timeoutMs: 1000,
      outcome: true,
      read: ['GetAttestationBatch', 'batch-7'],
    },
    {
      name: 'a peer still behind at the deadline',
      answer: single,
      failures: Array.from({ length: 1000 }, () => notFound(ErrorCode.AttestationNotFound)),
      timeoutMs: 50,
      outcome: false,
      read: ['GetAttestation', 'edge-1', 'a'.repeat(64)],
    },
    {
      name: 'another refusal, passed on at once',
      answer: single,
      failures: [notFound(ErrorCode.AccessDenied)],
      timeoutMs: 1000,
      outcome: 'ACCESS_DENIED',
      read: ['GetAttestation', 'edge-1', 'a'.repeat(64)],
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const { ledger, reads } = laggingLedger(c.failures);
      const wait = newOwnPeerWait({ ledger, timeoutMs: c.timeoutMs, pollMs: 5 });
      const outcome = await wait(c.answer).catch((err: unknown) => (err instanceof GatewayError ? err.detail : err));
      expect(outcome).to.equal(c.outcome);
      expect(reads[0]).to.deep.equal(c.read);
      if (c.outcome === true) expect(reads).to.have.length(c.failures.length + 1);
    });
  }
});
