/**
 * The HSM cluster's own records (docs/hsm-cluster.md): every replication of keys between the
 * cluster's tokens (the copies' check values, the cluster KEK's check value) and every failover
 * from one token to another. A second contract in the chaincode, `hsm-cluster`, so its types stay
 * out of the shared record types: transactions are called as `hsm-cluster:<name>`.
 *
 * Writes: the operator gateway only, as its `gateway.hsm-cluster` service, with a JWS by the active
 * metadata-signing anchor, through the same write path as every other write. Reads: operators, the
 * verifier and auditors.
 */
import { Context, Info, Returns, Transaction } from 'fabric-contract-api';

import {
  AnchorKind,
  canonicalJson,
  type Check,
  ErrorCode,
  HsmClusterContractName,
  HsmClusterService,
  HsmClusterTransaction,
  hsmFailover,
  hsmReplication,
  id,
  LedgerError,
  PrincipalKind,
  type RequestPrincipal,
  Role,
  validate,
  type HsmClusterEventRecord,
} from '@keyfleet/protocol';
import { Store } from './store.js';
import { contractOf, TransactionGroup } from './transaction/compose.js';
import { reader } from './transaction/read.js';
import { type Envelope, submit } from './transaction/write.js';

const EventKey = 'hsm-cluster-event';

/** HSM cluster records are written by the gateway's cluster service, and no other principal. */
function clusterService(principal: RequestPrincipal): void {
  if (principal.Kind !== PrincipalKind.Service || principal.ID !== HsmClusterService) {
    throw new LedgerError(ErrorCode.PrincipalInvalid, `HSM cluster records are written by ${HsmClusterService}`);
  }
}

/** One replication or failover: checked by `rule`, stored under its cluster as the record it is. */
function record<T extends Envelope & { ClusterID: string }>(
  ctx: Context,
  action: string,
  check: Check<T>,
  rule: (request: T) => HsmClusterEventRecord['DocType'],
  requestJson: string,
  jws: string,
): Promise<string> {
  return submit(
    ctx,
    {
      action,
      roles: [Role.Operator],
      principal: clusterService,
      check,
      apply: async (write) => {
        const docType = rule(write.request);
        await write.signedBy(AnchorKind.MetadataSigning);
        // The record is the request less its Action (the DocType says what it is).
        const fields: Partial<Envelope> = { ...write.request };
        delete fields.Action;
        const stored = {
          DocType: docType,
          ...fields,
          TxID: write.txId,
          RecordedBy: write.by,
          Principal: write.principal,
        };
        return { puts: [[write.store.key(EventKey, write.request.ClusterID, write.txId), stored]], result: stored };
      },
    },
    requestJson,
    jws,
  );
}

export class HsmClusterTransactions extends TransactionGroup {
  @Transaction()
  @Returns('string')
  async RecordHsmReplication(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return record(
      ctx,
      HsmClusterTransaction.RecordHsmReplication,
      hsmReplication,
      (r) => {
        if (r.Source === r.Target)
          throw new LedgerError(ErrorCode.InvalidArgument, 'Source and Target are the same token');
        return 'hsm-replication';
      },
      requestJson,
      jws,
    );
  }

  @Transaction()
  @Returns('string')
  async RecordHsmFailover(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return record(
      ctx,
      HsmClusterTransaction.RecordHsmFailover,
      hsmFailover,
      (r) => {
        if (r.From === r.To) throw new LedgerError(ErrorCode.InvalidArgument, 'From and To are the same token');
        return 'hsm-failover';
      },
      requestJson,
      jws,
    );
  }

  @Transaction(false)
  @Returns('string')
  async ListHsmClusterEvents(ctx: Context, clusterId: string): Promise<string> {
    reader(ctx, [Role.Operator, Role.Verifier, Role.Auditor], HsmClusterTransaction.ListHsmClusterEvents);
    const store = new Store(ctx.stub);
    return canonicalJson(await store.all<HsmClusterEventRecord>(EventKey, [validate(id, clusterId, 'clusterId')]));
  }
}

@Info({ title: 'hsm-cluster', description: "Replications and failovers of the gateway's HSM cluster" })
export class HsmClusterContract extends contractOf(HsmClusterContractName, [HsmClusterTransactions]) {}
