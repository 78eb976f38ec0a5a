import { visit } from 'jsonc-parser';

/**
 * The first member name that an object of `text` repeats, or null. I-JSON (RFC 7493 §2.3) requires
 * unique names; `JSON.parse` keeps the last of several silently, so a signer, a validator and a
 * reader could each see a different value. jsonc-parser's visitor reports each name unescaped
 * (`"\u0061"` is `a`), so an escaped repeat is found too. Call it on text that `JSON.parse` accepted.
 */
export function duplicateMember(text: string): string | null {
  const open: Set<string>[] = [];
  let found: string | null = null;
  visit(
    text,
    {
      onObjectBegin: () => {
        open.push(new Set());
        // Once a repeat is found, the rest of the document need not be walked.
        return found === null;
      },
      onObjectProperty: (name) => {
        const names = open[open.length - 1];
        if (names === undefined || found !== null) return;
        if (names.has(name)) found = name;
        names.add(name);
      },
      onObjectEnd: () => {
        open.pop();
      },
    },
    { disallowComments: true, allowTrailingComma: false },
  );
  return found;
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
