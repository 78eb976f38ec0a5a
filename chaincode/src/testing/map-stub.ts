import Long from 'long';

/** One committed change of a key, as `getHistoryForKey` reports it. */
export interface StubHistoryEntry {
  txId: string;
  timeMs: number;
  isDelete: boolean;
  value: Uint8Array;
}

export interface StubTransaction {
  txId: string;
  timeMs: number;
  creator: { mspid: string; idBytes: Uint8Array };
  fcn: string;
  params: string[];
}

export interface StubEvent {
  txId: string;
  name: string;
  payload: Uint8Array;
}

interface KV {
  namespace: string;
  key: string;
  value: Uint8Array;
}

const CompositeNs = '\x00';
const MinRune = '\x00';
const MaxRune = '\u{10ffff}';

class ListIterator<T> {
  private index = 0;
  private readonly items: readonly T[];

  constructor(items: readonly T[]) {
    this.items = items;
  }

  next(): Promise<{ value: T; done: false } | { value: undefined; done: true }> {
    const item = this.items[this.index];
    this.index += 1;
    return Promise.resolve(item === undefined ? { value: undefined, done: true } : { value: item, done: false });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

function validateAttribute(attribute: string): void {
  if (attribute.length === 0 || attribute.includes(MinRune) || attribute.includes(MaxRune)) {
    throw new Error(`invalid composite key attribute ${JSON.stringify(attribute)}`);
  }
}

/**
 * A world state in a Map with Fabric's transaction semantics: writes are buffered in a write set that
 * reads do not see (as in endorsement simulation), committed with history on success, dropped on error;
 * only the last `setEvent` of a transaction survives; range queries refuse composite keys; history is
 * newest first. It implements the ChaincodeStub methods the contract and ClientIdentity use.
 */
export class MapStub {
  readonly state = new Map<string, Uint8Array>();
  readonly history = new Map<string, StubHistoryEntry[]>();
  readonly events: StubEvent[] = [];
  private readonly writes = new Map<string, Uint8Array | null>();
  private event: { name: string; payload: Uint8Array } | null = null;
  private tx: StubTransaction | null = null;

  begin(tx: StubTransaction): void {
    if (this.tx !== null) throw new Error('a transaction is already open');
    this.tx = tx;
    this.writes.clear();
    this.event = null;
  }

  /** Number of writes the open transaction has made so far. */
  get pendingWrites(): number {
    return this.writes.size;
  }

  get pendingEvent(): { name: string; payload: Uint8Array } | null {
    return this.event;
  }

  /** The open transaction's write set in write order; `null` deletes the key. */
  get pendingWriteSet(): ReadonlyMap<string, Uint8Array | null> {
    return this.writes;
  }

  commit(): void {
    const tx = this.current();
    this.apply(tx.txId, tx.timeMs, this.writes, this.event);
    this.end();
  }

  /** Applies a transaction committed earlier, e.g. read back from a journal. */
  replay(
    txId: string,
    timeMs: number,
    writes: Iterable<readonly [string, Uint8Array | null]>,
    event: { name: string; payload: Uint8Array } | null,
  ): void {
    if (this.tx !== null) throw new Error('a transaction is open');
    this.apply(txId, timeMs, writes, event);
  }

  private apply(
    txId: string,
    timeMs: number,
    writes: Iterable<readonly [string, Uint8Array | null]>,
    event: { name: string; payload: Uint8Array } | null,
  ): void {
    for (const [key, value] of writes) {
      if (value === null) this.state.delete(key);
      else this.state.set(key, value);
      const entries = this.history.get(key) ?? [];
      entries.push({ txId, timeMs, isDelete: value === null, value: value ?? new Uint8Array() });
      this.history.set(key, entries);
    }
    if (event !== null) this.events.push({ txId, ...event });
  }

  rollback(): void {
    this.current();
    this.end();
  }

  private end(): void {
    this.writes.clear();
    this.event = null;
    this.tx = null;
  }

  private current(): StubTransaction {
    if (this.tx === null) throw new Error('no open transaction');
    return this.tx;
  }

  // ---- transaction information -----------------------------------------------------------------

  getTxID(): string {
    return this.current().txId;
  }

  /** The channel this stub's ledger is (a test of two shard channels sets one per stub). */
  channelId = 'keyfleet';

  getChannelID(): string {
    return this.channelId;
  }

  getCreator(): { mspid: string; idBytes: Uint8Array } {
    return this.current().creator;
  }

  getMspID(): string {
    return 'Org1MSP';
  }

  getTxTimestamp(): { seconds: Long; nanos: number } {
    const ms = this.current().timeMs;
    return { seconds: Long.fromNumber(Math.floor(ms / 1000), true), nanos: (ms % 1000) * 1_000_000 };
  }

  getDateTimestamp(): Date {
    return new Date(this.current().timeMs);
  }

  getFunctionAndParameters(): { fcn: string; params: string[] } {
    const { fcn, params } = this.current();
    return { fcn, params };
  }

  /** The invocation's arguments as the peer sends them (the function name first), read by Fabric's routing. */
  getBufferArgs(): Buffer[] {
    const { fcn, params } = this.current();
    return [fcn, ...params].map((arg) => Buffer.from(arg, 'utf8'));
  }

  // ---- state -----------------------------------------------------------------------------------

  getState(key: string): Promise<Uint8Array> {
    this.current();
    this.checkKey(key);
    return Promise.resolve(Buffer.from(this.state.get(key) ?? new Uint8Array()));
  }

  putState(key: string, value: Uint8Array): Promise<void> {
    this.current();
    this.checkKey(key);
    if (value.length === 0) throw new Error(`putState of an empty value for ${JSON.stringify(key)}`);
    this.writes.set(key, Buffer.from(value));
    return Promise.resolve();
  }

  deleteState(key: string): Promise<void> {
    this.current();
    this.checkKey(key);
    this.writes.set(key, null);
    return Promise.resolve();
  }

  private checkKey(key: string): void {
    if (typeof key !== 'string' || key.length === 0) throw new Error('key must be a non-empty string');
  }

  createCompositeKey(objectType: string, attributes: string[]): string {
    validateAttribute(objectType);
    let key = CompositeNs + objectType + MinRune;
    for (const attribute of attributes) {
      validateAttribute(attribute);
      key += attribute + MinRune;
    }
    return key;
  }

  splitCompositeKey(compositeKey: string): { objectType: string; attributes: string[] } {
    const parts = compositeKey.slice(1).split(MinRune).slice(0, -1);
    return { objectType: parts[0] ?? '', attributes: parts.slice(1) };
  }

  private sortedKeys(start: string, end: string): string[] {
    return [...this.state.keys()].filter((key) => key >= start && (end === '' || key < end)).sort();
  }

  private page(
    keys: string[],
    pageSize: number,
    bookmark: string,
  ): { iterator: ListIterator<KV>; metadata: { fetchedRecordsCount: number; bookmark: string } } {
    const from = bookmark === '' ? keys : keys.filter((key) => key >= bookmark);
    const taken = from.slice(0, pageSize);
    const next = from[pageSize] ?? '';
    return {
      iterator: new ListIterator(taken.map((key) => this.kv(key))),
      metadata: { fetchedRecordsCount: taken.length, bookmark: next },
    };
  }

  private kv(key: string): KV {
    return { namespace: 'keyfleet', key, value: Buffer.from(this.state.get(key) ?? new Uint8Array()) };
  }

  private checkSimpleRange(start: string, end: string): void {
    if (start.startsWith(CompositeNs) || end.startsWith(CompositeNs)) {
      throw new Error('range queries over composite keys are not allowed');
    }
  }

  getStateByRange(startKey: string, endKey: string): Promise<ListIterator<KV>> {
    this.current();
    const start = startKey === '' ? '\x01' : startKey;
    this.checkSimpleRange(start, endKey);
    return Promise.resolve(new ListIterator(this.sortedKeys(start, endKey).map((key) => this.kv(key))));
  }

  getStateByRangeWithPagination(
    startKey: string,
    endKey: string,
    pageSize: number,
    bookmark = '',
  ): Promise<{ iterator: ListIterator<KV>; metadata: { fetchedRecordsCount: number; bookmark: string } }> {
    this.current();
    const start = startKey === '' ? '\x01' : startKey;
    this.checkSimpleRange(start, endKey);
    return Promise.resolve(this.page(this.sortedKeys(start, endKey), pageSize, bookmark));
  }

  getStateByPartialCompositeKey(objectType: string, attributes: string[]): Promise<ListIterator<KV>> {
    this.current();
    const prefix = this.createCompositeKey(objectType, attributes);
    return Promise.resolve(new ListIterator(this.sortedKeys(prefix, prefix + MaxRune).map((key) => this.kv(key))));
  }

  getStateByPartialCompositeKeyWithPagination(
    objectType: string,
    attributes: string[],
    pageSize: number,
    bookmark = '',
  ): Promise<{ iterator: ListIterator<KV>; metadata: { fetchedRecordsCount: number; bookmark: string } }> {
    this.current();
    const prefix = this.createCompositeKey(objectType, attributes);
    return Promise.resolve(this.page(this.sortedKeys(prefix, prefix + MaxRune), pageSize, bookmark));
  }

  getHistoryForKey(key: string): Promise<
    ListIterator<{
      txId: string;
      timestamp: { seconds: Long; nanos: number };
      isDelete: boolean;
      value: Uint8Array;
    }>
  > {
    this.current();
    const entries = [...(this.history.get(key) ?? [])].reverse();
    return Promise.resolve(
      new ListIterator(
        entries.map((entry) => ({
          txId: entry.txId,
          timestamp: {
            seconds: Long.fromNumber(Math.floor(entry.timeMs / 1000), true),
            nanos: (entry.timeMs % 1000) * 1_000_000,
          },
          isDelete: entry.isDelete,
          value: Buffer.from(entry.value),
        })),
      ),
    );
  }

  setEvent(name: string, payload: Uint8Array): void {
    this.current();
    if (name === '') throw new Error('Event name must be a non-empty string');
    this.event = { name, payload: Buffer.from(payload) };
  }

  /** Everything committed, as text, for "nothing changed" assertions. */
  snapshot(): string {
    const state = [...this.state.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([key, value]) => [key, Buffer.from(value).toString('base64')]);
    const history = [...this.history.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([key, entries]) => [key, entries.length]);
    return JSON.stringify({ state, history, events: this.events.length });
  }
}
