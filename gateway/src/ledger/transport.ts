/**
 * The narrowest view of a ledger the gateway needs: run a named transaction of keyfleet's
 * contract with string arguments. Fabric (ledger/fabric.ts) and the in-process development
 * ledger (ledger/local.ts) both provide it; everything above speaks only this.
 */
export interface LedgerTransport {
  /** Endorses, orders and waits for the commit; throws a GatewayError when refused. */
  submit(transaction: string, args: readonly string[]): Promise<Submitted>;
  /** Runs a read-only transaction on a peer. */
  evaluate(transaction: string, args: readonly string[]): Promise<Uint8Array>;
  close(): Promise<void>;
}

export interface Submitted {
  readonly payload: Uint8Array;
  readonly transactionId: string;
}
