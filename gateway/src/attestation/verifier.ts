import {
  type AttestationResult,
  type AttestationStatus,
  type DeviceRecord,
  EarProfile,
  EarSubmodule,
  IdRuleText,
  isId,
  PolicyIdMaxLength,
  type ReferenceValuesRecord,
  type TrustworthinessVector,
} from '@keyfleet/protocol';
import { createHash } from 'node:crypto';
import { asPrincipal, devicePrincipal } from '../ledger/principal-context';
import type { EcSigningKey } from '../crypto/ec-key';
import type { LedgerClient } from '../ledger/ledger-client';
import { ledgerPort } from '../ledger/port';
import { appraise } from './appraisal';
import type { AttestationBatcher, BatchInclusionProof } from './batcher';
import type { ChallengeIssuer } from './challenge';
import { signEar } from './ear';
import { AttestationError, AttestationErrorCode, attestationRefusalOf } from './errors';
import { newEvidenceVerifier } from './evidence';

/** What happens after a result is recorded (issue item 5). */
export interface PolicyActionsOptions {
  /**
   * A ledger client of an operator (Org1 identity, metadata-signing anchor). With it, an affirming
   * result reinstates a device that attestation had suspended; a device an operator suspended for
   * another reason stays suspended. Without it (the second org's verifier) nothing is reinstated.
   */
  readonly reinstateWith?: LedgerClient;
  /**
   * Called once a contraindicated result is recorded, e.g. to rotate the device's keys now. The
   * contract has already suspended the device and made due every key of it whose rotation policy
   * has the `attestation-failure` trigger. A failure here is reported, not thrown.
   */
  readonly onContraindicated?: (deviceId: string) => Promise<void>;
}

export interface VerifierOptions {
  /** The HSM device CA's certificate, PEM: the only root device certificates may chain to. */
  readonly deviceCaCertificatePem: string;
  /** Built with the verifier trust anchor (`anchorId` = `verifierId`) over a verifier identity (Org2MSP). */
  readonly ledger: LedgerClient;
  /** The HSM `verifier` key: signs the EAR. */
  readonly resultKey: EcSigningKey;
  /** The verifier's trust-anchor id on the ledger: the results' VerifierID and the EAR's `kid`. */
  readonly verifierId: string;
  /** Names this verifier's appraisal rules, e.g. `keyfleet-appraisal-v1` (an id of at most 64 characters, @keyfleet/protocol ids.ts). */
  readonly policyId: string;
  /** Checks the `eat_nonce` (made with the same challenge key as the issuer the device asked). */
  readonly challenges: ChallengeIssuer;
  readonly now?: () => Date;
  /** When given, results are anchored in Merkle batches; otherwise one RecordAttestation each. */
  readonly batcher?: AttestationBatcher;
  readonly actions?: PolicyActionsOptions;
  /** Oldest acceptable evidence `iat`, seconds; default 300. */
  readonly maxEvidenceAgeSeconds?: number;
  /** The `ear.verifier-id` build; default `keyfleet-verifier/0.1.0`. */
  readonly build?: string;
  /**
   * Answers `revoked` for a device the ledger's events already show revoked (events/): its
   * evidence is refused once its signature is checked, before the challenge or the ledger is
   * consulted. A suspended device still attests: that is how it shows it is healthy again.
   */
  readonly deviceRefusal?: (deviceId: string) => 'suspended' | 'revoked' | undefined;
}

export type Recorded =
  | { readonly transactionId: string; readonly resultId: string }
  | { readonly batchId: string; readonly proof: BatchInclusionProof };

export interface ActionsTaken {
  readonly suspended: boolean;
  readonly reinstated: boolean;
  readonly rotationRequested: boolean;
  /** Policy actions that failed after the result was recorded (the result stands). */
  readonly failures: readonly string[];
}

export interface AppraisalOutcome {
  /** The attestation result: an EAR JWT signed by the HSM verifier key. */
  readonly ear: string;
  readonly status: AttestationStatus;
  readonly deviceId: string;
  /** The ledger record (a batch's Merkle leaf). */
  readonly result: AttestationResult;
  readonly trustworthinessVector: TrustworthinessVector;
  readonly findings: readonly string[];
  readonly recorded: Recorded;
  readonly actions: ActionsTaken;
}

export interface Verifier {
  /**
   * Appraises evidence and records the result. Refusals throw an AttestationError and write
   * nothing; ledger and HSM faults throw a GatewayError.
   */
  appraise(evidence: unknown): Promise<AppraisalOutcome>;
}

async function ledgerCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw attestationRefusalOf(err) ?? err;
  }
}

/** `<policyId>:<group policy>@<revision>`: the rules and the exact reference values applied. */
function appraisalPolicyId(policyId: string, refs: ReferenceValuesRecord): string {
  const full = `${policyId}:${refs.PolicyID}@${refs.Revision}`;
  if (full.length <= 128) return full;
  const short = createHash('sha256').update(refs.PolicyID).digest('hex').slice(0, 32);
  return `${policyId}:${short}@${refs.Revision}`;
}

