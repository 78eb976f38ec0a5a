import { errorCodeOf } from '@keyfleet/protocol';
import { GatewayError, GatewayErrorCode } from '../errors';

/**
 * The narrowest view of a ledger the gateway needs: run a named transaction of keyfleet's
 * contract with string arguments. Fabric (ledger/fabric.ts) provides it, and in unit tests the
 * contract in process (testing/local-transport.ts); everything above speaks only this.
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

/**
 * The contract's refusal in a ledger message (`… CODE: text`) as a LEDGER_REJECTED error with the
 * contract's code in `detail`, once; undefined when the message carries no contract code.
 */
export function ledgerRefusal(message: string, cause: unknown): GatewayError | undefined {
  const code = errorCodeOf(message);
  if (code === undefined) return undefined;
  const at = message.indexOf(`${code}: `);
  const text = at === -1 ? message : message.slice(at + code.length + 2);
  return new GatewayError(GatewayErrorCode.LedgerRejected, text, code, { cause });
}
