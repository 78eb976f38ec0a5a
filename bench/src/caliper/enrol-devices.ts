import { enrolDevice } from './requests';
import { Invokers, KeyfleetWorkload, type WorkloadModule } from './workload';

/** Round `enrol-devices`: one `EnrolDevice` per transaction, a new device each, its token consumed. */
class EnrolDevices extends KeyfleetWorkload {
  protected override async prepare(): Promise<void> {
    await this.signAhead(this.numberArg('ahead', 32), async () => ({
      invoker: Invokers.operator,
      contractFunction: 'EnrolDevice',
      signed: await this.metadata.sign(enrolDevice(this.nextId('req'), this.nextId('dev'))),
    }));
  }
}

export function createWorkloadModule(): WorkloadModule {
  return new EnrolDevices();
}
