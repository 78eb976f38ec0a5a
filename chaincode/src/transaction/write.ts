/**
 * The one write path of every keyfleet write transaction, in every contract:
 *
 *   authorise the caller's role → parse and validate the request (its `Principal` against the
 *   caller, then the transaction's schema) → refuse a RequestID seen before → the transaction's own
 *   rules (`apply`: the JWS, reads, pure checks; it returns the writes) → store → event.
 *
 * Nothing is written before `apply` returns, so a refused request writes nothing and sets no event.
 * A transaction states only what differs (a {@link WriteRule}), e.g. in a group of its own:
 *
 * ```ts
 * export class ExampleTransactions extends TransactionGroup {
 *   @Transaction()
 *   @Returns('string')
 *   async MoveDevice(ctx: Context, requestJson: string, jws: string): Promise<string> {
 *     return submit(ctx, {
 *       action: TransactionName.MoveDevice,
 *       roles: [Role.Operator],
 *       check: requests.moveDevice,
 *       apply: async (write) => {
 *         const signer = await write.signedBy(AnchorKind.MetadataSigning);
 *         const device = await loadDevice(write.store, write.request.DeviceID);
 *         const moved = { ...device, Shard: write.request.To, UpdatedAt: write.now.iso, Proof: write.proof(signer.AnchorID) };
 *         return {
 *           puts: [[write.store.key(KeyType.Device, device.DeviceID), moved]],
 *           event: { name: EventName.DeviceMoved, payload: { DeviceID: device.DeviceID, To: moved.Shard } },
 *           result: moved,
 *         };
 *       },
 *     }, requestJson, jws);
 *   }
 * }
 * ```
 *
 * and the group joins the default contract in contract.ts's list (plain transaction names), or
 * makes a contract of its own with `contractOf('name', [Group])` in index.ts (`name:` prefixed), as
 * contract-hsm-cluster.ts and contract-shard-moves.ts do.
 */
import type { Context } from 'fabric-contract-api';

import {
  AnchorKind,
  AnchorStatus,
  assertPrincipalFor,
  assertRole,
  type Caller,
  callerName,
  canonicalBytes,
  canonicalJson,
  type Check,
  ErrorCode,
  LedgerError,
  Limits,
  parseJson,
  type Proof,
  type RequestPrincipal,
  requests,
  type Role,
  type TrustAnchorRecord,
  type TxTime,
  txTimeOf,
  validate,
} from '@keyfleet/protocol';
import { callerOf } from '../identity.js';
import { jwsKeyId, verifyJws } from '../signature.js';
import { KeyType, Store } from '../store.js';

/** The fields every write request carries besides its `Principal`. */
export interface Envelope {
  Action: string;
  RequestID: string;
}

/** What one write transaction asks of the shared path. */
export interface WriteRule<T extends Envelope, R> {
  /** The transaction's name, as role errors report it. */
  action: string;
  /** The roles that may send it at all (finer rules, such as key permissions, are in `apply`). */
  roles: readonly Role[];
  /** The request's schema (protocol/src/requests.ts), applied to the request without its `Principal`. */
  check: Check<T>;
  /** A further rule on who asked, checked before the schema (shard moves: an operator or the mover). */
  principal?: (principal: RequestPrincipal) => void;
  /** Larger bounds than {@link Limits} for a request and its JWS (a shard move's accept carries records). */
  limits?: { readonly requestBytes: number; readonly jwsBytes: number };
  /**
   * The transaction's own checks and the writes they lead to. It may read the ledger and throw; it
   * must not write: the path stores what it returns, and only when it returns.
   */
  apply: (write: Write<T>) => Promise<Outcome<R>>;
}

/** The writes of a transaction that passed every check, the event it sets, and its answer. */
export interface Outcome<R> {
  puts: readonly (readonly [string, unknown])[];
  deletes?: readonly string[];
  /** The chaincode event; the path adds `Principal` and `TxID` to its payload. */
  event?: { name: string; payload: Record<string, unknown> };
  /** Returned to the client as canonical JSON. */
  result: R;
}

/** A request that passed the role, principal, schema and replay checks, and what `apply` needs. */
export class Write<T extends Envelope> {
  constructor(
    readonly store: Store,
    readonly caller: Caller,
    /** Who asked for the write, checked against the caller's role. */
    readonly principal: RequestPrincipal,
    /** The request as sent, `Principal` included: what the JWS signs. */
    readonly raw: unknown,
    readonly request: T,
    readonly now: TxTime,
    readonly txId: string,
    readonly jws: string,
    private readonly jwsBytes: number = Limits.JwsBytes,
  ) {}

  /** The caller as records name it (`MSP/role/id`). */
  get by(): string {
    return callerName(this.caller);
  }

