/**
 * What a shard channel answers for a device a move touched (protocol shard-move.ts): the device's
 * marker, read by every transaction that reads or writes the device or one of its keys, so that a
 * write racing a move's prepare conflicts with it (Fabric's MVCC check) rather than slipping past.
 */
import {
  assertDeviceUsable,
  DeviceUse,
  type DeviceMoveMarker,
  type KeyArrivalMarker,
  type KeyRecord,
} from '@keyfleet/protocol';
import { KeyType, type Store } from './store.js';

export async function deviceMoveMarker(store: Store, deviceId: string): Promise<DeviceMoveMarker | null> {
  return store.get<DeviceMoveMarker>(store.key(KeyType.DeviceMove, deviceId));
}

/** Refuses `use` of a device frozen or gone here (DEVICE_MOVING, DEVICE_MOVED). */
export async function assertDeviceHere(store: Store, deviceId: string, use: DeviceUse): Promise<void> {
  assertDeviceUsable(await deviceMoveMarker(store, deviceId), use);
}

/** A device's key moves with its device; an application's key never moves. */
export async function assertKeyHere(store: Store, key: KeyRecord, use: DeviceUse): Promise<void> {
  if (key.Owner.Type === 'device') await assertDeviceHere(store, key.Owner.ID, use);
}

/** A key this channel does not hold: refused as retryable when a move is bringing it here. */
export async function assertKeyNotArriving(store: Store, keyId: string): Promise<void> {
  const arriving = await store.get<KeyArrivalMarker>(store.key(KeyType.KeyArriving, keyId));
  if (arriving !== null) await assertDeviceHere(store, arriving.DeviceID, DeviceUse.Read);
}
