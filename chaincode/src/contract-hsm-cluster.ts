/**
 * The HSM cluster's own records (docs/hsm-cluster.md): every replication of keys between the
 * cluster's tokens (the copies' check values, the cluster KEK's check value) and every failover
 * from one token to another. A second contract in the chaincode, `hsm-cluster`, so its types stay
 * out of the shared record types: transactions are called as `hsm-cluster:<name>`.
 *
 * Writes: the operator gateway only, as its `gateway.hsm-cluster` service, with a JWS by the active
 * metadata-signing anchor like every other write. Reads: operators, the verifier and auditors.
 */
import { Context, Contract, Info, Returns, Transaction } from 'fabric-contract-api';

import { canonicalBytes, canonicalJson, parseJson } from './canonical.js';
import { ErrorCode, LedgerError } from './errors.js';
import { callerOf } from './identity.js';
import { assertPrincipalFor, assertRole, callerName } from './policy.js';
import { requestPrincipal } from './requests.js';
import { jwsKeyId, verifyJws } from './signature.js';
import { KeyType, Store } from './store.js';
import {
  AnchorKind,
  AnchorStatus,
  PrincipalKind,
  Role,
  type RequestPrincipal,
  type TrustAnchorRecord,
} from './types.js';
import {
  Limits,
  arrayOf,
  id,
  isoTime,
  literal,
  object,
  oneOf,
  str,
  text,
  validate,
  type Check,
  type Checked,
} from './validate.js';

export const HsmClusterContractName = 'hsm-cluster';

export const HsmClusterTransaction = {
  RecordHsmReplication: 'RecordHsmReplication',
  RecordHsmFailover: 'RecordHsmFailover',
  ListHsmClusterEvents: 'ListHsmClusterEvents',
} as const;

/** The only principal these records are written for. */
export const HsmClusterService = 'gateway.hsm-cluster';

const hexOf = (min: number, max: number, what: string): Check<string> =>
  str({ min, max, pattern: /^(?:[0-9a-f]{2})+$/, what });
const tokenName = str({ max: 32, pattern: /^[A-Za-z0-9][A-Za-z0-9._:@-]*$/, what: 'a token label' });
const requestId = str({ max: Limits.IdLength, pattern: /^[A-Za-z0-9._:-]+$/, what: 'a request id' });

/** One key copied to a target token, and its copy's check value there (computed by that token). */
export interface HsmReplicatedKey {
  readonly Label: string;
  readonly ID: string;
  readonly Type: 'ec-p256' | 'aes-256' | 'hmac-sha256';
  readonly CheckValue: string;
}

const replicatedKey: Check<HsmReplicatedKey> = object({
  Label: str({ max: 256, pattern: /^[\x21-\x7e]+$/, what: 'a key label' }),
  ID: hexOf(2, 128, 'a CKA_ID in lowercase hex'),
  Type: oneOf(['ec-p256', 'aes-256', 'hmac-sha256'] as const),
  // AES and HMAC: 3 bytes; EC: SHA-256 of the public point.
  CheckValue: str({ min: 6, max: 64, pattern: /^(?:[0-9a-f]{6}|[0-9a-f]{64})$/, what: 'a check value' }),
});

const replication = object({
  // The Action names the transaction as the gateway calls it: with the contract's namespace.
  Action: literal(`${HsmClusterContractName}:${HsmClusterTransaction.RecordHsmReplication}`),
  RequestID: requestId,
  ClusterID: id,
  Source: tokenName,
  Target: tokenName,
  Reason: oneOf(['join', 'write-through'] as const),
  KekCheckValue: hexOf(6, 6, "the cluster KEK's 3-byte check value"),
  Keys: arrayOf(replicatedKey, { max: 500 }),
  At: isoTime,
});

const failover = object({
  Action: literal(`${HsmClusterContractName}:${HsmClusterTransaction.RecordHsmFailover}`),
  RequestID: requestId,
  ClusterID: id,
  From: tokenName,
  To: tokenName,
  Reason: text,
  At: isoTime,
});

export type HsmReplicationRequest = Omit<Checked<typeof replication>, 'Action' | 'RequestID'>;

/** What the ledger keeps for each replication or failover, in the order they were recorded. */
export type HsmClusterEventRecord =
  | ({ readonly DocType: 'hsm-replication' } & Omit<Checked<typeof replication>, 'Action'> & Recorded)
  | ({ readonly DocType: 'hsm-failover' } & Omit<Checked<typeof failover>, 'Action'> & Recorded);

interface Recorded {
  readonly TxID: string;
  readonly RecordedBy: string;
  readonly Principal: RequestPrincipal;
}

const EventKey = 'hsm-cluster-event';

