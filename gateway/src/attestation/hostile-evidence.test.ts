import { expect } from 'chai';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { newDeviceCa } from '../ca/device-ca';
import { newSoftwareKey } from '../testing/software-key';
import { AttestationError } from './errors';
import { MaxEvidenceBytes } from './evidence';
import { newCsr, newFleet, StartMs, type Fleet, type TestDevice } from '../testing/attestation-fleet';
import { newVerifier, type Verifier } from './verifier';

type Json = Record<string, unknown>;
const b64u = (value: string | Buffer): string => Buffer.from(value).toString('base64url');
const json = (value: unknown): string => b64u(JSON.stringify(value));

interface Base {
  readonly header: Json;
  readonly claims: Json;
  readonly key: KeyObject;
  readonly evidence: string;
  /** Signs raw segments (already base64url) with `key`. */
  raw(header: string, payload: string, key?: KeyObject): string;
  /** Signs a header and claims set. */
  forge(header: Json, claims: Json, key?: KeyObject): string;
  expiredCertX5c: string;
  foreignCaX5c: string;
  caX5c: string;
}

const files = (entries: unknown): [number, string][] => [[50, json(entries)]];
const goodFile = { name: 'app.js', alg: 'sha-256', digest: 'ab'.repeat(32) };
const nowSeconds = Math.floor(StartMs / 1000);

