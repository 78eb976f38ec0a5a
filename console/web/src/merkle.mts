import { canonicalJson } from './canonical.mjs';

/**
 * An attestation result's membership of a batch, checked in the browser the way the contract's
 * VerifyAttestationInclusion and `keyfleet audit verify-proof` check it (RFC 9162 §2.1.3.2 over
 * chaincode/src/merkle.ts's tree): leaf = SHA-256(0x00 ‖ canonical JSON of the result), node =
 * SHA-256(0x01 ‖ left ‖ right), hashing by WebCrypto. The browser cannot load the chaincode
 * package, so this is its one mirror; the console's unit test holds it to the contract's trees.
 */

/** The batch as the ledger records it (GetAttestationBatch). */
export interface BatchRecord {
  readonly BatchID: string;
  readonly VerifierID: string;
  readonly MerkleRoot: string;
  readonly Count: number;
  readonly FirstIssuedAt: string;
  readonly LastIssuedAt: string;
}

/** Why a proof does not hold: the same reasons as gateway/src/attestation/audit.ts. */
export type ProofFailure =
  'MALFORMED_RESULT' | 'MALFORMED_PROOF' | 'BATCH_MISMATCH' | 'VERIFIER_MISMATCH' | 'OUTSIDE_BATCH' | 'NOT_INCLUDED';

export type MembershipCheck =
  { readonly ok: true; readonly leafHash: string } | { readonly ok: false; readonly reason: ProofFailure };

const resultFields = ['DeviceID', 'EvidenceDigest', 'IssuedAt', 'NonceDigest', 'PolicyID', 'Status', 'VerifierID'];
const hex64 = /^[0-9a-f]{64}$/;
const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

async function sha256Hex(prefix: number, ...parts: Uint8Array[]): Promise<string> {
  const bytes = new Uint8Array(1 + parts.reduce((n, p) => n + p.length, 0));
  bytes[0] = prefix;
  let at = 1;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

const hexBytes = (hex: string) => Uint8Array.from(hex.match(/../g) ?? [], (pair) => parseInt(pair, 16));

export const leafHash = (result: unknown) => sha256Hex(0x00, new TextEncoder().encode(canonicalJson(result)));
export const nodeHash = (left: string, right: string) => sha256Hex(0x01, hexBytes(left), hexBytes(right));

/** RFC 9162 §2.1.3.2: the audit path from leaf `index` of a tree of `size` leaves to `root`. */
export async function included(leaf: string, index: number, size: number, path: readonly string[], root: string) {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && r === root;
}

/** Is `result` (a device's attestation result) a member of `batch`, by `proof`? Never throws. */
export async function checkMembership(result: unknown, proof: unknown, batch: BatchRecord): Promise<MembershipCheck> {
  if (
    !isObject(result) ||
    Object.keys(result).sort().join() !== resultFields.join() ||
    !resultFields.every((field) => typeof result[field] === 'string') ||
    !hex64.test(result.NonceDigest as string) ||
    !hex64.test(result.EvidenceDigest as string)
  ) {
    return { ok: false, reason: 'MALFORMED_RESULT' };
  }
  if (
    !isObject(proof) ||
    !Number.isSafeInteger(proof.LeafIndex) ||
    !Array.isArray(proof.AuditPath) ||
    proof.AuditPath.length > 64 ||
    !proof.AuditPath.every((node: unknown) => typeof node === 'string' && hex64.test(node))
  ) {
    return { ok: false, reason: 'MALFORMED_PROOF' };
  }
  if (
    (proof.BatchID !== undefined && proof.BatchID !== batch.BatchID) ||
    (proof.TreeSize !== undefined && proof.TreeSize !== batch.Count) ||
    (proof.MerkleRoot !== undefined && proof.MerkleRoot !== batch.MerkleRoot)
  ) {
    return { ok: false, reason: 'BATCH_MISMATCH' };
  }
  if (result.VerifierID !== batch.VerifierID) return { ok: false, reason: 'VERIFIER_MISMATCH' };
  const issuedAt = result.IssuedAt as string;
  if (issuedAt < batch.FirstIssuedAt || issuedAt > batch.LastIssuedAt) return { ok: false, reason: 'OUTSIDE_BATCH' };
  const leaf = await leafHash(result);
  const path = proof.AuditPath as string[];
  return (await included(leaf, proof.LeafIndex as number, batch.Count, path, batch.MerkleRoot))
    ? { ok: true, leafHash: leaf }
    : { ok: false, reason: 'NOT_INCLUDED' };
}
