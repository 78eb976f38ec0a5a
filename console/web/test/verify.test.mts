import chai from 'chai';
import { calculateJwkThumbprint } from 'jose';
import { canonicalJson } from '../src/canonical.mjs';
import { jwkThumbprint, verifyProof, type ProofCheck, type PublicJwk } from '../src/verify.mjs';

const { expect } = chai;
const encoder = new TextEncoder();
const b64url = (bytes: Uint8Array | ArrayBuffer) =>
  btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');

describe('console: canonical JSON (mirror of the contract’s)', () => {
  // Vectors: docs/ledger.md (Merkle leaf 0) and the contract's rules (sorted keys at every depth).
  const rows: [string, unknown, string][] = [
    [
      'the ledger doc’s Merkle leaf',
      {
        VerifierID: 'verifier-1',
        Status: 'affirming',
        PolicyID: 'policy-gw-1',
        NonceDigest: '0'.repeat(64),
        IssuedAt: '2026-01-01T00:00:00.000Z',
        EvidenceDigest: '1'.repeat(64),
        DeviceID: 'dev-0001',
      },
      `{"DeviceID":"dev-0001","EvidenceDigest":"${'1'.repeat(64)}","IssuedAt":"2026-01-01T00:00:00.000Z","NonceDigest":"${'0'.repeat(64)}","PolicyID":"policy-gw-1","Status":"affirming","VerifierID":"verifier-1"}`,
    ],
    ['nested objects and arrays', { b: [{ z: 1, a: null }], a: true }, '{"a":true,"b":[{"a":null,"z":1}]}'],
    ['UTF-16 order, not locale order', { b: 1, B: 2, é: 3, e: 4 }, '{"B":2,"b":1,"e":4,"é":3}'],
    ['undefined members are left out', { a: undefined, b: 'x' }, '{"b":"x"}'],
    ['strings escaped as JSON.stringify does', { s: 'a"\n\u2028' }, '{"s":"a\\"\\n\u2028"}'],
  ];
  for (const [name, value, expected] of rows) {
    it(name, () => {
      expect(canonicalJson(value)).to.equal(expected);
    });
  }
});

