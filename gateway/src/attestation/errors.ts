import { AttestationErrorCode, ErrorCode } from '@keyfleet/protocol';
import { GatewayError } from '../errors';
import { ledgerRefusalCode } from '../ledger/port';

export { AttestationErrorCode };

/** A refusal of attestation: a {@link GatewayError} with one of the {@link AttestationErrorCode}s. */
export class AttestationError extends GatewayError {
  override readonly name: string = 'AttestationError';
  declare readonly code: AttestationErrorCode;

  constructor(code: AttestationErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, undefined, options);
  }
}

export function isAttestationError(err: unknown): err is AttestationError {
  return err instanceof AttestationError;
}

/** Ledger refusals that are the evidence's fault, as attestation codes. */
const ledgerRefusals: Readonly<Partial<Record<ErrorCode, AttestationErrorCode>>> = {
  [ErrorCode.DeviceNotFound]: AttestationErrorCode.DeviceUnknown,
  [ErrorCode.DeviceRevoked]: AttestationErrorCode.DeviceRevoked,
  [ErrorCode.NonceReplayed]: AttestationErrorCode.NonceReplayed,
  [ErrorCode.ReferenceValuesNotFound]: AttestationErrorCode.ReferenceValuesMissing,
};

/** The AttestationError a ledger refusal stands for, or null when it is not the evidence's fault. */
export function attestationRefusalOf(err: unknown): AttestationError | null {
  const refusal = ledgerRefusalCode(err);
  const code = refusal === undefined ? undefined : ledgerRefusals[refusal];
  return code === undefined
    ? null
    : new AttestationError(code, err instanceof Error ? err.message : code, { cause: err });
}
