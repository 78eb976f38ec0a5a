/** Reference values: the measurements a device group's evidence is appraised against. */
import { Context, Returns, Transaction } from 'fabric-contract-api';

import {
  AnchorKind,
  canonicalJson,
  ErrorCode,
  EventName,
  type ReferenceValuesRecord,
  requests,
  Role,
  TransactionName,
} from '@keyfleet/protocol';
import { KeyType, Store } from '../store.js';
import { TransactionGroup } from '../transaction/compose.js';
import { argId, notFound, Overseers, reader } from '../transaction/read.js';
import { submit } from '../transaction/write.js';
import { nextReferenceValues } from './rules.js';

export class ReferenceValueTransactions extends TransactionGroup {
  @Transaction()
  @Returns('string')
  async SetReferenceValues(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return submit(
      ctx,
      {
        action: TransactionName.SetReferenceValues,
        roles: [Role.Operator],
        check: requests.setReferenceValues,
        apply: async (write) => {
          const { request, store } = write;
          const signer = await write.signedBy(AnchorKind.MetadataSigning);
          const key = store.key(KeyType.ReferenceValues, request.Group);
          const previous = await store.get<ReferenceValuesRecord>(key);
          const record = nextReferenceValues(request, previous, write.now.iso, write.by, write.proof(signer.AnchorID));
          return {
            puts: [[key, record]],
            event: {
              name: EventName.ReferenceValuesSet,
              payload: { Group: record.Group, Revision: record.Revision, PolicyID: record.PolicyID },
            },
            result: record,
          };
        },
      },
      requestJson,
      jws,
    );
  }

  @Transaction(false)
  @Returns('string')
  async GetReferenceValues(ctx: Context, group: string): Promise<string> {
    reader(ctx, Overseers, TransactionName.GetReferenceValues);
    const store = new Store(ctx.stub);
    const record = await store.get<ReferenceValuesRecord>(store.key(KeyType.ReferenceValues, argId(group, 'group')));
    if (record === null) notFound(ErrorCode.ReferenceValuesNotFound, `reference values of group ${group}`);
    return canonicalJson(record);
  }
}
