import { registerKey } from './requests';
import { Invokers, KeyfleetWorkload, type WorkloadModule } from './workload';

/**
 * Round `register-keys`: one `RegisterKey` per transaction, a new device-owned data key each (the
 * owner read, the key, its version and its owner index written). Set-up: `devices` devices per
 * worker (default 8), the keys' owners in turn.
 */
class RegisterKeys extends KeyfleetWorkload {
  protected override async prepare(): Promise<void> {
    const devices = await this.enrolDevices(this.numberArg('devices', 8));
    let next = 0;
    await this.signAhead(this.numberArg('ahead', 32), async () => {
      const owner = devices[next++ % devices.length] as string;
      return {
        invoker: Invokers.operator,
        contractFunction: 'RegisterKey',
        signed: await this.metadata.sign(registerKey(this.nextId('req'), this.nextId('key'), owner)),
      };
    });
  }
}

export function createWorkloadModule(): WorkloadModule {
  return new RegisterKeys();
}
