import type { AttestationStatus, FileMeasurement, Measurement, TrustworthinessVector } from '@keyfleet/protocol';

/**
 * AR4SI trustworthiness claims (draft-ietf-rats-ar4si §2.3) with the values keyfleet sets.
 * Tiers: 0 and 1 none, 2–31 affirming, 32–95 warning, 96–127 contraindicated.
 */
export const TrustClaim = {
  NoClaim: 0,
  /** instance-identity: recognised and not compromised. */
  RecognizedInstance: 2,
  /** configuration: a known and approved configuration. */
  ApprovedConfig: 2,
  /** configuration: known vulnerabilities (here: a debugger can attach). */
  UnsafeConfig: 32,
  /** executables: only approved files. */
  ApprovedRuntime: 2,
  /** executables: a measured file differs from, or is missing against, its reference value. */
  ContraindicatedRuntime: 96,
  /** file-system: every measured file is known. */
  ApprovedFiles: 2,
  /** file-system: files measured that have no reference value. */
  UnrecognizedFiles: 32,
} as const;

export interface Appraisal {
  readonly status: AttestationStatus;
  readonly trustworthinessVector: TrustworthinessVector;
  /** Why a claim is not affirming, for logs and the device; never part of the signed result. */
  readonly findings: readonly string[];
}

/** `ear.status`: the worst tier among the claims (draft-ietf-rats-ear §3.2). */
export function statusOf(vector: TrustworthinessVector): AttestationStatus {
  const values = Object.values(vector) as number[];
  if (values.some((value) => value >= 96)) return 'contraindicated';
  if (values.some((value) => value >= 32)) return 'warning';
  return 'affirming';
}

/**
 * Appraises verified evidence of an enrolled, unrevoked device against its group's reference
 * values (docs/protocol-attestation.md, "Appraisal"). Pure.
 */
export function appraise(
  evidence: { readonly measurements: readonly FileMeasurement[]; readonly dbgstat: number },
  reference: readonly Measurement[],
): Appraisal {
  const findings: string[] = [];
  const measured = new Map(evidence.measurements.map((m) => [m.name, m]));
  let executables: number = TrustClaim.ApprovedRuntime;
  for (const ref of reference) {
    const got = measured.get(ref.Name);
    if (got === undefined) {
      executables = TrustClaim.ContraindicatedRuntime;
      findings.push(`${ref.Name}: not measured`);
    } else if (got.alg !== ref.Algorithm || got.digest !== ref.Digest) {
      executables = TrustClaim.ContraindicatedRuntime;
      findings.push(`${ref.Name}: ${got.alg} digest differs from the reference value`);
    }
  }
  const known = new Set(reference.map((ref) => ref.Name));
  const unknown = evidence.measurements.filter((m) => !known.has(m.name)).map((m) => m.name);
  if (unknown.length > 0) findings.push(`no reference value for ${unknown.join(', ')}`);
  if (evidence.dbgstat === 0) findings.push('dbgstat: debugging is enabled');
  const vector: TrustworthinessVector = {
    'instance-identity': TrustClaim.RecognizedInstance,
    configuration: evidence.dbgstat === 0 ? TrustClaim.UnsafeConfig : TrustClaim.ApprovedConfig,
    executables,
    'file-system': unknown.length > 0 ? TrustClaim.UnrecognizedFiles : TrustClaim.ApprovedFiles,
    hardware: TrustClaim.NoClaim,
    'runtime-opaque': TrustClaim.NoClaim,
    'storage-opaque': TrustClaim.NoClaim,
    'sourced-data': TrustClaim.NoClaim,
  };
  return { status: statusOf(vector), trustworthinessVector: vector, findings };
}
