import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import { expect } from 'chai';
import { newDeviceCa, type DeviceCa } from '../ca/device-ca';
import { newSoftwareKey } from '../testing/software-key';
import { httpsOptions, readListenerSecurity, type ListenerSecurity } from './tls';

function read(env: Record<string, string>, host = '127.0.0.1'): { security: ListenerSecurity; problems: string[] } {
  const problems: string[] = [];
  const security = readListenerSecurity(
    { optional: (name) => env[name], problem: (message) => problems.push(message) },
    'KEYFLEET_HTTP_',
    host,
  );
  return { security, problems };
}

describe('listener security settings', () => {
  const rows: { env: Record<string, string>; host?: string; security?: ListenerSecurity; problem?: RegExp }[] = [
    {
      env: {},
      security: { kind: 'https', names: ['127.0.0.1', 'localhost', '::1'], requireClientCertificate: false },
    },
    {
      env: {},
      host: '0.0.0.0',
      security: { kind: 'https', names: ['localhost', '127.0.0.1', '::1'], requireClientCertificate: false },
    },
    {
      env: { KEYFLEET_HTTP_TLS_NAMES: 'gw.example, 10.0.0.5', KEYFLEET_HTTP_TLS_CLIENT_AUTH: 'require' },
      security: { kind: 'https', names: ['gw.example', '10.0.0.5'], requireClientCertificate: true },
    },
    { env: { KEYFLEET_HTTP_TLS: 'off' }, security: { kind: 'plain-http' } },
    { env: { KEYFLEET_HTTP_TLS: 'off' }, host: 'localhost', security: { kind: 'plain-http' } },
    { env: { KEYFLEET_HTTP_TLS: 'off' }, host: '0.0.0.0', problem: /allowed only on loopback, not on 0\.0\.0\.0/ },
    { env: { KEYFLEET_HTTP_TLS: 'off' }, host: '10.1.2.3', problem: /allowed only on loopback/ },
    {
      env: { KEYFLEET_HTTP_TLS: 'off', KEYFLEET_HTTP_TLS_CLIENT_AUTH: 'require' },
      problem: /TLS_CLIENT_AUTH=require needs KEYFLEET_HTTP_TLS=on/,
    },
    { env: { KEYFLEET_HTTP_TLS: 'yes' }, problem: /KEYFLEET_HTTP_TLS must be on or off, got "yes"/ },
    { env: { KEYFLEET_HTTP_TLS_CLIENT_AUTH: 'optional' }, problem: /must be none or require, got "optional"/ },
    { env: { KEYFLEET_HTTP_TLS_NAMES: 'gw.example,bad name' }, problem: /"bad name" is neither a DNS name/ },
    { env: { KEYFLEET_HTTP_TLS_NAMES: ' , ' }, problem: /names no host/ },
  ];
  for (const row of rows) {
    const label = `${JSON.stringify(row.env)} on ${row.host ?? '127.0.0.1'}`;
    it(`${label}: ${row.problem === undefined ? 'accepted' : 'refused'}`, () => {
      const { security, problems } = read(row.env, row.host);
      if (row.problem === undefined) {
        expect(problems).to.deep.equal([]);
        expect(security).to.deep.equal(row.security);
      } else {
        expect(problems.join('\n')).to.match(row.problem);
      }
    });
  }
});

describe('HTTPS options of a listener', () => {
  let ca: DeviceCa;
  before(async () => {
    ca = await newDeviceCa({ key: newSoftwareKey('device-ca') });
  });

  it('is undefined for plain HTTP', async () => {
    expect(await httpsOptions({ kind: 'plain-http' }, ca)).to.equal(undefined);
  });

  it('TLS 1.3 only, a fresh key each time, its certificate from the CA for the names', async () => {
    const security = { kind: 'https', names: ['gw.example', '127.0.0.1'], requireClientCertificate: false } as const;
    const first = await httpsOptions(security, ca);
    const second = await httpsOptions(security, ca);
    expect(first).to.include({ minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', requestCert: false });
    expect(first?.key).to.not.equal(second?.key);
    const certificate = new X509Certificate(String(first?.cert));
    expect(certificate.verify(new X509Certificate(ca.certificatePem).publicKey)).to.equal(true);
    expect(certificate.subjectAltName).to.equal('DNS:gw.example, IP Address:127.0.0.1');
    expect(certificate.keyUsage).to.deep.equal(['1.3.6.1.5.5.7.3.1']); // serverAuth only
    expect(certificate.ca).to.equal(false);
  });

  it('mutual TLS: requires a client certificate of the given CA', async () => {
    const security = { kind: 'https', names: ['localhost'], requireClientCertificate: true } as const;
    const options = await httpsOptions(security, ca, 'CLIENT CA PEM');
    expect(options).to.include({ requestCert: true, rejectUnauthorized: true, ca: 'CLIENT CA PEM' });
  });

  describe('a real listener refuses what it must', () => {
    let port = 0;
    let close = () => undefined as unknown;
    before(async () => {
      const options = await httpsOptions({ kind: 'https', names: ['127.0.0.1'], requireClientCertificate: false }, ca);
      const server = createServer(options ?? {}, (_req, res) => res.end('ok'));
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      port = (server.address() as AddressInfo).port;
      close = () => server.close();
    });
    after(() => close());

    const handshake = (options: { maxVersion?: 'TLSv1.2'; ca?: string }) =>
      new Promise<string>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port, ...options }, () => {
          resolve(String(socket.getProtocol()));
          socket.end();
        });
        socket.on('error', (err: NodeJS.ErrnoException) => {
          resolve(err.code ?? err.message);
        });
      });

    it('negotiates TLS 1.3 with a client that trusts the CA', async () => {
      expect(await handshake({ ca: ca.certificatePem })).to.equal('TLSv1.3');
    });
    it('refuses a TLS 1.2 client', async () => {
      expect(await handshake({ ca: ca.certificatePem, maxVersion: 'TLSv1.2' })).to.match(/PROTOCOL_VERSION|ALERT/);
    });
    it('is not trusted by a client without the CA', async () => {
      expect(await handshake({})).to.match(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED/);
    });
  });
});
