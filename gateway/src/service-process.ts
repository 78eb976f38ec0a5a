import type { FastifyInstance } from 'fastify';
import { isGatewayError } from './errors';

/** What a keyfleet process serves: an HTTP server and an orderly close. */
export interface Service {
  readonly server: FastifyInstance;
  close(): Promise<void>;
}

/**
 * Runs one keyfleet process (the gateway, the verifier): opens it (configuration included), listens,
 * logs `ready`, and on SIGINT/SIGTERM closes it once and exits. A start-up failure is a configuration
 * or infrastructure problem: one line saying what, not a stack.
 */
export function runService(
  name: string,
  open: () => Promise<{ service: Service; host: string; port: number; ready: Record<string, unknown> }>,
): void {
  const main = async () => {
    const { service, host, port, ready } = await open();
    const address = await service.server.listen({ host, port });
    service.server.log.info({ address, ...ready }, `keyfleet ${name} ready`);
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      service.server.log.info({ signal }, 'stopping');
      service.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.on(signal, () => {
        stop(signal);
      });
    }
  };
  main().catch((err: unknown) => {
    const message = isGatewayError(err) || err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    process.stderr.write(`keyfleet ${name} failed to start: ${message}\n`);
    process.exit(1);
  });
}
