/**
 * The HSM cluster's own records (docs/hsm-cluster.md): every replication of keys between the
 * cluster's tokens (the copies' check values, the cluster KEK's check value) and every failover
 * from one token to another. A second contract in the chaincode, `hsm-cluster`, so its types stay
 * out of the shared record types: transactions are called as `hsm-cluster:<name>`.
 *
 * Writes: the operator gateway for its cluster, as its `gateway.hsm-cluster` service with a JWS by
 * the active metadata-signing anchor like every other write; Org2's verifier for its own cluster, as
 * `verifier.hsm-cluster` with a JWS by its verifier anchor (HsmClusterWriters). A cluster's records
 * are written by one writer only: the first one's organisation and role. All through the same write
 * path as every other write. Reads: operators, the verifier and auditors.
 */
import { Context, Info, Returns, Transaction } from 'fabric-contract-api';

import {
  canonicalJson,
  type Check,
  ErrorCode,
  HsmClusterContractName,
  HsmClusterTransaction,
  HsmClusterWriters,
  hsmFailover,
  hsmReplication,
  id,
  LedgerError,
  PrincipalKind,
  Role,
  validate,
  type HsmClusterEventRecord,
} from '@keyfleet/protocol';
import { Store } from './store.js';
import { contractOf, TransactionGroup } from './transaction/compose.js';
import { reader } from './transaction/read.js';
import { type Envelope, submit } from './transaction/write.js';

const EventKey = 'hsm-cluster-event';
/** The writer (`MSPID/role`) a cluster's records belong to, set by its first record. */
const WriterKey = 'hsm-cluster-writer';

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
      roles: [Role.Operator, Role.Verifier],
      check,
      apply: async (write) => {
        // Each role writes as its own cluster service (HsmClusterWriters), and no other principal.
        const writer = HsmClusterWriters[write.caller.Role];
        if (writer === undefined) {
          throw new LedgerError(ErrorCode.AccessDenied, `role ${write.caller.Role} writes no HSM cluster record`);
        }
        const { principal } = write;
        if (principal.Kind !== PrincipalKind.Service || principal.ID !== writer.service) {
          throw new LedgerError(ErrorCode.PrincipalInvalid, `HSM cluster records are written by ${writer.service}`);
        }
        const docType = rule(write.request);
        await write.signedBy(writer.anchorKind);
        // One writer per cluster: the verifier cannot write into the operator's cluster history, nor back.
        const writerKey = write.store.key(WriterKey, write.request.ClusterID);
        const by = `${write.caller.MSPID}/${write.caller.Role}`;
        const owner = await write.store.get<{ Writer: string }>(writerKey);
        if (owner !== null && owner.Writer !== by) {
          throw new LedgerError(
            ErrorCode.AccessDenied,
            `the records of HSM cluster ${write.request.ClusterID} are written by ${owner.Writer}`,
          );
        }
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
        const puts: [string, unknown][] = [[write.store.key(EventKey, write.request.ClusterID, write.txId), stored]];
        if (owner === null) puts.push([writerKey, { Writer: by }]);
        return { puts, result: stored };
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
