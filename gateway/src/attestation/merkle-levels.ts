import { merkleNodeHash } from '@keyfleet/protocol';

/**
 * All inclusion proofs of a tree at once. Building the RFC 9162 tree bottom-up, with an unpaired
 * last node carried up unchanged, gives the same root and audit paths as its recursive definition
 * (§2.1.1, §2.1.3.1), in O(n log n) for all n proofs instead of O(n) per proof.
 */
export function merkleLevels(leafHashes: readonly string[]): { root: string; proof(index: number): string[] } {
  if (leafHashes.length === 0) throw new RangeError('a batch has at least one result');
  const levels: string[][] = [[...leafHashes]];
  for (let level = levels[0] as string[]; level.length > 1;) {
    const next: string[] = [];
    for (let i = 0; i < level.length; i += 2) {
      const right = level[i + 1];
      next.push(right === undefined ? (level[i] as string) : merkleNodeHash(level[i] as string, right));
    }
    levels.push(next);
    level = next;
  }
  return {
    root: (levels.at(-1) as string[])[0] as string,
    proof(index) {
      if (!Number.isInteger(index) || index < 0 || index >= leafHashes.length) {
        throw new RangeError(`leaf index ${index} outside a tree of ${leafHashes.length} leaves`);
      }
      const path: string[] = [];
      let i = index;
      for (const level of levels.slice(0, -1)) {
        const sibling = level[i % 2 === 1 ? i - 1 : i + 1];
        if (sibling !== undefined) path.push(sibling);
        i = Math.floor(i / 2);
      }
      return path;
    },
  };
}
