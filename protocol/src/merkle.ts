import { createHash } from 'node:crypto';

import { canonicalBytes } from './canonical.js';

/**
 * Merkle tree over attestation results, RFC 9162 §2.1 (Certificate Transparency v2):
 * leaf hash = SHA-256(0x00 || canonical JSON of the result), node hash = SHA-256(0x01 || left || right),
 * the tree splits at the largest power of two below its size. All hashes are lowercase hex.
 */

function sha256(...parts: Uint8Array[]): Buffer {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
}

const LeafPrefix = Uint8Array.of(0x00);
const NodePrefix = Uint8Array.of(0x01);

/** Leaf hash of a result record (any JSON value; attestation results in practice). */
export function merkleLeafHash(result: unknown): string {
  return sha256(LeafPrefix, canonicalBytes(result)).toString('hex');
}

/** Interior node hash of two hex child hashes. */
export function merkleNodeHash(left: string, right: string): string {
  return sha256(NodePrefix, Buffer.from(left, 'hex'), Buffer.from(right, 'hex')).toString('hex');
}

function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** MTH(D[n]) of RFC 9162 §2.1.1 over leaf hashes. */
export function merkleRoot(leafHashes: readonly string[]): string {
  if (leafHashes.length === 0) return sha256().toString('hex');
  if (leafHashes.length === 1) return leafHashes[0] as string;
  const k = largestPowerOfTwoBelow(leafHashes.length);
  return merkleNodeHash(merkleRoot(leafHashes.slice(0, k)), merkleRoot(leafHashes.slice(k)));
}

/** PATH(m, D[n]) of RFC 9162 §2.1.3.1: the audit path of leaf m, nearest sibling first. */
export function merkleInclusionProof(leafHashes: readonly string[], index: number): string[] {
  const n = leafHashes.length;
  if (!Number.isInteger(index) || index < 0 || index >= n) {
    throw new RangeError(`leaf index ${index} outside a tree of ${n} leaves`);
  }
  if (n === 1) return [];
  const k = largestPowerOfTwoBelow(n);
  return index < k
    ? [...merkleInclusionProof(leafHashes.slice(0, k), index), merkleRoot(leafHashes.slice(k))]
    : [...merkleInclusionProof(leafHashes.slice(k), index - k), merkleRoot(leafHashes.slice(0, k))];
}

export interface InclusionProofInput {
  leafHash: string;
  leafIndex: number;
  treeSize: number;
  auditPath: readonly string[];
  root: string;
}

const hex64 = /^[0-9a-f]{64}$/;

/** Verifies an inclusion proof by the algorithm of RFC 9162 §2.1.3.2. Pure; never throws. */
export function verifyInclusionProof(input: InclusionProofInput): boolean {
  const { leafHash, leafIndex, treeSize, auditPath, root } = input;
  if (!Number.isSafeInteger(leafIndex) || !Number.isSafeInteger(treeSize)) return false;
  if (leafIndex < 0 || leafIndex >= treeSize) return false;
  if (!hex64.test(leafHash) || !hex64.test(root) || !auditPath.every((node) => hex64.test(node))) return false;
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = leafHash;
  for (const p of auditPath) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = merkleNodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = merkleNodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && r === root;
}

/** A built tree: root, leaf hashes and each leaf's proof, for verifiers that anchor batches. */
export interface MerkleTree {
  Root: string;
  LeafHashes: string[];
  proof(index: number): string[];
}

export function buildMerkleTree(results: readonly unknown[]): MerkleTree {
  const leafHashes = results.map((result) => merkleLeafHash(result));
  return {
    Root: merkleRoot(leafHashes),
    LeafHashes: leafHashes,
    proof: (index) => merkleInclusionProof(leafHashes, index),
  };
}
