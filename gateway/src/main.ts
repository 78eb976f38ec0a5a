#!/usr/bin/env node
import { openGateway } from './app';
import { loadConfig } from './config';
import { isGatewayError } from './errors';

/** The gateway process: configuration from the environment, signals, orderly shutdown. */
async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const gateway = await openGateway(config);
  const address = await gateway.server.listen({ host: config.http.host, port: config.http.port });
  gateway.server.log.info(
    { address, fabric: config.ledger.connectionProfile, anchors: gateway.anchors },
    'keyfleet gateway ready',
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    gateway.server.log.info({ signal }, 'stopping');
    gateway.close().then(
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
  process.stderr.write(`keyfleet gateway failed to start: ${message}\n`);
  process.exit(1);
});
