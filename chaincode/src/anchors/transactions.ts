/**
 * Trust anchors: the public keys whose JWS the contract accepts (the metadata-signing key, the
 * device CA, the verifiers'). Rules in ./rules.ts; the write path in ../transaction/write.ts.
 */
import { Context, Returns, Transaction } from 'fabric-contract-api';

import {
  AnchorKind,
  ErrorCode,
  EventName,
  LedgerError,
  type PublicJwk,
  requests,
  Role,
  TransactionName,
  type TrustAnchorRecord,
  canonicalJson,
} from '@keyfleet/protocol';
import { assertUsablePublicKey, jwkThumbprint, jwsKeyId } from '../signature.js';
import { loadAnchor } from '../records.js';
import { KeyType, Store } from '../store.js';
import { TransactionGroup } from '../transaction/compose.js';
import { AllRoles, argId, reader } from '../transaction/read.js';
import { submit } from '../transaction/write.js';
import {
  activeMetadataAnchor,
  anchorRecord,
  assertActive,
  assertAnchorKindFor,
  assertNewKey,
  assertRetirable,
  registrationSigner,
  retired,
} from './rules.js';

/** The thumbprint of a key about to be pinned as `anchorId`, once neither the id nor the key is taken. */
async function newAnchorKey(store: Store, anchorId: string, jwk: PublicJwk): Promise<string> {
  if ((await store.get(store.key(KeyType.Anchor, anchorId))) !== null) {
    throw new LedgerError(ErrorCode.AnchorExists, `trust anchor ${anchorId} already exists`);
  }
  await assertUsablePublicKey(jwk);
  const thumbprint = await jwkThumbprint(jwk);
  assertNewKey(await store.all<TrustAnchorRecord>(KeyType.Anchor, []), thumbprint);
  return thumbprint;
}

export class AnchorTransactions extends TransactionGroup {
  /**
   * Registers a trust anchor. The first metadata-signing anchor bootstraps itself: its JWS is made by the
   * key being registered (proof of possession, `kid` = the new AnchorID). Device-CA anchors are
   * authorised by the active metadata-signing anchor. Verifier anchors are registered by the verifier
   * organisation itself, the same way as the bootstrap: a proof of possession by the key being registered.
   */
  @Transaction()
  @Returns('string')
  async RegisterTrustAnchor(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return submit(
      ctx,
      {
        action: TransactionName.RegisterTrustAnchor,
        // Verifier: an attestation verifier is Org2's own process, so Org2 registers its own verifier key
        // (and only that kind): Org1 never vouches for the key that signs Org2's verdicts. The operator
        // keeps the other kinds. contract-anchors.test.ts holds the rows.
        roles: [Role.Operator, Role.Verifier],
        check: requests.registerTrustAnchor,
        apply: async (write) => {
          const { request, store } = write;
          assertAnchorKindFor(write.caller, request.Kind, 'register');
          const metadata = activeMetadataAnchor(await store.all<TrustAnchorRecord>(KeyType.Anchor, []));
          const thumbprint = await newAnchorKey(store, request.AnchorID, request.PublicKey);
          const how = registrationSigner(request.Kind, metadata);
          let signer = request.AnchorID;
          if (how.possession) await write.possessedBy(request.AnchorID, request.PublicKey, how.refusal);
          else signer = (await write.signedBy(AnchorKind.MetadataSigning)).AnchorID;
          const anchor = anchorRecord(
            { ...request, Thumbprint: thumbprint, PossessionJWS: how.possession ? write.jws : null },
            write.now.iso,
            write.by,
            write.proof(signer),
          );
          return {
            puts: [[store.key(KeyType.Anchor, anchor.AnchorID), anchor]],
            event: {
              name: EventName.TrustAnchorRegistered,
              payload: { AnchorID: anchor.AnchorID, Kind: anchor.Kind, Thumbprint: thumbprint },
            },
            result: anchor,
          };
        },
      },
      requestJson,
      jws,
    );
  }

