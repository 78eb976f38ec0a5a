import chai from 'chai';
import { buildMerkleTree, merkleLeafHash } from '@keyfleet/protocol';
import { verifyProofAgainstLedger } from '@keyfleet/gateway';
import { checkMembership, leafHash, type BatchRecord } from '../src/merkle.mjs';

const { expect } = chai;

/** Results as the verifier issues them: one per device, a second apart. */
function results(count: number) {
  return Array.from({ length: count }, (_, i) => ({
    DeviceID: `dev-${String(i).padStart(4, '0')}`,
    NonceDigest: i.toString(16).padStart(64, '0'),
    EvidenceDigest: (i + 1000).toString(16).padStart(64, '0'),
    Status: i % 5 === 0 ? 'contraindicated' : 'affirming',
    PolicyID: 'policy-1',
    VerifierID: 'verifier-1',
    IssuedAt: new Date(Date.UTC(2026, 11, 3, 10, 0, i)).toISOString(),
  }));
}

function batchOf(members: ReturnType<typeof results>) {
  const tree = buildMerkleTree(members);
  const batch: BatchRecord = {
    BatchID: 'batch-1',
    VerifierID: 'verifier-1',
    MerkleRoot: tree.Root,
    Count: members.length,
    FirstIssuedAt: members[0]?.IssuedAt ?? '',
    LastIssuedAt: members.at(-1)?.IssuedAt ?? '',
  };
  const proof = (i: number) => ({
    BatchID: 'batch-1',
    LeafIndex: i,
    TreeSize: members.length,
    AuditPath: tree.proof(i),
  });
  return { tree, batch, proof };
}

/** The gateway's check (the CLI's and, in effect, the contract's) on the same input. */
const nodeVerdict = (result: unknown, proof: unknown, batch: BatchRecord) => {
  const check = verifyProofAgainstLedger(result, proof, { ...batch, DocType: 'attestation-batch' } as never);
  return check.ok ? 'ok' : check.reason;
};

describe('console: a batch member’s inclusion proof, checked with WebCrypto (mirror of the contract’s)', () => {
  it('hashes a leaf as the contract does', async () => {
    for (const result of results(3)) expect(await leafHash(result)).to.equal(merkleLeafHash(result));
  });

  for (const size of [1, 2, 3, 5, 8, 13]) {
    it(`verifies every member of a tree of ${String(size)} the contract built`, async () => {
      const members = results(size);
      const { batch, proof } = batchOf(members);
      for (const [i, member] of members.entries()) {
        expect(await checkMembership(member, proof(i), batch), `leaf ${String(i)}`).to.include({ ok: true });
      }
    });
  }

  const members = results(7);
  const { batch, proof } = batchOf(members);
  const member = members[3];
  const cases: [string, unknown, unknown][] = [
    ['a result with one field changed', { ...member, Status: 'affirming ' }, proof(3)],
    ['another member’s result', members[4], proof(3)],
    ['a proof of another leaf index', member, { ...proof(3), LeafIndex: 2 }],
    ['a leaf index past the tree', member, { ...proof(3), LeafIndex: 7 }],
    ['a negative leaf index', member, { ...proof(3), LeafIndex: -1 }],
    [
      'an audit path with one node changed',
      member,
      { ...proof(3), AuditPath: ['0'.repeat(64), ...proof(3).AuditPath.slice(1)] },
    ],
    ['an audit path one node short', member, { ...proof(3), AuditPath: proof(3).AuditPath.slice(1) }],
    ['an audit path one node long', member, { ...proof(3), AuditPath: [...proof(3).AuditPath, '0'.repeat(64)] }],
    [
      'an audit path of upper-case hex',
      member,
      { ...proof(3), AuditPath: proof(3).AuditPath.map((n) => n.toUpperCase()) },
    ],
    ['a proof of another batch', member, { ...proof(3), BatchID: 'batch-2' }],
    ['a proof of another tree size', member, { ...proof(3), TreeSize: 8 }],
    ['a result by another verifier', { ...member, VerifierID: 'verifier-2' }, proof(3)],
    ['a result issued after the batch', { ...member, IssuedAt: '2026-12-03T11:00:00.000Z' }, proof(3)],
    ['a result with an extra field', { ...member, Extra: 'x' }, proof(3)],
    ['a result missing a field', { ...member, PolicyID: undefined }, proof(3)],
    ['a result that is an array', [member], proof(3)],
    ['no result', null, proof(3)],
    ['no proof', member, null],
    ['a proof without an audit path', member, { LeafIndex: 3 }],
    ['a proof with a fractional index', member, { ...proof(3), LeafIndex: 1.5 }],
  ];
  for (const [name, result, tampered] of cases) {
    it(`refuses ${name}, with the reason the gateway’s check gives`, async () => {
      const check = await checkMembership(result, tampered, batch);
      expect(check.ok).to.equal(false);
      expect(check.ok ? 'ok' : check.reason).to.equal(nodeVerdict(result, tampered, batch));
    });
  }
});
