import { recordAttestationBatch } from './requests';
import { Invokers, KeyfleetWorkload, type WorkloadModule } from './workload';

/**
 * Round `attestation-batches`: one `RecordAttestationBatch` per transaction, signed by the
 * verifier's anchor as Org2's verifier, anchoring `members` results (default 32, the bench's
 * batch) and consuming their `members` nonces, after reading each member device (`devices` per
 * worker, default 8, enrolled in set-up). Each member counts as an attestation recorded, so
 * attestations/s = transactions/s × members.
 */
class AttestationBatches extends KeyfleetWorkload {
  protected override async prepare(): Promise<void> {
    const devices = await this.enrolDevices(this.numberArg('devices', 8));
    const members = this.numberArg('members', 32);
    await this.signAhead(this.numberArg('ahead', 32), async () => ({
      invoker: Invokers.verifier,
      contractFunction: 'RecordAttestationBatch',
      signed: await this.verifier.sign(
        recordAttestationBatch(this.nextId('req'), this.nextId('batch'), this.verifier.anchorId, devices, members),
      ),
    }));
  }
}

export function createWorkloadModule(): WorkloadModule {
  return new AttestationBatches();
}
