/**
 * The HSM cluster's own records (docs/hsm-cluster.md): every replication of keys between the
 * cluster's tokens (the copies' check values, the cluster KEK's check value) and every failover
 * from one token to another. A second contract in the chaincode, `hsm-cluster`, so its types stay
 * out of the shared record types: transactions are called as `hsm-cluster:<name>`.
 *
 * Writes: the operator gateway for its cluster, as its `gateway.hsm-cluster` service with a JWS by
 * the active metadata-signing anchor like every other write; Org2's verifier for its own cluster, as
 * `verifier.hsm-cluster` with a JWS by its verifier anchor (HsmClusterWriters). A cluster's records
 * are written by one writer only: the first one's organisation and role. Reads: operators, the
 * verifier and auditors.
 */
import { Context, Contract, Info, Returns, Transaction } from 'fabric-contract-api';

import {
  AnchorKind,
  AnchorStatus,
  assertPrincipalFor,
  assertRole,
  callerName,
  canonicalBytes,
  canonicalJson,
  ErrorCode,
  HsmClusterContractName,
  HsmClusterTransaction,
  HsmClusterWriters,
  hsmFailover,
  hsmReplication,
  id,
  LedgerError,
  Limits,
  parseJson,
  PrincipalKind,
  requests,
  Role,
  validate,
  type Check,
  type HsmClusterEventRecord,
  type RequestPrincipal,
  type TrustAnchorRecord,
} from '@keyfleet/protocol';
import { callerOf } from './identity.js';
import { jwsKeyId, verifyJws } from './signature.js';
import { KeyType, Store } from './store.js';

const EventKey = 'hsm-cluster-event';
/** The writer (`MSPID/role`) a cluster's records belong to, set by its first record. */
const WriterKey = 'hsm-cluster-writer';

@Info({ title: 'hsm-cluster', description: "Replications and failovers of the gateway's HSM cluster" })
export class HsmClusterContract extends Contract {
  constructor() {
    super(HsmClusterContractName);
  }

  @Transaction()
  @Returns('string')
  async RecordHsmReplication(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return await this.record(ctx, requestJson, jws, hsmReplication, (r) => {
      if (r.Source === r.Target)
        throw new LedgerError(ErrorCode.InvalidArgument, 'Source and Target are the same token');
      return 'hsm-replication';
    });
  }

  @Transaction()
  @Returns('string')
  async RecordHsmFailover(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return await this.record(ctx, requestJson, jws, hsmFailover, (r) => {
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
    assertRole(caller, [Role.Operator, Role.Verifier], fcn);
    const writer = HsmClusterWriters[caller.Role];
    if (writer === undefined)
      throw new LedgerError(ErrorCode.AccessDenied, `role ${caller.Role} writes no HSM cluster record`);
    const raw = parseJson(requestJson, 'request', Limits.RequestBytes);
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new LedgerError(ErrorCode.InvalidArgument, 'request must be an object');
    }
    const { Principal, ...rest } = raw as Record<string, unknown>;
    let principal: RequestPrincipal;
    try {
      principal = validate(requests.requestPrincipal, Principal, 'request.Principal');
    } catch (err) {
      if (err instanceof LedgerError && err.code === ErrorCode.InvalidArgument) {
        throw new LedgerError(ErrorCode.PrincipalInvalid, err.detail);
      }
      throw err;
    }
    assertPrincipalFor(caller, principal);
    if (principal.Kind !== PrincipalKind.Service || principal.ID !== writer.service) {
      throw new LedgerError(ErrorCode.PrincipalInvalid, `HSM cluster records are written by ${writer.service}`);
    }
    const request = validate(check, rest);
    const kind = docType(request);
    const store = new Store(ctx.stub);
    const requestKey = store.key(KeyType.Request, request.RequestID);
    if ((await store.get(requestKey)) !== null) {
      throw new LedgerError(ErrorCode.RequestReplayed, `request ${request.RequestID} was already executed`);
    }
    await this.verifySignature(store, jws, raw, writer.anchorKind);
    // One writer per cluster: the verifier cannot write into the operator's cluster history, nor back.
    const writerKey = store.key(WriterKey, request.ClusterID);
    const by = `${caller.MSPID}/${caller.Role}`;
    const owner = await store.get<{ Writer: string }>(writerKey);
    if (owner !== null && owner.Writer !== by) {
      throw new LedgerError(
        ErrorCode.AccessDenied,
        `the records of HSM cluster ${request.ClusterID} are written by ${owner.Writer}`,
      );
    }
    if (owner === null) await store.put(writerKey, { Writer: by });
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

  private async verifySignature(store: Store, jws: string, raw: unknown, kind: AnchorKind): Promise<void> {
    if (typeof jws !== 'string' || jws.length > Limits.JwsBytes) {
      throw new LedgerError(ErrorCode.InvalidArgument, `jws must be a string of at most ${Limits.JwsBytes} bytes`);
    }
    const kid = jwsKeyId(jws);
    const anchor = await store.get<TrustAnchorRecord>(store.key(KeyType.Anchor, kid));
    if (anchor === null) throw new LedgerError(ErrorCode.AnchorNotFound, `trust anchor ${kid} does not exist`);
    if (anchor.Status !== AnchorStatus.Active) {
      throw new LedgerError(ErrorCode.AnchorInactive, `trust anchor ${kid} is ${anchor.Status}`);
    }
    if (anchor.Kind !== kind) {
      throw new LedgerError(ErrorCode.AnchorKindMismatch, `trust anchor ${kid} is ${anchor.Kind}, not ${kind}`);
    }
    await verifyJws(jws, anchor.PublicKey, canonicalBytes(raw));
  }
}
