import { registerKey, rotateKey } from './requests';
import { Invokers, KeyfleetWorkload, type PreparedWrite, type WorkloadModule } from './workload';

interface PooledKey {
  readonly keyId: string;
  readonly deviceId: string;
  version: number;
}

/**
 * Round `rotate-keys`: one `RotateKey` per transaction, version n → n+1 of a key no other rotation
 * in flight touches (a rotation reads and rewrites its key, so two at once on the same key would
 * fail at commit with MVCC_READ_CONFLICT, as they would in keyfleet). Set-up: `keys` keys per worker
 * (default 32: more than the worker's share of the transactions in flight), each owned by one of
 * `devices` devices. A key's next rotation is signed as soon as its last one has committed.
 */
class RotateKeys extends KeyfleetWorkload {
  protected override async prepare(): Promise<void> {
    const devices = await this.enrolDevices(this.numberArg('devices', 8));
    const keys: PooledKey[] = Array.from({ length: this.numberArg('keys', 32) }, (_, i) => ({
      keyId: this.nextId('key'),
      deviceId: devices[i % devices.length] as string,
      version: 1,
    }));
    const registered = await Promise.all(
      keys.map(async (key) =>
        this.write(
          Invokers.operator,
          'RegisterKey',
          await this.metadata.sign(registerKey(this.nextId('req'), key.keyId, key.deviceId)),
        ),
      ),
    );
    if (registered.includes(false)) throw new Error('set-up: a key registration failed (see the log above)');
    for (const write of await Promise.all(keys.map(async (key) => this.nextRotation(key)))) this.offer(write);
  }

  /** The rotation of `key` from its current version; once settled, the one after it. */
  private async nextRotation(key: PooledKey): Promise<PreparedWrite> {
    const request = rotateKey(this.nextId('req'), key.keyId, key.deviceId, key.version);
    return {
      invoker: Invokers.operator,
      contractFunction: 'RotateKey',
      signed: await this.metadata.sign(request),
      settled: (committed) => {
        if (committed) key.version += 1;
        this.nextRotation(key).then(
          (write) => {
            this.offer(write);
          },
          (err: unknown) => {
            console.error(`caliper workload: cannot sign the next rotation of ${key.keyId}: ${String(err)}`);
          },
        );
      },
    };
  }
}

export function createWorkloadModule(): WorkloadModule {
  return new RotateKeys();
}
