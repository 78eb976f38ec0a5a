/**
 * How a contract is made of aggregate modules. Each aggregate (anchors, devices, keys, …) is a
 * {@link TransactionGroup}: a class of thin `@Transaction` methods. {@link contractOf} gathers
 * groups into one Fabric contract, so their transactions keep their plain names (`EnrolDevice`,
 * not `devices:EnrolDevice`) in the default contract, and Fabric routes to them as it routes to
 * any contract's: by the `fabric:transactions` metadata the decorators wrote.
 */
// fabric-contract-api loads the reflect-metadata polyfill its decorators write with; only its types here.
import type {} from 'reflect-metadata';
import { Context, Contract } from 'fabric-contract-api';

import { ErrorCode, LedgerError } from '@keyfleet/protocol';

/** The metadata key fabric-contract-api's `@Transaction` and `@Returns` decorators write. */
const TransactionsKey = 'fabric:transactions';

/**
 * A group of transactions over one aggregate. It extends Contract only because the decorators
 * need its `createContext`; it is never registered with Fabric itself.
 */
export abstract class TransactionGroup extends Contract {}

type Group = new () => TransactionGroup;
type Intersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never;
/** The instance of a contract made of `G`: every group's transactions on one object. */
export type ContractOf<G extends readonly Group[]> = Contract & Intersection<InstanceType<G[number]>>;

/** The transactions a class's decorators declared (a name, EVALUATE or SUBMIT, parameters). */
export function declaredTransactions(prototype: object): readonly { name: string }[] {
  return (Reflect.getMetadata(TransactionsKey, prototype) ?? []) as { name: string }[];
}

/**
 * A contract class named `name` whose transactions are those of `groups`. Each transaction calls
 * its group's method on an instance of that group; two groups declaring one name is an error at
 * load time. An unknown transaction is refused with UNKNOWN_TRANSACTION.
 */
export function contractOf<const G extends readonly Group[]>(name: string, groups: G): new () => ContractOf<G> {
  class Composed extends Contract {
    constructor() {
      super(name);
    }

    override async unknownTransaction(ctx: Context): Promise<void> {
      const { fcn } = ctx.stub.getFunctionAndParameters();
      await Promise.resolve();
      throw new LedgerError(ErrorCode.UnknownTransaction, `no transaction named ${JSON.stringify(fcn)}`);
    }
  }
  const transactions: { name: string }[] = [];
  for (const group of groups) {
    const instance = new group() as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    for (const transaction of declaredTransactions(group.prototype as object)) {
      if (transactions.some((known) => known.name === transaction.name)) {
        throw new Error(`contract ${name}: transaction ${transaction.name} is declared twice`);
      }
      const method = instance[transaction.name];
      if (typeof method !== 'function') throw new Error(`${group.name}.${transaction.name} is not a method`);
      Object.defineProperty(Composed.prototype, transaction.name, {
        value: method.bind(instance),
        writable: false,
        enumerable: false,
        configurable: false,
      });
      transactions.push(structuredClone(transaction));
    }
  }
  Reflect.defineMetadata(TransactionsKey, transactions, Composed.prototype);
  return Composed as unknown as new () => ContractOf<G>;
}
