import { expect } from 'chai';
import { encodeHeader, envelopeAad, formatEnvelope, parseEnvelope } from './envelope';

describe('key-service envelope', () => {
  const header = encodeHeader('orders', 3);
  const good = formatEnvelope(header, new Uint8Array(12), Buffer.from('ct'), new Uint8Array(16));

  it('round-trips KeyID and version in a JWE compact form with an empty key part', () => {
    expect(Buffer.from(header, 'base64url').toString()).to.equal(
      '{"alg":"dir","enc":"A256GCM","kid":"orders","kfv":1,"ver":3}',
    );
    const parsed = parseEnvelope(good);
    expect(parsed).to.not.be.a('string');
    if (typeof parsed !== 'string') expect(parsed.header).to.include({ kid: 'orders', ver: 3 });
    expect(good.split('.')[1]).to.equal('');
  });

  it('binds the header, and the caller AAD after it (RFC 7516 §5.1 step 14)', () => {
    expect(envelopeAad(header).toString()).to.equal(header);
    expect(envelopeAad(header, Buffer.from('ctx')).toString()).to.equal(`${header}.Y3R4`);
  });

  const b = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const [, , iv, ct, tag] = good.split('.') as [string, string, string, string, string];
  const cases: [string, unknown][] = [
    ['not a string', 42],
    ['four parts', `${header}.${iv}.${ct}.${tag}`],
    ['an encrypted key', `${header}.AA.${iv}.${ct}.${tag}`],
    ['another alg', `${b({ alg: 'A256KW', enc: 'A256GCM', kfv: 1, kid: 'k', ver: 1 })}..${iv}.${ct}.${tag}`],
    ['format version 2', `${b({ alg: 'dir', enc: 'A256GCM', kfv: 2, kid: 'k', ver: 1 })}..${iv}.${ct}.${tag}`],
    ['an extra member', `${b({ alg: 'dir', enc: 'A256GCM', kfv: 1, kid: 'k', ver: 1, x: 1 })}..${iv}.${ct}.${tag}`],
    ['version 0', `${b({ alg: 'dir', enc: 'A256GCM', kfv: 1, kid: 'k', ver: 0 })}..${iv}.${ct}.${tag}`],
    ['a bad KeyID', `${b({ alg: 'dir', enc: 'A256GCM', kfv: 1, kid: '../x', ver: 1 })}..${iv}.${ct}.${tag}`],
    ['a short IV', `${header}..AAAA.${ct}.${tag}`],
    ['a short tag', `${header}..${iv}.${ct}.AAAA`],
    ['not base64url', `${header}..${iv}.c+t.${tag}`],
  ];
  for (const [name, input] of cases) {
    it(`refuses ${name}`, () => {
      expect(parseEnvelope(input)).to.be.a('string');
    });
  }
});
