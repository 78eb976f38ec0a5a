import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';

import * as x509 from '@peculiar/x509';
import { expect } from 'chai';
import { decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair } from 'jose';

import { AgentError } from '../errors.js';
import { newBearerMinter } from './bearer.js';
import { HttpError, HttpErrorCode, newHttpClient } from './client.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** A stand-in transport answering one status and body, recording what was sent. */
function answering(status: number, body: string) {
  const seen: { url: string; init: RequestInit | undefined }[] = [];
  const fetch = ((url: string, init?: RequestInit) => {
    seen.push({ url, init });
    return Promise.resolve(new Response(body === '' ? null : body, { status }));
  }) as typeof globalThis.fetch;
  return { fetch, seen };
}

describe('the shared HTTP client', () => {
  describe('an error answer becomes one HttpError with the server’s code', () => {
    const rows: {
      what: string;
      status: number;
      body: string;
      code: string;
      message: RegExp;
      detail?: string;
      answered: boolean;
    }[] = [
      {
        what: 'the {error:{code,message}} shape',
        status: 409,
        body: '{"error":{"code":"NONCE_REPLAYED","message":"the nonce was used"}}',
        code: 'NONCE_REPLAYED',
        message: /^the nonce was used$/,
        answered: true,
      },
      {
        what: 'a detail code under the code',
        status: 409,
        body: '{"error":{"code":"LEDGER_REJECTED","message":"m","detail":"KEY_EXISTS"}}',
        code: 'LEDGER_REJECTED',
        message: /^m$/,
        detail: 'KEY_EXISTS',
        answered: true,
      },
      {
        what: 'JSON without the error shape',
        status: 500,
        body: '{"oops":1}',
        code: 'HTTP_500',
        message: /answered 500/,
        answered: true,
      },
      {
        what: 'a code that is not a string',
        status: 400,
        body: '{"error":{"code":7,"message":["x"]}}',
        code: 'HTTP_400',
        message: /answered 400/,
        answered: true,
      },
      {
        what: 'a code that is not one of the API’s',
        status: 409,
        body: '{"error":{"code":"CONFLICT","message":"m","detail":"KEY_EXISTS"}}',
        code: 'HTTP_409',
        message: /^m$/,
        detail: 'KEY_EXISTS',
        answered: true,
      },
      { what: 'an empty error body', status: 401, body: '', code: 'HTTP_401', message: /answered 401/, answered: true },
      {
        what: 'an HTML error page',
        status: 502,
        body: '<html>bad gateway</html>',
        code: HttpErrorCode.NotJson,
        message: /answered 502 without JSON/,
        answered: false,
      },
      {
        what: 'a 200 that is not JSON',
        status: 200,
        body: 'ok',
        code: HttpErrorCode.NotJson,
        message: /answered 200 without JSON/,
        answered: false,
      },
    ];
    for (const row of rows) {
      it(row.what, async () => {
        const client = newHttpClient({ baseUrl: 'https://gw.test/', fetch: answering(row.status, row.body).fetch });
        const err: unknown = await client.request('GET', '/v1/x').then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).to.be.instanceOf(HttpError);
        expect(err, 'under the agent’s error base').to.be.instanceOf(AgentError);
        const e = err as HttpError;
        expect([e.status, e.code, e.detail, e.answered]).to.deep.equal([
          row.status,
          row.code,
          row.detail,
          row.answered,
        ]);
        expect(e.message).to.match(row.message);
      });
    }
  });

  it('sends JSON with the client’s authorization, or the one given for the request', async () => {
    const { fetch, seen } = answering(201, '{"ok":true}');
    const client = newHttpClient({
      baseUrl: 'https://gw.test//',
      fetch,
      authorization: () => Promise.resolve('Bearer client'),
    });
    expect(await client.request('POST', '/v1/a', { n: 1 })).to.deep.equal({ ok: true });
    await client.request('GET', '/v1/b', undefined, { authorization: 'Bearer own' });
    expect(seen.map((s) => [s.url, s.init?.method, s.init?.body])).to.deep.equal([
      ['https://gw.test/v1/a', 'POST', '{"n":1}'],
      ['https://gw.test/v1/b', 'GET', undefined],
    ]);
    const headers = seen.map((s) => s.init?.headers as Record<string, string>);
    expect(headers.map((h) => [h.authorization, h['content-type']])).to.deep.equal([
      ['Bearer client', 'application/json'],
      ['Bearer own', undefined],
    ]);
  });

  it('a server that cannot be reached is SERVER_UNREACHABLE, naming the cause', async () => {
    // A port that was free a moment ago: nothing listens there.
    const probe = createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = String((probe.address() as AddressInfo).port);
    probe.close();
    await once(probe, 'close');
    const client = newHttpClient({ baseUrl: `https://127.0.0.1:${port}`, serviceName: 'gateway' });
    const err = (await client.request('GET', '/healthz').catch((e: unknown) => e)) as HttpError;
    expect([err.code, err.status, err.answered]).to.deep.equal([HttpErrorCode.Unreachable, 0, false]);
    expect(err.message).to.equal(`cannot reach the gateway at https://127.0.0.1:${port} (ECONNREFUSED)`);
  });

  describe('TLS: trusts the operator’s CA, nothing else', () => {
    let pki: TestPki;
    let server: Server;
    let url: string;
    before(async () => {
      pki = await testPki();
      server = createServer({ key: pki.serverKey, cert: pki.serverCert, minVersion: 'TLSv1.3' }, (_req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end('{"status":"ok"}');
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      url = `https://127.0.0.1:${String((server.address() as AddressInfo).port)}`;
    });
    after(() => {
      server.close();
    });

    it('answers when the server’s certificate chains to the trusted CA', async () => {
      const client = newHttpClient({ baseUrl: url, tls: { ca: pki.caCert } });
      expect(await client.request('GET', '/healthz')).to.deep.equal({ status: 'ok' });
    });

    const untrusted = /\((SELF_SIGNED|UNABLE_TO)\w*\); trust the operator's CA certificate \(KEYFLEET_CA_FILE\)$/;
    const refusals: { what: string; ca: () => string | undefined; cause: RegExp }[] = [
      { what: 'without a trusted CA (public roots only)', ca: () => undefined, cause: untrusted },
      { what: 'trusting another CA', ca: () => pki.otherCaCert, cause: untrusted },
    ];
    for (const row of refusals) {
      it(`refuses the server ${row.what}`, async () => {
        const ca = row.ca();
        const client = newHttpClient({ baseUrl: url, ...(ca === undefined ? {} : { tls: { ca } }) });
        const err = (await client.request('GET', '/healthz').catch((e: unknown) => e)) as HttpError;
        expect(err.code).to.equal(HttpErrorCode.Unreachable);
        expect(err.message).to.match(row.cause);
      });
    }
  });
});

describe('the shared bearer-token minter', () => {
  it('mints the gateway’s token format and renews it when half its life is gone', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    let now = new Date('2026-11-01T10:00:00Z');
    const mint = newBearerMinter({
      credentials: { subject: 'alice', role: 'operator', kid: 'k1', privateJwk: await exportJWK(privateKey) },
      ttlSeconds: 120,
      now: () => now,
    });
    const first = await mint();
    const token = first.replace(/^Bearer /, '');
    expect(decodeProtectedHeader(token)).to.deep.equal({ alg: 'ES256', kid: 'k1', typ: 'JWT' });
    const at = Date.parse('2026-11-01T10:00:00Z') / 1000;
    expect(decodeJwt(token)).to.deep.equal({
      role: 'operator',
      sub: 'alice',
      aud: 'keyfleet-gateway',
      iat: at,
      exp: at + 120,
    });
    now = new Date('2026-11-01T10:00:59Z');
    expect(await mint()).to.equal(first);
    now = new Date('2026-11-01T10:01:00Z');
    const renewed = await mint();
    expect(renewed).to.not.equal(first);
    expect(decodeJwt(renewed.replace(/^Bearer /, '')).iat).to.equal(at + 60);
  });
});

interface TestPki {
  readonly caCert: string;
  readonly otherCaCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
}

const ec = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

async function testPki(): Promise<TestPki> {
  const ca = async (name: string) => {
    const keys = await webcrypto.subtle.generateKey(ec, true, ['sign', 'verify']);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      name,
      keys,
      signingAlgorithm: ec,
      extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
    });
    return { keys, cert };
  };
  const root = await ca('CN=test operator CA');
  const other = await ca('CN=another CA');
  const serverKeys = await webcrypto.subtle.generateKey(ec, true, ['sign', 'verify']);
  const serverCert = await x509.X509CertificateGenerator.create({
    subject: 'CN=127.0.0.1',
    issuer: root.cert.subject,
    publicKey: serverKeys.publicKey,
    signingKey: root.keys.privateKey,
    signingAlgorithm: ec,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3600_000),
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }])],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', serverKeys.privateKey)).toString('base64');
  return {
    caCert: root.cert.toString('pem'),
    otherCaCert: other.cert.toString('pem'),
    serverCert: serverCert.toString('pem'),
    serverKey: `-----BEGIN PRIVATE KEY-----\n${pkcs8.replace(/.{64}/g, '$&\n')}\n-----END PRIVATE KEY-----\n`,
  };
}
