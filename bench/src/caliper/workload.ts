import { randomBytes } from 'node:crypto';
import { readAnchorKeys, RequestSigner, enrolDevice, type SignedRequest } from './requests';

/**
 * What a Caliper 0.6.0 worker calls on a workload module, and the part of its Fabric connector the
 * modules use. Caliper loads a module by path and calls these methods by name, so the modules need
 * not extend `WorkloadModuleBase` from @hyperledger/caliper-core, which lives in bench/caliper's own
 * node_modules, apart from keyfleet's dependencies.
 */
export interface CaliperRequest {
  readonly contractId: string;
  readonly contractFunction: string;
  readonly contractArguments: readonly string[];
  readonly invokerIdentity: string;
  readonly invokerMspId: string;
  readonly readOnly: boolean;
}

export interface CaliperTxStatus {
  /** `success` or `failed` (Caliper's TxStatus). */
  GetStatus(): string;
}

export interface CaliperConnector {
  sendRequests(request: CaliperRequest): Promise<CaliperTxStatus>;
}

export interface WorkloadModule {
  initializeWorkloadModule(
    workerIndex: number,
    totalWorkers: number,
    roundIndex: number,
    roundArguments: Record<string, unknown> | undefined,
    sutAdapter: CaliperConnector,
    sutContext: unknown,
  ): Promise<void>;
  submitTransaction(): Promise<void>;
  cleanupWorkloadModule(): Promise<void>;
}

/** keyfleet's identities in the connection description: operators are Org1's, verifiers Org2's. */
export const Invokers = {
  operator: { invokerIdentity: 'operator', invokerMspId: 'Org1MSP' },
  verifier: { invokerIdentity: 'verifier', invokerMspId: 'Org2MSP' },
  application: { invokerIdentity: 'application', invokerMspId: 'Org1MSP' },
} as const;

/** A signed keyfleet write ready to send, and what to do once it has committed (or not). */
export interface PreparedWrite {
  readonly invoker: (typeof Invokers)[keyof typeof Invokers];
  readonly contractFunction: string;
  readonly signed: SignedRequest;
  readonly settled?: (committed: boolean) => void;
}

/**
 * The part every keyfleet round shares: the round's arguments, the anchors' signers, unique ids
 * (a run tag, the round and the worker: workers and rounds never write the same key, so no write
 * conflicts at commit), devices enrolled before the round starts (untimed), and requests signed
 * ahead of time.
 *
 * Why ahead: Caliper's fixed-load rate control counts a transaction as in flight from the moment
 * the module calls `sendRequests`, and calls `submitTransaction` again and again (without awaiting
 * it) until that count reaches the load. A module that awaited its signature first (jose signs on
 * libuv's thread pool) would be called many more times than the load before the first call reached
 * `sendRequests`. So `submitTransaction` takes a request already signed and sends it at once, and
 * a replacement is signed meanwhile.
 */
export abstract class KeyfleetWorkload implements WorkloadModule {
  protected sut!: CaliperConnector;
  protected args: Record<string, unknown> = {};
  protected metadata!: RequestSigner;
  protected verifier!: RequestSigner;
  private prefix = '';
  private counter = 0;
  private readonly ready: PreparedWrite[] = [];
  private make: (() => Promise<PreparedWrite>) | undefined;
  private readonly waiting: ((write: PreparedWrite) => void)[] = [];
  private failure: Error | undefined;
  /** How often `submitTransaction` found no signed request ready (reported at clean-up). */
  private starved = 0;

  async initializeWorkloadModule(
    workerIndex: number,
    _totalWorkers: number,
    roundIndex: number,
    roundArguments: Record<string, unknown> | undefined,
    sutAdapter: CaliperConnector,
  ): Promise<void> {
    this.sut = sutAdapter;
    this.args = roundArguments ?? {};
    this.prefix = `cal-${randomBytes(3).toString('hex')}-r${roundIndex}-w${workerIndex}`;
    const anchorsFile = this.args.anchorsFile;
    if (typeof anchorsFile === 'string') {
      const anchors = readAnchorKeys(anchorsFile);
      this.metadata = await RequestSigner.from(anchors.metadata);
      this.verifier = await RequestSigner.from(anchors.verifier);
    }
    await this.prepare();
  }

