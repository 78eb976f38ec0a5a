import { DeviceIdMaxLength, IdRuleText, isDeviceId } from '@keyfleet/protocol';
import { createHash, webcrypto, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '../crypto/x509';
import { GatewayError, GatewayErrorCode } from '../errors';
import { delegatingCrypto, type EcSigningKey } from '../crypto/ec-key';

/** Device ids appear in certificate names and ledger keys: the id grammar, at most 64 characters (the CN bound). */
const deviceIdRule = `${IdRuleText}, at most ${DeviceIdMaxLength} characters`;

export interface DeviceCertificate {
  readonly pem: string;
  /** SHA-256 of the certificate's DER, lower-case hex: what the ledger records. */
  readonly fingerprint: string;
  readonly serialNumber: string;
  readonly notAfter: Date;
}

export interface DeviceCa {
  /** The CA's self-signed certificate, PEM. */
  readonly certificatePem: string;
  /**
   * Issues a device certificate for a PKCS#10 request. The request must be signed by its own
   * key (proof of possession), carry a P-256 key, and name the device in its subject CN.
   */
  issue(csrPem: string, deviceId: string): Promise<DeviceCertificate>;
  /**
   * Issues the TLS server certificate of a keyfleet service for a key made in memory at its start
   * (docs/gateway.md, "HTTPS"): serverAuth only, valid for `names` (DNS names or IP addresses).
   */
  issueServer(publicKey: KeyObject, names: readonly string[]): Promise<string>;
}

export interface DeviceCaOptions {
  readonly key: EcSigningKey;
  /** The CA certificate made earlier for this key; a new self-signed one is made when absent. */
  readonly certificatePem?: string;
  readonly validityDays?: number;
  readonly now?: () => Date;
  /** The CA's name when its certificate is made; default `CN=keyfleet device CA, O=keyfleet`. */
  readonly name?: string;
}

const CA_NAME = 'CN=keyfleet device CA, O=keyfleet';
/** A server certificate lives as long as its in-memory key might: a process's life, at most this. */
const SERVER_VALIDITY_DAYS = 30;
const DAY_MS = 24 * 3600 * 1000;

/** Opens the device CA over an HSM key, making its self-signed root certificate on first use. */
export async function newDeviceCa(options: DeviceCaOptions): Promise<DeviceCa> {
  const now = options.now ?? (() => new Date());
  const { crypto, signingKey } = delegatingCrypto(options.key);
  const caSpki = options.key.publicKey.export({ type: 'spki', format: 'der' });

  let caCert: x509.X509Certificate;
  if (options.certificatePem === undefined) {
    const notBefore = now();
    caCert = await x509.X509CertificateGenerator.create(
      {
        serialNumber: randomSerial(),
        subject: options.name ?? CA_NAME,
        issuer: options.name ?? CA_NAME,
        notBefore,
        notAfter: new Date(notBefore.getTime() + 20 * 365 * DAY_MS),
        publicKey: caSpki,
        signingKey,
        extensions: [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
          await x509.SubjectKeyIdentifierExtension.create(caSpki, false, crypto),
        ],
      },
      crypto,
    );
  } else {
    caCert = new x509.X509Certificate(options.certificatePem);
    const certSpki = Buffer.from(caCert.publicKey.rawData);
    if (!certSpki.equals(caSpki)) {
      throw new GatewayError(GatewayErrorCode.ConfigInvalid, 'the device CA certificate is not for the HSM key');
    }
  }
  const authorityKeyId = await x509.AuthorityKeyIdentifierExtension.create(caSpki, false, crypto);
  const validityMs = (options.validityDays ?? 365) * DAY_MS;

  return {
    certificatePem: caCert.toString('pem'),

    async issue(csrPem, deviceId) {
      if (!isDeviceId(deviceId)) {
        throw new GatewayError(GatewayErrorCode.BadRequest, `device id must be ${deviceIdRule}`);
      }
      const csr = parseCsr(csrPem);
      const publicKey = csr.publicKey;
      const algorithm = publicKey.algorithm as webcrypto.EcKeyAlgorithm;
      if (algorithm.name !== 'ECDSA' || algorithm.namedCurve !== 'P-256') {
        throw new GatewayError(GatewayErrorCode.CsrInvalid, 'the request must carry an EC P-256 key');
      }
      if (!(await csr.verify())) {
        throw new GatewayError(GatewayErrorCode.CsrInvalid, 'the request signature does not verify');
      }
      const commonNames = csr.subjectName.getField('CN');
      if (commonNames.length !== 1 || commonNames[0] !== deviceId) {
        throw new GatewayError(GatewayErrorCode.CsrInvalid, `the request subject must be CN=${deviceId}`);
      }

      const notBefore = now();
      const cert = await x509.X509CertificateGenerator.create(
        {
          serialNumber: randomSerial(),
          // The subject is rebuilt, never copied from the request, so a device cannot smuggle in names.
          subject: `CN=${deviceId}, O=keyfleet devices`,
          issuer: caCert.subject,
          notBefore,
          notAfter: new Date(notBefore.getTime() + validityMs),
          publicKey: csr.publicKey.rawData,
          signingKey,
          extensions: [
            new x509.BasicConstraintsExtension(false, undefined, true),
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
            new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
            new x509.SubjectAlternativeNameExtension([{ type: 'url', value: deviceUri(deviceId) }]),
            await x509.SubjectKeyIdentifierExtension.create(csr.publicKey.rawData, false, crypto),
            authorityKeyId,
          ],
        },
        crypto,
      );
      return {
        pem: cert.toString('pem'),
        fingerprint: createHash('sha256').update(Buffer.from(cert.rawData)).digest('hex'),
        serialNumber: cert.serialNumber,
        notAfter: cert.notAfter,
      };
    },

    async issueServer(publicKey, names) {
      if (names.length === 0)
        throw new GatewayError(GatewayErrorCode.ConfigInvalid, 'a server certificate needs a name');
      const spki = publicKey.export({ type: 'spki', format: 'der' });
      const notBefore = now();
      const cert = await x509.X509CertificateGenerator.create(
        {
          serialNumber: randomSerial(),
          subject: `CN=${names[0] ?? ''}, O=keyfleet services`,
          issuer: caCert.subject,
          // A little slack for clocks of clients that run behind.
          notBefore: new Date(notBefore.getTime() - 5 * 60_000),
          notAfter: new Date(notBefore.getTime() + SERVER_VALIDITY_DAYS * DAY_MS),
          publicKey: spki,
          signingKey,
          extensions: [
            new x509.BasicConstraintsExtension(false, undefined, true),
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
            new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
            new x509.SubjectAlternativeNameExtension(
              names.map((name) => (isIP(name) === 0 ? { type: 'dns', value: name } : { type: 'ip', value: name })),
            ),
            await x509.SubjectKeyIdentifierExtension.create(spki, false, crypto),
            authorityKeyId,
          ],
        },
        crypto,
      );
      return cert.toString('pem');
    },
  };
}

/** The URI naming a device in its certificate's subjectAltName. */
export function deviceUri(deviceId: string): string {
  return `urn:keyfleet:device:${deviceId}`;
}

function parseCsr(pem: string): x509.Pkcs10CertificateRequest {
  if (
    !/^-----BEGIN CERTIFICATE REQUEST-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE REQUEST-----\r?\n?$/.test(pem)
  ) {
    throw new GatewayError(GatewayErrorCode.CsrInvalid, 'the request must be one PEM CERTIFICATE REQUEST');
  }
  try {
    const csr = new x509.Pkcs10CertificateRequest(pem);
    if (csr.publicKey.rawData.byteLength === 0) throw new Error('no public key');
    return csr;
  } catch (err) {
    throw new GatewayError(GatewayErrorCode.CsrInvalid, 'the request is not a valid PKCS#10 structure', undefined, {
      cause: err,
    });
  }
}

function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] ?? 0) & 0x7f; // positive INTEGER (RFC 5280 §4.1.2.2)
  return Buffer.from(bytes).toString('hex');
}
