/** Single-use nonces: consumed once for every gateway and verifier. Rules in ./rules.ts. */
import { Context, Returns, Transaction } from 'fabric-contract-api';

import {
  AnchorKind,
  assertKeyPermission,
  canonicalJson,
  ErrorCode,
  EventName,
  NoncePurpose,
  type NonceRecord,
  Permission,
  requests,
  Role,
  type RotationAckOutcome,
  sha256HexField,
  TransactionName,
  validate,
} from '@keyfleet/protocol';
import { assertNotRevoked } from '../devices/rules.js';
import { assertNonceUnused, loadDevice, loadKey } from '../records.js';
import { KeyType, Store } from '../store.js';
import { TransactionGroup } from '../transaction/compose.js';
import { notFound, Overseers, reader } from '../transaction/read.js';
import { submit } from '../transaction/write.js';
import { ackOutcome, assertConsumerOf, assertDistinctDigests, nonceRecord } from './rules.js';

export class NonceTransactions extends TransactionGroup {
  /**
   * Consumes a nonce once, for every gateway and verifier: attestation nonces by verifiers (signed by
   * their verifier anchor, Subject = DeviceID), rotation nonces by key rotators (signed by the
   * metadata-signing anchor, Subject = KeyID).
   */
  @Transaction()
  @Returns('string')
  async ConsumeNonce(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return submit(
      ctx,
      {
        action: TransactionName.ConsumeNonce,
        roles: [Role.Operator, Role.Verifier, Role.Application, Role.Device],
        check: requests.consumeNonce,
        apply: async (write) => {
          const { request, store, caller } = write;
          assertConsumerOf(caller, request.Purpose);
          const attestation = request.Purpose === NoncePurpose.Attestation;
          const signer = await write.signedBy(attestation ? AnchorKind.Verifier : AnchorKind.MetadataSigning);
          if (attestation) assertNotRevoked(await loadDevice(store, request.Subject));
          else assertKeyPermission(await loadKey(store, request.Subject), caller, Permission.Rotate);
          await assertNonceUnused(store, request.NonceDigest);
          const nonce = nonceRecord(write, request.NonceDigest, request.Purpose, request.Subject);
          return {
            puts: [[store.key(KeyType.Nonce, nonce.NonceDigest), nonce]],
            event: {
              name: EventName.NonceConsumed,
              payload: {
                NonceDigest: nonce.NonceDigest,
                Purpose: nonce.Purpose,
                Subject: nonce.Subject,
                Signer: signer.AnchorID,
              },
            },
            result: nonce,
          };
        },
      },
      requestJson,
      jws,
    );
  }

  /**
   * Records device acknowledgements of rotations, many in one transaction (the gateway's group
   * commit). Each is a single-use digest per key version: one recorded before is answered with its
   * first transaction (`AlreadyRecorded`), not refused, so a device may repeat its acknowledgement.
   * Writes touch only the acknowledgements' own nonce keys, never a key record, so a batch does not
   * conflict with rotations of other keys; the gateway checked each version and KCV on the ledger.
   */
  @Transaction()
  @Returns('string')
  async RecordRotationAcks(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return submit(
      ctx,
      {
        action: TransactionName.RecordRotationAcks,
        roles: [Role.Operator],
        check: requests.recordRotationAcks,
        apply: async (write) => {
          const { request, store } = write;
          assertDistinctDigests(
            request.Acks.map((ack) => ack.NonceDigest),
            'request.Acks',
          );
          const signer = await write.signedBy(AnchorKind.MetadataSigning);
          const puts: [string, NonceRecord][] = [];
          const outcomes: RotationAckOutcome[] = [];
          for (const ack of request.Acks) {
            const key = store.key(KeyType.Nonce, ack.NonceDigest);
            const outcome = ackOutcome(ack, await store.get<NonceRecord>(key), write.txId);
            if (!outcome.AlreadyRecorded) {
              puts.push([key, nonceRecord(write, ack.NonceDigest, NoncePurpose.Rotation, ack.KeyID)]);
            }
            outcomes.push(outcome);
          }
          return {
            puts,
            event: {
              name: EventName.RotationAcksRecorded,
              payload: {
                Acks: outcomes.filter((o) => !o.AlreadyRecorded).map(({ KeyID, Version }) => ({ KeyID, Version })),
                Signer: signer.AnchorID,
              },
            },
            result: { Acks: outcomes },
          };
        },
      },
      requestJson,
      jws,
    );
  }

  @Transaction(false)
  @Returns('string')
  async GetNonce(ctx: Context, nonceDigest: string): Promise<string> {
    reader(ctx, Overseers, TransactionName.GetNonce);
    const store = new Store(ctx.stub);
    const digest = validate(sha256HexField, nonceDigest, 'nonceDigest');
    const nonce = await store.get<NonceRecord>(store.key(KeyType.Nonce, digest));
    if (nonce === null) notFound(ErrorCode.NonceNotFound, `nonce ${digest}`);
    return canonicalJson(nonce);
  }
}
