import 'reflect-metadata';
import { expect } from 'chai';
import { createHash, createPublicKey, generateKeyPairSync, KeyObject, webcrypto, X509Certificate } from 'node:crypto';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import {
  DebugStatus,
  EvidenceError,
  EvidenceProfile,
  collectEvidence,
  measureFiles,
  type EvidenceOptions,
  type FileMeasurement,
} from './index';

describe('agent evidence (EAT)', () => {
  let dir: string;
  let key: KeyObject;
  let certPem: string;
  let options: EvidenceOptions;
  const nonce = 'AQ' + 'x'.repeat(69);
  const now = () => new Date('2026-03-02T10:00:00.000Z');

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keyfleet-agent-'));
    writeFileSync(join(dir, 'app.js'), 'run();\n');
    writeFileSync(join(dir, 'agent.json'), '{"interval":60}');
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
    x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=dev-1',
      notBefore: new Date('2026-01-01T00:00:00Z'),
      notAfter: new Date('2027-01-01T00:00:00Z'),
      keys,
      signingAlgorithm: alg,
    });
    certPem = cert.toString('pem');
    key = KeyObject.from(keys.privateKey);
    options = {
      deviceKey: key,
      certificateChainPem: certPem,
      nonce,
      measuredFiles: [join(dir, 'app.js'), { name: 'config', path: join(dir, 'agent.json') }],
      hwmodel: 'rpi-cm4',
      swname: 'keyfleet-agent',
      swversion: '1.2.3',
      dbgstat: DebugStatus.Disabled,
      now,
    };
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('signs RFC 9711 claims ES256 with the certified key, the chain in x5c', async () => {
    const evidence = await collectEvidence(options);
    const header = decodeProtectedHeader(evidence);
    expect(header).to.deep.equal({
      alg: 'ES256',
      typ: 'eat+jwt',
      x5c: [new X509Certificate(certPem).raw.toString('base64')],
    });
    const { payload } = await jwtVerify(evidence, createPublicKey(key), {
      currentDate: now(),
    });
    const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
    expect(payload).to.deep.include({
      eat_profile: EvidenceProfile,
      eat_nonce: nonce,
      iat: Math.floor(now().getTime() / 1000),
      ueid: Buffer.concat([Buffer.of(1), createHash('sha256').update(spki).digest()]).toString('base64url'),
      hwmodel: Buffer.from('rpi-cm4').toString('base64url'),
      swname: 'keyfleet-agent',
      swversion: ['1.2.3', 16384],
      dbgstat: 1,
    });
    const [[format, content]] = payload.measurements as [[number, string]];
    expect(format).to.equal(50);
    const files = JSON.parse(Buffer.from(content, 'base64url').toString()) as FileMeasurement[];
    expect(files).to.deep.equal([
      { name: 'app.js', alg: 'sha-256', digest: createHash('sha256').update('run();\n').digest('hex') },
      { name: 'config', alg: 'sha-256', digest: createHash('sha256').update('{"interval":60}').digest('hex') },
    ]);
  });

  it('measures the files as they are now: a changed file changes its digest, and only its digest', async () => {
    const before = await measureFiles(options.measuredFiles);
    appendFileSync(join(dir, 'agent.json'), ' ');
    const after = await measureFiles(options.measuredFiles);
    expect(after[0]).to.deep.equal(before[0]);
    expect(after[1]?.digest).to.not.equal(before[1]?.digest);
  });

  const bad: [string, Partial<EvidenceOptions>, string][] = [
    [
      'a key that is not the certificate’s',
      { deviceKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey },
      'INVALID_OPTION',
    ],
    ['a public key', { deviceKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey }, 'INVALID_OPTION'],
    ['no certificate', { certificateChainPem: '' }, 'INVALID_OPTION'],
    ['a nonce that is not base64url', { nonce: 'not a nonce!' }, 'INVALID_OPTION'],
    ['a nonce too long for RFC 9711', { nonce: 'A'.repeat(75) }, 'INVALID_OPTION'],
    ['a hwmodel over 32 bytes', { hwmodel: 'm'.repeat(33) }, 'INVALID_OPTION'],
    ['no files', { measuredFiles: [] }, 'INVALID_OPTION'],
    ['a missing file', { measuredFiles: ['/nonexistent/keyfleet/file'] }, 'FILE_UNREADABLE'],
    ['two files of one name', { measuredFiles: ['/a/app.js', '/b/app.js'] }, 'INVALID_OPTION'],
    [
      'a file name outside the id alphabet',
      { measuredFiles: [{ name: 'a/b', path: '/etc/hostname' }] },
      'INVALID_OPTION',
    ],
  ];
  for (const [what, change, code] of bad) {
    it(`refuses ${what} with ${code}`, async () => {
      try {
        await collectEvidence({ ...options, ...change });
      } catch (err) {
        expect(err).to.be.instanceOf(EvidenceError);
        expect((err as EvidenceError).code).to.equal(code);
        return;
      }
      expect.fail('expected a refusal');
    });
  }
});