/** The attestation verifier (docs/protocol-attestation.md): the gateway's, or a standalone Org2 process's. */
export function newVerifier(options: VerifierOptions): Verifier {
  if (!isId(options.policyId, PolicyIdMaxLength)) {
    throw new RangeError(`policyId must be ${IdRuleText}, at most ${PolicyIdMaxLength} characters`);
  }
  const now = options.now ?? (() => new Date());
  const evidenceVerifier = newEvidenceVerifier({
    deviceCaCertificatePem: options.deviceCaCertificatePem,
    now,
    ...(options.maxEvidenceAgeSeconds === undefined ? {} : { maxAgeSeconds: options.maxEvidenceAgeSeconds }),
  });
  const { verifierId } = options;
  const ledger = ledgerPort(options.ledger);
  const build = options.build ?? 'keyfleet-verifier/0.1.0';

  const assertNonceUnused = async (digest: string): Promise<void> => {
    const used = await ledger.nonces.get(digest);
    if (used !== null) {
      throw new AttestationError(
        AttestationErrorCode.NonceReplayed,
        `nonce ${digest} was consumed in transaction ${used.TxID}`,
      );
    }
  };

  // The device whose evidence was appraised is who asked for its result (and its nonce's consumption).
  const record = (result: AttestationResult): Promise<{ recorded: Recorded; suspended: boolean | null }> =>
    asPrincipal(devicePrincipal(result.DeviceID), () => recordFor(result));
  const recordFor = async (result: AttestationResult): Promise<{ recorded: Recorded; suspended: boolean | null }> => {
    const { batcher } = options;
    if (batcher === undefined) {
      const written = await ledgerCall(() => ledger.attestations.record({ ...result }));
      return {
        recorded: { transactionId: written.transactionId, resultId: written.record.ResultID },
        suspended: written.record.DeviceSuspended,
      };
    }
    // The batch transaction consumes this nonce with the others'. A nonce already on the ledger is
    // refused here, by a read, so that a replay does not make a whole batch fail and split.
    await ledgerCall(() => assertNonceUnused(result.NonceDigest));
    const proof = await batcher.add(result);
    return { recorded: { batchId: proof.BatchID, proof }, suspended: null };
  };

  const act = async (device: DeviceRecord, status: AttestationStatus, suspended: boolean): Promise<ActionsTaken> => {
    const failures: string[] = [];
    let reinstated = false;
    let rotationRequested = false;
    const { reinstateWith, onContraindicated } = options.actions ?? {};
    if (status === 'contraindicated' && onContraindicated !== undefined) {
      try {
        await onContraindicated(device.DeviceID);
        rotationRequested = true;
      } catch (err) {
        failures.push(`rotation: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (
      status === 'affirming' &&
      reinstateWith !== undefined &&
      device.Status === 'suspended' &&
      device.StatusReason === 'attestation contraindicated'
    ) {
      try {
        await asPrincipal(devicePrincipal(device.DeviceID), () =>
          ledgerPort(reinstateWith).devices.reinstate({
            DeviceID: device.DeviceID,
            Reason: `attestation affirming (verifier ${verifierId})`,
          }),
        );
        reinstated = true;
      } catch (err) {
        failures.push(`reinstate: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return { suspended, reinstated, rotationRequested, failures };
  };

  return {
    async appraise(evidence) {
      const verified = await evidenceVerifier.verify(evidence);
      if (options.deviceRefusal?.(verified.deviceId) === 'revoked') {
        throw new AttestationError(AttestationErrorCode.DeviceRevoked, `device ${verified.deviceId} is revoked`);
      }
      const { nonceDigest } = await options.challenges.check(verified.nonce, verified.deviceId);
      const device = await ledgerCall(() => ledger.devices.get(verified.deviceId));
      if (device === null) {
        throw new AttestationError(AttestationErrorCode.DeviceUnknown, `device ${verified.deviceId} does not exist`);
      }
      if (device.Status === 'revoked') {
        throw new AttestationError(AttestationErrorCode.DeviceRevoked, `device ${device.DeviceID} is revoked`);
      }
      if (device.CertFingerprint !== verified.certificateFingerprint) {
        throw new AttestationError(
          AttestationErrorCode.KeyNotEnrolled,
          `the evidence certificate is not the one enrolled for ${device.DeviceID}`,
        );
      }
      const refs = await ledgerCall(() => ledger.referenceValues.get(device.Group));
      if (refs === null) {
        throw new AttestationError(
          AttestationErrorCode.ReferenceValuesMissing,
          `reference values of group ${device.Group} does not exist`,
        );
      }
      const appraisal = appraise(verified, refs.Measurements);
      const issuedAt = now();
      const policyId = appraisalPolicyId(options.policyId, refs);
      const result: AttestationResult = {
        DeviceID: device.DeviceID,
        NonceDigest: nonceDigest,
        EvidenceDigest: verified.evidenceDigest,
        Status: appraisal.status,
        PolicyID: policyId,
        VerifierID: verifierId,
        IssuedAt: issuedAt.toISOString(),
      };
      // Signed before anything is written: an HSM fault then leaves the ledger untouched.
      const ear = await signEar(options.resultKey, verifierId, {
        eat_profile: EarProfile,
        iat: Math.floor(issuedAt.getTime() / 1000),
        eat_nonce: verified.nonce,
        'ear.verifier-id': { build, developer: verifierId },
        submods: {
          [EarSubmodule]: {
            'ear.status': appraisal.status,
            'ear.trustworthiness-vector': appraisal.trustworthinessVector,
            'ear.appraisal-policy-id': policyId,
          },
        },
        sub: device.DeviceID,
        'keyfleet.result': result,
      });
      const { recorded, suspended } = await record(result);
      const actions = await act(
        device,
        appraisal.status,
        suspended ?? (appraisal.status === 'contraindicated' && device.Status === 'active'),
      );
      return {
        ear,
        status: appraisal.status,
        deviceId: device.DeviceID,
        result,
        trustworthinessVector: appraisal.trustworthinessVector,
        findings: appraisal.findings,
        recorded,
        actions,
      };
    },
  };
}
