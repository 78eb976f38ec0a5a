import { GatewayError, GatewayErrorCode } from '../errors';
import type { HistoryEntry as LedgerHistoryEntry, Page as LedgerPage } from '@keyfleet/protocol';
import type { HistoryEntry, Page, SignedRecord } from './services';

/** A ledger record with the metadata-signing JWS it was written under. */
export function signed<T extends { Proof: { JWS: string } }>(record: T): SignedRecord<T> {
  return { record, signature: record.Proof.JWS };
}

/** The ledger's history entries in the REST API's shape. */
export function toHistory<T>(entries: readonly LedgerHistoryEntry<T>[]): HistoryEntry[] {
  return entries.map((e) => ({ transactionId: e.TxID, timestamp: e.Timestamp, isDelete: e.IsDelete, value: e.Value }));
}

/**
 * A ledger page in the REST API's shape. The ledger's bookmark is a state key (composite keys hold
 * NUL characters), so callers get it base64url-encoded: opaque, and safe in a URL or a shell.
 */
export function toPage<T>(page: LedgerPage<T>): Page<T> {
  return { items: page.Records, bookmark: Buffer.from(page.Bookmark, 'utf8').toString('base64url') };
}

/**
 * The ledger's bookmark from the one {@link toPage} handed out: BAD_REQUEST/BOOKMARK_INVALID for
 * anything that is not canonical base64url of UTF-8 (the ledger then checks it belongs to the query).
 */
export function fromBookmark(bookmark: string): string {
  const bytes = Buffer.from(bookmark, 'base64url');
  let text: string | undefined;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    text = undefined;
  }
  if (text === undefined || bytes.toString('base64url') !== bookmark) {
    throw new GatewayError(
      GatewayErrorCode.BadRequest,
      'the bookmark is not one a page handed out',
      'BOOKMARK_INVALID',
    );
  }
  return text;
}