@Info({ title: 'hsm-cluster', description: "Replications and failovers of the gateway's HSM cluster" })
export class HsmClusterContract extends Contract {
  constructor() {
    super(HsmClusterContractName);
  }

  @Transaction()
  @Returns('string')
  async RecordHsmReplication(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return await this.record(ctx, requestJson, jws, replication, (r) => {
      if (r.Source === r.Target)
        throw new LedgerError(ErrorCode.InvalidArgument, 'Source and Target are the same token');
      return 'hsm-replication';
    });
  }

  @Transaction()
  @Returns('string')
  async RecordHsmFailover(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return await this.record(ctx, requestJson, jws, failover, (r) => {
      if (r.From === r.To) throw new LedgerError(ErrorCode.InvalidArgument, 'From and To are the same token');
      return 'hsm-failover';
    });
  }

  @Transaction(false)
  @Returns('string')
  async ListHsmClusterEvents(ctx: Context, clusterId: string): Promise<string> {
    assertRole(callerOf(ctx), [Role.Operator, Role.Verifier, Role.Auditor], HsmClusterTransaction.ListHsmClusterEvents);
    const store = new Store(ctx.stub);
    const records = await store.all<HsmClusterEventRecord>(EventKey, [validate(id, clusterId, 'clusterId')]);
    return canonicalJson(records);
  }

  /** The write path of every keyfleet write: role, principal, schema, replay, signature, then the put. */
  private async record<T extends { Action: string; RequestID: string; ClusterID: string }>(
    ctx: Context,
    requestJson: string,
    jws: string,
    check: Check<T>,
    docType: (request: T) => HsmClusterEventRecord['DocType'],
  ): Promise<string> {
    const caller = callerOf(ctx);
    const { fcn } = ctx.stub.getFunctionAndParameters();
    assertRole(caller, [Role.Operator], fcn);
    const raw = parseJson(requestJson, 'request', Limits.RequestBytes);
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new LedgerError(ErrorCode.InvalidArgument, 'request must be an object');
    }
    const { Principal, ...rest } = raw as Record<string, unknown>;
    let principal: RequestPrincipal;
    try {
      principal = validate(requestPrincipal, Principal, 'request.Principal');
    } catch (err) {
      if (err instanceof LedgerError && err.code === ErrorCode.InvalidArgument) {
        throw new LedgerError(ErrorCode.PrincipalInvalid, err.detail);
      }
      throw err;
    }
    assertPrincipalFor(caller, principal);
    if (principal.Kind !== PrincipalKind.Service || principal.ID !== HsmClusterService) {
      throw new LedgerError(ErrorCode.PrincipalInvalid, `HSM cluster records are written by ${HsmClusterService}`);
    }
    const request = validate(check, rest);
    const kind = docType(request);
    const store = new Store(ctx.stub);
    const requestKey = store.key(KeyType.Request, request.RequestID);
    if ((await store.get(requestKey)) !== null) {
      throw new LedgerError(ErrorCode.RequestReplayed, `request ${request.RequestID} was already executed`);
    }
    await this.verifyMetadataSignature(store, jws, raw);
    const txId = ctx.stub.getTxID();
    const fields: Record<string, unknown> = { ...request };
    delete fields.Action;
    const record = { DocType: kind, ...fields, TxID: txId, RecordedBy: callerName(caller), Principal: principal };
    await store.put(store.key(EventKey, request.ClusterID, txId), record);
    await store.put(requestKey, {
      RequestID: request.RequestID,
      Action: request.Action,
      TxID: txId,
      By: callerName(caller),
      Principal: principal,
    });
    return canonicalJson(record);
  }

  private async verifyMetadataSignature(store: Store, jws: string, raw: unknown): Promise<void> {
    if (typeof jws !== 'string' || jws.length > Limits.JwsBytes) {
      throw new LedgerError(ErrorCode.InvalidArgument, `jws must be a string of at most ${Limits.JwsBytes} bytes`);
    }
    const kid = jwsKeyId(jws);
    const anchor = await store.get<TrustAnchorRecord>(store.key(KeyType.Anchor, kid));
    if (anchor === null) throw new LedgerError(ErrorCode.AnchorNotFound, `trust anchor ${kid} does not exist`);
    if (anchor.Status !== AnchorStatus.Active) {
      throw new LedgerError(ErrorCode.AnchorInactive, `trust anchor ${kid} is ${anchor.Status}`);
    }
    if (anchor.Kind !== AnchorKind.MetadataSigning) {
      throw new LedgerError(
        ErrorCode.AnchorKindMismatch,
        `trust anchor ${kid} is ${anchor.Kind}, not metadata-signing`,
      );
    }
    await verifyJws(jws, anchor.PublicKey, canonicalBytes(raw));
  }
}
