/**
 * The shard map's revision rule (the map's own consistency rules are protocol/src/shard-map.ts,
 * shared with the gateway's routing): pure functions, no ledger access.
 */
import { ErrorCode, LedgerError, type Proof, type SetShardMapRequest, type ShardMapRecord } from '@keyfleet/protocol';

/** The next map, if the request names the revision it replaces (so of two racing writers, one wins). */
export function nextShardMap(
  request: SetShardMapRequest,
  revision: number,
  at: string,
  by: string,
  proof: Proof,
): ShardMapRecord {
  if (request.ExpectedRevision !== revision) {
    throw new LedgerError(
      ErrorCode.StaleVersion,
      `the shard map is at revision ${String(revision)}, not ${String(request.ExpectedRevision)}`,
    );
  }
  return {
    DocType: 'shard-map',
    Revision: revision + 1,
    Shards: request.Shards,
    Rules: request.Rules,
    Default: request.Default,
    UpdatedAt: at,
    UpdatedBy: by,
    Proof: proof,
  };
}
