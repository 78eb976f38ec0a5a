import { expect } from 'chai';
import { GatewayError, GatewayErrorCode } from '../errors';
import type { Ledger } from '../ledger/port';
import { newOwnPeerWait } from './own-peer';
import type { AppraisalAnswer } from './services';

type Read = 'absent' | 'present' | Error;

/** A peer whose reads answer `reads` in turn (the last one from then on); it records what was read. */
function laggingPeer(reads: readonly Read[]): { ledger: Ledger; asked: string[][] } {
  const asked: string[][] = [];
  let next = 0;
  const answer = <T>(record: T): Promise<T | null> => {
    const read = reads[Math.min(next++, reads.length - 1)];
    if (read instanceof Error) return Promise.reject(read);
    return Promise.resolve(read === 'present' ? record : null);
  };
  const attestations = {
    get: (deviceId: string, resultId: string) => {
      asked.push(['attestation', deviceId, resultId]);
      return answer({});
    },
    getBatch: (batchId: string) => {
      asked.push(['batch', batchId]);
      return answer({});
    },
  };
  return { ledger: { attestations } as unknown as Ledger, asked };
}

const resultId = 'a'.repeat(64);
const single = { deviceId: 'edge-1', recorded: { transactionId: 'tx-1', resultId } } as AppraisalAnswer;
const batched = {
  deviceId: 'edge-1',
  recorded: { batchId: 'batch-7', proof: { LeafIndex: 0, AuditPath: [] } },
} as unknown as AppraisalAnswer;
const refused = new GatewayError(GatewayErrorCode.LedgerRejected, 'access denied', 'ACCESS_DENIED');

describe('waiting for the operator’s own peer to show the verifier’s result', () => {
  const cases: readonly {
    name: string;
    answer: AppraisalAnswer;
    reads: readonly Read[];
    timeoutMs: number;
    outcome: boolean | string;
    asked: readonly string[];
    times?: number;
  }[] = [
    {
      name: 'a result already there',
      answer: single,
      reads: ['present'],
      timeoutMs: 1000,
      outcome: true,
      asked: ['attestation', 'edge-1', resultId],
      times: 1,
    },
    {
      name: 'a result that arrives on the third read',
      answer: single,
      reads: ['absent', 'absent', 'present'],
      timeoutMs: 1000,
      outcome: true,
      asked: ['attestation', 'edge-1', resultId],
      times: 3,
    },
    {
      name: 'a batch that arrives on the second read',
      answer: batched,
      reads: ['absent', 'present'],
      timeoutMs: 1000,
      outcome: true,
      asked: ['batch', 'batch-7'],
      times: 2,
    },
    {
      name: 'a peer still behind at the deadline',
      answer: single,
      reads: ['absent'],
      timeoutMs: 50,
      outcome: false,
      asked: ['attestation', 'edge-1', resultId],
    },
    {
      name: 'a refusal, passed on at once',
      answer: single,
      reads: [refused],
      timeoutMs: 1000,
      outcome: 'ACCESS_DENIED',
      asked: ['attestation', 'edge-1', resultId],
      times: 1,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const { ledger, asked } = laggingPeer(c.reads);
      const wait = newOwnPeerWait({ ledger, timeoutMs: c.timeoutMs, pollMs: 5 });
      const outcome = await wait(c.answer).catch((err: unknown) => (err instanceof GatewayError ? err.detail : err));
      expect(outcome).to.equal(c.outcome);
      expect(asked[0]).to.deep.equal(c.asked);
      if (c.times !== undefined) expect(asked).to.have.length(c.times);
    });
  }
});
