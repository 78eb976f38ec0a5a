import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { expect } from 'chai';
import { CompactSign } from 'jose';
import type { BlockTransaction } from '../ledger/blocks';
import type { LedgerReader } from '../ledger/ledger-reader';
import { auditRecord, RecordProblem } from './ledger-audit';

const anchorKey = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pinned = anchorKey();
const other = anchorKey();
const namespace = 'keyfleet';
const txId = 'a'.repeat(64);
const principal = { Kind: 'device', ID: 'edge-1' };

async function sign(payload: string, key: KeyObject, kid = 'metadata-signing-1'): Promise<string> {
  return new CompactSign(Buffer.from(payload)).setProtectedHeader({ alg: 'ES256', kid }).sign(key);
}

/** A write as the contract makes it: the signed request, and the record it stores under a key. */
async function write(options: { key?: KeyObject; kid?: string; requestPrincipal?: unknown } = {}) {
  const request = JSON.stringify({
    Action: 'RotateKey',
    KeyID: 'k-1',
    Principal: options.requestPrincipal ?? principal,
  });
  const jws = await sign(request, options.key ?? pinned.privateKey, options.kid);
  const record = {
    DocType: 'key',
    KeyID: 'k-1',
    LatestVersion: 2,
    Proof: { AnchorID: 'metadata-signing-1', JWS: jws, TxID: txId, Principal: principal },
  };
  const tx: BlockTransaction = {
    blockNumber: 7,
    transactionId: txId,
    timestamp: '2026-12-03T10:00:00.000Z',
    chaincode: namespace,
    method: 'RotateKey',
    args: [request, jws],
    creator: { mspId: 'Org1MSP', certificatePem: '' },
    validationCode: 0,
    writes: [
      { namespace, key: '\u0000request\u0000r-1\u0000', isDelete: false, value: '{"RequestID":"r-1"}' },
      { namespace, key: '\u0000key\u0000k-1\u0000', isDelete: false, value: JSON.stringify(record) },
    ],
  };
  return { record, tx };
}

function readerOf(tx: BlockTransaction | null): LedgerReader {
  return {
    channel: 'keyfleet',
    evaluate: () => Promise.reject(new Error('the record check reads blocks only')),
    height: () => Promise.resolve(8),
    block: () => Promise.resolve(tx ? [tx] : []),
    transaction: (id) => Promise.resolve(tx?.transactionId === id ? tx : null),
    close: () => undefined,
  };
}

/** One byte of a string changed, where it stays a string of the same length. */
const oneByte = (text: string, at: number) =>
  text.slice(0, at) + String.fromCharCode(text.charCodeAt(at) ^ 1) + text.slice(at + 1);

describe('audit record: a record checked against the transaction that wrote it', function () {
  it('verifies a record as its transaction wrote it, naming the block, key and principal', async () => {
    const { record, tx } = await write();
    const verdict = await auditRecord(readerOf(tx), structuredClone(record), pinned.publicKey);
    expect(verdict).to.deep.equal({
      verified: true,
      transactionId: txId,
      blockNumber: 7,
      key: '\u0000key\u0000k-1\u0000',
      principal,
    });
  });

  type Case = readonly [string, RecordProblem, (w: Awaited<ReturnType<typeof write>>) => unknown];
  const cases: readonly Case[] = [
    ['not an object', RecordProblem.Malformed, () => 'k-1'],
    ['null', RecordProblem.Malformed, () => null],
    ['no Proof', RecordProblem.Malformed, ({ record }) => ({ ...record, Proof: undefined })],
    ['a Proof without a JWS', RecordProblem.Malformed, ({ record }) => ({ ...record, Proof: { TxID: txId } })],
    [
      'a TxID no block holds',
      RecordProblem.TransactionNotFound,
      ({ record }) => withProof(record, { TxID: 'b'.repeat(64) }),
    ],
    [
      'a transaction the peers invalidated',
      RecordProblem.TransactionInvalid,
      ({ record, tx }) => {
        Object.assign(tx, { validationCode: 11 });
        return record;
      },
    ],
    [
      'one byte of the JWS changed',
      RecordProblem.JwsNotInTransaction,
      ({ record }) => withProof(record, { JWS: oneByte(record.Proof.JWS, 40) }),
    ],
    [
      'a transaction signed by another key',
      RecordProblem.SignatureInvalid,
      async () => {
        const forged = await write({ key: other.privateKey });
        return { record: forged.record, tx: forged.tx };
      },
    ],
    [
      'a JWS whose kid is not the record’s anchor',
      RecordProblem.SignatureInvalid,
      async () => {
        const renamed = await write({ kid: 'metadata-signing-0' });
        return { record: renamed.record, tx: renamed.tx };
      },
    ],
    [
      'another principal than the signed request',
      RecordProblem.PrincipalMismatch,
      ({ record }) => withProof(record, { Principal: { Kind: 'operator', ID: 'mallory' } }),
    ],
    ['one byte of a field changed', RecordProblem.NotWritten, ({ record }) => ({ ...record, KeyID: 'k-0' })],
    ['a field added', RecordProblem.NotWritten, ({ record }) => ({ ...record, Extra: true })],
    ['a number changed', RecordProblem.NotWritten, ({ record }) => ({ ...record, LatestVersion: 3 })],
    [
      'another value of the same transaction (its request record)',
      RecordProblem.Malformed,
      () => ({ RequestID: 'r-1' }),
    ],
    [
      'a write the transaction deleted',
      RecordProblem.NotWritten,
      ({ record, tx }) => {
        Object.assign(tx, { writes: tx.writes.map((w) => ({ ...w, isDelete: true })) });
        return record;
      },
    ],
    [
      'a write in another namespace',
      RecordProblem.NotWritten,
      ({ record, tx }) => {
        Object.assign(tx, { writes: tx.writes.map((w) => ({ ...w, namespace: 'other' })) });
        return record;
      },
    ],
  ];

  for (const [name, problem, tamper] of cases) {
    it(`refuses ${name}: ${problem}`, async () => {
      const w = await write();
      const changed = await tamper(w);
      const { record, tx } =
        changed !== null && typeof changed === 'object' && 'tx' in changed
          ? (changed as { record: unknown; tx: BlockTransaction })
          : { record: changed, tx: w.tx };
      const verdict = await auditRecord(readerOf(tx), record, pinned.publicKey);
      expect(verdict).to.include({ verified: false, problem });
    });
  }
});

function withProof<T extends { Proof: object }>(record: T, change: object): T {
  return { ...record, Proof: { ...record.Proof, ...change } };
}
