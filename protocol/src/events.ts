import { AttestationStatus, DeviceStatus, EventName } from './types.js';

/**
 * The chaincode events that clients act on, typed once beside the contract that emits them
 * (contract.ts, `apply`): gateways follow them to refuse suspended and revoked devices at once and
 * to learn which keys an attestation failure made due. Every payload is canonical JSON and also
 * carries the writing transaction's `TxID`.
 */

/** DeviceSuspended, DeviceReinstated, DeviceRevoked: an operator changed a device's status. */
export interface DeviceStatusEvent {
  readonly DeviceID: string;
  /** The status before the change. */
  readonly From: DeviceStatus;
  readonly Reason: string;
  readonly TxID: string;
}

/** AttestationRecorded: one result; a contraindicated one may suspend the device and make keys due. */
export interface AttestationRecordedEvent {
  readonly DeviceID: string;
  readonly ResultID: string;
  readonly Status: AttestationStatus;
  readonly VerifierID: string;
  /** True when this result suspended the (active) device. */
  readonly DeviceSuspended: boolean;
  /** Keys of the device whose rotation policy has the `attestation-failure` trigger, now due. */
  readonly KeysDueForRotation: readonly string[];
  readonly TxID: string;
}

/** AttestationBatchRecorded: a Merkle batch; its contraindicated members as above. */
export interface AttestationBatchRecordedEvent {
  readonly BatchID: string;
  readonly VerifierID: string;
  readonly MerkleRoot: string;
  readonly Count: number;
  readonly SuspendedDevices: readonly string[];
  readonly KeysDueForRotation: readonly string[];
  readonly TxID: string;
}

/** A decoded event that clients act on; other events decode to `null` in {@link decodeContractEvent}. */
export type ContractEvent =
  | {
      readonly name:
        typeof EventName.DeviceSuspended | typeof EventName.DeviceReinstated | typeof EventName.DeviceRevoked;
      readonly payload: DeviceStatusEvent;
    }
  | { readonly name: typeof EventName.AttestationRecorded; readonly payload: AttestationRecordedEvent }
  | { readonly name: typeof EventName.AttestationBatchRecorded; readonly payload: AttestationBatchRecordedEvent };

/** Thrown by {@link decodeContractEvent} for a payload that is not what the contract emits. */
export class MalformedEventError extends Error {
  override readonly name = 'MalformedEventError';
}

const deviceStatuses = new Set<string>(Object.values(DeviceStatus));
const attestationStatuses = new Set<string>(Object.values(AttestationStatus));

/**
 * Decodes one chaincode event (name and payload bytes, as Fabric delivers them). Answers `null`
 * for an event no client acts on (its name is still an {@link EventName}, or one from a newer
 * contract), and throws {@link MalformedEventError} for a payload of the wrong shape.
 */
export function decodeContractEvent(name: string, payload: Uint8Array): ContractEvent | null {
  switch (name) {
    case EventName.DeviceSuspended:
    case EventName.DeviceReinstated:
    case EventName.DeviceRevoked: {
      const p = object(name, payload);
      return {
        name,
        payload: {
          DeviceID: str(name, p, 'DeviceID'),
          From: oneOf(name, p, 'From', deviceStatuses) as DeviceStatus,
          Reason: typeof p.Reason === 'string' ? p.Reason : malformed(name, 'Reason'),
          TxID: str(name, p, 'TxID'),
        },
      };
    }
    case EventName.AttestationRecorded: {
      const p = object(name, payload);
      return {
        name,
        payload: {
          DeviceID: str(name, p, 'DeviceID'),
          ResultID: str(name, p, 'ResultID'),
          Status: oneOf(name, p, 'Status', attestationStatuses) as AttestationStatus,
          VerifierID: str(name, p, 'VerifierID'),
          DeviceSuspended: bool(name, p, 'DeviceSuspended'),
          KeysDueForRotation: strings(name, p, 'KeysDueForRotation'),
          TxID: str(name, p, 'TxID'),
        },
      };
    }
    case EventName.AttestationBatchRecorded: {
      const p = object(name, payload);
      const count = p.Count;
      if (typeof count !== 'number' || !Number.isInteger(count) || count < 0) malformed(name, 'Count');
      return {
        name,
        payload: {
          BatchID: str(name, p, 'BatchID'),
          VerifierID: str(name, p, 'VerifierID'),
          MerkleRoot: str(name, p, 'MerkleRoot'),
          Count: count,
          SuspendedDevices: strings(name, p, 'SuspendedDevices'),
          KeysDueForRotation: strings(name, p, 'KeysDueForRotation'),
          TxID: str(name, p, 'TxID'),
        },
      };
    }
    default:
      return null;
  }
}

function malformed(name: string, field: string): never {
  throw new MalformedEventError(`${name} event: ${field} is missing or of the wrong type`);
}

function object(name: string, payload: Uint8Array): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    throw new MalformedEventError(`${name} event: the payload is not JSON`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) malformed(name, 'payload');
  return parsed as Record<string, unknown>;
}

function str(name: string, p: Record<string, unknown>, field: string): string {
  const value = p[field];
  if (typeof value !== 'string' || value === '') malformed(name, field);
  return value;
}

function oneOf(name: string, p: Record<string, unknown>, field: string, allowed: ReadonlySet<string>): string {
  const value = str(name, p, field);
  if (!allowed.has(value)) malformed(name, field);
  return value;
}

function bool(name: string, p: Record<string, unknown>, field: string): boolean {
  const value = p[field];
  if (typeof value !== 'boolean') malformed(name, field);
  return value;
}

function strings(name: string, p: Record<string, unknown>, field: string): string[] {
  const value = p[field];
  if (!Array.isArray(value) || !value.every((v): v is string => typeof v === 'string' && v !== '')) {
    malformed(name, field);
  }
  return value;
}
