/**
 * Canonical JSON as the contract writes it (docs/ledger.md, "Signature"; chaincode/src/canonical.ts):
 * object keys sorted by UTF-16 code units, no whitespace, strings and numbers as JSON.stringify
 * writes them. The browser cannot load the chaincode package, so this is its one mirror; the
 * console's unit test holds it to the contract's vectors.
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new Error('non-finite number in JSON');
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((item: unknown) => canonicalJson(item)).join(',')}]`;
      const record = value as Record<string, unknown>;
      const members = Object.keys(record)
        .sort()
        .filter((key) => record[key] !== undefined)
        .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`);
      return `{${members.join(',')}}`;
    }
    default:
      throw new Error(`a ${typeof value} cannot be written as JSON`);
  }
}
