import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fdatasyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';

import '../logging.js';
import { MapStub } from './map-stub.js';
import { route } from './router.js';

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
  /** A journal file (JSON lines) the committed transactions are kept in; in memory only when absent. */
  readonly file?: string;
  readonly now?: () => number;
}

/**
 * keyfleet's contracts run in this process, routed as Fabric routes them (router.ts), over a Map world state with Fabric's transaction
 * semantics: each transaction sees the committed state, its writes are applied only if it
 * succeeds, transactions run one at a time, and history and events are kept.
 *
 * It is a development and test stand-in for a Fabric network: the same rules and signatures,
 * but no endorsement by a second organisation and no ordering service.
 */
export class LocalLedger {
  private readonly stub = new MapStub();
  private readonly file: string | undefined;
  private readonly now: () => number;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly committed: LocalTransaction[] = [];
  private journal: number | undefined;
  private lockFile: string | undefined;

  constructor(options: LocalLedgerOptions = {}) {
    this.file = options.file;
    this.now = options.now ?? Date.now;
    if (this.file !== undefined) {
      this.lockFile = lock(this.file);
      try {
        this.load(this.file);
      } catch (err) {
        this.close();
        throw err;
      }
    }
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
      const payload = await route(this.stub);
      const event = this.stub.pendingEvent;
      if (commit) {
        if (this.file !== undefined) this.append(this.file, transactionId, timeMs);
        this.stub.commit();
        this.committed.push({ transactionId, method, creator, timeMs });
      } else {
        this.stub.rollback();
      }
      return { transactionId, payload, event };
    } catch (err) {
      this.stub.rollback();
      throw err;
    }
  }

  /**
   * Replays the journal: one JSON line per committed transaction. A last line cut short by a
   * crash was never acknowledged (the answer follows the write), so it is dropped.
   */
  private load(file: string): void {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    // Everything after the last newline is a line a crash cut short: never acknowledged, dropped.
    const complete = text.slice(0, text.lastIndexOf('\n') + 1);
    complete
      .split('\n')
      .slice(0, -1)
      .forEach((line, index) => {
        let entry: JournalEntry;
        try {
          entry = JSON.parse(line) as JournalEntry;
        } catch (err) {
          throw new Error(`${file}: line ${index + 1} is not a journal entry`, { cause: err });
        }
        this.stub.replay(
          entry.txId,
          entry.timeMs,
          entry.writes.map(([key, value]) => [key, value === null ? null : Buffer.from(value, 'base64')] as const),
          entry.event === null ? null : { name: entry.event.name, payload: Buffer.from(entry.event.payload, 'base64') },
        );
      });
    // Cut the torn tail off, so the next entry starts on a line of its own.
    if (complete.length !== text.length) truncateSync(file, Buffer.byteLength(complete));
  }

  /**
   * Appends the open transaction's writes to the journal and syncs it to disk, before the
   * transaction is applied in memory: what is acknowledged is durable, and a commit costs one
   * line whatever the size of the ledger.
   */
  private append(file: string, txId: string, timeMs: number): void {
    if (this.journal === undefined) {
      mkdirSync(dirname(file), { recursive: true });
      this.journal = openSync(file, 'a', 0o600);
    }
    const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
    const event = this.stub.pendingEvent;
    const entry: JournalEntry = {
      txId,
      timeMs,
      writes: [...this.stub.pendingWriteSet].map(([key, value]) => [key, value === null ? null : b64(value)]),
      event: event === null ? null : { name: event.name, payload: b64(event.payload) },
    };
    writeSync(this.journal, JSON.stringify(entry) + '\n');
    fdatasyncSync(this.journal);
  }

  /** Closes the journal file; the ledger must not be used afterwards. */
  close(): void {
    if (this.journal !== undefined) closeSync(this.journal);
    this.journal = undefined;
    if (this.lockFile !== undefined) rmSync(this.lockFile, { force: true });
    this.lockFile = undefined;
  }
}

/**
 * One process at a time per journal: two would each replay the file and append their own
 * history to it. The lock file holds the owner's pid; a lock whose process is gone is stale.
 */
function lock(file: string): string {
  const lockFile = `${file}.lock`;
  mkdirSync(dirname(file), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lockFile, String(process.pid), { flag: 'wx', mode: 0o600 });
      return lockFile;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(readFileSync(lockFile, 'utf8'));
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) {
        throw new Error(`${file} is in use by process ${owner} (${lockFile})`);
      }
      if (owner === process.pid) throw new Error(`${file} is already open in this process`);
      rmSync(lockFile, { force: true });
    }
  }
  throw new Error(`cannot lock ${file}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** One committed transaction in the journal file. */
interface JournalEntry {
  txId: string;
  timeMs: number;
  writes: [string, string | null][];
  event: { name: string; payload: string } | null;
}
