import { TransactionName } from '@keyfleet/protocol';
import type { Hsm } from './hsm';
import type { LedgerTransport } from './ledger/transport';

export interface Health {
  readonly hsm: boolean;
  readonly ledger: boolean;
}

/** `/healthz`: the token answers for `label`, and a peer answers a read of the contract. */
export function healthCheck(hsm: Hsm, label: string, transport: LedgerTransport): () => Promise<Health> {
  const ok = (probe: Promise<unknown>) =>
    probe.then(
      () => true,
      () => false,
    );
  return async () => {
    const [hsmOk, ledgerOk] = await Promise.all([
      ok(hsm.getPublicKey({ label })),
      ok(transport.evaluate(TransactionName.ListTrustAnchors, [])),
    ]);
    return { hsm: hsmOk, ledger: ledgerOk };
  };
}
