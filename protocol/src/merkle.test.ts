import { createHash } from 'node:crypto';

import { expect } from 'chai';

import {
  buildMerkleTree,
  merkleInclusionProof,
  merkleLeafHash,
  merkleNodeHash,
  merkleRoot,
  verifyInclusionProof,
} from './merkle.js';

const sha = (...parts: Buffer[]): string => createHash('sha256').update(Buffer.concat(parts)).digest('hex');

describe('Merkle tree (RFC 9162 §2.1)', () => {
  it('hashes leaves as SHA-256(0x00 || canonical JSON) and nodes as SHA-256(0x01 || l || r)', () => {
    expect(merkleLeafHash({ b: 1, a: 2 })).to.equal(sha(Buffer.from([0]), Buffer.from('{"a":2,"b":1}')));
    const l = merkleLeafHash('l');
    const r = merkleLeafHash('r');
    expect(merkleNodeHash(l, r)).to.equal(sha(Buffer.from([1]), Buffer.from(l, 'hex'), Buffer.from(r, 'hex')));
  });

  it('matches the published vector: the empty tree is SHA-256 of nothing', () => {
    expect(merkleRoot([])).to.equal('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('splits at the largest power of two below n (three leaves)', () => {
    const [a, b, c] = ['a', 'b', 'c'].map((x) => merkleLeafHash(x)) as [string, string, string];
    expect(merkleRoot([a, b, c])).to.equal(merkleNodeHash(merkleNodeHash(a, b), c));
    expect(merkleInclusionProof([a, b, c], 2)).to.deep.equal([merkleNodeHash(a, b)]);
    expect(merkleInclusionProof([a, b, c], 0)).to.deep.equal([b, c]);
  });

  it('proves every leaf of every tree size from 1 to 33', () => {
    for (let n = 1; n <= 33; n++) {
      const tree = buildMerkleTree(Array.from({ length: n }, (_, i) => ({ i })));
      for (let m = 0; m < n; m++) {
        const input = {
          leafHash: tree.LeafHashes[m] as string,
          leafIndex: m,
          treeSize: n,
          auditPath: tree.proof(m),
          root: tree.Root,
        };
        expect(verifyInclusionProof(input), `n=${n} m=${m}`).to.equal(true);
        expect(verifyInclusionProof({ ...input, leafIndex: (m + 1) % n }), `wrong index n=${n} m=${m}`).to.equal(
          n === 1,
        );
      }
    }
  });

  it('rejects altered leaves, paths, roots, sizes and malformed input', () => {
    const tree = buildMerkleTree(['a', 'b', 'c', 'd', 'e']);
    const good = {
      leafHash: tree.LeafHashes[3] as string,
      leafIndex: 3,
      treeSize: 5,
      auditPath: tree.proof(3),
      root: tree.Root,
    };
    expect(verifyInclusionProof(good)).to.equal(true);
    expect(verifyInclusionProof({ ...good, leafHash: merkleLeafHash('x') })).to.equal(false);
    expect(verifyInclusionProof({ ...good, auditPath: [...good.auditPath].reverse() })).to.equal(false);
    expect(verifyInclusionProof({ ...good, auditPath: [...good.auditPath, good.root] })).to.equal(false);
    expect(verifyInclusionProof({ ...good, auditPath: good.auditPath.slice(1) })).to.equal(false);
    expect(verifyInclusionProof({ ...good, treeSize: 4 })).to.equal(false);
    expect(verifyInclusionProof({ ...good, leafIndex: 5 })).to.equal(false);
    expect(verifyInclusionProof({ ...good, leafIndex: -1 })).to.equal(false);
    expect(verifyInclusionProof({ ...good, root: 'zz' })).to.equal(false);
    expect(() => merkleInclusionProof(tree.LeafHashes, 5)).to.throw(RangeError);
  });

  it('reproduces the test vectors in docs/ledger.md', () => {
    const results = [0, 1, 2].map((i) => ({
      DeviceID: `dev-000${i + 1}`,
      NonceDigest: '00'.repeat(31) + `0${i}`,
      EvidenceDigest: '11'.repeat(32),
      Status: i === 2 ? 'contraindicated' : 'affirming',
      PolicyID: 'policy-gw-1',
      VerifierID: 'verifier-1',
      IssuedAt: `2026-01-01T00:00:0${i}.000Z`,
    }));
    const tree = buildMerkleTree(results);
    expect(tree.LeafHashes).to.deep.equal([
      '82d786bd96c02352bace378348cd3b5a8fdddd19905989a38c0e69e51eceb377',
      'e0efa99311ecd3ab57e05fd7aab8bdaa3bd815689c345f5256dda7a0b655544b',
      '3dc841c735560b5a5fe6d529fc381035a425940e35de44a3827f6bd7cb6fdd99',
    ]);
    expect(tree.Root).to.equal('d0f006471ba7b2015bb2ce90a4a5a84f3fd154d4b8154b0665d9c599c73e7cdc');
    expect(tree.proof(2)).to.deep.equal(['86ba4c40955fc6f26636cf091d82044996a66a313717fbf112e13b74049bde0a']);
  });
});