/** Hostile evidence: [what, how to make it, the code it is refused with]. Add a case with one line. */
const cases: [string, (b: Base) => unknown, string][] = [
  ['not a string', () => 42, 'EVIDENCE_MALFORMED'],
  ['empty', () => '', 'EVIDENCE_MALFORMED'],
  ['two segments', (b) => b.evidence.split('.').slice(0, 2).join('.'), 'EVIDENCE_MALFORMED'],
  ['four segments', (b) => `${b.evidence}.AAAA`, 'EVIDENCE_MALFORMED'],
  ['JWS JSON serialisation', (b) => JSON.stringify({ payload: b.evidence.split('.')[1] }), 'EVIDENCE_MALFORMED'],
  ['larger than the limit', () => `${'a'.repeat(MaxEvidenceBytes)}.b.c`, 'EVIDENCE_MALFORMED'],
  ['header is not JSON', (b) => b.raw(b64u('{alg:ES256'), json(b.claims)), 'EVIDENCE_MALFORMED'],
  ['header is an array', (b) => b.raw(json(['ES256']), json(b.claims)), 'EVIDENCE_MALFORMED'],
  ['header is not UTF-8', (b) => b.raw(b64u(Buffer.from([0x7b, 0xff, 0x7d])), json(b.claims)), 'EVIDENCE_MALFORMED'],
  ['header in padded base64', (b) => b.raw(`${json(b.header)}=`, json(b.claims)), 'EVIDENCE_MALFORMED'],
  ['alg none', (b) => b.forge({ ...b.header, alg: 'none' }, b.claims), 'EVIDENCE_MALFORMED'],
  ['alg HS256', (b) => b.forge({ ...b.header, alg: 'HS256' }, b.claims), 'EVIDENCE_MALFORMED'],
  ['alg ES384', (b) => b.forge({ ...b.header, alg: 'ES384' }, b.claims), 'EVIDENCE_MALFORMED'],
  ['typ JWT', (b) => b.forge({ ...b.header, typ: 'JWT' }, b.claims), 'EVIDENCE_MALFORMED'],
  ['typ missing', (b) => b.forge({ alg: 'ES256', x5c: b.header.x5c }, b.claims), 'EVIDENCE_MALFORMED'],
  ['embedded jwk', (b) => b.forge({ ...b.header, jwk: { kty: 'EC' } }, b.claims), 'EVIDENCE_MALFORMED'],
  ['jku', (b) => b.forge({ ...b.header, jku: 'https://evil.example/k' }, b.claims), 'EVIDENCE_MALFORMED'],
  ['crit', (b) => b.forge({ ...b.header, crit: ['exp'] }, b.claims), 'EVIDENCE_MALFORMED'],
  ['kid', (b) => b.forge({ ...b.header, kid: 'device-ca' }, b.claims), 'EVIDENCE_MALFORMED'],
  ['x5c missing', (b) => b.forge({ alg: 'ES256', typ: 'eat+jwt' }, b.claims), 'EVIDENCE_MALFORMED'],
  ['x5c empty', (b) => b.forge({ ...b.header, x5c: [] }, b.claims), 'EVIDENCE_MALFORMED'],
  ['x5c a string', (b) => b.forge({ ...b.header, x5c: (b.header.x5c as string[])[0] }, b.claims), 'EVIDENCE_MALFORMED'],
  [
    'x5c of three',
    (b) => b.forge({ ...b.header, x5c: [...(b.header.x5c as string[]), b.caX5c] }, b.claims),
    'EVIDENCE_MALFORMED',
  ],
  [
    'x5c not base64',
    (b) => b.forge({ ...b.header, x5c: [`${(b.header.x5c as string[])[0]}!`] }, b.claims),
    'EVIDENCE_MALFORMED',
  ],
  ['x5c[0] not DER', (b) => b.forge({ ...b.header, x5c: ['MIIB'] }, b.claims), 'CERTIFICATE_UNTRUSTED'],
  ['x5c[0] is the CA', (b) => b.forge({ ...b.header, x5c: [b.caX5c] }, b.claims), 'CERTIFICATE_UNTRUSTED'],
  [
    'x5c[0] from a foreign CA',
    (b) => b.forge({ ...b.header, x5c: [b.foreignCaX5c] }, b.claims),
    'CERTIFICATE_UNTRUSTED',
  ],
  [
    'x5c[1] not the CA',
    (b) => b.forge({ ...b.header, x5c: [(b.header.x5c as string[])[0], b.foreignCaX5c] }, b.claims),
    'CERTIFICATE_UNTRUSTED',
  ],
  ['expired certificate', (b) => b.forge({ ...b.header, x5c: [b.expiredCertX5c] }, b.claims), 'CERTIFICATE_UNTRUSTED'],
  [
    'signature by another key',
    (b) => b.forge(b.header, b.claims, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey),
    'EVIDENCE_SIGNATURE_INVALID',
  ],
  ['signature truncated', (b) => b.evidence.slice(0, -4), 'EVIDENCE_SIGNATURE_INVALID'],
  [
    'payload outside base64url',
    (b) => {
      const [h, p, s] = b.evidence.split('.');
      return `${h}.${p}*.${s}`;
    },
    'EVIDENCE_MALFORMED',
  ],
  [
    'claims re-encoded after signing',
    (b) => {
      const [h, , s] = b.evidence.split('.');
      return `${h}.${json({ ...b.claims, swname: 'x' })}.${s}`;
    },
    'EVIDENCE_SIGNATURE_INVALID',
  ],
  ['payload not JSON', (b) => b.raw(json(b.header), b64u('eat')), 'EVIDENCE_MALFORMED'],
  ['payload an array', (b) => b.raw(json(b.header), json([b.claims])), 'EVIDENCE_MALFORMED'],
  ['unknown claim', (b) => b.forge(b.header, { ...b.claims, admin: true }), 'CLAIMS_INVALID'],
  [
    '__proto__ claim',
    (b) => b.raw(json(b.header), b64u(JSON.stringify(b.claims).replace(/}$/, ',"__proto__":{"x":1}}'))),
    'CLAIMS_INVALID',
  ],
  ['eat_nonce missing', (b) => b.forge(b.header, { ...b.claims, eat_nonce: undefined }), 'CLAIMS_INVALID'],
  ['eat_nonce a number', (b) => b.forge(b.header, { ...b.claims, eat_nonce: 12345678901 }), 'CLAIMS_INVALID'],
  ['eat_nonce 75 characters', (b) => b.forge(b.header, { ...b.claims, eat_nonce: 'A'.repeat(75) }), 'CLAIMS_INVALID'],
  ['eat_nonce an array', (b) => b.forge(b.header, { ...b.claims, eat_nonce: [b.claims.eat_nonce] }), 'CLAIMS_INVALID'],
  [
    'eat_profile of another profile',
    (b) => b.forge(b.header, { ...b.claims, eat_profile: 'tag:psacertified.org,2023:psa#tfm' }),
    'CLAIMS_INVALID',
  ],
  ['iat a string', (b) => b.forge(b.header, { ...b.claims, iat: String(nowSeconds) }), 'CLAIMS_INVALID'],
  ['iat a fraction', (b) => b.forge(b.header, { ...b.claims, iat: nowSeconds + 0.5 }), 'CLAIMS_INVALID'],
  ['iat an hour ahead', (b) => b.forge(b.header, { ...b.claims, iat: nowSeconds + 3600 }), 'EVIDENCE_NOT_FRESH'],
  ['iat an hour old', (b) => b.forge(b.header, { ...b.claims, iat: nowSeconds - 3600 }), 'EVIDENCE_NOT_FRESH'],
  ['exp passed', (b) => b.forge(b.header, { ...b.claims, exp: nowSeconds - 1 }), 'EVIDENCE_NOT_FRESH'],
  [
    'ueid of unknown type',
    (b) => b.forge(b.header, { ...b.claims, ueid: b64u(Buffer.alloc(33, 9)) }),
    'CLAIMS_INVALID',
  ],
  [
    'ueid RAND of 20 bytes',
    (b) => b.forge(b.header, { ...b.claims, ueid: b64u(Buffer.concat([Buffer.of(1), Buffer.alloc(20)])) }),
    'CLAIMS_INVALID',
  ],
  [
    'hwmodel of 33 bytes',
    (b) => b.forge(b.header, { ...b.claims, hwmodel: b64u(Buffer.alloc(33, 65)) }),
    'CLAIMS_INVALID',
  ],
  ['hwmodel empty', (b) => b.forge(b.header, { ...b.claims, hwmodel: '' }), 'CLAIMS_INVALID'],
  [
    'swname with a control character',
    (b) => b.forge(b.header, { ...b.claims, swname: 'agent\u0000' }),
    'CLAIMS_INVALID',
  ],
  ['swname empty', (b) => b.forge(b.header, { ...b.claims, swname: '' }), 'CLAIMS_INVALID'],
  ['swversion a string', (b) => b.forge(b.header, { ...b.claims, swversion: '0.1.0' }), 'CLAIMS_INVALID'],
  [
    'swversion scheme a string',
    (b) => b.forge(b.header, { ...b.claims, swversion: ['0.1.0', 'semver'] }),
    'CLAIMS_INVALID',
  ],
  ['dbgstat 5', (b) => b.forge(b.header, { ...b.claims, dbgstat: 5 }), 'CLAIMS_INVALID'],
  ['dbgstat a boolean', (b) => b.forge(b.header, { ...b.claims, dbgstat: false }), 'CLAIMS_INVALID'],
  ['measurements missing', (b) => b.forge(b.header, { ...b.claims, measurements: undefined }), 'CLAIMS_INVALID'],
  ['measurements empty', (b) => b.forge(b.header, { ...b.claims, measurements: [] }), 'CLAIMS_INVALID'],
  [
    'measurements of another content-format',
    (b) => b.forge(b.header, { ...b.claims, measurements: [[60, json([goodFile])]] }),
    'CLAIMS_INVALID',
  ],
  [
    'measurements content not JSON',
    (b) => b.forge(b.header, { ...b.claims, measurements: [[50, b64u('[{')]] }),
    'CLAIMS_INVALID',
  ],
  [
    'measurements content an object',
    (b) => b.forge(b.header, { ...b.claims, measurements: files(goodFile) }),
    'CLAIMS_INVALID',
  ],
  ['measurements content empty', (b) => b.forge(b.header, { ...b.claims, measurements: files([]) }), 'CLAIMS_INVALID'],
  [
    'measured file with upper-case digest',
    (b) => b.forge(b.header, { ...b.claims, measurements: files([{ ...goodFile, digest: 'AB'.repeat(32) }]) }),
    'CLAIMS_INVALID',
  ],
  [
    'measured file with a short digest',
    (b) => b.forge(b.header, { ...b.claims, measurements: files([{ ...goodFile, alg: 'sha-384' }]) }),
    'CLAIMS_INVALID',
  ],
  [
    'measured file with alg md5',
    (b) =>
      b.forge(b.header, { ...b.claims, measurements: files([{ ...goodFile, alg: 'md5', digest: 'ab'.repeat(16) }]) }),
    'CLAIMS_INVALID',
  ],
  [
    'measured file named with a slash',
    (b) => b.forge(b.header, { ...b.claims, measurements: files([{ ...goodFile, name: '../etc/passwd' }]) }),
    'CLAIMS_INVALID',
  ],
  [
    'measured file named twice',
    (b) => b.forge(b.header, { ...b.claims, measurements: files([goodFile, goodFile]) }),
    'CLAIMS_INVALID',
  ],
  [
    'measured file with an extra field',
    (b) => b.forge(b.header, { ...b.claims, measurements: files([{ ...goodFile, ok: true }]) }),
    'CLAIMS_INVALID',
  ],
];

