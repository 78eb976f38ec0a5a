/**
 * The contract's chaincode events as the gateway and the verifier follow them: a port, so that
 * domain code never reaches into @hyperledger/fabric-gateway. Fabric's implementation is
 * ledger/fabric-events.ts; unit tests use a fake.
 */

/** One chaincode event, as committed: every keyfleet write emits exactly one. */
export interface LedgerEvent {
  /** An `EventName` of the contract (chaincode/src/types.ts). */
  readonly name: string;
  /** Canonical JSON; `decodeContractEvent` types the ones clients act on. */
  readonly payload: Uint8Array;
  readonly blockNumber: bigint;
  readonly transactionId: string;
}

/** A stream of events in commit order; close it when done. */
export interface LedgerEventStream extends AsyncIterable<LedgerEvent> {
  close(): void;
}

/**
 * The contract's events with a persistent checkpoint. A stream opened after a checkpoint starts
 * with the event after it (a restart neither repeats nor skips one); with no checkpoint yet, it
 * starts at the first block of the channel.
 */
export interface LedgerEvents {
  /**
   * Opens a stream from the checkpoint. Iteration ends normally when the stream's deadline passes
   * (open another); it throws a GatewayError (`LEDGER_UNAVAILABLE`) when the peer fails.
   */
  open(): Promise<LedgerEventStream>;
  /** Records, durably, that `event` was handled: the next stream starts after it. */
  checkpoint(event: LedgerEvent): Promise<void>;
  /** The block of the last checkpointed event; undefined before the first. */
  checkpointBlock(): bigint | undefined;
  /** The channel's block count (height), for lag. */
  height(): Promise<bigint>;
}
