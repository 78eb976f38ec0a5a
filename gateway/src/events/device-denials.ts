import { type ContractEvent, type DeviceStatus, EventName } from '@keyfleet/protocol';

/** The statuses for which a device is refused. */
export type DeniedStatus = Exclude<DeviceStatus, 'active'>;

/** Where the set is kept between starts (events/denial-file.ts), beside the event checkpoint. */
export interface DenialStore {
  load(): Promise<ReadonlyMap<string, DeniedStatus>>;
  save(devices: ReadonlyMap<string, DeniedStatus>): Promise<void>;
}

export interface DeviceDenialsOptions {
  /** Which statuses {@link DeviceDenials.refusal} refuses; default both. */
  readonly refuse?: readonly DeniedStatus[];
  /** Called for each refusal answered, for metrics. */
  readonly onRefusal?: (status: DeniedStatus) => void;
}

/**
 * The devices the ledger's events show suspended or revoked: a small in-memory set that routes
 * consult before they do any work, so that every gateway refuses such a device as soon as the
 * event reaches it. The ledger stays the authority: a device not in the set is checked there as
 * before; the set only makes refusal immediate and cheap. Fed, in commit order, by
 * DeviceSuspended, DeviceRevoked, DeviceReinstated, and by attestation results that suspended a
 * device (AttestationRecorded, AttestationBatchRecorded).
 */
export interface DeviceDenials {
  /** The status `deviceId` is refused for (counted as a refusal), or undefined. A function, to pass as is. */
  readonly refusal: (deviceId: string) => DeniedStatus | undefined;
  /** Applies one decoded event; true when the set changed. */
  apply(event: ContractEvent): boolean;
  /** Devices in the set, by status. */
  counts(): Readonly<Record<DeniedStatus, number>>;
  /** The whole set, e.g. to save it. */
  entries(): ReadonlyMap<string, DeniedStatus>;
}

export function newDeviceDenials(
  initial: ReadonlyMap<string, DeniedStatus> = new Map(),
  options: DeviceDenialsOptions = {},
): DeviceDenials {
  const devices = new Map(initial);
  const refused = new Set<DeniedStatus>(options.refuse ?? ['suspended', 'revoked']);

  const set = (deviceId: string, status: DeniedStatus): boolean => {
    const before = devices.get(deviceId);
    // Revocation is final (the contract allows no transition out of it).
    if (before === status || before === 'revoked') return false;
    devices.set(deviceId, status);
    return true;
  };

  return {
    refusal: (deviceId) => {
      const status = devices.get(deviceId);
      if (status === undefined || !refused.has(status)) return undefined;
      options.onRefusal?.(status);
      return status;
    },
    apply(event) {
      switch (event.name) {
        case EventName.DeviceSuspended:
          return set(event.payload.DeviceID, 'suspended');
        case EventName.DeviceRevoked:
          return set(event.payload.DeviceID, 'revoked');
        case EventName.DeviceReinstated:
          return devices.get(event.payload.DeviceID) === 'suspended' && devices.delete(event.payload.DeviceID);
        case EventName.AttestationRecorded:
          return event.payload.DeviceSuspended && set(event.payload.DeviceID, 'suspended');
        case EventName.AttestationBatchRecorded: {
          let changed = false;
          for (const deviceId of event.payload.SuspendedDevices) changed = set(deviceId, 'suspended') || changed;
          return changed;
        }
      }
    },
    counts() {
      const counts = { suspended: 0, revoked: 0 };
      for (const status of devices.values()) counts[status] += 1;
      return counts;
    },
    entries: () => devices,
  };
}
