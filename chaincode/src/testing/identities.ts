import { webcrypto } from 'node:crypto';

// @peculiar/x509 needs the Reflect metadata polyfill loaded before it.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

type CryptoKeyPair = webcrypto.CryptoKeyPair;
// Node's webcrypto is the WebCrypto object @peculiar/x509 expects; only the DOM typings differ.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const notBefore = new Date('2025-01-01T00:00:00Z');
const notAfter = new Date('2035-01-01T00:00:00Z');
/** Fabric CA's attribute extension: extnValue bytes are the JSON `{"attrs":{…}}`. */
export const FabricAttrOid = '1.2.3.4.5.6.7.8.1';

export interface TestCa {
  org: string;
  keys: CryptoKeyPair;
  cert: x509.X509Certificate;
}

/** A caller: MSP id plus a real X.509 certificate (PEM) issued by its org's CA. */
export interface TestIdentity {
  mspId: string;
  cn: string;
  pem: string;
}

let serial = 1;

export async function newCa(org: string): Promise<TestCa> {
  const keys: CryptoKeyPair = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: (serial++).toString(16).padStart(2, '0'),
    name: `CN=ca.${org.toLowerCase()}.example.com, O=${org}`,
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: algorithm,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  return { org, keys, cert };
}

export interface IdentityOptions {
  mspId: string;
  cn: string;
  ou?: string;
  attrs?: Record<string, string>;
  /** Raw extnValue of the attribute extension, to test malformed or missing attributes. */
  rawAttrExtension?: Uint8Array;
}

export async function newIdentity(ca: TestCa, options: IdentityOptions): Promise<TestIdentity> {
  const keys: CryptoKeyPair = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const extensions: x509.Extension[] = [new x509.BasicConstraintsExtension(false, undefined, true)];
  const attrBytes =
    options.rawAttrExtension ??
    (options.attrs === undefined ? undefined : Buffer.from(JSON.stringify({ attrs: options.attrs }), 'utf8'));
  if (attrBytes !== undefined) extensions.push(new x509.Extension(FabricAttrOid, false, attrBytes));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16).padStart(2, '0'),
    subject: `CN=${options.cn}, OU=${options.ou ?? 'client'}, O=${ca.org}`,
    issuer: ca.cert.subject,
    notBefore,
    notAfter,
    signingKey: ca.keys.privateKey,
    publicKey: keys.publicKey,
    signingAlgorithm: algorithm,
    extensions,
  });
  return { mspId: options.mspId, cn: options.cn, pem: cert.toString('pem') };
}
