/** Reference values' own rules: pure functions over requests and records, no ledger access. */
import {
  ErrorCode,
  LedgerError,
  type Proof,
  type ReferenceValuesRecord,
  type SetReferenceValuesRequest,
} from '@keyfleet/protocol';

/** The group's next revision of its reference values; a measurement is named once. */
export function nextReferenceValues(
  request: SetReferenceValuesRequest,
  previous: ReferenceValuesRecord | null,
  at: string,
  by: string,
  proof: Proof,
): ReferenceValuesRecord {
  const names = new Set(request.Measurements.map((measurement) => measurement.Name));
  if (names.size !== request.Measurements.length) {
    throw new LedgerError(ErrorCode.InvalidArgument, 'request.Measurements repeats a measurement name');
  }
  return {
    DocType: 'reference-values',
    Group: request.Group,
    Revision: (previous?.Revision ?? 0) + 1,
    PolicyID: request.PolicyID,
    Measurements: request.Measurements,
    UpdatedAt: at,
    UpdatedBy: by,
    Proof: proof,
  };
}
