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
  type ShardMoveRecord,
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

/**
 * The device and key records on this channel that are not live here: those of devices that left
 * (their tombstone, or an arrival staged over it). They stay for their history.
 */
export async function departedRecords(store: Store): Promise<{ devices: number; keys: number }> {
  let devices = 0;
  let keys = 0;
  for (const marker of await store.all<DeviceMoveMarker>(KeyType.DeviceMove, [])) {
    const left = marker.State === 'moved' ? marker : marker.State === 'arriving' ? marker.Previous : null;
    if (left === null) continue;
    const move = await store.get<ShardMoveRecord>(store.key(KeyType.ShardMove, left.DeviceID, left.MoveID));
    devices += 1;
    keys += move?.KeyIDs.length ?? 0;
  }
  return { devices, keys };
}
