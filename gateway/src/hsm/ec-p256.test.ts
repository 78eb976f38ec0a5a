import { expect } from 'chai';
import { createHash, generateKeyPairSync, sign, verify } from 'node:crypto';
import {
  derToRs,
  fabricKeyId,
  isLowS,
  normalizeP256Signature,
  p1363ToDer,
  pointFromKeyObject,
  publicKeyForms,
  uncompressedPointFromEcPoint,
} from './ec-p256.js';
import { HsmError } from './hsm-error.js';

const n = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const hex32 = (v: bigint): Buffer => Buffer.from(v.toString(16).padStart(64, '0'), 'hex');

describe('P-256 signature encoding', () => {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const message = Buffer.from('keyfleet');

  it('turns a high-S signature into the low-S one that still verifies', () => {
    for (let i = 0; i < 64; i++) {
      const rs = sign('sha256', message, { key: privateKey, dsaEncoding: 'ieee-p1363' });
      const s = BigInt(`0x${rs.subarray(32).toString('hex')}`);
      // Flip to the high form on purpose, so both branches run whatever node produced.
      const high = isLowS(s) ? Buffer.concat([rs.subarray(0, 32), hex32(n - s)]) : rs;
      const der = p1363ToDer(normalizeP256Signature(high));
      expect(verify('sha256', message, { key: publicKey, dsaEncoding: 'der' }, der)).to.equal(true);
      expect(isLowS(derToRs(der).s)).to.equal(true);
    }
  });

  it('leaves a low-S signature unchanged', () => {
    const r = 5n;
    const s = n / 2n;
    const rs = Buffer.concat([hex32(r), hex32(s)]);
    expect(normalizeP256Signature(rs).equals(rs)).to.equal(true);
    expect(
      normalizeP256Signature(Buffer.concat([hex32(r), hex32(s + 1n)]))
        .subarray(32)
        .equals(hex32(n - s - 1n)),
    ).to.equal(true);
  });

  const derCases: [string, bigint, bigint, string][] = [
    ['small r and s', 1n, 2n, '3006020101020102'],
    ['high bit set gets a 0x00 pad', 0x80n, 0xffn, '30080202008002020 0ff'.replace(/ /g, '')],
    ['leading zero bytes are dropped', 0x1234n, 0x7fn, '3007020212340201 7f'.replace(/ /g, '')],
  ];
  for (const [name, r, s, expected] of derCases) {
    it(`DER: ${name}`, () => {
      const der = p1363ToDer(Buffer.concat([hex32(r), hex32(s)]));
      expect(der.toString('hex')).to.equal(expected);
      expect(derToRs(der)).to.deep.equal({ r, s });
    });
  }

  const badRaw: [string, Buffer][] = [
    ['63 bytes', Buffer.alloc(63, 1)],
    ['r = 0', Buffer.concat([hex32(0n), hex32(1n)])],
    ['s = n', Buffer.concat([hex32(1n), hex32(n)])],
  ];
  for (const [name, raw] of badRaw) {
    it(`refuses a raw signature with ${name}`, () => {
      expect(() => normalizeP256Signature(raw)).to.throw(HsmError);
    });
  }
});

describe('P-256 public keys', () => {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const point = pointFromKeyObject(publicKey);

  it('reads CKA_EC_POINT wrapped in an OCTET STRING or bare', () => {
    const wrapped = Buffer.concat([Buffer.of(0x04, 0x41), point]);
    expect(uncompressedPointFromEcPoint(wrapped).equals(point)).to.equal(true);
    expect(uncompressedPointFromEcPoint(point).equals(point)).to.equal(true);
    expect(() => uncompressedPointFromEcPoint(point.subarray(1))).to.throw(HsmError);
  });

  it('builds SPKI, PEM and JWK that match node:crypto', () => {
    const forms = publicKeyForms(point);
    expect(Buffer.from(forms.spki).equals(publicKey.export({ format: 'der', type: 'spki' }))).to.equal(true);
    expect(forms.pem).to.equal(publicKey.export({ format: 'pem', type: 'spki' }));
    expect(forms.jwk).to.deep.equal(publicKey.export({ format: 'jwk' }));
  });

  it('uses SHA-256 of the uncompressed point as CKA_ID (Fabric)', () => {
    expect(fabricKeyId(point).equals(createHash('sha256').update(point).digest())).to.equal(true);
  });

  it('refuses a point that is not on the curve', () => {
    const off = Buffer.from(point);
    off[64] = (off[64] ?? 0) ^ 1;
    expect(() => publicKeyForms(off))
      .to.throw(HsmError)
      .with.property('code', 'HSM_INVALID_ARGUMENT');
  });
});