  /** Set-up before the round's clock starts (Caliper does not time initializeWorkloadModule). */
  protected async prepare(): Promise<void> {}

  /**
   * Sends the next signed request; a round whose requests do not depend on earlier results signs
   * one more meanwhile ({@link signAhead}).
   */
  async submitTransaction(): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    const write =
      this.ready.shift() ??
      (await new Promise<PreparedWrite>((resolve) => {
        this.starved += 1;
        this.waiting.push(resolve);
      }));
    const sent = this.send(write.invoker, write.contractFunction, write.signed);
    this.replenish();
    const committed = (await sent).GetStatus() === 'success';
    write.settled?.(committed);
  }

  /** Rounds of independent requests sign one more for each one sent ({@link signAhead}). */
  private replenish(): void {
    this.make?.().then(
      (write) => {
        this.offer(write);
      },
      (err: unknown) => {
        this.failure = err instanceof Error ? err : new Error(String(err));
      },
    );
  }

  /** Signs `count` requests made by `make` ahead of the round (untimed), then one per request sent. */
  protected async signAhead(count: number, make: () => Promise<PreparedWrite>): Promise<void> {
    for (const write of await Promise.all(Array.from({ length: count }, make))) this.offer(write);
    this.make = make;
  }

  /** A signed request ready to send: to a call already waiting for one, or to the queue. */
  protected offer(write: PreparedWrite): void {
    const waiter = this.waiting.shift();
    if (waiter === undefined) this.ready.push(write);
    else waiter(write);
  }

  cleanupWorkloadModule(): Promise<void> {
    if (this.starved > 0) {
      console.warn(`caliper workload: ${this.starved} transactions waited for a signed request (signing fell behind)`);
    }
    return Promise.resolve();
  }

  /** A name no other worker, round or run uses: `<prefix>-<kind>-<n>`. */
  protected nextId(kind: string): string {
    this.counter += 1;
    return `${this.prefix}-${kind}-${this.counter}`;
  }

  protected numberArg(name: string, fallback: number): number {
    const value = this.args[name];
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
      throw new Error(`round argument ${name} must be a positive integer, got ${JSON.stringify(value)}`);
    }
    return value;
  }

  /** Hands a signed keyfleet write to Caliper's connector, which counts it as sent at once. */
  private send(
    invoker: PreparedWrite['invoker'],
    contractFunction: string,
    signed: SignedRequest,
  ): Promise<CaliperTxStatus> {
    return this.sut.sendRequests({
      contractId: 'keyfleet',
      contractFunction,
      contractArguments: [signed.requestJson, signed.jws],
      readOnly: false,
      ...invoker,
    });
  }

  /** Submits a signed keyfleet write now (set-up, not timed); true when it committed valid. */
  protected async write(invoker: PreparedWrite['invoker'], contractFunction: string, signed: SignedRequest) {
    return (await this.send(invoker, contractFunction, signed)).GetStatus() === 'success';
  }

  /** Enrols `count` devices of this worker together (set-up), or fails naming how many did not. */
  protected async enrolDevices(count: number): Promise<string[]> {
    const ids = Array.from({ length: count }, () => this.nextId('dev'));
    const done = await Promise.all(
      ids.map(async (id) =>
        this.write(Invokers.operator, 'EnrolDevice', await this.metadata.sign(enrolDevice(this.nextId('req'), id))),
      ),
    );
    const failed = done.filter((ok) => !ok).length;
    if (failed > 0) throw new Error(`set-up: ${failed} of ${count} device enrolments failed (see the log above)`);
    return ids;
  }
}
