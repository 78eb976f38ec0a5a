import './logging.js';

import { expect } from 'chai';
import { Returns, Transaction } from 'fabric-contract-api';

import {
  ErrorCode,
  HsmClusterAction,
  HsmClusterContractName,
  HsmClusterTransaction,
  TransactionName,
  type TrustAnchorRecord,
} from '@keyfleet/protocol';
import { contractOf, TransactionGroup } from './transaction/compose.js';
import { expectRejected, Harness } from './testing/harness.js';

interface Metadata {
  contracts: Record<
    string,
    { transactions: { name: string; tag: string[]; parameters: { name: string; schema: { type: string } }[] }[] }
  >;
}

describe('routing: transactions reach the aggregates as Fabric routes them', () => {
  let h: Harness;

  beforeEach(async () => {
    h = await Harness.create();
    await h.bootstrap();
  });

  it('the default contract declares every transaction name, writes as SUBMIT (requestJson, jws…), reads as EVALUATE', async () => {
    const metadata = JSON.parse(await h.invoke(h.ids.auditor, 'org.hyperledger.fabric:GetMetadata')) as Metadata;
    const keyfleet = metadata.contracts.keyfleet?.transactions ?? [];
    expect(keyfleet.map((t) => t.name).sort()).to.deep.equal(Object.values(TransactionName).sort());
    for (const transaction of keyfleet) {
      const names = transaction.parameters.map((p) => p.name);
      const write = names[0] === 'requestJson';
      expect(transaction.tag, transaction.name).to.include(write ? 'SUBMIT' : 'EVALUATE');
      if (write) expect(names[1], transaction.name).to.equal('jws');
      for (const parameter of transaction.parameters) expect(parameter.schema.type).to.equal('string');
    }
    const cluster = metadata.contracts[HsmClusterContractName]?.transactions ?? [];
    expect(cluster.map((t) => t.name).sort()).to.deep.equal(Object.values(HsmClusterTransaction).sort());
  });

  it('a plain name and `keyfleet:` reach the default contract; `hsm-cluster:` only its own transactions', async () => {
    const plain = await h.read<TrustAnchorRecord[]>(h.ids.auditor, TransactionName.ListTrustAnchors);
    expect(plain).to.have.length(3);
    expect(await h.read(h.ids.auditor, `keyfleet:${TransactionName.ListTrustAnchors}`)).to.deep.equal(plain);
    expect(await h.read(h.ids.auditor, HsmClusterAction.ListHsmClusterEvents, 'keyfleet')).to.deep.equal([]);
    await expectRejected(
      h,
      h.invoke(h.ids.auditor, `${HsmClusterContractName}:${TransactionName.ListTrustAnchors}`),
      ErrorCode.UnknownTransaction,
    );
    await expectRejected(
      h,
      h.invoke(h.ids.auditor, HsmClusterTransaction.ListHsmClusterEvents, 'keyfleet'),
      ErrorCode.UnknownTransaction,
    );
  });

  it('methods that are not transactions are unknown transactions', async () => {
    for (const method of ['beforeTransaction', 'unknownTransaction', 'getName', 'constructor', 'toString']) {
      await expectRejected(h, h.invoke(h.ids.operator, method), ErrorCode.UnknownTransaction);
    }
  });

  it('Fabric refuses a wrong number of arguments before the contract runs, writing nothing', async () => {
    const enrol = h.as(h.ids.operator, h.enrolRequest('dev-0001'));
    for (const args of [[], [JSON.stringify(enrol)], [JSON.stringify(enrol), 'a.b.c', 'extra']]) {
      let caught: unknown;
      try {
        await h.invoke(h.ids.operator, TransactionName.EnrolDevice, ...args);
      } catch (err) {
        caught = err;
      }
      expect((caught as Error).message).to.equal(`Expected 2 parameters, but ${args.length} have been supplied`);
      expect(h.lastRejectedWrites).to.equal(0);
    }
    let unknownContract: unknown;
    try {
      await h.invoke(h.ids.operator, 'shards:ListTrustAnchors');
    } catch (err) {
      unknownContract = err;
    }
    expect((unknownContract as Error).message).to.equal('Contract name is not known: shards');
  });

  it('a contract made of groups that declare one transaction twice does not load', () => {
    class First extends TransactionGroup {
      @Transaction(false)
      @Returns('string')
      async Twice(): Promise<string> {
        return Promise.resolve('first');
      }
    }
    class Second extends TransactionGroup {
      @Transaction(false)
      @Returns('string')
      async Twice(): Promise<string> {
        return Promise.resolve('second');
      }
    }
    expect(() => contractOf('twice', [First, Second])).to.throw('transaction Twice is declared twice');
    const single = new (contractOf('once', [First]))();
    expect(single.getName()).to.equal('once');
  });
});
