/** The device registry's own rules: pure functions over records, no ledger access. */
import {
  assertDeviceTransition,
  type DeviceRecord,
  DeviceStatus,
  ErrorCode,
  LedgerError,
  type EnrolDeviceRequest,
  type Proof,
} from '@keyfleet/protocol';

/** A status change's request: suspend, reinstate or revoke. */
export interface StatusRequest {
  DeviceID: string;
  Reason: string;
  Comment?: string | null;
}

/** A revoked device takes no new key, nonce or attestation. */
export function assertNotRevoked(device: DeviceRecord): void {
  if (device.Status === DeviceStatus.Revoked) {
    throw new LedgerError(ErrorCode.DeviceRevoked, `device ${device.DeviceID} is revoked`);
  }
}

export function enrolledDevice(request: EnrolDeviceRequest, at: string, by: string, proof: Proof): DeviceRecord {
  return {
    DocType: 'device',
    DeviceID: request.DeviceID,
    Group: request.Group,
    Location: request.Location,
    Function: request.Function,
    Shard: request.Shard,
    CertFingerprint: request.CertFingerprint,
    Status: DeviceStatus.Active,
    StatusReason: null,
    RevocationReason: null,
    EnrolledAt: at,
    EnrolledBy: by,
    UpdatedAt: at,
    LastAttestation: null,
    Proof: proof,
  };
}

/** The device in status `to`, if the lifecycle allows it (a revocation's reason is kept apart). */
export function withStatus(
  device: DeviceRecord,
  to: DeviceStatus,
  request: StatusRequest,
  at: string,
  proof: Proof,
): DeviceRecord {
  assertDeviceTransition(device.DeviceID, device.Status, to);
  const revoked = to === DeviceStatus.Revoked;
  return {
    ...device,
    Status: to,
    StatusReason: revoked ? (request.Comment ?? null) : request.Reason,
    RevocationReason: revoked ? (request.Reason as DeviceRecord['RevocationReason']) : null,
    UpdatedAt: at,
    Proof: proof,
  };
}

/** After a contraindicated attestation: the device suspended if it was active, its last verdict kept. */
export function contraindicatedDevice(
  device: DeviceRecord,
  summary: DeviceRecord['LastAttestation'],
  at: string,
  proof: Proof,
): { device: DeviceRecord; suspended: boolean } {
  const suspended = device.Status === DeviceStatus.Active;
  return {
    suspended,
    device: {
      ...device,
      Status: suspended ? DeviceStatus.Suspended : device.Status,
      StatusReason: suspended ? 'attestation contraindicated' : device.StatusReason,
      LastAttestation: summary,
      UpdatedAt: at,
      Proof: proof,
    },
  };
}