  /** Verifies the request's JWS with the active anchor its `kid` names, of this kind; returns that anchor. */
  async signedBy(kind: AnchorKind): Promise<TrustAnchorRecord> {
    if (typeof this.jws === 'string' && this.jws.length > this.jwsBytes) {
      throw new LedgerError(ErrorCode.InvalidArgument, `jws is larger than ${String(this.jwsBytes)} bytes`);
    }
    const kid = jwsKeyId(this.jws);
    const anchor = await this.store.get<TrustAnchorRecord>(this.store.key(KeyType.Anchor, kid));
    if (anchor === null) throw new LedgerError(ErrorCode.AnchorNotFound, `trust anchor ${kid} does not exist`);
    if (anchor.Status !== AnchorStatus.Active) {
      throw new LedgerError(ErrorCode.AnchorInactive, `trust anchor ${kid} is ${anchor.Status}`);
    }
    if (anchor.Kind !== kind) {
      throw new LedgerError(ErrorCode.AnchorKindMismatch, `trust anchor ${kid} is ${anchor.Kind}, not ${kind}`);
    }
    await verifyJws(this.jws, anchor.PublicKey, canonicalBytes(this.raw));
    return anchor;
  }

  /**
   * Proof of possession: `jws` (the request's own by default) must be made by the key being
   * registered, its `kid` naming the anchor id that key will have; `refusal` says which JWS is wrong.
   */
  async possessedBy(
    anchorId: string,
    publicKey: TrustAnchorRecord['PublicKey'],
    refusal: string,
    jws = this.jws,
  ): Promise<void> {
    if (jwsKeyId(jws) !== anchorId) throw new LedgerError(ErrorCode.SignatureInvalid, refusal);
    await verifyJws(jws, publicKey, canonicalBytes(this.raw));
  }

  /** What a record written by this request carries to prove who asked and who signed. */
  proof(anchorId: string): Proof {
    return { AnchorID: anchorId, JWS: this.jws, TxID: this.txId, Principal: this.principal };
  }
}

/** Splits the request's `Principal` from the rest; a missing or malformed one is PRINCIPAL_INVALID. */
function principalOf(raw: unknown): { principal: RequestPrincipal; rest: unknown } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new LedgerError(ErrorCode.InvalidArgument, 'request must be an object');
  }
  const { Principal: value, ...rest } = raw as Record<string, unknown>;
  if (value === undefined) throw new LedgerError(ErrorCode.PrincipalInvalid, 'request.Principal is missing');
  try {
    return { principal: validate(requests.requestPrincipal, value, 'request.Principal'), rest };
  } catch (err) {
    if (err instanceof LedgerError && err.code === ErrorCode.InvalidArgument) {
      throw new LedgerError(ErrorCode.PrincipalInvalid, err.detail);
    }
    throw err;
  }
}

function txTime(ctx: Context): TxTime {
  const timestamp = ctx.stub.getTxTimestamp();
  return txTimeOf(timestamp.seconds.toNumber() * 1000 + Math.floor(timestamp.nanos / 1_000_000));
}

/** Runs one write transaction through the shared path; answers the outcome's result as canonical JSON. */
export async function submit<T extends Envelope, R>(
  ctx: Context,
  rule: WriteRule<T, R>,
  requestJson: string,
  jws: string,
): Promise<string> {
  const caller = callerOf(ctx);
  assertRole(caller, rule.roles, rule.action);
  const raw = parseJson(requestJson, 'request', rule.limits?.requestBytes ?? Limits.RequestBytes);
  const { principal, rest } = principalOf(raw);
  assertPrincipalFor(caller, principal);
  rule.principal?.(principal);
  const request = validate(rule.check, rest);
  const store = new Store(ctx.stub);
  const requestKey = store.key(KeyType.Request, request.RequestID);
  if ((await store.get(requestKey)) !== null) {
    throw new LedgerError(ErrorCode.RequestReplayed, `request ${request.RequestID} was already executed`);
  }
  const write = new Write(
    store,
    caller,
    principal,
    raw,
    request,
    txTime(ctx),
    ctx.stub.getTxID(),
    jws,
    rule.limits?.jwsBytes,
  );
  const outcome = await rule.apply(write);
  for (const key of outcome.deletes ?? []) await store.delete(key);
  for (const [key, value] of outcome.puts) await store.put(key, value);
  await store.put(requestKey, {
    RequestID: request.RequestID,
    Action: request.Action,
    TxID: write.txId,
    At: write.now.iso,
    By: write.by,
    Principal: principal,
  });
  if (outcome.event !== undefined) {
    ctx.stub.setEvent(
      outcome.event.name,
      canonicalBytes({ ...outcome.event.payload, Principal: principal, TxID: write.txId }),
    );
  }
  return canonicalJson(outcome.result);
}