  /**
   * Replaces an anchor by a new key of the same kind. `jws` is by the active metadata-signing anchor (for
   * a verifier anchor: by the verifier anchor being replaced); `possessionJws` is by the new key over the
   * same request.
   */
  @Transaction()
  @Returns('string')
  async ReplaceTrustAnchor(ctx: Context, requestJson: string, jws: string, possessionJws: string): Promise<string> {
    return submit(
      ctx,
      {
        action: TransactionName.ReplaceTrustAnchor,
        // Verifier: Org2 rotates its own verifier key, authorised by the old one; an operator replacing
        // it would put an Org1 key where Org2's verdicts are checked (contract-anchors.test.ts).
        roles: [Role.Operator, Role.Verifier],
        check: requests.replaceTrustAnchor,
        apply: async (write) => {
          const { request, store } = write;
          const old = await loadAnchor(store, request.OldAnchorID);
          assertAnchorKindFor(write.caller, old.Kind, 'replace');
          assertActive(old);
          let signer: TrustAnchorRecord;
          if (old.Kind === AnchorKind.Verifier) {
            if (jwsKeyId(jws) !== old.AnchorID) {
              throw new LedgerError(ErrorCode.SignatureInvalid, 'a verifier anchor is replaced with a JWS by itself');
            }
            signer = await write.signedBy(AnchorKind.Verifier);
          } else {
            signer = await write.signedBy(AnchorKind.MetadataSigning);
          }
          const thumbprint = await newAnchorKey(store, request.NewAnchorID, request.PublicKey);
          await write.possessedBy(
            request.NewAnchorID,
            request.PublicKey,
            'the possession JWS must be made by the new anchor key',
            possessionJws,
          );
          const proof = write.proof(signer.AnchorID);
          const replacement = anchorRecord(
            {
              AnchorID: request.NewAnchorID,
              Kind: old.Kind,
              PublicKey: request.PublicKey,
              Thumbprint: thumbprint,
              Description: request.Description,
              PossessionJWS: possessionJws,
            },
            write.now.iso,
            write.by,
            proof,
          );
          return {
            puts: [
              [store.key(KeyType.Anchor, old.AnchorID), retired(old, write.now.iso, proof, replacement.AnchorID)],
              [store.key(KeyType.Anchor, replacement.AnchorID), replacement],
            ],
            event: {
              name: EventName.TrustAnchorReplaced,
              payload: {
                OldAnchorID: old.AnchorID,
                NewAnchorID: replacement.AnchorID,
                Kind: old.Kind,
                Thumbprint: thumbprint,
              },
            },
            result: replacement,
          };
        },
      },
      requestJson,
      jws,
    );
  }

  /** Retires a device-CA or verifier anchor. The metadata-signing anchor is only ever replaced. */
  @Transaction()
  @Returns('string')
  async RetireTrustAnchor(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return submit(
      ctx,
      {
        action: TransactionName.RetireTrustAnchor,
        roles: [Role.Operator],
        check: requests.retireTrustAnchor,
        apply: async (write) => {
          const { request, store } = write;
          const signer = await write.signedBy(AnchorKind.MetadataSigning);
          const anchor = await loadAnchor(store, request.AnchorID);
          assertRetirable(anchor);
          const record = retired(anchor, write.now.iso, write.proof(signer.AnchorID));
          return {
            puts: [[store.key(KeyType.Anchor, anchor.AnchorID), record]],
            event: {
              name: EventName.TrustAnchorRetired,
              payload: { AnchorID: anchor.AnchorID, Kind: anchor.Kind, Reason: request.Reason },
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
  async GetTrustAnchor(ctx: Context, anchorId: string): Promise<string> {
    reader(ctx, AllRoles, TransactionName.GetTrustAnchor);
    return canonicalJson(await loadAnchor(new Store(ctx.stub), argId(anchorId, 'anchorId')));
  }

  @Transaction(false)
  @Returns('string')
  async ListTrustAnchors(ctx: Context): Promise<string> {
    reader(ctx, AllRoles, TransactionName.ListTrustAnchors);
    return canonicalJson(await new Store(ctx.stub).all<TrustAnchorRecord>(KeyType.Anchor, []));
  }
}
