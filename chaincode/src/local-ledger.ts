import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

import './logging.js';
import 'reflect-metadata';
import { Context } from 'fabric-contract-api';
import { ClientIdentity } from 'fabric-shim';
import type { ChaincodeStub } from 'fabric-shim-api';

import { KeyfleetContract } from './contract.js';
import { MapStub, type StubHistoryEntry } from './testing/map-stub.js';

/** The methods fabric-contract-api's `@Transaction` decorator declared: only these are callable. */
const transactionNames: ReadonlySet<string> = new Set(
  ((Reflect.getMetadata('fabric:transactions', KeyfleetContract.prototype) ?? []) as { name: string }[]).map(
    (t) => t.name,
  ),
);

/** Who submits a transaction: an MSP id and the X.509 certificate (PEM) the contract reads roles from. */
export interface LocalCreator {
  readonly mspId: string;
  readonly certificatePem: string;
}

export interface LocalResult {
  readonly transactionId: string;
  readonly payload: string;
  /** The chaincode event the transaction set, if any. */
  readonly event: { readonly name: string; readonly payload: Uint8Array } | null;
}

/** A committed transaction, as a block would carry it: who submitted what, when. */
export interface LocalTransaction {
  readonly transactionId: string;
  readonly method: string;
  readonly creator: LocalCreator;
  readonly timeMs: number;
}

export interface LocalLedgerOptions {
  /** A JSON file the committed state and history are kept in; in memory only when absent. */
  readonly file?: string;
  readonly now?: () => number;
}

/**
 * keyfleet's contract run in this process over a Map world state with Fabric's transaction
 * semantics: each transaction sees the committed state, its writes are applied only if it
 * succeeds, transactions run one at a time, and history and events are kept.
 *
 * It is a development and test stand-in for a Fabric network: the same rules and signatures,
 * but no endorsement by a second organisation and no ordering service.
 */
export class LocalLedger {
  private readonly stub = new MapStub();
  private readonly contract = new KeyfleetContract();
  private readonly file: string | undefined;
  private readonly now: () => number;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly committed: LocalTransaction[] = [];

  constructor(options: LocalLedgerOptions = {}) {
    this.file = options.file;
    this.now = options.now ?? Date.now;
    if (this.file !== undefined) this.load(this.file);
  }

  /** Runs a transaction and commits its writes when it succeeds. */
  submit(creator: LocalCreator, method: string, args: readonly string[]): Promise<LocalResult> {
    return this.serialised(() => this.run(creator, method, args, true));
  }

  /** Runs a transaction and discards its writes, as a peer does for an evaluation. */
  async evaluate(creator: LocalCreator, method: string, args: readonly string[]): Promise<string> {
    return (await this.serialised(() => this.run(creator, method, args, false))).payload;
  }

  /** Every committed event, oldest first. */
  events(): readonly { readonly txId: string; readonly name: string; readonly payload: Uint8Array }[] {
    return this.stub.events;
  }

  /** Every committed transaction of this process, oldest first (not persisted). */
  transactions(): readonly LocalTransaction[] {
    return this.committed;
  }

  /** The committed state as text: equal snapshots mean nothing was written in between. */
  snapshot(): string {
    return this.stub.snapshot();
  }

  private serialised<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async run(creator: LocalCreator, method: string, args: readonly string[], commit: boolean) {
    const transactionId = randomBytes(32).toString('hex');
    const timeMs = this.now();
    this.stub.begin({
      txId: transactionId,
      timeMs,
      creator: { mspid: creator.mspId, idBytes: Buffer.from(creator.certificatePem, 'utf8') },
      fcn: method,
      params: [...args],
    });
    try {
      const ctx = new Context();
      // The MapStub implements the subset of ChaincodeStub the contract and ClientIdentity call.
      const stub = this.stub as unknown as ChaincodeStub;
      ctx.stub = stub;
      // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment -- the Map stub stands in for the shim's stub class on purpose
      ctx.clientIdentity = new ClientIdentity(stub);
      const fn = (this.contract as unknown as Record<string, unknown>)[method];
      if (typeof fn !== 'function' || !transactionNames.has(method)) {
        await this.contract.unknownTransaction(ctx);
        throw new Error(`unknown transaction ${method}`);
      }
      const payload = await (fn as (ctx: Context, ...rest: string[]) => Promise<string>).apply(this.contract, [
        ctx,
        ...args,
      ]);
      const event = this.stub.pendingEvent;
      if (commit) {
        this.stub.commit();
        this.committed.push({ transactionId, method, creator, timeMs });
        if (this.file !== undefined) this.save(this.file);
      } else {
        this.stub.rollback();
      }
      return { transactionId, payload, event };
    } catch (err) {
      this.stub.rollback();
      throw err;
    }
  }

  private load(file: string): void {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const saved = JSON.parse(text) as SavedLedger;
    for (const [key, value] of saved.state) this.stub.state.set(key, Buffer.from(value, 'base64'));
    for (const [key, entries] of saved.history) {
      this.stub.history.set(
        key,
        entries.map((e) => ({
          txId: e.txId,
          timeMs: e.timeMs,
          isDelete: e.isDelete,
          value: Buffer.from(e.value, 'base64'),
        })),
      );
    }
    for (const e of saved.events)
      this.stub.events.push({ txId: e.txId, name: e.name, payload: Buffer.from(e.payload, 'base64') });
  }

  /** Written to a temporary file and renamed, so a crash leaves the previous state, never half of one. */
  private save(file: string): void {
    const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
    const saved: SavedLedger = {
      state: [...this.stub.state].map(([key, value]) => [key, b64(value)]),
      history: [...this.stub.history].map(([key, entries]) => [
        key,
        entries.map((e: StubHistoryEntry) => ({
          txId: e.txId,
          timeMs: e.timeMs,
          isDelete: e.isDelete,
          value: b64(e.value),
        })),
      ]),
      events: this.stub.events.map((e) => ({ txId: e.txId, name: e.name, payload: b64(e.payload) })),
    };
    mkdirSync(dirname(file), { recursive: true });
    const temporary = `${file}.${process.pid}.tmp`;
    writeFileSync(temporary, JSON.stringify(saved), { mode: 0o600 });
    renameSync(temporary, file);
  }
}

interface SavedLedger {
  state: [string, string][];
  history: [string, { txId: string; timeMs: number; isDelete: boolean; value: string }[]][];
  events: { txId: string; name: string; payload: string }[];
}
