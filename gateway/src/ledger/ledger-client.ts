import { randomUUID } from 'node:crypto';
import { canonicalJson, type HsmClusterAction, type ShardMoveAction, type TransactionName } from '@keyfleet/protocol';
import type { EcSigningKey } from '../crypto/ec-key';
import { signCompactJws } from '../crypto/jws';
import { currentPrincipal } from './principal-context';
import type { LedgerTransport } from './transport';

/**
 * keyfleet's contract seen from the gateway: every write is a request record signed by the
 * HSM metadata-signing key (a JWS over its canonical JSON) that the chaincode verifies against
 * the registered trust anchor before it writes anything. Services use it through the typed
 * port (port.ts), which names the transactions.
 */
/** What the client runs: a transaction of keyfleet's contract, or of the `hsm-cluster` or `shard-move` contract. */
export type LedgerAction = TransactionName | HsmClusterAction | ShardMoveAction;

export interface LedgerClient {
  /**
   * Signs and submits `{Action, RequestID, Principal, ...fields}`, `Principal` being the one the work
   * runs for ({@link asPrincipal}); resolves once committed. Throws if no principal is in context.
   */
  write<T = unknown>(action: LedgerAction, fields: Readonly<Record<string, unknown>>): Promise<Written<T>>;
  /** Evaluates a read-only transaction and parses its JSON answer. */
  read<T = unknown>(transaction: LedgerAction, ...args: string[]): Promise<T>;
}

export interface Written<T> {
  readonly transactionId: string;
  readonly record: T;
}

export interface LedgerClientOptions {
  readonly transport: LedgerTransport;
  readonly signingKey: EcSigningKey;
  /** The trust-anchor id under which the signing key is registered; the JWS `kid`. */
  readonly anchorId: string;
  readonly newRequestId?: () => string;
}

export function newLedgerClient(options: LedgerClientOptions): LedgerClient {
  const { transport, signingKey, anchorId } = options;
  const newRequestId = options.newRequestId ?? randomUUID;
  const decoder = new TextDecoder();

  return {
    async write<T>(action: LedgerAction, fields: Readonly<Record<string, unknown>>): Promise<Written<T>> {
      const request = { ...fields, Action: action, RequestID: newRequestId(), Principal: currentPrincipal() };
      const payload = canonicalJson(request);
      const jws = await signCompactJws(signingKey, { kid: anchorId }, Buffer.from(payload));
      const { payload: answer, transactionId } = await transport.submit(action, [payload, jws]);
      return { transactionId, record: parse(decoder.decode(answer)) as T };
    },

    async read<T>(transaction: LedgerAction, ...args: string[]): Promise<T> {
      return parse(decoder.decode(await transport.evaluate(transaction, args))) as T;
    },
  };
}

/** The contract answers JSON, or nothing; the caller names the type it expects. */
function parse(text: string): unknown {
  return text === '' ? null : JSON.parse(text);
}
