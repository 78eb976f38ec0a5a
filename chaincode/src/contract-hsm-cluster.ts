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

import {
  assertRole,
  callerName,
  canonicalJson,
  ErrorCode,
  HsmClusterContractName,
  HsmClusterService,
  HsmClusterTransaction,
  hsmFailover,
  hsmReplication,
  id,
  LedgerError,
  Limits,
  PrincipalKind,
  Role,
  validate,
  type Check,
  type HsmClusterEventRecord,
} from '@keyfleet/protocol';
import { callerOf } from './identity.js';
import { authenticateSignedRequest } from './signed-request.js';
import { KeyType, Store } from './store.js';

const EventKey = 'hsm-cluster-event';

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

  /** The write path of every keyfleet write (signed-request.ts), then the put. */
  private async record<T extends { Action: string; RequestID: string; ClusterID: string }>(
    ctx: Context,
    requestJson: string,
    jws: string,
    check: Check<T>,
    docType: (request: T) => HsmClusterEventRecord['DocType'],
  ): Promise<string> {
    const { store, caller, principal, request } = await authenticateSignedRequest(ctx, requestJson, jws, {
      roles: [Role.Operator],
      check,
      principal: (p) =>
        p.Kind === PrincipalKind.Service && p.ID === HsmClusterService
          ? null
          : `HSM cluster records are written by ${HsmClusterService}`,
      requestBytes: Limits.RequestBytes,
      jwsBytes: Limits.JwsBytes,
    });
    const kind = docType(request);
    const requestKey = store.key(KeyType.Request, request.RequestID);
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
}
