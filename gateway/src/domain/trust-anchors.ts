import { calculateJwkThumbprint, exportJWK, type JWK } from 'jose';
import { asPrincipal, gatewayService, verifierService } from '../ledger/principal-context';
import type { AnchorKind, PublicJwk } from '@keyfleet/protocol';
import type { EcSigningKey } from '../crypto/ec-key';
import { newLedgerClient, type LedgerClient } from '../ledger/ledger-client';
import { ledgerPort } from '../ledger/port';
import type { LedgerTransport } from '../ledger/transport';
import { GatewayError, GatewayErrorCode } from '../errors';

export interface AnchorKey {
  readonly kind: AnchorKind;
  readonly key: EcSigningKey;
  readonly description: string;
}

export interface RegisteredAnchors {
  /** AnchorID of each kind, as registered on the ledger. */
  readonly ids: Readonly<Partial<Record<AnchorKind, string>>>;
  /** A ledger client signing with the metadata-signing anchor. */
  readonly ledger: LedgerClient;
}

/**
 * Makes sure the operator's HSM public keys are the ledger's trust anchors, registering any that
 * are missing: the metadata-signing key first (self-signed, proof of possession), then the others
 * (device CA), authorised by it. Verifier anchors are Org2's: {@link ensureVerifierAnchor}. Anchors are matched by RFC 7638 thumbprint, so a restart registers nothing.
 */
export async function ensureTrustAnchors(
  transport: LedgerTransport,
  metadata: Omit<AnchorKey, 'kind'>,
  others: readonly AnchorKey[],
): Promise<RegisteredAnchors> {
  const reader = newLedgerClient({ transport, signingKey: metadata.key, anchorId: '' });
  const existing = await ledgerPort(reader).anchors.list();
  const ids: Partial<Record<AnchorKind, string>> = {};

  const register = async (ledger: LedgerClient, anchor: AnchorKey, anchorId: string) => {
    const jwk = await exportJWK(anchor.key.publicKey);
    const thumbprint = await calculateJwkThumbprint(jwk);
    const found = existing.find((a) => a.Thumbprint === thumbprint && a.Status === 'active');
    if (found) return found.AnchorID;
    await asPrincipal(gatewayService('anchors'), () =>
      ledgerPort(ledger).anchors.register({
        AnchorID: anchorId,
        Kind: anchor.kind,
        PublicKey: publicJwk(jwk),
        Description: anchor.description,
      }),
    );
    return anchorId;
  };

  const metadataAnchor: AnchorKey = { ...metadata, kind: 'metadata-signing' };
  const metadataId = await anchorIdOf(metadataAnchor);
  // The bootstrap JWS is made by the key being registered, so its kid is the new anchor's id.
  ids['metadata-signing'] = await register(
    newLedgerClient({ transport, signingKey: metadata.key, anchorId: metadataId }),
    metadataAnchor,
    metadataId,
  );
  const ledger = newLedgerClient({ transport, signingKey: metadata.key, anchorId: ids['metadata-signing'] });
  for (const anchor of others) {
    ids[anchor.kind] = await register(ledger, anchor, await anchorIdOf(anchor));
  }
  return { ids, ledger };
}

/**
 * Makes sure the verifier's HSM key is a `verifier` trust anchor, registering it if missing. The
 * transport must write as the verifier organisation (role `verifier`, Org2MSP): Org2 registers its
 * own key, with a JWS made by that key (proof of possession, `kid` = the new AnchorID), and no
 * Org1 key takes part (docs/ledger.md, "Trust anchors"). Matched by thumbprint, so a restart
 * registers nothing. Returns the AnchorID and a ledger client signing with the verifier anchor.
 */
export async function ensureVerifierAnchor(
  transport: LedgerTransport,
  verifier: Omit<AnchorKey, 'kind'>,
): Promise<{ anchorId: string; ledger: LedgerClient }> {
  const anchor: AnchorKey = { ...verifier, kind: 'verifier' };
  const anchorId = await anchorIdOf(anchor);
  const ledger = newLedgerClient({ transport, signingKey: verifier.key, anchorId });
  const thumbprint = await calculateJwkThumbprint(await exportJWK(verifier.key.publicKey));
  const existing = await ledgerPort(ledger).anchors.list();
  const found = existing.find((a) => a.Thumbprint === thumbprint);
  if (found !== undefined) {
    if (found.Kind !== 'verifier' || found.Status !== 'active') {
      throw new GatewayError(
        GatewayErrorCode.ConfigInvalid,
        `the verifier key is trust anchor ${found.AnchorID}, which is a ${found.Status} ${found.Kind} anchor`,
      );
    }
    return {
      anchorId: found.AnchorID,
      ledger: newLedgerClient({ transport, signingKey: verifier.key, anchorId: found.AnchorID }),
    };
  }
  const jwk = await exportJWK(verifier.key.publicKey);
  await asPrincipal(verifierService('anchors'), () =>
    ledgerPort(ledger).anchors.register({
      AnchorID: anchorId,
      Kind: 'verifier',
      PublicKey: publicJwk(jwk),
      Description: verifier.description,
    }),
  );
  return { anchorId, ledger };
}

/** `<kind>-<first 16 characters of the key's thumbprint>`: stable for a key, distinct across keys. */
async function anchorIdOf(anchor: AnchorKey): Promise<string> {
  const thumbprint = await calculateJwkThumbprint(await exportJWK(anchor.key.publicKey));
  return `${anchor.kind}-${thumbprint.slice(0, 16).replace(/[^A-Za-z0-9]/g, 'x')}`;
}

/** The ledger's form of an HSM EC P-256 public key. */
function publicJwk(jwk: JWK): PublicJwk {
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || jwk.x === undefined || jwk.y === undefined) {
    throw new GatewayError(GatewayErrorCode.HsmFailure, 'the HSM key is not an EC P-256 key');
  }
  return { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y };
}
