import { expect } from 'chai';
import { randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { inspect } from 'node:util';
import type { EcSigningKey } from '../crypto/ec-key';
import { hsmSigningKey } from '../crypto/hsm-key';
import * as x509 from '../crypto/x509';
import { GatewayError } from '../errors';
import { newHsm, type Hsm } from '../hsm';
import { createSoftHsmStore, softHsmModule, type SoftHsmStore } from '../testing/softhsm';
import { freePort, startFabricCaServer, type FabricCaServer } from '../testing/fabric-ca-server';
import { newSoftwareKey } from '../testing/software-key';
import { newDeviceCa } from './device-ca';
import {
  assertFabricIdentity,
  enrolFabricIdentity,
  enrolWithCsr,
  FabricEnrolmentFailure,
  newIdentityCsr,
  type FabricEnrolmentOptions,
} from './fabric-enrolment';
import { FABRIC_ATTRIBUTE_OID } from './identity-certificate';

const secret = (): string => randomBytes(15).toString('base64url');

async function rejection(promise: Promise<unknown>): Promise<GatewayError> {
  try {
    await promise;
  } catch (err) {
    expect(err).to.be.instanceOf(GatewayError);
    return err as GatewayError;
  }
  return expect.fail('expected a GatewayError, but it succeeded');
}

function spkiOf(key: { export(o: { type: 'spki'; format: 'der' }): Buffer }): Buffer {
  return key.export({ type: 'spki', format: 'der' });
}

/** The Fabric attribute extension's bytes, read without the module under test. */
function attributeText(pem: string): string | undefined {
  const extension = new x509.X509Certificate(pem).getExtension(FABRIC_ATTRIBUTE_OID);
  return extension === null ? undefined : Buffer.from(extension.value).toString('utf8');
}

/**
 * An HTTPS server on 127.0.0.1 with a self-signed certificate, answering every request with the
 * scripted `answer`: the CA misbehaving in ways a real fabric-ca-server will not on demand.
 */
async function startImpostorCa(): Promise<{
  url: string;
  tlsRootCertPem: string;
  script: { answer: { status: number; body: string } };
  close(): Promise<void>;
}> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' } as const;
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=impostor',
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3_600_000),
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }]),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64')}\n-----END PRIVATE KEY-----\n`;
  const script = { answer: { status: 200, body: '' } };
  const server: HttpsServer = createHttpsServer({ key: keyPem, cert: cert.toString('pem') }, (req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(script.answer.status, { 'content-type': 'application/json' }).end(script.answer.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `https://127.0.0.1:${port}`,
    tlsRootCertPem: cert.toString('pem'),
    script,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => {
          r();
        });
      }),
  };
}

