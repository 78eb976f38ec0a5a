/**
 * Characters free text must not carry (issue 14): C0 and C1 controls, DEL, bidirectional
 * formatting (Trojan Source, CVE-2021-42574), separators, the BOM, lone surrogates. One list for
 * the chaincode's hostile table and the gateway's (test/src/hostile-input.test.ts).
 */
export const hostileCharacters: readonly (readonly [string, string])[] = [
  ['NUL', '\u0000'],
  ['BEL', '\u0007'],
  ['ESC', '\u001b'],
  ['DEL', '\u007f'],
  ['C1 PAD', '\u0080'],
  ['C1 NEL', '\u0085'],
  ['C1 CSI', '\u009b'],
  ['C1 APC', '\u009f'],
  ['ALM', '\u061c'],
  ['LRM', '\u200e'],
  ['RLM', '\u200f'],
  ['LINE SEPARATOR', '\u2028'],
  ['PARAGRAPH SEPARATOR', '\u2029'],
  ['LRE', '\u202a'],
  ['RLE', '\u202b'],
  ['PDF', '\u202c'],
  ['LRO', '\u202d'],
  ['RLO (bidi override)', '\u202e'],
  ['LRI', '\u2066'],
  ['RLI', '\u2067'],
  ['FSI', '\u2068'],
  ['PDI', '\u2069'],
  ['BOM', '\ufeff'],
  ['lone high surrogate', '\ud800'],
  ['lone low surrogate', '\udfff'],
  ['surrogates in the wrong order', '\udc00\ud800'],
];
