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

export async function loadAnchor(store: Store, anchorId: string): Promise<TrustAnchorRecord> {
  const anchor = await store.get<TrustAnchorRecord>(store.key(KeyType.Anchor, anchorId));
  if (anchor === null) notFound(ErrorCode.AnchorNotFound, `trust anchor ${anchorId}`);
  return anchor;
}

export async function loadDevice(store: Store, deviceId: string): Promise<DeviceRecord> {
  const device = await store.get<DeviceRecord>(store.key(KeyType.Device, deviceId));
  if (device === null) notFound(ErrorCode.DeviceNotFound, `device ${deviceId}`);
  return device;
}

export async function loadKey(store: Store, keyId: string): Promise<KeyRecord> {
  const key = await store.get<KeyRecord>(store.key(KeyType.Key, keyId));
  if (key === null) notFound(ErrorCode.KeyNotFound, `key ${keyId}`);
  return key;
}

export async function loadBatch(store: Store, batchId: string): Promise<AttestationBatchRecord> {
  const batch = await store.get<AttestationBatchRecord>(store.key(KeyType.Batch, batchId));
  if (batch === null) notFound(ErrorCode.BatchNotFound, `batch ${batchId}`);
  return batch;
}

/** A nonce (or enrolment token) digest is consumed once; the second use names the first transaction. */
export async function assertNonceUnused(store: Store, digest: string): Promise<void> {
  const used = await store.get<NonceRecord>(store.key(KeyType.Nonce, digest));
  if (used !== null) {
    throw new LedgerError(ErrorCode.NonceReplayed, `nonce ${digest} was consumed in transaction ${used.TxID}`);
  }
}