describe('hostile evidence is refused with its code and writes nothing', function () {
  this.timeout(60_000);
  let fleet: Fleet;
  let verifier: Verifier;
  let base: Base;
  let device: TestDevice;

  before(async () => {
    fleet = await newFleet();
    verifier = newVerifier({
      deviceCaCertificatePem: fleet.ca.certificatePem,
      ledger: fleet.verifierLedger,
      resultKey: fleet.verifierKey,
      verifierId: fleet.verifierId,
      policyId: 'keyfleet-appraisal-v1',
      challenges: fleet.challenges,
      now: () => fleet.now(),
    });
    device = await fleet.enrol('dev-hostile');
    const evidence = await fleet.attest(device);
    const [h, p] = evidence.split('.') as [string, string];
    const der = (pem: string) => pem.replace(/-----[A-Z ]+-----|\s/g, '');
    const expiredCa = await newDeviceCa({
      key: fleet.caKey,
      certificatePem: fleet.ca.certificatePem,
      validityDays: 1,
      now: () => new Date(StartMs - 10 * 86_400_000),
    });
    const foreignCa = await newDeviceCa({ key: newSoftwareKey('foreign') });
    const raw = (header: string, payload: string, key: KeyObject = device.key) =>
      `${header}.${payload}.${sign('sha256', Buffer.from(`${header}.${payload}`), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    base = {
      header: JSON.parse(Buffer.from(h, 'base64url').toString()) as Json,
      claims: JSON.parse(Buffer.from(p, 'base64url').toString()) as Json,
      key: device.key,
      evidence,
      raw,
      forge: (header, claims, key) => raw(json(header), json(claims), key),
      expiredCertX5c: der((await expiredCa.issue((await newCsr(device.id)).csrPem, device.id)).pem),
      foreignCaX5c: der((await foreignCa.issue((await newCsr(device.id)).csrPem, device.id)).pem),
      caX5c: der(fleet.ca.certificatePem),
    };
  });
  after(async () => {
    await fleet.close();
  });

  it(`has at least 30 cases (${cases.length})`, () => {
    expect(cases.length).to.be.at.least(30);
  });

  for (const [what, make, code] of cases) {
    it(`${what} → ${code}`, async () => {
      const evidence = make(base);
      const before = fleet.local.snapshot();
      let caught: unknown;
      try {
        await verifier.appraise(evidence);
      } catch (err) {
        caught = err;
      }
      expect(caught, 'refused').to.be.instanceOf(AttestationError);
      expect((caught as AttestationError).code, (caught as Error).message).to.equal(code);
      expect(fleet.local.snapshot()).to.equal(before);
    });
  }

  it('and the untouched evidence, re-signed the same way, is accepted (the table tests what it says)', async () => {
    const outcome = await verifier.appraise(base.forge(base.header, base.claims));
    expect(outcome.status).to.equal('affirming');
  });
});
