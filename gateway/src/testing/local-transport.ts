import type { LocalCreator, LocalLedger } from '@keyfleet/chaincode/testing';
import { GatewayError, GatewayErrorCode } from '../errors';
import { ledgerRefusal, type LedgerTransport } from '../ledger/transport';

/**
 * A transport onto keyfleet's contract running in this process (a test double: the product always talks to Fabric):
 * the same contract, roles and signatures as on Fabric, without endorsement or ordering.
 */
export function newLocalTransport(ledger: LocalLedger, creator: LocalCreator): LedgerTransport {
  const encoder = new TextEncoder();
  return {
    async submit(transaction, args) {
      try {
        const { payload, transactionId } = await ledger.submit(creator, transaction, args);
        return { payload: encoder.encode(payload), transactionId };
      } catch (err) {
        throw toGatewayError(err);
      }
    },
    async evaluate(transaction, args) {
      try {
        return encoder.encode(await ledger.evaluate(creator, transaction, args));
      } catch (err) {
        throw toGatewayError(err);
      }
    },
    close: () => Promise.resolve(),
  };
}

function toGatewayError(err: unknown): GatewayError {
  const message = err instanceof Error ? err.message : String(err);
  return (
    ledgerRefusal(message, err) ??
    new GatewayError(GatewayErrorCode.LedgerUnavailable, 'the local ledger failed', undefined, { cause: err })
  );
}
