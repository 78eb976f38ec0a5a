/**
 * The shard map (issue 15 item 1): which shard — a Fabric channel — holds a device's records, decided
 * by rules over the device's group, location and function, with a default. It lives on the governance
 * channel as one record, written by operators through `SetShardMap` (an audited, signed write like any
 * other) and read by anyone. The rules and the resolver are pure, so that the gateway can route with
 * the very same function.
 */
import { ErrorCode, LedgerError } from './errors.js';
import { envelope } from './requests.js';
import { TransactionName, type Proof } from './types.js';
import { arrayOf, id, int, nullable, object, str, type Checked } from './validate.js';

export const ShardLimits = {
  /** Shard channels one map may name (network.sh makes up to 8; room to grow by adding channels). */
  Shards: 64,
  Rules: 256,
} as const;

/** A Fabric channel name as network.sh makes them (`keyfleet`, `keyfleet-shard1`, …). */
const channel = str({ max: 49, pattern: /^[a-z][a-z0-9.-]*$/, what: 'a channel name ([a-z][a-z0-9.-], 1-49)' });

/** What a rule looks at; `null` means "any". */
const match = object({ Group: nullable(id), Location: nullable(id), Function: nullable(id) });
const rule = object({ Match: match, Shard: channel });

export const setShardMap = object({
  ...envelope(TransactionName.SetShardMap),
  /** The revision the writer read (0: no map yet); another revision means someone wrote in between. */
  ExpectedRevision: int(0, Number.MAX_SAFE_INTEGER),
  Shards: arrayOf(channel, { min: 1, max: ShardLimits.Shards, unique: true }),
  Rules: arrayOf(rule, { max: ShardLimits.Rules }),
  Default: channel,
});

export type SetShardMapRequest = Checked<typeof setShardMap>;
export type ShardRule = Checked<typeof rule>;

export interface ShardMapRecord {
  DocType: 'shard-map';
  Revision: number;
  Shards: string[];
  /** In order: the first rule whose every non-null field equals the device's decides. */
  Rules: ShardRule[];
  Default: string;
  UpdatedAt: string;
  UpdatedBy: string;
  Proof: Proof;
}

/** What one shard channel holds (`GetShardLoad`), for `keyfleet shards`. */
export interface ShardLoadRecord {
  Devices: number;
  Keys: number;
}

/** The device metadata a rule reads; `null` when the device has none of it. */
export interface ShardSubject {
  readonly Group: string | null;
  readonly Location: string | null;
  readonly Function: string | null;
}

export interface ShardDecision {
  Shard: string;
  /** Index of the rule that decided, or null for the default. */
  Rule: number | null;
  Revision: number;
}

const fields = ['Group', 'Location', 'Function'] as const;

/**
 * What the schema cannot say: every shard a rule or the default names is one of `Shards`, a rule
 * matches on at least one field (a rule matching everything is the default's job), and no two
 * rules have the same match (the second could never decide).
 */
export function assertShardMapConsistent(request: Pick<SetShardMapRequest, 'Shards' | 'Rules' | 'Default'>): void {
  const shards = new Set(request.Shards);
  if (!shards.has(request.Default)) {
    throw new LedgerError(ErrorCode.InvalidArgument, `request.Default ${request.Default} is not one of request.Shards`);
  }
  const seen = new Set<string>();
  request.Rules.forEach((r, index) => {
    const path = `request.Rules[${String(index)}]`;
    if (!shards.has(r.Shard)) {
      throw new LedgerError(ErrorCode.InvalidArgument, `${path}.Shard ${r.Shard} is not one of request.Shards`);
    }
    if (fields.every((field) => r.Match[field] === null)) {
      throw new LedgerError(ErrorCode.InvalidArgument, `${path}.Match names no field (use request.Default)`);
    }
    const signature = JSON.stringify(fields.map((field) => r.Match[field]));
    if (seen.has(signature)) {
      throw new LedgerError(ErrorCode.InvalidArgument, `${path}.Match repeats an earlier rule's match`);
    }
    seen.add(signature);
  });
}

/** The shard of a device: the first rule that matches it, else the default. */
export function resolveShard(
  map: Pick<ShardMapRecord, 'Rules' | 'Default' | 'Revision'>,
  subject: ShardSubject,
): ShardDecision {
  const index = map.Rules.findIndex((r) =>
    fields.every((field) => r.Match[field] === null || r.Match[field] === subject[field]),
  );
  const decided = index === -1 ? undefined : map.Rules[index];
  return decided === undefined
    ? { Shard: map.Default, Rule: null, Revision: map.Revision }
    : { Shard: decided.Shard, Rule: index, Revision: map.Revision };
}