describe('Fabric CA enrolment of an HSM key', function () {
  this.timeout(60_000);
  const operator = { id: 'gateway-operator', secret: secret() };
  const roleless = { id: 'gateway-roleless', secret: secret() };
  let ca: FabricCaServer | undefined;
  let store: SoftHsmStore | undefined;
  let hsm: Hsm | undefined;
  let key: EcSigningKey;
  let base: FabricEnrolmentOptions;

  before(async () => {
    // Throws, with "run scripts/install-fabric.sh", when the Fabric CA binaries are missing.
    ca = await startFabricCaServer();
    await ca.register(operator.id, operator.secret, 'role=operator:ecert');
    await ca.register(roleless.id, roleless.secret);
    store = createSoftHsmStore();
    hsm = await newHsm({ uri: store.uri, modulePath: softHsmModule, pin: store.pin, sessions: 2 });
    await hsm.generateEcKeyPair({ label: 'fabric-identity' });
    key = await hsmSigningKey(hsm, 'fabric-identity');
    base = {
      url: ca.url,
      tlsRootCertPem: ca.caCertPem,
      caName: ca.caName,
      enrolmentId: operator.id,
      enrolmentSecret: operator.secret,
      role: 'operator',
    };
  });

  after(async () => {
    await hsm?.close();
    store?.remove();
    await ca?.stop();
  });

  describe('newIdentityCsr', () => {
    it('makes a request for the HSM key whose signature, made in the token, verifies', async () => {
      const csr = new x509.Pkcs10CertificateRequest(await newIdentityCsr(key, { commonName: operator.id }));
      expect(Buffer.from(csr.publicKey.rawData).equals(spkiOf(key.publicKey))).to.be.true;
      expect(await csr.verify()).to.be.true;
      expect(csr.subject).to.equal(`CN=${operator.id}`);
    });

    it('keeps a comma and an equals sign inside the one CN', async () => {
      const csr = new x509.Pkcs10CertificateRequest(await newIdentityCsr(key, { commonName: 'gw, O=evil' }));
      expect(csr.subjectName.getField('CN')).to.deep.equal(['gw, O=evil']);
      expect(csr.subjectName.getField('O')).to.deep.equal([]);
    });

    const refused: { name: string; commonName: string; key?: () => EcSigningKey; code: string }[] = [
      { name: 'an empty common name', commonName: '', code: 'CONFIG_INVALID' },
      { name: 'a common name over 64 characters', commonName: 'x'.repeat(65), code: 'CONFIG_INVALID' },
      {
        name: 'a key whose public half is not its private half',
        commonName: 'gw',
        key: () => ({ ...key, publicKey: newSoftwareKey().publicKey }),
        code: 'HSM_FAILURE',
      },
    ];
    for (const c of refused) {
      it(`refuses ${c.name}`, async () => {
        const err = await rejection(newIdentityCsr(c.key?.() ?? key, { commonName: c.commonName }));
        expect(err.code).to.equal(c.code);
      });
    }
  });

  describe('against fabric-ca-server', () => {
    it('certifies the HSM key as the registered identity with role=operator, issued by the CA', async () => {
      const { certificatePem, caChainPem } = await enrolFabricIdentity(key, base);
      const cert = new X509Certificate(certificatePem);
      const caCert = new X509Certificate(ca?.caCertPem ?? '');

      expect(cert.checkIssued(caCert)).to.be.true;
      expect(cert.verify(caCert.publicKey)).to.be.true;
      expect(new X509Certificate(caChainPem).fingerprint256).to.equal(caCert.fingerprint256);
      expect(spkiOf(cert.publicKey).equals(spkiOf(key.publicKey))).to.be.true;
      expect(attributeText(certificatePem)).to.equal('{"attrs":{"role":"operator"}}');
      expect(cert.subject.split('\n')).to.include(`CN=${operator.id}`);
      expect(cert.ca).to.be.false;
    });

    it('enrols a request from newIdentityCsr at the default CA when no CA name is given', async () => {
      const { caName, ...withoutName } = base;
      expect(caName).to.equal('keyfleet-ca');
      const csrPem = await newIdentityCsr(key, { commonName: operator.id });
      const { certificatePem } = await enrolWithCsr({ ...withoutName, csrPem, publicKey: key.publicKey });
      expect(spkiOf(new X509Certificate(certificatePem).publicKey).equals(spkiOf(key.publicKey))).to.be.true;
      expect(attributeText(certificatePem)).to.equal('{"attrs":{"role":"operator"}}');
    });

    describe('refuses, with a coded error that never holds a secret', () => {
      let silent: TcpServer;
      const held: Socket[] = [];
      let silentPort: number;
      let closedPort: number;

      before(async () => {
        // Accepts connections and never answers: a CA that hangs.
        silent = createTcpServer((socket) => held.push(socket));
        await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
        const address = silent.address();
        silentPort = typeof address === 'object' && address !== null ? address.port : 0;
        closedPort = await freePort();
      });

      after(async () => {
        for (const socket of held) socket.destroy();
        await new Promise((r) => silent.close(r));
      });

      const cases: {
        name: string;
        enrol: () => Promise<unknown>;
        code: string;
        detail?: string;
        says: RegExp;
        secrets?: () => string[];
      }[] = [
        {
          name: 'a wrong secret',
          enrol: () => enrolFabricIdentity(key, { ...base, enrolmentSecret: 'wrong-' + operator.secret }),
          code: 'FABRIC_ENROLMENT_REFUSED',
          detail: FabricEnrolmentFailure.AuthenticationFailed,
          says: /authentication failure/,
          secrets: () => ['wrong-' + operator.secret],
        },
        {
          name: 'an unregistered enrolment id',
          enrol: () => enrolFabricIdentity(key, { ...base, enrolmentId: 'nobody' }),
          code: 'FABRIC_ENROLMENT_REFUSED',
          detail: FabricEnrolmentFailure.AuthenticationFailed,
          says: /enrolment of nobody .*not registered or the secret is wrong/,
        },
        {
          name: 'an identity registered without the role attribute',
          enrol: () =>
            enrolFabricIdentity(key, { ...base, enrolmentId: roleless.id, enrolmentSecret: roleless.secret }),
          code: 'FABRIC_ENROLMENT_REFUSED',
          detail: FabricEnrolmentFailure.RoleAttributeMissing,
          says: /not registered with the 'role' attribute/,
          secrets: () => [roleless.secret],
        },
        {
          name: 'a certificate with another role than expected',
          enrol: () => enrolFabricIdentity(key, { ...base, role: 'auditor' }),
          code: 'FABRIC_ENROLMENT_REFUSED',
          detail: FabricEnrolmentFailure.RoleMismatch,
          says: /'role' attribute is 'operator', not 'auditor'/,
        },
        {
          name: 'a CA whose TLS certificate does not chain to the pinned root',
          enrol: async () =>
            enrolFabricIdentity(key, {
              ...base,
              tlsRootCertPem: (await newDeviceCa({ key: newSoftwareKey() })).certificatePem,
            }),
          code: 'FABRIC_ENROLMENT_REFUSED',
          detail: FabricEnrolmentFailure.CaTlsUntrusted,
          says: /TLS certificate is not trusted by the pinned root/,
        },
        {
          name: 'an unknown CA name',
          enrol: () => enrolFabricIdentity(key, { ...base, caName: 'no-such-ca' }),
          code: 'FABRIC_ENROLMENT_REFUSED',
          detail: FabricEnrolmentFailure.CaRefused,
          says: /code 19.*no-such-ca/,
        },
        {
          name: 'a request for another key than the HSM key (nothing is sent)',
          enrol: async () =>
            enrolWithCsr({
              ...base,
              csrPem: await newIdentityCsr(newSoftwareKey(), { commonName: operator.id }),
              publicKey: key.publicKey,
            }),
          code: 'CSR_INVALID',
          says: /another key than the HSM key/,
        },
        {
          name: 'a CA that is not listening',
          enrol: () => enrolFabricIdentity(key, { ...base, url: `https://127.0.0.1:${closedPort}` }),
          code: 'FABRIC_CA_UNAVAILABLE',
          says: /unreachable \(ECONNREFUSED\)/,
        },
        {
          name: 'a CA that accepts and never answers',
          enrol: () => enrolFabricIdentity(key, { ...base, url: `https://127.0.0.1:${silentPort}`, timeoutMs: 300 }),
          code: 'FABRIC_CA_UNAVAILABLE',
          says: /no answer within 300 ms/,
        },
        {
          name: 'a plain-HTTP URL',
          enrol: () => enrolFabricIdentity(key, { ...base, url: (ca?.url ?? '').replace('https:', 'http:') }),
          code: 'CONFIG_INVALID',
          says: /must be https/,
        },
        {
          name: 'credentials in the URL',
          enrol: () =>
            enrolFabricIdentity(key, {
              ...base,
              url: (ca?.url ?? '').replace('//', `//${operator.id}:${operator.secret}@`),
            }),
          code: 'CONFIG_INVALID',
          says: /must not carry credentials/,
        },
      ];

      for (const c of cases) {
        it(c.name, async () => {
          const err = await rejection(c.enrol());
          expect(err.code, err.message).to.equal(c.code);
          expect(err.detail).to.equal(c.detail);
          expect(err.message).to.match(c.says);
          const everything = inspect(err, { depth: 10 });
          for (const s of [operator.secret, roleless.secret, ...(c.secrets?.() ?? [])]) {
            expect(everything).not.to.include(s);
          }
        });
      }
    });
  });

  describe('against a CA that answers wrongly', () => {
    let impostor: Awaited<ReturnType<typeof startImpostorCa>>;
    let certificatePem: string;
    let caChainPem: string;
    /** A genuine certificate of the same CA and identity, but for another key than the HSM key. */
    let otherKeyCertificatePem: string;

    before(async () => {
      impostor = await startImpostorCa();
      ({ certificatePem, caChainPem } = await enrolFabricIdentity(key, base));
      ({ certificatePem: otherKeyCertificatePem } = await enrolFabricIdentity(newSoftwareKey(), base));
    });
    after(() => impostor.close());

    const b64 = (text: string): string => Buffer.from(text).toString('base64');
    const success = (cert: () => string, chain: () => string): string =>
      JSON.stringify({ success: true, result: { Cert: b64(cert()), ServerInfo: { CAChain: b64(chain()) } } });

    const cases: {
      name: string;
      status: number;
      body: () => string;
      code: string;
      detail?: string;
      says: RegExp;
    }[] = [
      {
        name: 'a certificate for another key',
        status: 201,
        body: () =>
          success(
            () => otherKeyCertificatePem,
            () => caChainPem,
          ),
        code: 'FABRIC_ENROLMENT_REFUSED',
        detail: FabricEnrolmentFailure.KeyMismatch,
        says: /another key than the HSM key/,
      },
      {
        name: 'a certificate from outside the CA chain',
        status: 201,
        body: () =>
          success(
            () => certificatePem,
            () => impostor.tlsRootCertPem,
          ),
        code: 'FABRIC_ENROLMENT_REFUSED',
        detail: FabricEnrolmentFailure.NotIssuedByCa,
        says: /no certificate of the CA chain/,
      },
      {
        name: 'success without a certificate',
        status: 201,
        body: () => JSON.stringify({ success: true, result: {} }),
        code: 'FABRIC_ENROLMENT_REFUSED',
        detail: FabricEnrolmentFailure.ResponseInvalid,
        says: /lacks the certificate/,
      },
      {
        name: 'a refusal that echoes the secret',
        status: 400,
        body: () => JSON.stringify({ success: false, errors: [{ code: 5, message: `bad secret ${operator.secret}` }] }),
        code: 'FABRIC_ENROLMENT_REFUSED',
        detail: FabricEnrolmentFailure.CaRefused,
        says: /code 5\): bad secret <secret>/,
      },
      {
        name: 'a proxy error page',
        status: 502,
        body: () => '<html>bad gateway</html>',
        code: 'FABRIC_CA_UNAVAILABLE',
        says: /HTTP 502/,
      },
      {
        name: 'a 200 that is not a Fabric CA answer',
        status: 200,
        body: () => '{"hello":"world"}',
        code: 'FABRIC_ENROLMENT_REFUSED',
        detail: FabricEnrolmentFailure.ResponseInvalid,
        says: /HTTP 200 without a Fabric CA answer/,
      },
    ];

    for (const c of cases) {
      it(`refuses ${c.name}`, async () => {
        impostor.script.answer = { status: c.status, body: c.body() };
        const err = await rejection(
          enrolFabricIdentity(key, { ...base, url: impostor.url, tlsRootCertPem: impostor.tlsRootCertPem }),
        );
        expect(err.code, err.message).to.equal(c.code);
        expect(err.detail).to.equal(c.detail);
        expect(err.message).to.match(c.says);
        expect(inspect(err, { depth: 10 })).not.to.include(operator.secret);
      });
    }
  });

  describe('assertFabricIdentity', () => {
    let certificatePem: string;
    let caChainPem: string;

    before(async () => {
      ({ certificatePem, caChainPem } = await enrolFabricIdentity(key, base));
    });

    it('accepts the enrolment certificate for the HSM key and role', () => {
      assertFabricIdentity(certificatePem, { publicKey: key.publicKey, role: 'operator', caChainPem });
    });

    const cases: {
      name: string;
      cert: () => Promise<string> | string;
      publicKey?: () => EcSigningKey['publicKey'];
      role?: string;
      now?: Date;
      chain?: () => Promise<string> | string;
      detail: string;
    }[] = [
      {
        name: 'another key',
        cert: () => certificatePem,
        publicKey: () => newSoftwareKey().publicKey,
        detail: FabricEnrolmentFailure.KeyMismatch,
      },
      {
        name: 'another role',
        cert: () => certificatePem,
        role: 'auditor',
        detail: FabricEnrolmentFailure.RoleMismatch,
      },
      {
        name: 'a certificate for the key without the role attribute',
        cert: async () => {
          const deviceCa = await newDeviceCa({ key: newSoftwareKey() });
          return (await deviceCa.issue(await newIdentityCsr(key, { commonName: 'sensor-1' }), 'sensor-1')).pem;
        },
        detail: FabricEnrolmentFailure.RoleMismatch,
      },
      {
        name: 'a chain that did not issue it',
        cert: () => certificatePem,
        chain: async () => (await newDeviceCa({ key: newSoftwareKey() })).certificatePem,
        detail: FabricEnrolmentFailure.NotIssuedByCa,
      },
      {
        name: 'an expired certificate',
        cert: () => certificatePem,
        now: new Date(Date.now() + 2 * 365 * 86_400_000),
        detail: FabricEnrolmentFailure.NotValidNow,
      },
      {
        name: 'a certificate not valid yet',
        cert: () => certificatePem,
        now: new Date(Date.now() - 86_400_000),
        detail: FabricEnrolmentFailure.NotValidNow,
      },
      { name: 'text that is not a certificate', cert: () => 'hello', detail: FabricEnrolmentFailure.ResponseInvalid },
    ];

    for (const c of cases) {
      it(`refuses ${c.name}`, async () => {
        const pem = await c.cert();
        const chain = c.chain === undefined ? caChainPem : await c.chain();
        const expected = {
          publicKey: c.publicKey?.() ?? key.publicKey,
          role: c.role ?? 'operator',
          caChainPem: chain,
          ...(c.now === undefined ? {} : { now: () => c.now ?? new Date() }),
        };
        let caught: unknown;
        try {
          assertFabricIdentity(pem, expected);
        } catch (err) {
          caught = err;
        }
        expect(caught).to.be.instanceOf(GatewayError);
        expect((caught as GatewayError).code).to.equal('FABRIC_ENROLMENT_REFUSED');
        expect((caught as GatewayError).detail).to.equal(c.detail);
      });
    }
  });
});
