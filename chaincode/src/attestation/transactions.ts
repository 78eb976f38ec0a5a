/**
 * Attestation records: single verdicts, batches anchored by their Merkle root, and inclusion
 * proofs against them. A contraindicated verdict suspends its device and makes the keys whose
 * policy says so due for rotation. Rules in ./rules.ts.
 */
import { Context, Returns, Transaction } from 'fabric-contract-api';

import {
  AnchorKind,
  type AttestationBatchRecord,
  type AttestationRecord,
  AttestationStatus,
  canonicalJson,
  type DeviceRecord,
  DeviceStatus,
  ErrorCode,
  EventName,
  LedgerError,
  Limits,
  merkleLeafHash,
  NoncePurpose,
  parseJson,
  type Proof,
  requests,
  Role,
  sha256HexField,
  TransactionName,
  triggerOnAttestationFailure,
  type TxTime,
  validate,
} from '@keyfleet/protocol';
import { assertNotRevoked, contraindicatedDevice } from '../devices/rules.js';
import { dueIndex } from '../keys/rules.js';
import { assertDistinctDigests, nonceRecord } from '../nonces/rules.js';
import { assertNonceUnused, loadBatch, loadDevice, loadKey } from '../records.js';
import { KeyType, Store } from '../store.js';
import { TransactionGroup } from '../transaction/compose.js';
import { argId, assertOwnDevice, bookmark, notFound, Overseers, pageSize, reader } from '../transaction/read.js';
import { submit } from '../transaction/write.js';
import { assertBatchConsistent, assertResultInTime, assertVerifierBinding, inclusionOf, resultOf } from './rules.js';

interface Contraindication {
  puts: [string, unknown][];
  deletes: string[];
  suspended: boolean;
  keysDue: string[];
}

/**
 * After a contraindicated result: suspend the device (if active) and make its keys whose rotation policy
 * has the attestation-failure trigger due now. Returns the writes and what happened.
 */
async function contraindicate(
  store: Store,
  device: DeviceRecord,
  summary: DeviceRecord['LastAttestation'],
  now: TxTime,
  proof: Proof,
): Promise<Contraindication> {
  const { device: updated, suspended } = contraindicatedDevice(device, summary, now.iso, proof);
  const puts: [string, unknown][] = [[store.key(KeyType.Device, device.DeviceID), updated]];
  const deletes: string[] = [];
  const keysDue: string[] = [];
  const owned = await store.all<{ KeyID: string }>(KeyType.KeyByOwner, ['device', device.DeviceID]);
  for (const { KeyID } of owned) {
    const key = await loadKey(store, KeyID);
    const triggered = triggerOnAttestationFailure(key, now);
    if (triggered === null) continue;
    const due = dueIndex(key, triggered);
    puts.push([store.key(KeyType.Key, KeyID), triggered], ...due.puts);
    deletes.push(...due.deletes);
    keysDue.push(KeyID);
  }
  return { puts, deletes, suspended, keysDue };
}

