#!/usr/bin/env node
import { isGatewayError } from './errors';
import { openVerifier } from './verifier-app';
import { loadVerifierConfig } from './verifier-config';

/** The verifier process (Org2): configuration from the environment, signals, orderly shutdown. */
async function main(): Promise<void> {
  const config = loadVerifierConfig(process.env);
  const verifier = await openVerifier(config);
  const address = await verifier.server.listen({ host: config.http.host, port: config.http.port });
  verifier.server.log.info(
    { address, fabric: config.ledger.connectionProfile, org: config.ledger.org, verifierId: verifier.verifierId },
    'keyfleet verifier ready',
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    verifier.server.log.info({ signal }, 'stopping');
    verifier.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => {
    stop('SIGINT');
  });
  process.on('SIGTERM', () => {
    stop('SIGTERM');
  });
}

main().catch((err: unknown) => {
  // Start-up failures are configuration or infrastructure problems: say what, not a stack.
  const message = isGatewayError(err) || err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  process.stderr.write(`keyfleet verifier failed to start: ${message}\n`);
  process.exit(1);
});
