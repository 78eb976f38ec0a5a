import { expect } from 'chai';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { merkleInclusionProof, merkleRoot } from '@keyfleet/protocol';
import { newChallengeIssuer, nonceDigestOf, type ChallengeKey } from './challenge';
import { AttestationError } from './errors';
import { merkleLevels } from './merkle-levels';

const softwareKey = (secret = randomBytes(32)): ChallengeKey => ({
  label: 'software',
  mac: (data) => Promise.resolve(createHmac('sha256', secret).update(data).digest()),
});

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    expect(err).to.be.instanceOf(AttestationError);
    return (err as AttestationError).code;
  }
  return 'accepted';
}

describe('attestation challenges', () => {
  let clock = Date.parse('2026-03-02T10:00:00.000Z');
  const now = () => new Date(clock);
  const key = softwareKey();
  const issuer = newChallengeIssuer({ key, ttlSeconds: 30, now });

  it('issues a 53-byte nonce that checks for its device until it expires', async () => {
    const challenge = await issuer.issue('dev-1');
    expect(challenge.nonce).to.match(/^[A-Za-z0-9_-]{71}$/);
    expect(Buffer.from(challenge.nonce, 'base64url')).to.have.length(53);
    expect(challenge.expiresAt.getTime()).to.equal(clock + 30_000);
    const checked = await issuer.check(challenge.nonce, 'dev-1');
    expect(checked.nonceDigest).to.equal(
      createHash('sha256').update(Buffer.from(challenge.nonce, 'base64url')).digest('hex'),
    );
    expect(checked.nonceDigest).to.equal(nonceDigestOf(challenge.nonce));
    clock += 29_000;
    expect(await codeOf(issuer.check(challenge.nonce, 'dev-1'))).to.equal('accepted');
    clock += 1_000;
    expect(await codeOf(issuer.check(challenge.nonce, 'dev-1'))).to.equal('NONCE_EXPIRED');
  });

  it('matches the test vector of docs/protocol-attestation.md', async () => {
    const vector = newChallengeIssuer({
      key: softwareKey(Buffer.from([...Array(32).keys()])),
      ttlSeconds: 120,
      now: () => new Date('2026-03-02T10:00:00.000Z'),
      randomBytes: (n) => Buffer.from([...Array(n).keys()]),
    });
    const challenge = await vector.issue('dev-0001');
    expect(challenge.nonce).to.equal('AWmlYBgAAQIDBAUGBwgJCgsMDQ4P-KeojPkanoeRSkMM9o3MMGGEMorlPGR8PXDVeKQilHo');
    expect(challenge.expiresAt.toISOString()).to.equal('2026-03-02T10:02:00.000Z');
    expect(nonceDigestOf(challenge.nonce)).to.equal('4109b9d397fcf5aa43367a0e245346115bcc9540b6e2a7525c8e006507008bb8');
  });

  it('is stateless: another issuer with the same key checks it; one with another key does not', async () => {
    const { nonce } = await issuer.issue('dev-2');
    expect(await codeOf(newChallengeIssuer({ key, now }).check(nonce, 'dev-2'))).to.equal('accepted');
    expect(await codeOf(newChallengeIssuer({ key: softwareKey(), now }).check(nonce, 'dev-2'))).to.equal(
      'NONCE_INVALID',
    );
  });

  it('never repeats a nonce', async () => {
    const nonces = new Set<string>();
    for (let i = 0; i < 200; i++) nonces.add((await issuer.issue('dev-3')).nonce);
    expect(nonces.size).to.equal(200);
  });

  const hostile: [string, (nonce: string) => string, string, string?][] = [
    ['for another device', (n) => n, 'NONCE_WRONG_DEVICE', 'dev-other'],
    ['empty', () => '', 'NONCE_INVALID'],
    ['one character short', (n) => n.slice(1), 'NONCE_INVALID'],
    ['one character long', (n) => `${n}A`, 'NONCE_INVALID'],
    ['standard base64', (n) => Buffer.from(n, 'base64url').toString('base64'), 'NONCE_INVALID'],
    ['a flipped MAC bit', (n) => flip(n, 52), 'NONCE_INVALID'],
    ['a later expiry', (n) => flip(n, 4), 'NONCE_INVALID'],
    ['another device tag', (n) => flip(n, 30), 'NONCE_INVALID'],
    ['version 2', (n) => flip(n, 0, 0x03), 'NONCE_INVALID'],
    ['random bytes', () => randomBytes(53).toString('base64url'), 'NONCE_INVALID'],
  ];
  for (const [what, mutate, code, device] of hostile) {
    it(`refuses a nonce ${what} with ${code}`, async () => {
      const { nonce } = await issuer.issue('dev-4');
      expect(await codeOf(issuer.check(mutate(nonce), device ?? 'dev-4'))).to.equal(code);
    });
  }

  it('refuses to issue for an invalid device id, and an out-of-range time to live', async () => {
    for (const id of ['', '../x', 'a b', 'x'.repeat(65)]) {
      expect(await codeOf(issuer.issue(id))).to.equal('DEVICE_ID_INVALID');
    }
    expect(() => newChallengeIssuer({ key, ttlSeconds: 0 })).to.throw(RangeError);
    expect(() => newChallengeIssuer({ key, ttlSeconds: 3601 })).to.throw(RangeError);
  });
});

function flip(nonce: string, byte: number, mask = 0x01): string {
  const bytes = Buffer.from(nonce, 'base64url');
  bytes[byte] = (bytes[byte] ?? 0) ^ mask;
  return bytes.toString('base64url');
}

describe('bottom-up Merkle proofs', () => {
  it('equal the contract’s RFC 9162 root and audit paths for every leaf of trees of 1 to 70 leaves', () => {
    for (let n = 1; n <= 70; n++) {
      const leaves = Array.from({ length: n }, (_, i) => createHash('sha256').update(`leaf ${i}`).digest('hex'));
      const tree = merkleLevels(leaves);
      expect(tree.root, `root of ${n}`).to.equal(merkleRoot(leaves));
      for (let i = 0; i < n; i++) expect(tree.proof(i), `${i} of ${n}`).to.deep.equal(merkleInclusionProof(leaves, i));
    }
    expect(() => merkleLevels([])).to.throw(RangeError);
  });
});