export class AttestationTransactions extends TransactionGroup {
  /**
   * Records one attestation result, signed by the verifier's anchor (VerifierID = its AnchorID), and
   * consumes its nonce. A contraindicated result suspends the device.
   */
  @Transaction()
  @Returns('string')
  async RecordAttestation(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return submit(
      ctx,
      {
        action: TransactionName.RecordAttestation,
        roles: [Role.Verifier],
        check: requests.recordAttestation,
        apply: async (write) => {
          const { request, store, now } = write;
          const signer = await write.signedBy(AnchorKind.Verifier);
          assertVerifierBinding(request.VerifierID, signer);
          assertResultInTime(request, now);
          const device = await loadDevice(store, request.DeviceID);
          assertNotRevoked(device);
          await assertNonceUnused(store, request.NonceDigest);
          const result = resultOf(request);
          const resultId = merkleLeafHash(result);
          const proof = write.proof(signer.AnchorID);
          const summary = {
            ResultID: resultId,
            Status: result.Status,
            VerifierID: result.VerifierID,
            At: now.iso,
            BatchID: null,
          };
          let outcome: Contraindication;
          if (result.Status === AttestationStatus.Contraindicated) {
            outcome = await contraindicate(store, device, summary, now, proof);
          } else {
            const updated: DeviceRecord = { ...device, LastAttestation: summary, UpdatedAt: now.iso, Proof: proof };
            outcome = {
              puts: [[store.key(KeyType.Device, device.DeviceID), updated]],
              deletes: [],
              suspended: false,
              keysDue: [],
            };
          }
          const record: AttestationRecord = {
            DocType: 'attestation',
            ...result,
            ResultID: resultId,
            RecordedAt: now.iso,
            RecordedBy: write.by,
            DeviceSuspended: outcome.suspended,
            Proof: proof,
          };
          const nonce = nonceRecord(write, request.NonceDigest, NoncePurpose.Attestation, request.DeviceID);
          return {
            puts: [
              ...outcome.puts,
              [store.key(KeyType.Attestation, record.DeviceID, resultId), record],
              [store.key(KeyType.Nonce, nonce.NonceDigest), nonce],
            ],
            deletes: outcome.deletes,
            event: {
              name: EventName.AttestationRecorded,
              payload: {
                DeviceID: record.DeviceID,
                ResultID: resultId,
                Status: record.Status,
                VerifierID: record.VerifierID,
                DeviceSuspended: outcome.suspended,
                KeysDueForRotation: outcome.keysDue,
              },
            },
            result: record,
          };
        },
      },
      requestJson,
      jws,
    );
  }

  @Transaction(false)
  @Returns('string')
  async GetAttestation(ctx: Context, deviceId: string, resultId: string): Promise<string> {
    const caller = reader(ctx, [...Overseers, Role.Device], TransactionName.GetAttestation);
    const checkedId = argId(deviceId, 'deviceId');
    assertOwnDevice(caller, checkedId, 'its own attestations');
    const store = new Store(ctx.stub);
    const record = await store.get<AttestationRecord>(
      store.key(KeyType.Attestation, checkedId, validate(sha256HexField, resultId, 'resultId')),
    );
    if (record === null) notFound(ErrorCode.AttestationNotFound, `attestation ${resultId} of device ${checkedId}`);
    return canonicalJson(record);
  }

  @Transaction(false)
  @Returns('string')
  async ListAttestations(ctx: Context, deviceId: string, size: string, mark: string): Promise<string> {
    const caller = reader(ctx, [...Overseers, Role.Device], TransactionName.ListAttestations);
    const checkedId = argId(deviceId, 'deviceId');
    assertOwnDevice(caller, checkedId, 'its own attestations');
    const store = new Store(ctx.stub);
    return canonicalJson(
      await store.pageByPartialKey<AttestationRecord>(KeyType.Attestation, [checkedId], pageSize(size), bookmark(mark)),
    );
  }

