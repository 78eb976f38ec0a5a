/**
 * Reading each aggregate's records, with their not-found codes: shared by the transaction modules,
 * since a key's rotation reads its nonce, an attestation its device, a contraindication the
 * device's keys.
 */
import {
  type AttestationBatchRecord,
  type DeviceRecord,
  DeviceUse,
  ErrorCode,
  type KeyRecord,
  LedgerError,
  type NonceRecord,
  type TrustAnchorRecord,
} from '@keyfleet/protocol';
import { assertDeviceHere, assertKeyHere, assertKeyNotArriving } from './device-move-guard.js';
import { KeyType, type Store } from './store.js';
import { notFound } from './transaction/read.js';

async function load<T>(store: Store, key: string, code: ErrorCode, what: string): Promise<T> {
  const record = await store.get<T>(key);
  if (record === null) notFound(code, what);
  return record;
}

export const loadAnchor = (store: Store, anchorId: string) =>
  load<TrustAnchorRecord>(
    store,
    store.key(KeyType.Anchor, anchorId),
    ErrorCode.AnchorNotFound,
    `trust anchor ${anchorId}`,
  );

/**
 * A device of this shard. One a move froze or took away is refused as `use` demands (shard moves:
 * reads of a frozen device are answered, writes are not; a departed device answers its history).
 */
export async function loadDevice(
  store: Store,
  deviceId: string,
  use: DeviceUse = DeviceUse.Write,
): Promise<DeviceRecord> {
  const device = await store.get<DeviceRecord>(store.key(KeyType.Device, deviceId));
  // The marker first: a device a move is bringing here is "retry shortly", not "not found".
  await assertDeviceHere(store, deviceId, use);
  if (device === null) notFound(ErrorCode.DeviceNotFound, `device ${deviceId}`);
  return device;
}

/** A key of this shard; a device's key follows its device's moves (see {@link loadDevice}). */
export async function loadKey(store: Store, keyId: string, use: DeviceUse = DeviceUse.Write): Promise<KeyRecord> {
  const key = await store.get<KeyRecord>(store.key(KeyType.Key, keyId));
  if (key === null) {
    await assertKeyNotArriving(store, keyId);
    notFound(ErrorCode.KeyNotFound, `key ${keyId}`);
  }
  await assertKeyHere(store, key, use);
  return key;
}

export const loadBatch = (store: Store, batchId: string) =>
  load<AttestationBatchRecord>(store, store.key(KeyType.Batch, batchId), ErrorCode.BatchNotFound, `batch ${batchId}`);

/** A nonce (or enrolment token) digest is consumed once; the second use names the first transaction. */
export async function assertNonceUnused(store: Store, digest: string): Promise<void> {
  const used = await store.get<NonceRecord>(store.key(KeyType.Nonce, digest));
  if (used !== null) {
    throw new LedgerError(ErrorCode.NonceReplayed, `nonce ${digest} was consumed in transaction ${used.TxID}`);
  }
}
