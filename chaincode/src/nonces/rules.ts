/** Single-use nonces' own rules: pure functions over records, no ledger access. */
import {
  type Caller,
  ErrorCode,
  LedgerError,
  NoncePurpose,
  type NonceRecord,
  Role,
  type RotationAckOutcome,
  type TxTime,
} from '@keyfleet/protocol';

/** The transaction consuming a nonce: when, by whom, which. */
export interface Consumer {
  now: TxTime;
  by: string;
  txId: string;
}

export function nonceRecord(by: Consumer, digest: string, purpose: NoncePurpose, subject: string): NonceRecord {
  return {
    DocType: 'nonce',
    NonceDigest: digest,
    Purpose: purpose,
    Subject: subject,
    ConsumedAt: by.now.iso,
    ConsumedBy: by.by,
    TxID: by.txId,
  };
}

/** Verifiers consume attestation nonces, and only those; everyone else rotation nonces. */
export function assertConsumerOf(caller: Caller, purpose: NoncePurpose): void {
  const attestation = purpose === NoncePurpose.Attestation;
  if (attestation && caller.Role !== Role.Verifier) {
    throw new LedgerError(ErrorCode.AccessDenied, 'only verifiers consume attestation nonces');
  }
  if (!attestation && caller.Role === Role.Verifier) {
    throw new LedgerError(ErrorCode.AccessDenied, 'verifiers do not consume rotation nonces');
  }
}

export function assertDistinctDigests(digests: readonly string[], path: string): void {
  if (new Set(digests).size !== digests.length) {
    throw new LedgerError(ErrorCode.InvalidArgument, `${path} names a nonce digest twice`);
  }
}

/**
 * A rotation acknowledgement against what its digest already holds: recorded before for the same
 * key is answered with its first transaction (a device may repeat itself); used for anything else
 * is a replay.
 */
export function ackOutcome(
  ack: { KeyID: string; Version: number; NonceDigest: string },
  earlier: NonceRecord | null,
  txId: string,
): RotationAckOutcome {
  if (earlier !== null && (earlier.Purpose !== NoncePurpose.Rotation || earlier.Subject !== ack.KeyID)) {
    throw new LedgerError(ErrorCode.NonceReplayed, `nonce ${ack.NonceDigest} was consumed for another purpose`);
  }
  return { ...ack, TxID: earlier?.TxID ?? txId, AlreadyRecorded: earlier !== null };
}
