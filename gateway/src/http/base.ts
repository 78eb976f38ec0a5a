import fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import swagger from '@fastify/swagger';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import type { ApiRole, Authenticator, Principal } from '../auth/bearer';
import type { Health } from '../domain/services';
import { GatewayError, GatewayErrorCode } from '../errors';
import { asPrincipal } from '../ledger/principal-context';
import { handleError } from './errors';
import type { HttpsOptions } from './tls';
import { answerClientError, useStrictJsonBodies } from './json-body';
import { requestPrincipalOf } from './principal';
import * as schema from './schemas';

export interface BaseServerOptions {
  readonly authenticator: Authenticator;
  /** What `/healthz` reports; 200 when every part is up, 503 otherwise. */
  readonly health: () => Promise<Health>;
  readonly bodyLimit?: number;
  /** A pino logger configuration or `false`; defaults to JSON logs at `info`. */
  readonly logger?: boolean | { level: string };
  /** The service's name in the OpenAPI document and the prefix of its process metrics. */
  readonly service: { readonly title: string; readonly metricsPrefix: string };
  /** A registry holding the service's own metrics (e.g. the event follower's), served with these. */
  readonly metrics?: Registry;
  /** TLS options ({@link httpsOptions}); plain HTTP without them (development, loopback only). */
  readonly https?: HttpsOptions;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyContextConfig {
    /** The bearer-token roles a route admits; absent on public routes. */
    roles?: readonly ApiRole[];
  }
}

/**
 * What every keyfleet HTTP service shares (the operator gateway and the verifier): JSON only,
 * schemas that refuse unknown fields and never coerce, one error handler, bearer-token roles
 * per route, `/healthz`, `/metrics` and `/openapi.json`. Routes are added by the caller.
 */
export async function newBaseServer(options: BaseServerOptions): Promise<FastifyInstance> {
  const serverOptions: FastifyServerOptions = {
    bodyLimit: options.bodyLimit ?? 64 * 1024,
    logger:
      options.logger === false
        ? false
        : {
            level: typeof options.logger === 'object' ? options.logger.level : 'info',
            redact: ['req.headers.authorization', 'body.enrolmentToken'],
          },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: true, allErrors: false } },
    return503OnClosing: true,
    // Ids reach 128 characters (the ledger's grammar; find-my-way's default stops at 100, which
    // made a long id a 404): past this a path parameter is the schema's to refuse.
    routerOptions: { maxParamLength: 512 },
    // Refusals made before a route is found answer in the same shape, the path not echoed.
    frameworkErrors: (err, request, reply) => {
      handleError(err, request, reply);
    },
    clientErrorHandler: answerClientError,
  };
  // With `https`, Fastify makes an https.Server; routes and hooks do not depend on which, so the
  // instance keeps one type (Fastify's typings would fork every caller on the server type).
  const tls: object = options.https === undefined ? {} : { https: options.https };
  const app = fastify({ ...serverOptions, ...tls });
  const { authenticator } = options;

  const metrics = options.metrics ?? new Registry();
  collectDefaultMetrics({ register: metrics, prefix: options.service.metricsPrefix });
  const requests = new Counter({
    name: 'keyfleet_http_requests_total',
    help: 'HTTP requests answered, by route and status',
    labelNames: ['route', 'status'] as const,
    registers: [metrics],
  });
  const latency = new Histogram({
    name: 'keyfleet_http_request_seconds',
    help: 'HTTP request latency by route',
    labelNames: ['route'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [metrics],
  });
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    requests.inc({ route, status: reply.statusCode });
    latency.observe({ route }, reply.elapsedTime / 1000);
    done();
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: options.service.title, version: '1' },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      },
    },
  });
  app.setErrorHandler(handleError);
  // JSON only, UTF-8 only, no repeated members: anything else is refused rather than guessed at.
  app.removeContentTypeParser('text/plain');
  useStrictJsonBodies(app);
  app.setNotFoundHandler(() => {
    throw new GatewayError(GatewayErrorCode.NotFound, 'no such route');
  });

  // Routes name the roles they admit in `config.roles`; routes without it are public. Checked when
  // the request arrives, before its body is read or validated: a caller without a credential
  // learns nothing about what the route would take (401 before 400, 413 or 415).
  app.addHook('onRequest', async (request) => {
    const roles = request.routeOptions.config.roles;
    if (roles === undefined) return;
    const principal = await authenticator.authenticate(request.headers.authorization);
    if (!roles.includes(principal.role)) {
      throw new GatewayError(GatewayErrorCode.Forbidden, `role ${principal.role} may not do this`);
    }
    request.principal = principal;
  });
  // The rest of an authenticated request (handler included) runs on behalf of its caller, so its
  // ledger writes name them. A callback hook: `done` inside run() carries the context onwards.
  app.addHook('preHandler', (request, _reply, done) => {
    const principal = request.principal === undefined ? undefined : requestPrincipalOf(request.principal);
    if (principal === undefined) {
      done();
      return;
    }
    asPrincipal(principal, done);
  });

  app.get('/healthz', { schema: { response: { 200: schema.health, 503: schema.health } } }, async (_req, reply) => {
    const health = await options.health();
    const ok = health.hsm && health.ledger;
    return reply.status(ok ? 200 : 503).send({ status: ok ? 'ok' : 'degraded', ...health });
  });
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) =>
    reply.type(metrics.contentType).send(await metrics.metrics()),
  );
  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());
  return app;
}