  /**
   * Anchors a batch of results by its RFC 9162 Merkle root and consumes every member's nonce in the
   * same transaction (one replayed or revoked member refuses the whole batch, which writes nothing);
   * devices listed as Contraindicated are suspended here.
   */
  @Transaction()
  @Returns('string')
  async RecordAttestationBatch(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return submit(
      ctx,
      {
        action: TransactionName.RecordAttestationBatch,
        roles: [Role.Verifier],
        check: requests.recordAttestationBatch,
        apply: async (write) => {
          const { request, store, now } = write;
          const signer = await write.signedBy(AnchorKind.Verifier);
          assertVerifierBinding(request.VerifierID, signer);
          assertBatchConsistent(request, now);
          assertDistinctDigests(
            request.Nonces.map((nonce) => nonce.NonceDigest),
            'request.Nonces',
          );
          if ((await store.get(store.key(KeyType.Batch, request.BatchID))) !== null) {
            throw new LedgerError(ErrorCode.BatchExists, `batch ${request.BatchID} is already recorded`);
          }
          const puts: [string, unknown][] = [];
          // Each member's nonce, as ConsumeNonce would: unused, and its device not revoked.
          for (const deviceId of new Set(request.Nonces.map((nonce) => nonce.DeviceID))) {
            assertNotRevoked(await loadDevice(store, deviceId));
          }
          for (const { NonceDigest, DeviceID } of request.Nonces) {
            await assertNonceUnused(store, NonceDigest);
            puts.push([
              store.key(KeyType.Nonce, NonceDigest),
              nonceRecord(write, NonceDigest, NoncePurpose.Attestation, DeviceID),
            ]);
          }
          const proof = write.proof(signer.AnchorID);
          const deletes: string[] = [];
          const suspended: string[] = [];
          const keysDue: string[] = [];
          for (const deviceId of request.Contraindicated) {
            const device = await loadDevice(store, deviceId);
            if (device.Status === DeviceStatus.Revoked) continue;
            const summary = {
              ResultID: null,
              Status: AttestationStatus.Contraindicated,
              VerifierID: request.VerifierID,
              At: now.iso,
              BatchID: request.BatchID,
            };
            const outcome = await contraindicate(store, device, summary, now, proof);
            puts.push(...outcome.puts);
            deletes.push(...outcome.deletes);
            if (outcome.suspended) suspended.push(deviceId);
            keysDue.push(...outcome.keysDue);
          }
          const batch: AttestationBatchRecord = {
            DocType: 'attestation-batch',
            BatchID: request.BatchID,
            VerifierID: request.VerifierID,
            MerkleRoot: request.MerkleRoot,
            Count: request.Count,
            FirstIssuedAt: request.FirstIssuedAt,
            LastIssuedAt: request.LastIssuedAt,
            Contraindicated: request.Contraindicated,
            SuspendedDevices: suspended,
            RecordedAt: now.iso,
            RecordedBy: write.by,
            Proof: proof,
          };
          puts.push([store.key(KeyType.Batch, batch.BatchID), batch]);
          return {
            puts,
            deletes,
            event: {
              name: EventName.AttestationBatchRecorded,
              payload: {
                BatchID: batch.BatchID,
                VerifierID: batch.VerifierID,
                MerkleRoot: batch.MerkleRoot,
                Count: batch.Count,
                SuspendedDevices: suspended,
                KeysDueForRotation: keysDue,
              },
            },
            result: batch,
          };
        },
      },
      requestJson,
      jws,
    );
  }

  @Transaction(false)
  @Returns('string')
  async GetAttestationBatch(ctx: Context, batchId: string): Promise<string> {
    reader(ctx, Overseers, TransactionName.GetAttestationBatch);
    return canonicalJson(await loadBatch(new Store(ctx.stub), argId(batchId, 'batchId')));
  }

  /**
   * Proves that `resultJson` (an AttestationResult) is a member of a recorded batch, given the inclusion
   * proof `{"LeafIndex":n,"AuditPath":[hex,…]}`. Answers with the leaf hash, or PROOF_INVALID.
   */
  @Transaction(false)
  @Returns('string')
  async VerifyAttestationInclusion(
    ctx: Context,
    batchId: string,
    resultJson: string,
    proofJson: string,
  ): Promise<string> {
    reader(ctx, Overseers, TransactionName.VerifyAttestationInclusion);
    const batch = await loadBatch(new Store(ctx.stub), argId(batchId, 'batchId'));
    const result = validate(requests.attestationResult, parseJson(resultJson, 'result', Limits.RequestBytes), 'result');
    const proof = validate(requests.inclusionProof, parseJson(proofJson, 'proof', Limits.ProofBytes), 'proof');
    return canonicalJson(inclusionOf(batch, result, proof));
  }
}
