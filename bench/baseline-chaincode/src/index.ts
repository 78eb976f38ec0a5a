/**
 * The benchmark's baseline contract: `Put(key, value)` writes the value under the key without
 * reading anything (a blind write, so concurrent calls never conflict at commit). It is what
 * Fabric itself costs for one transaction, the ceiling keyfleet's rows are compared with.
 */
import { Context, Contract, Info, Transaction } from 'fabric-contract-api';

@Info({ title: 'keyfleet-bench-baseline', description: 'one blind write per transaction' })
export class BaselineContract extends Contract {
  constructor() {
    super('baseline');
  }

  @Transaction()
  async Put(ctx: Context, key: string, value: string): Promise<void> {
    await ctx.stub.putState(key, Buffer.from(value));
  }
}

/** What fabric-contract-api loads from the package main. */
export const contracts: (typeof BaselineContract)[] = [BaselineContract];
