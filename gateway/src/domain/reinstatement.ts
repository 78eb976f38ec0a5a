import { canonicalJson, type DeviceRecord } from '@keyfleet/protocol';
import { asPrincipal, devicePrincipal } from '../ledger/principal-context';
import type { LedgerClient } from '../ledger/ledger-client';
import { ledgerPort } from '../ledger/port';
import type { AppraisalAnswer } from './services';

/** The StatusReason the contract writes when a contraindicated result suspends a device. */
const SuspendedByAttestation = 'attestation contraindicated';

export interface ReinstatementOptions {
  /** The operator's ledger client (Org1, metadata-signing anchor): only operators reinstate. */
  readonly ledger: LedgerClient;
}

/**
 * After an affirming appraisal, the operator reinstates a device that attestation had suspended
 * (docs/protocol-attestation.md §6). The verifier is Org2's and may not change a device's status
 * (the contract's ReinstateDevice is the operator's), so the operator gateway does it when the
 * verifier's answer passes through it. The answer alone is not trusted: the affirming result must
 * be on the ledger and newer than the suspension. Returns the answer with `actions` updated; a
 * failure is reported in `actions.failures` and never undoes the recorded result.
 */
export function newReinstatement(options: ReinstatementOptions): (answer: AppraisalAnswer) => Promise<AppraisalAnswer> {
  const ledger = ledgerPort(options.ledger);

  /** Why the ledger does not show `answer` as the device's latest, affirming result; null when it does. */
  const unconfirmed = async (answer: AppraisalAnswer, device: DeviceRecord): Promise<string | null> => {
    const { result, recorded } = answer;
    if (result.DeviceID !== device.DeviceID || result.Status !== 'affirming') return 'the answer is not affirming';
    if ('resultId' in recorded) {
      const record = await ledger.attestations.get(device.DeviceID, recorded.resultId);
      if (record === null) return `result ${recorded.resultId} is not on the ledger`;
      if (record.Status !== 'affirming') return `result ${recorded.resultId} is ${record.Status} on the ledger`;
      if (device.LastAttestation?.ResultID !== recorded.resultId) return 'a later attestation is on the ledger';
      return null;
    }
    // A batch member: the contract proves its inclusion; a result issued before the device's last
    // change (the suspension) does not lift it.
    await ledger.attestations.verifyInclusion(
      recorded.batchId,
      canonicalJson(result),
      canonicalJson({ LeafIndex: recorded.proof.LeafIndex, AuditPath: recorded.proof.AuditPath }),
    );
    return Date.parse(result.IssuedAt) > Date.parse(device.UpdatedAt) ? null : 'the result predates the suspension';
  };

  return async (answer) => {
    if (answer.status !== 'affirming') return answer;
    const failures = [...answer.actions.failures];
    try {
      const device = await ledger.devices.require(answer.deviceId);
      if (device.Status !== 'suspended' || device.StatusReason !== SuspendedByAttestation) return answer;
      const why = await unconfirmed(answer, device);
      if (why !== null) {
        failures.push(`reinstate: ${why}`);
      } else {
        // Reinstated on the strength of the device's own affirming evidence: the device asked.
        await asPrincipal(devicePrincipal(device.DeviceID), () =>
          ledger.devices.reinstate({
            DeviceID: device.DeviceID,
            Reason: `attestation affirming (verifier ${answer.result.VerifierID})`,
          }),
        );
        return { ...answer, actions: { ...answer.actions, reinstated: true } };
      }
    } catch (err) {
      failures.push(`reinstate: ${err instanceof Error ? err.message : String(err)}`);
    }
    return { ...answer, actions: { ...answer.actions, failures } };
  };
}
