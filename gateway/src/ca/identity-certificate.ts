import { createHash } from 'node:crypto';
import { delegatingCrypto, type EcSigningKey } from '../crypto/ec-key';
import * as x509 from '../crypto/x509';

/** Fabric CA's attribute extension (fabric-ca `attrmgr`): its value is the raw JSON `{"attrs":{…}}`. */
export const FABRIC_ATTRIBUTE_OID = '1.2.3.4.5.6.7.8.1';

export interface IdentityCertificateOptions {
  readonly commonName: string;
  readonly organization: string;
  /** The keyfleet role the chaincode reads from the `role` attribute. */
  readonly role: string;
  readonly validityDays?: number;
  readonly now?: () => Date;
}

/**
 * A self-signed X.509 identity for an HSM key, shaped as Fabric CA would issue it (OU=client, the
 * role in the attribute extension). Used by the in-process development ledger, which has no MSP
 * to check an issuer; a Fabric network needs a certificate from the organisation's CA instead.
 */
export async function newSelfSignedIdentity(key: EcSigningKey, options: IdentityCertificateOptions): Promise<string> {
  const { crypto, signingKey } = delegatingCrypto(key);
  const notBefore = (options.now ?? (() => new Date()))();
  const spki = key.publicKey.export({ type: 'spki', format: 'der' });
  const name = `CN=${options.commonName}, OU=client, O=${options.organization}`;
  const attributes = Buffer.from(JSON.stringify({ attrs: { role: options.role } }));
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: createHash('sha256')
        .update(spki)
        .digest('hex')
        .slice(0, 32)
        .replace(/^[89a-f]/, '7'),
      subject: name,
      issuer: name,
      notBefore,
      notAfter: new Date(notBefore.getTime() + (options.validityDays ?? 365) * 86_400_000),
      publicKey: spki,
      signingKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.Extension(FABRIC_ATTRIBUTE_OID, false, attributes),
      ],
    },
    crypto,
  );
  return cert.toString('pem');
}
