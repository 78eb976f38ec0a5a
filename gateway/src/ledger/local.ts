import { errorCodeOf, type LocalCreator, type LocalLedger } from '@keyfleet/chaincode';
import { GatewayError, GatewayErrorCode } from '../errors';
import type { LedgerTransport } from './transport';

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
  const code = errorCodeOf(message);
  return code === undefined
    ? new GatewayError(GatewayErrorCode.LedgerUnavailable, 'the local ledger failed', undefined, { cause: err })
    : new GatewayError(GatewayErrorCode.LedgerRejected, withoutCode(message, code), code, { cause: err });
}

/** `CODE: text` → `text`: the code travels in `detail`, once. */
export function withoutCode(message: string, code: string): string {
  const at = message.indexOf(`${code}: `);
  return at === -1 ? message : message.slice(at + code.length + 2);
}
