import { randomBytes } from 'node:crypto';
import { LocalLedger, Msp, Role } from '@keyfleet/chaincode';
import { hsmSigningKey, newHsm, newLedgerClient, newLocalTransport, type LedgerClient } from '@keyfleet/gateway';
import { newSelfSignedIdentity } from '@keyfleet/gateway/dist/ca/identity-certificate';
import { ensureTrustAnchors } from '@keyfleet/gateway/dist/domain/trust-anchors';

export interface BaselineLedger {
  /** The trivial write: `ConsumeNonce` of a fresh random digest on `keyId` (what a rotation ack writes). */
  write(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The in-process ledger transport exactly as the gateway builds it in local mode: the same
 * HSM token and metadata-signing key (each write is a JWS signed in the HSM), the same
 * self-signed Org1 operator identity, the same journalled LocalLedger — opened on a copy of the
 * gateway's ledger file, so the state it validates against is the same size.
 */
export async function openBaselineLedger(options: {
  store: { readonly uri: string; readonly pin: string };
  module: string;
  ledgerFile: string;
  keyId: string;
}): Promise<BaselineLedger> {
  const hsm = await newHsm({ uri: options.store.uri, modulePath: options.module, pin: options.store.pin });
  try {
    const metadataKey = await hsmSigningKey(hsm, 'metadata-signing');
    const identityKey = await hsmSigningKey(hsm, 'fabric-identity');
    const certificatePem = await newSelfSignedIdentity(identityKey, {
      commonName: 'keyfleet-gateway',
      organization: 'org1.keyfleet.local',
      role: Role.Operator,
    });
    const ledger = new LocalLedger({ file: options.ledgerFile });
    const transport = newLocalTransport(ledger, { mspId: Msp.Operator, certificatePem });
    // Registers nothing: the gateway registered these anchors; this finds their ids.
    const anchors = await ensureTrustAnchors(
      transport,
      { key: metadataKey, description: 'HSM metadata-signing key' },
      [],
    );
    const client: LedgerClient = newLedgerClient({
      transport,
      signingKey: metadataKey,
      anchorId: anchors.ids['metadata-signing'] ?? '',
    });
    return {
      async write() {
        await client.write('ConsumeNonce', {
          NonceDigest: randomBytes(32).toString('hex'),
          Purpose: 'rotation',
          Subject: options.keyId,
        });
      },
      async close() {
        ledger.close();
        await hsm.close();
      },
    };
  } catch (err) {
    await hsm.close();
    throw err;
  }
}
