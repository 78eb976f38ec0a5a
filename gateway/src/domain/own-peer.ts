import { setTimeout as sleep } from 'node:timers/promises';
import type { Ledger } from '../ledger/port';
import type { AppraisalAnswer } from './services';

export interface OwnPeerOptions {
  readonly ledger: Ledger;
  /** How long to wait for the operator's peer to commit the verifier's block; default 10 s. */
  readonly timeoutMs?: number;
  /** Pause between two reads; default 100 ms. */
  readonly pollMs?: number;
}

/**
 * Read-your-writes across the two organisations. The verifier (Org2) answers once its own peer has
 * committed the result; the operator gateway reads from Org1's peer, which commits the same block a
 * moment later (more under load). The gateway passes the answer on only when its own peer shows the
 * recorded result, so a device or operator that reads right after an appraisal sees its effects
 * (a suspension written in the same transaction, for one). Resolves false if the peer is still
 * behind after `timeoutMs`: the answer stands (the result is on the ledger), only the read lags.
 */
export function newOwnPeerWait(options: OwnPeerOptions): (answer: AppraisalAnswer) => Promise<boolean> {
  const { ledger, timeoutMs = 10_000, pollMs = 100 } = options;
  const recorded = async ({ deviceId, recorded: where }: AppraisalAnswer): Promise<boolean> =>
    'resultId' in where
      ? (await ledger.attestations.get(deviceId, where.resultId)) !== null
      : (await ledger.attestations.getBatch(where.batchId)) !== null;
  return async (answer) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await recorded(answer))) {
      if (Date.now() >= deadline) return false;
      await sleep(pollMs);
    }
    return true;
  };
}
