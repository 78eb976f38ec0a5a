/**
 * Reading each aggregate's records, with their not-found codes: shared by the transaction modules,
 * since a key's rotation reads its nonce, an attestation its device, a contraindication the
 * device's keys.
 */
import {
  type AttestationBatchRecord,
  type DeviceRecord,
  ErrorCode,
  type KeyRecord,
  LedgerError,
  type NonceRecord,
  type TrustAnchorRecord,
} from '@keyfleet/protocol';
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

export const loadDevice = (store: Store, deviceId: string) =>
  load<DeviceRecord>(store, store.key(KeyType.Device, deviceId), ErrorCode.DeviceNotFound, `device ${deviceId}`);

export const loadKey = (store: Store, keyId: string) =>
  load<KeyRecord>(store, store.key(KeyType.Key, keyId), ErrorCode.KeyNotFound, `key ${keyId}`);

export const loadBatch = (store: Store, batchId: string) =>
  load<AttestationBatchRecord>(store, store.key(KeyType.Batch, batchId), ErrorCode.BatchNotFound, `batch ${batchId}`);

/** A nonce (or enrolment token) digest is consumed once; the second use names the first transaction. */
export async function assertNonceUnused(store: Store, digest: string): Promise<void> {
  const used = await store.get<NonceRecord>(store.key(KeyType.Nonce, digest));
  if (used !== null) {
    throw new LedgerError(ErrorCode.NonceReplayed, `nonce ${digest} was consumed in transaction ${used.TxID}`);
  }
}
