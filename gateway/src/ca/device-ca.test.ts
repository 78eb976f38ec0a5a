import { createHash, webcrypto, X509Certificate } from 'node:crypto';
import * as x509 from '../crypto/x509';
import { expect } from 'chai';
import { GatewayError } from '../errors';
import { newSoftwareKey } from '../testing/software-key';
import { newDeviceCa, type DeviceCa } from './device-ca';

const subtle = webcrypto.subtle;
const p256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;

async function csrFor(name: string, keys?: webcrypto.CryptoKeyPair): Promise<string> {
  const pair = keys ?? (await subtle.generateKey(p256, true, ['sign', 'verify']));
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name,
    keys: pair,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  return csr.toString('pem');
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  try {
    await promise;
  } catch (err) {
    expect(err).to.be.instanceOf(GatewayError);
    expect((err as GatewayError).code).to.equal(code);
    return;
  }
  expect.fail(`expected ${code}, but it succeeded`);
}

describe('device CA', () => {
  const caKey = newSoftwareKey('device-ca');
  let ca: DeviceCa;

  before(async () => {
    ca = await newDeviceCa({ key: caKey });
  });

  it('makes a self-signed CA certificate for its key', () => {
    const cert = new X509Certificate(ca.certificatePem);
    expect(cert.ca).to.be.true;
    expect(cert.verify(caKey.publicKey)).to.be.true;
    expect(cert.publicKey.export({ format: 'jwk' })).to.deep.equal(caKey.publicKey.export({ format: 'jwk' }));
  });

  it('issues a device certificate that chains to the CA and names the device', async () => {
    const issued = await ca.issue(await csrFor('CN=sensor-001'), 'sensor-001');
    const cert = new X509Certificate(issued.pem);
    const caCert = new X509Certificate(ca.certificatePem);

    expect(cert.verify(caKey.publicKey)).to.be.true;
    expect(cert.checkIssued(caCert)).to.be.true;
    expect(cert.ca).to.be.false;
    expect(cert.subject).to.equal('CN=sensor-001\nO=keyfleet devices');
    expect(cert.subjectAltName).to.equal('URI:urn:keyfleet:device:sensor-001');
    expect(cert.keyUsage).to.deep.equal(['1.3.6.1.5.5.7.3.2']);
    expect(issued.fingerprint).to.equal(createHash('sha256').update(cert.raw).digest('hex'));
  });

  it('keeps the CA certificate across restarts when given it back', async () => {
    const again = await newDeviceCa({ key: caKey, certificatePem: ca.certificatePem });
    expect(again.certificatePem).to.equal(ca.certificatePem);
  });

  it('refuses a CA certificate made for another key', async () => {
    await expectCode(newDeviceCa({ key: newSoftwareKey(), certificatePem: ca.certificatePem }), 'CONFIG_INVALID');
  });

  describe('refuses hostile requests', () => {
    const cases: { name: string; csr: () => Promise<string>; deviceId?: string; code: string }[] = [
      { name: 'empty text', csr: () => Promise.resolve(''), code: 'CSR_INVALID' },
      { name: 'not PEM', csr: () => Promise.resolve('hello'), code: 'CSR_INVALID' },
      {
        name: 'a certificate instead of a request',
        csr: () => Promise.resolve(ca.certificatePem),
        code: 'CSR_INVALID',
      },
      {
        name: 'PEM armour around garbage',
        csr: () => Promise.resolve('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n'),
        code: 'CSR_INVALID',
      },
      {
        name: 'two requests in one body',
        csr: async () => (await csrFor('CN=d1')) + (await csrFor('CN=d1')),
        deviceId: 'd1',
        code: 'CSR_INVALID',
      },
      { name: 'subject for another device', csr: () => csrFor('CN=other'), deviceId: 'd1', code: 'CSR_INVALID' },
      { name: 'two common names', csr: () => csrFor('CN=d1, CN=d2'), deviceId: 'd1', code: 'CSR_INVALID' },
      { name: 'no common name', csr: () => csrFor('O=d1'), deviceId: 'd1', code: 'CSR_INVALID' },
      {
        name: 'signature tampered',
        csr: async () => {
          const der = Buffer.from(new x509.Pkcs10CertificateRequest(await csrFor('CN=d1')).rawData);
          der[der.length - 5] = (der[der.length - 5] ?? 0) ^ 0x01;
          return x509.PemConverter.encode(der, 'CERTIFICATE REQUEST') + '\n';
        },
        deviceId: 'd1',
        code: 'CSR_INVALID',
      },
      {
        name: 'a P-384 key',
        csr: async () =>
          csrFor('CN=d1', await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify'])),
        deviceId: 'd1',
        code: 'CSR_INVALID',
      },
      { name: 'device id with a comma', csr: () => csrFor('CN=d1'), deviceId: 'd1,O=evil', code: 'BAD_REQUEST' },
      { name: 'device id too long', csr: () => csrFor('CN=d1'), deviceId: 'd'.repeat(65), code: 'BAD_REQUEST' },
      { name: 'empty device id', csr: () => csrFor('CN=d1'), deviceId: '', code: 'BAD_REQUEST' },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        await expectCode(
          c.csr().then((pem) => ca.issue(pem, c.deviceId ?? 'd1')),
          c.code,
        );
      });
    }
  });
});
