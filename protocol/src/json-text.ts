import { createScanner, SyntaxKind } from 'jsonc-parser';

/**
 * The first member name that an object of `text` repeats, or null. I-JSON (RFC 7493 §2.3) requires
 * unique names; `JSON.parse` keeps the last of several silently, so a signer, a validator and a
 * reader could each see a different value. Names come from jsonc-parser's scanner unescaped
 * (`"\u0061"` is `a`), so an escaped repeat is found too. The scanner is iterative, so no nesting
 * depth can exhaust the stack (its recursive `visit` did, at a few thousand levels). Call it on
 * text that `JSON.parse` accepted.
 */
export function duplicateMember(text: string): string | null {
  const scanner = createScanner(text, true);
  // One frame per open container: the names seen so far in an object, null for an array.
  const open: (Set<string> | null)[] = [];
  let atName = false;
  for (let token = scanner.scan(); token !== SyntaxKind.EOF; token = scanner.scan()) {
    const names = open[open.length - 1] ?? null;
    switch (token) {
      case SyntaxKind.OpenBraceToken:
        open.push(new Set());
        atName = true;
        break;
      case SyntaxKind.OpenBracketToken:
        open.push(null);
        atName = false;
        break;
      case SyntaxKind.CloseBraceToken:
      case SyntaxKind.CloseBracketToken:
        open.pop();
        atName = false;
        break;
      case SyntaxKind.CommaToken:
        atName = names !== null;
        break;
      case SyntaxKind.StringLiteral:
        if (atName && names !== null) {
          const name = scanner.getTokenValue();
          if (names.has(name)) return name;
          names.add(name);
        }
        atName = false;
        break;
      default:
        atName = false;
    }
  }
  return null;
}

/**
 * The first repeated member name in the protected header or the payload of a compact JWS or JWE
 * (RFC 7515 §7.1, RFC 7516 §7.1): in the header (segment 0) and, for a JWS, the payload (segment 1)
 * when it is JSON. Null when none repeats or a segment is not JSON text at all (the caller's own
 * parser refuses that).
 */
export function duplicateMemberInCompact(compact: string): string | null {
  const segments = compact.split('.');
  const json = segments.length === 3 ? segments.slice(0, 2) : segments.slice(0, 1);
  for (const segment of json) {
    const text = Buffer.from(segment, 'base64url').toString('utf8');
    try {
      JSON.parse(text);
    } catch {
      continue;
    }
    const name = duplicateMember(text);
    if (name !== null) return name;
  }
  return null;
}
