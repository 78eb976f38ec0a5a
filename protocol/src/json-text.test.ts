import { expect } from 'chai';

import { parseJson } from './canonical.js';
import { ErrorCode, LedgerError } from './errors.js';
import { duplicateMember, duplicateMemberInCompact } from './json-text.js';

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64url');

/** JSON texts and the member each repeats (null: none). */
const texts: readonly (readonly [string, string | null])[] = [
  ['{"a":1}', null],
  ['{"a":1,"b":2}', null],
  ['{"a":{"a":1}}', null],
  ['[{"a":1},{"a":2}]', null],
  ['{"a":1,"A":2}', null],
  ['{"a":[1,{"b":2}],"b":3}', null],
  ['"a"', null],
  ['[]', null],
  ['{"a":1,"a":2}', 'a'],
  ['{"a":1,"a":1}', 'a'],
  ['{"a":1,"b":2,"a":3}', 'a'],
  ['{"a":1,"\\u0061":2}', 'a'],
  ['{"\\u0061":1,"a":2}', 'a'],
  ['{"":1,"":2}', ''],
  ['{"__proto__":1,"__proto__":2}', '__proto__'],
  ['{"x":{"b":1,"b":2}}', 'b'],
  ['[{"c":1,"c":2}]', 'c'],
  ['{"x":[[{"d":1,"d":2}]]}', 'd'],
  ['{"a":{"k":1},"b":{"k":2,"k":3}}', 'k'],
  ['{"é":1,"\\u00e9":2}', 'é'],
  ['{"😀":1,"\\ud83d\\ude00":2}', '😀'],
  ['{ "a" : 1 , "a" : 2 }', 'a'],
  ['{"a":"a","b":"a"}', null],
  ['{"a":["a","a"],"b":{"a":1}}', null],
  ['{"a":{"b":1},"b":2,"c":{"b":3}}', null],
  ['{"a":[{"x":1}],"a":2}', 'a'],
  [`${'['.repeat(100_000)}{"deep":1,"deep":2}${']'.repeat(100_000)}`, 'deep'],
  [`${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}`, null],
];

describe('duplicateMember (I-JSON, RFC 7493 §2.3)', () => {
  for (const [text, repeated] of texts) {
    it(`${text.slice(0, 60)} -> ${String(repeated)}`, () => {
      expect(duplicateMember(text)).to.equal(repeated);
      if (text.length > 1024) return; // beyond parseJson's size limit: the nesting is the point
      if (repeated === null) {
        expect(parseJson(text, 'request', 1024)).to.deep.equal(JSON.parse(text));
      } else {
        expect(() => parseJson(text, 'request', 1024))
          .to.throw(LedgerError)
          .with.property('code', ErrorCode.MalformedJson);
      }
    });
  }

  for (const [compact, repeated] of [
    [`${b64('{"alg":"ES256","kid":"a"}')}.${b64('{"x":1}')}.sig`, null],
    [`${b64('{"alg":"ES256","kid":"a","kid":"b"}')}.${b64('{"x":1}')}.sig`, 'kid'],
    [`${b64('{"alg":"ES256","alg":"none"}')}.${b64('{}')}.sig`, 'alg'],
    [`${b64('{"alg":"ES256"}')}.${b64('{"role":"auditor","role":"operator"}')}.sig`, 'role'],
    [`${b64('{"alg":"dir","enc":"A256GCM","kid":"k","kid":"j"}')}..iv.ct.tag`, 'kid'],
    [`${b64('{"alg":"dir"}')}..iv.${b64('{"a":1,"a":2}')}.tag`, null],
    [`${b64('not json')}.${b64('{"a":1,"a":2}')}.sig`, 'a'],
  ] as const) {
    it(`compact ${compact.slice(0, 40)}… -> ${String(repeated)}`, () => {
      expect(duplicateMemberInCompact(compact)).to.equal(repeated);
    });
  }
});
