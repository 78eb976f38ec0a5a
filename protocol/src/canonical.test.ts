import { expect } from 'chai';

import { canonicalJson, parseJson } from './canonical.js';
import { ErrorCode, LedgerError, errorCodeOf } from './errors.js';

describe('canonical JSON', () => {
  it('sorts keys at every depth and drops whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: true, y: null }], c: 'x' } })).to.equal(
      '{"a":{"c":"x","d":[3,{"y":null,"z":true}]},"b":1}',
    );
  });

  it('sorts by UTF-16 code units and escapes as JSON.stringify does', () => {
    expect(canonicalJson({ é: 1, Z: 2, a: '\u2028"' })).to.equal('{"Z":2,"a":"\u2028\\"","é":1}');
  });

  it('is the same for the same value however it was written', () => {
    expect(canonicalJson(JSON.parse('{ "b" : 2 , "a" : 1 }'))).to.equal(canonicalJson({ a: 1, b: 2 }));
  });

  it('refuses values JSON cannot carry', () => {
    expect(() => canonicalJson({ a: Number.NaN })).to.throw(LedgerError, /INVALID_ARGUMENT/);
    expect(() => canonicalJson({ a: 1n })).to.throw(LedgerError, /INVALID_ARGUMENT/);
  });

  it('parseJson codes syntax, size and depth', () => {
    const code = (fn: () => unknown): string | undefined => {
      try {
        fn();
      } catch (err) {
        return errorCodeOf((err as Error).message);
      }
      return undefined;
    };
    expect(code(() => parseJson('{', 'r', 100))).to.equal(ErrorCode.MalformedJson);
    expect(code(() => parseJson('"aaaa"', 'r', 3))).to.equal(ErrorCode.InvalidArgument);
    expect(code(() => parseJson('['.repeat(40) + ']'.repeat(40), 'r', 1000))).to.equal(ErrorCode.InvalidArgument);
    expect(code(() => parseJson(42, 'r', 1000))).to.equal(ErrorCode.InvalidArgument);
    expect(parseJson('{"a":[1]}', 'r', 100)).to.deep.equal({ a: [1] });
  });

  it('errorCodeOf reads a code from a message Fabric wrapped', () => {
    expect(errorCodeOf('transaction returned with failure: KEY_NOT_FOUND: key k-17 does not exist')).to.equal(
      ErrorCode.KeyNotFound,
    );
    expect(errorCodeOf('NOT_A_CODE: x')).to.equal(undefined);
  });
});
