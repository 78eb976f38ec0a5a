import { newTlsFetch } from '@keyfleet/agent';

const trusted = new Set<string>();

/**
 * Makes this test process's `fetch` trust `caPem` besides the CAs trusted before, as a client
 * given the operator's CA certificate (KEYFLEET_CA_FILE) does: each fixture's services hold
 * certificates from CAs in its own fresh HSM token. Only TLS 1.3 is offered, as by every client.
 */
export function trustCa(caPem: string): void {
  if (trusted.has(caPem)) return;
  trusted.add(caPem);
  globalThis.fetch = newTlsFetch({ ca: [...trusted].join('\n') });
}
