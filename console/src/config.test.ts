import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { loadConsoleConfig } from './config';
import { openConsole } from './console';

/** The console's listener obeys the one rule of every keyfleet listener (gateway/src/http/tls.ts). */
describe('console configuration: HTTPS by default, plain HTTP only on loopback', () => {
  it('serves HTTPS by default, with the certificate and key files of its data directory', () => {
    expect(loadConsoleConfig({}).http.tls).to.deep.equal({
      certFile: '.keyfleet/console/tls-cert.pem',
      keyFile: '.keyfleet/console/tls-key.pem',
    });
    const set = { KEYFLEET_CONSOLE_TLS_CERT: 'c.pem', KEYFLEET_CONSOLE_TLS_KEY: 'k.pem' };
    expect(loadConsoleConfig(set).http.tls).to.deep.equal({ certFile: 'c.pem', keyFile: 'k.pem' });
  });

  const allowed: { host: string }[] = [
    { host: '127.0.0.1' },
    { host: '127.3.2.1' },
    { host: '::1' },
    { host: 'localhost' },
  ];
  for (const { host } of allowed) {
    it(`KEYFLEET_CONSOLE_TLS=off on ${host} is plain HTTP`, () => {
      const config = loadConsoleConfig({ KEYFLEET_CONSOLE_TLS: 'off', KEYFLEET_CONSOLE_HTTP_HOST: host });
      expect(config.http.tls).to.equal(undefined);
    });
  }

  const refused: { env: Record<string, string>; message: RegExp }[] = [
    {
      env: { KEYFLEET_CONSOLE_TLS: 'off', KEYFLEET_CONSOLE_HTTP_HOST: '0.0.0.0' },
      message: /KEYFLEET_CONSOLE_TLS=off .* only on loopback, not on 0\.0\.0\.0/,
    },
    {
      env: { KEYFLEET_CONSOLE_TLS: 'off', KEYFLEET_CONSOLE_HTTP_HOST: '10.0.0.5' },
      message: /only on loopback, not on 10\.0\.0\.5/,
    },
    { env: { KEYFLEET_CONSOLE_TLS: 'OFF' }, message: /KEYFLEET_CONSOLE_TLS must be on or off, got "OFF"/ },
    { env: { KEYFLEET_CONSOLE_TLS: 'yes' }, message: /KEYFLEET_CONSOLE_TLS must be on or off, got "yes"/ },
  ];
  for (const { env, message } of refused) {
    it(`refuses ${JSON.stringify(env)} with CONFIG_INVALID`, () => {
      expect(() => loadConsoleConfig(env))
        .to.throw(message)
        .with.property('code', 'CONFIG_INVALID');
    });
  }
});

describe('console TLS files', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'keyfleet-console-tls-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const rows: { what: string; cert: boolean; keyMode?: number; message: RegExp }[] = [
    { what: 'a key file others may read', cert: true, keyMode: 0o644, message: /TLS_KEY .* make it mode 0600/ },
    { what: 'a missing key file', cert: true, message: /KEYFLEET_CONSOLE_TLS_KEY .* cannot be read \(ENOENT\)/ },
    { what: 'a missing certificate file', cert: false, keyMode: 0o600, message: /TLS_CERT .* cannot be read/ },
  ];
  for (const [i, row] of rows.entries()) {
    it(`refuses ${row.what} with CONFIG_INVALID, before it connects to anything`, async () => {
      const certFile = join(dir, `cert-${String(i)}.pem`);
      const keyFile = join(dir, `key-${String(i)}.pem`);
      if (row.cert) writeFileSync(certFile, 'certificate');
      if (row.keyMode !== undefined) writeFileSync(keyFile, 'key', { mode: row.keyMode });
      const config = loadConsoleConfig({
        KEYFLEET_CONSOLE_TLS_CERT: certFile,
        KEYFLEET_CONSOLE_TLS_KEY: keyFile,
        KEYFLEET_CONSOLE_FABRIC_CONNECTION: join(dir, 'no-such-profile.json'),
      });
      const err = await openConsole(config).catch((e: unknown) => e);
      expect(err).to.have.property('code', 'CONFIG_INVALID');
      expect((err as Error).message).to.match(row.message);
    });
  }
});
