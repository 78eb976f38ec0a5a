import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Authenticator } from '../auth/bearer';
import type { AttestationApi, Health } from '../domain/services';
import { registerAttestationRoutes } from './attestation-routes';
import { newBaseServer } from './base';
import type { HttpsOptions } from './tls';

export interface VerifierHttpServerOptions {
  readonly attestation: AttestationApi;
  readonly health: () => Promise<Health>;
  readonly authenticator: Authenticator;
  readonly bodyLimit?: number;
  /** A pino logger configuration or `false`; defaults to JSON logs at `info`. */
  readonly logger?: boolean | { level: string };
  /** The service's own metrics (the event follower's), served on `/metrics` with the HTTP ones. */
  readonly metrics?: Registry;
  /** TLS options; plain HTTP without them (development, loopback only). */
  readonly https?: HttpsOptions;
}

/**
 * The verifier service's REST API (not yet listening): the attestation routes, with the same
 * schemas and error answers as the operator gateway's, plus `/healthz`, `/metrics`, `/openapi.json`.
 */
export async function newVerifierHttpServer(options: VerifierHttpServerOptions): Promise<FastifyInstance> {
  const app = await newBaseServer({
    authenticator: options.authenticator,
    health: options.health,
    ...(options.bodyLimit === undefined ? {} : { bodyLimit: options.bodyLimit }),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
    ...(options.https === undefined ? {} : { https: options.https }),
    service: { title: 'keyfleet verifier', metricsPrefix: 'keyfleet_verifier_' },
  });
  await app.register(
    (v1, _opts, done) => {
      registerAttestationRoutes(v1, options.attestation);
      done();
    },
    { prefix: '/v1' },
  );
  return app;
}