describe('console: verifying a record’s Proof with WebCrypto', () => {
  let keys: CryptoKeyPair;
  let jwk: PublicJwk;
  const request = {
    Action: 'EnrolDevice',
    RequestID: 'r-1',
    DeviceID: 'sensor-1',
    Principal: { Kind: 'operator', ID: 'alice' },
  };
  const txId = 'ab'.repeat(32);

  const sign = async (payload: string, kid = 'metadata-1', header: object = { alg: 'ES256', kid }) => {
    const signingInput = `${b64url(encoder.encode(JSON.stringify(header)))}.${b64url(encoder.encode(payload))}`;
    const signature = await crypto.subtle.sign(
      { name: 'ECDSA', hash: 'SHA-256' },
      keys.privateKey,
      encoder.encode(signingInput),
    );
    return `${signingInput}.${b64url(signature)}`;
  };
  const check = async (
    overrides: { payload?: string; jws?: string; proof?: object; args?: string[]; code?: number } = {},
  ): Promise<ProofCheck> => {
    const payload = overrides.payload ?? canonicalJson(request);
    const jws = overrides.jws ?? (await sign(payload));
    return {
      proof: { AnchorID: 'metadata-1', JWS: jws, TxID: txId, Principal: request.Principal, ...overrides.proof },
      subjects: ['sensor-1'],
      historyTxId: txId,
      transaction: {
        TxID: txId,
        BlockNumber: 7,
        ValidationCode: overrides.code ?? 0,
        Method: 'EnrolDevice',
        Args: overrides.args ?? [JSON.stringify(request), jws],
      },
    };
  };

  before(async () => {
    keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    const exported = await crypto.subtle.exportKey('jwk', keys.publicKey);
    jwk = { kty: 'EC', crv: 'P-256', x: exported.x ?? '', y: exported.y ?? '' };
  });

  it('verifies a record signed by the pinned anchor, in a VALID block that submitted it', async () => {
    const verdict = await verifyProof(await check(), new Map([['metadata-1', jwk]]));
    expect(verdict.reasons).to.deep.equal([]);
    expect(verdict).to.include({ verified: true, action: 'EnrolDevice' });
  });

  it('computes the RFC 7638 thumbprint as jose (and so the contract) does', async () => {
    expect(await jwkThumbprint(jwk)).to.equal(await calculateJwkThumbprint(jwk, 'sha256'));
  });

  const signatureFlipped = (jws: string) => {
    const [h, p, s = ''] = jws.split('.');
    const i = 10;
    return `${h ?? ''}.${p ?? ''}.${s.slice(0, i)}${s[i] === 'A' ? 'B' : 'A'}${s.slice(i + 1)}`;
  };
  const otherKey = async (): Promise<PublicJwk> => {
    const other = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    const e = await crypto.subtle.exportKey('jwk', other.publicKey);
    return { kty: 'EC', crv: 'P-256', x: e.x ?? '', y: e.y ?? '' };
  };

  // Hostile rows: each must come out NOT verified, with the named reason.
  const rows: {
    name: string;
    make: () => Promise<{ check: ProofCheck; pins?: Map<string, PublicJwk> }>;
    reason: RegExp;
  }[] = [
    {
      name: 'an altered signature',
      make: async () => {
        const c = await check();
        return { check: { ...c, proof: { ...c.proof, JWS: signatureFlipped(c.proof.JWS) } } };
      },
      reason: /signature does not verify/,
    },
    {
      name: 'an anchor that is not pinned',
      make: async () => ({ check: await check(), pins: new Map() }),
      reason: /not pinned/,
    },
    {
      name: 'a pinned key other than the signer',
      make: async () => ({ check: await check(), pins: new Map([['metadata-1', await otherKey()]]) }),
      reason: /signature does not verify/,
    },
    {
      name: 'a payload that is not canonical JSON',
      make: async () => ({ check: await check({ payload: JSON.stringify(request, null, 1) }) }),
      reason: /not canonical/,
    },
    {
      name: 'a request about another device',
      make: async () => ({ check: await check({ payload: canonicalJson({ ...request, DeviceID: 'sensor-2' }) }) }),
      reason: /does not name sensor-1/,
    },
    {
      name: 'a Proof whose Principal differs from the signed one',
      make: async () => ({ check: await check({ proof: { Principal: { Kind: 'operator', ID: 'bob' } } }) }),
      reason: /Principal/,
    },
    {
      name: 'a kid other than the Proof’s anchor',
      make: async () => {
        const payload = canonicalJson(request);
        return { check: await check({ jws: await sign(payload, 'metadata-2') }) };
      },
      reason: /kid/,
    },
    {
      name: 'a transaction that the peer marked invalid',
      make: async () => ({ check: await check({ code: 11 }) }),
      reason: /not VALID/,
    },
    {
      name: 'a transaction that submitted another JWS',
      make: async () => ({ check: await check({ args: [JSON.stringify(request), 'x.y.z'] }) }),
      reason: /did not submit this JWS/,
    },
    {
      name: 'no block holding the transaction',
      make: async () => ({ check: { ...(await check()), transaction: null } }),
      reason: /no block holds/,
    },
    {
      name: 'a history entry under another TxID',
      make: async () => ({ check: { ...(await check()), historyTxId: 'cd'.repeat(32) } }),
      reason: /history lists this state/,
    },
  ];
  for (const row of rows) {
    it(`NOT verified: ${row.name}`, async () => {
      const { check: input, pins } = await row.make();
      const verdict = await verifyProof(input, pins ?? new Map([['metadata-1', jwk]]));
      expect(verdict.verified).to.equal(false);
      expect(verdict.reasons.join('\n')).to.match(row.reason);
    });
  }
});
