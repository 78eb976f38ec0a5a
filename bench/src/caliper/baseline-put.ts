import { randomBytes } from 'node:crypto';
import { Invokers, KeyfleetWorkload, type WorkloadModule } from './workload';

/**
 * Round `baseline-put`: the bench's baseline under Caliper, `Put(key, value)` of chaincode
 * `baseline` (bench/baseline-chaincode), a fresh key and 32 random bytes as hex, as Org1's
 * `application` identity, as bench/src/network.ts's `newBaselineWrite` does.
 */
class BaselinePut extends KeyfleetWorkload {
  override async submitTransaction(): Promise<void> {
    await this.sut.sendRequests({
      contractId: 'baseline',
      contractFunction: 'Put',
      contractArguments: [this.nextId('put'), randomBytes(32).toString('hex')],
      readOnly: false,
      ...Invokers.application,
    });
  }
}

export function createWorkloadModule(): WorkloadModule {
  return new BaselinePut();
}
