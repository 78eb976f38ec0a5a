import type { ChaincodeStub } from 'fabric-shim-api';

import { canonicalBytes, ErrorCode, type HistoryEntry, LedgerError, type Page } from '@keyfleet/protocol';

/** Object types of composite keys: one per record kind and one per index. */
export const KeyType = {
  Anchor: 'anchor',
  Device: 'device',
  DeviceByGroup: 'device~group',
  Key: 'key',
  KeyByOwner: 'key~owner',
  Nonce: 'nonce',
  Request: 'request',
  Attestation: 'attestation',
  Batch: 'attestation-batch',
  ReferenceValues: 'reference-values',
  ShardMap: 'shard-map',
  /** A device's moves on this channel, under (DeviceID, MoveID) (contract-shard-moves.ts). */
  ShardMove: 'shard-move',
  /** Moves not yet committed or aborted on this channel, under (MoveID, DeviceID): what a restart resumes. */
  ShardMoveOpen: 'shard-move~open',
  /** The signed request of each move transaction, under its TxID (kept once, not per device). */
  ShardMoveRequest: 'shard-move~request',
  /** A device frozen here by a move, or gone from here (device-move-guard.ts). */
  DeviceMove: 'device-move',
  /** A key a destination holds staged (device-move-guard.ts). */
  KeyArriving: 'key-arriving',
} as const;

/**
 * Keys due for rotation sit under simple keys `due:<15-digit epoch ms>:<KeyID>`, so that one range
 * query from `due:` up to a time T lists every key due by T in due order (LevelDB has no rich queries,
 * and Fabric refuses range queries over composite keys).
 */
export const DuePrefix = 'due:';
export function dueKey(dueMs: number, keyId: string): string {
  return `${DuePrefix}${String(dueMs).padStart(15, '0')}:${keyId}`;
}
export function dueRangeEnd(atMs: number): string {
  return `${DuePrefix}${String(atMs + 1).padStart(15, '0')}:`;
}

function timestampToIso(timestamp: { seconds: { toNumber(): number } | number; nanos: number }): string {
  const seconds = typeof timestamp.seconds === 'number' ? timestamp.seconds : timestamp.seconds.toNumber();
  return new Date(seconds * 1000 + Math.floor(timestamp.nanos / 1_000_000)).toISOString();
}

/** Thin JSON access to the world state; every value is written as canonical JSON. */
export class Store {
  private readonly stub: ChaincodeStub;

  constructor(stub: ChaincodeStub) {
    this.stub = stub;
  }

  key(type: string, ...attributes: string[]): string {
    return this.stub.createCompositeKey(type, attributes);
  }

  async get<T>(key: string): Promise<T | null> {
    const bytes = await this.stub.getState(key);
    if (bytes.length === 0) return null;
    return JSON.parse(Buffer.from(bytes).toString('utf8')) as T;
  }

  async put(key: string, value: unknown): Promise<void> {
    await this.stub.putState(key, canonicalBytes(value));
  }

  async delete(key: string): Promise<void> {
    await this.stub.deleteState(key);
  }

  /** Every value under a partial composite key (for small sets, such as trust anchors or a device's keys). */
  async all<T>(type: string, attributes: string[]): Promise<T[]> {
    const iterator = await this.stub.getStateByPartialCompositeKey(type, attributes);
    const out: T[] = [];
    try {
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
        out.push(JSON.parse(Buffer.from(next.value.value).toString('utf8')) as T);
      }
    } finally {
      await iterator.close();
    }
    return out;
  }

  /** How many records of one type there are: the keys are counted, the values not parsed. */
  async count(type: string): Promise<number> {
    const iterator = await this.stub.getStateByPartialCompositeKey(type, []);
    let count = 0;
    try {
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) count++;
    } finally {
      await iterator.close();
    }
    return count;
  }

  async pageByPartialKey<T>(type: string, attributes: string[], pageSize: number, bookmark: string): Promise<Page<T>> {
    // A bookmark is the key a page of this same query stopped at; any other would start the
    // query somewhere it never reaches (or outside it), so it is refused rather than followed.
    if (bookmark !== '' && !bookmark.startsWith(this.stub.createCompositeKey(type, attributes))) {
      throw new LedgerError(ErrorCode.InvalidArgument, 'bookmark is not one this query handed out');
    }
    const { iterator, metadata } = await this.stub.getStateByPartialCompositeKeyWithPagination(
      type,
      attributes,
      pageSize,
      bookmark,
    );
    return this.drain<T>(iterator, metadata);
  }

  async pageByRange<T>(start: string, end: string, pageSize: number, bookmark: string): Promise<Page<T>> {
    if (bookmark !== '' && (bookmark < start || bookmark >= end)) {
      throw new LedgerError(ErrorCode.InvalidArgument, 'bookmark is not one this query handed out');
    }
    const { iterator, metadata } = await this.stub.getStateByRangeWithPagination(start, end, pageSize, bookmark);
    return this.drain<T>(iterator, metadata);
  }

  private async drain<T>(
    iterator: Awaited<ReturnType<ChaincodeStub['getStateByRange']>>,
    // A real peer answers an empty page with no metadata at all (the Map stub always sends it).
    metadata: { fetchedRecordsCount: number; bookmark: string } | undefined,
  ): Promise<Page<T>> {
    const records: T[] = [];
    try {
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
        records.push(JSON.parse(Buffer.from(next.value.value).toString('utf8')) as T);
      }
    } finally {
      await iterator.close();
    }
    return {
      Records: records,
      FetchedCount: metadata?.fetchedRecordsCount ?? records.length,
      Bookmark: metadata?.bookmark ?? '',
    };
  }

  async history<T>(key: string): Promise<HistoryEntry<T>[]> {
    const iterator = await this.stub.getHistoryForKey(key);
    const out: HistoryEntry<T>[] = [];
    try {
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
        const modification = next.value;
        out.push({
          TxID: modification.txId,
          Timestamp: timestampToIso(modification.timestamp),
          IsDelete: modification.isDelete,
          Value:
            modification.isDelete || modification.value.length === 0
              ? null
              : (JSON.parse(Buffer.from(modification.value).toString('utf8')) as T),
        });
      }
    } finally {
      await iterator.close();
    }
    return out;
  }
}
