import { expect } from 'chai';
import { asPrincipal } from '../ledger/principal-context';
import { readFileSync, writeFileSync } from 'node:fs';
import { newAttestationBatcher, type AttestationBatcher } from '../attestation';
import { newFleet, type Fleet, type TestDevice } from '../testing/attestation-fleet';
import { newVerifier, type Verifier } from '../attestation/verifier';
import { newReinstatement } from './reinstatement';
import type { AppraisalAnswer } from './services';

/**
 * The operator gateway's reinstatement after a forwarded appraisal: Org2's verifier (no operator
 * client) records the results, the operator reinstates only what the ledger shows.
 */
describe('reinstatement by the operator after an affirming answer from the verifier', function () {
  this.timeout(60_000);
  let fleet: Fleet;
  let verifier: Verifier;
  let reinstate: (answer: AppraisalAnswer) => Promise<AppraisalAnswer>;
  let count = 0;

  before(async () => {
    fleet = await newFleet();
    // The verifier service's shape: no `reinstateWith`, it has no operator identity.
    verifier = newVerifier({
      deviceCaCertificatePem: fleet.ca.certificatePem,
      ledger: fleet.verifierLedger,
      resultKey: fleet.verifierKey,
      verifierId: fleet.verifierId,
      policyId: 'keyfleet-appraisal-v1',
      challenges: fleet.challenges,
      now: () => fleet.now(),
    });
    reinstate = newReinstatement({ ledger: fleet.operator });
  });
  after(async () => {
    await fleet.close();
  });

  /** A fresh device, suspended by a contraindicated result; returns it and that result's answer. */
  const suspended = async (v: Verifier = verifier): Promise<{ device: TestDevice; bad: AppraisalAnswer }> => {
    count += 1;
    const device = await fleet.enrol(`dev-r${String(count)}`);
    const path = device.files['app.js'] ?? '';
    const original = readFileSync(path);
    writeFileSync(path, '// tampered\n');
    const bad = await v.appraise(await fleet.attest(device));
    writeFileSync(path, original);
    expect(bad.status).to.equal('contraindicated');
    expect(await fleet.device(device.id)).to.include({
      Status: 'suspended',
      StatusReason: 'attestation contraindicated',
    });
    fleet.advance(1);
    return { device, bad };
  };

  it('reinstates after an affirming result recorded on its own', async () => {
    const { device } = await suspended();
    const good = await verifier.appraise(await fleet.attest(device));
    expect(good.actions.reinstated, 'the verifier itself does not').to.equal(false);
    const answer = await reinstate(good);
    expect(answer.actions).to.include({ reinstated: true });
    expect(answer.actions.failures).to.deep.equal([]);
    expect(await fleet.device(device.id)).to.include({ Status: 'active' });
  });

  it('reinstates after an affirming result anchored in a batch, checked by its inclusion proof', async () => {
    const batcher: AttestationBatcher = newAttestationBatcher({
      ledger: fleet.verifierLedger,
      verifierId: fleet.verifierId,
      maxSize: 2,
      maxDelayMs: 50,
    });
    try {
      const batched = newVerifier({
        deviceCaCertificatePem: fleet.ca.certificatePem,
        ledger: fleet.verifierLedger,
        resultKey: fleet.verifierKey,
        verifierId: fleet.verifierId,
        policyId: 'keyfleet-appraisal-v1',
        challenges: fleet.challenges,
        now: () => fleet.now(),
        batcher,
      });
      const { device } = await suspended(batched);
      const good = await batched.appraise(await fleet.attest(device));
      expect('batchId' in good.recorded).to.equal(true);
      expect((await reinstate(good)).actions).to.include({ reinstated: true });
      expect(await fleet.device(device.id)).to.include({ Status: 'active' });
    } finally {
      await batcher.close();
    }
  });

  const hostile: {
    name: string;
    forge: (bad: AppraisalAnswer, good: AppraisalAnswer) => AppraisalAnswer;
    why: RegExp;
  }[] = [
    {
      name: 'the contraindicated result relabelled affirming',
      forge: (bad) => ({ ...bad, status: 'affirming', result: { ...bad.result, Status: 'affirming' } }),
      why: /is contraindicated on the ledger/,
    },
    {
      name: 'an earlier affirming result, replayed after the suspension',
      forge: (_bad, good) => good,
      why: /a later attestation is on the ledger/,
    },
    {
      name: 'a batch proof for a result that is not in the batch',
      forge: (bad) => ({
        ...bad,
        status: 'affirming',
        result: { ...bad.result, Status: 'affirming' },
        recorded: {
          batchId: 'b-none',
          proof: {
            BatchID: 'b-none',
            LeafIndex: 0,
            TreeSize: 1,
            AuditPath: [],
            MerkleRoot: '0'.repeat(64),
            TransactionID: 'x',
          },
        },
      }),
      why: /BATCH_NOT_FOUND|batch b-none/,
    },
  ];

  for (const { name, forge, why } of hostile) {
    it(`does not reinstate on ${name}; the failure is reported`, async () => {
      count += 1;
      const device = await fleet.enrol(`dev-h${String(count)}`);
      const good = await verifier.appraise(await fleet.attest(device));
      fleet.advance(1);
      const path = device.files['app.js'] ?? '';
      const original = readFileSync(path);
      writeFileSync(path, '// tampered\n');
      const bad = await verifier.appraise(await fleet.attest(device));
      writeFileSync(path, original);
      expect(await fleet.device(device.id)).to.include({ Status: 'suspended' });

      const answer = await reinstate(forge(bad, good));
      expect(answer.actions.reinstated).to.equal(false);
      expect(answer.actions.failures.join('\n')).to.match(why);
      expect(await fleet.device(device.id)).to.include({ Status: 'suspended' });
    });
  }

  it('leaves a device an operator suspended for another reason, and ignores other verdicts', async () => {
    count += 1;
    const device = await fleet.enrol(`dev-o${String(count)}`);
    await asPrincipal({ Kind: 'operator', ID: 'alice' }, () =>
      fleet.operator.write('SuspendDevice', { DeviceID: device.id, Reason: 'lost in transit' }),
    );
    fleet.advance(1);
    const good = await verifier.appraise(await fleet.attest(device));
    const answer = await reinstate(good);
    expect(answer.actions).to.deep.equal(good.actions);
    expect(await fleet.device(device.id)).to.include({ Status: 'suspended', StatusReason: 'lost in transit' });

    const { bad } = await suspended();
    expect(await reinstate(bad)).to.equal(bad);
  });
});
