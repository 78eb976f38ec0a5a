/**
 * Re-sharding as operators start it (`POST /v1/shards/moves`, `keyfleet shards move`): a move runs
 * in the background (a thousand devices take minutes, longer than an HTTP answer should), one at a
 * time per gateway, and is followed by its job id. The work itself is the mover's (shards/mover.ts).
 */
import { randomUUID } from 'node:crypto';
import type { RequestPrincipal } from '@keyfleet/protocol';
import { GatewayError, GatewayErrorCode } from '../errors';
import { asPrincipal } from '../ledger/principal-context';
import type { MoveReport, ShardMover } from '../shards/mover';

export interface ShardMoveJob {
  readonly jobId: string;
  readonly kind: 'group' | 'rebalance';
  readonly group: string | null;
  readonly to: string | null;
  readonly state: 'running' | 'done' | 'failed';
  readonly startedAt: string;
  readonly finishedAt: string | null;
  readonly report: MoveReport | null;
  /** Why a job failed as a whole (a batch that could not move is in `report.failed` instead). */
  readonly error: { readonly code: string; readonly message: string } | null;
}

export interface ShardMovesApi {
  /** Starts sending `group` to channel `to`, for operator `by`. */
  moveGroup(by: RequestPrincipal, group: string, to: string): ShardMoveJob;
  rebalance(by: RequestPrincipal): ShardMoveJob;
  job(jobId: string): ShardMoveJob;
}

export function newShardMovesApi(mover: ShardMover, now: () => Date = () => new Date()): ShardMovesApi {
  const jobs = new Map<string, ShardMoveJob>();
  let running: string | null = null;

  const start = (
    by: RequestPrincipal,
    kind: ShardMoveJob['kind'],
    group: string | null,
    to: string | null,
    work: () => Promise<MoveReport>,
  ) => {
    if (running !== null) {
      throw new GatewayError(
        GatewayErrorCode.LedgerRejected,
        `shard move ${running} is still running`,
        'SHARD_MOVE_RUNNING',
      );
    }
    const jobId = `job-${randomUUID()}`;
    const job: ShardMoveJob = {
      jobId,
      kind,
      group,
      to,
      state: 'running',
      startedAt: now().toISOString(),
      finishedAt: null,
      report: null,
      error: null,
    };
    jobs.set(jobId, job);
    running = jobId;
    void asPrincipal(by, work)
      .then(
        (report) => jobs.set(jobId, { ...job, state: 'done', report, finishedAt: now().toISOString() }),
        (err: unknown) => {
          const code = err instanceof GatewayError ? (err.detail ?? err.code) : 'INTERNAL';
          // Operators only read jobs: the ledger's own words help them more than a generic text.
          const cause = err instanceof Error && err.cause instanceof Error ? ` (${causeText(err.cause)})` : '';
          const message = (err instanceof Error ? err.message : String(err)) + cause;
          jobs.set(jobId, { ...job, state: 'failed', error: { code, message }, finishedAt: now().toISOString() });
        },
      )
      .finally(() => {
        running = null;
      });
    return job;
  };

  return {
    moveGroup: (by, group, to) => start(by, 'group', group, to, () => mover.moveGroup(group, to)),
    rebalance: (by) => start(by, 'rebalance', null, null, () => mover.rebalance()),
    job(jobId) {
      const job = jobs.get(jobId);
      if (job === undefined) throw new GatewayError(GatewayErrorCode.NotFound, `no shard move job ${jobId}`);
      return job;
    },
  };
}

/** An error's message and, for Fabric's, each peer's own answer. */
function causeText(cause: Error): string {
  const details = (cause as { details?: { address?: string; message?: string }[] }).details ?? [];
  return [cause.message, ...details.map((d) => `${d.address ?? ''}: ${d.message ?? ''}`)].join('; ');
}
