import fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import { ApiRole, type Authenticator, type Principal } from '../auth/bearer';
import { GatewayError, GatewayErrorCode } from '../errors';
import { DeviceAction, type Services } from '../domain/services';
import { registerDeviceRoutes } from './device-routes';
import { registerKeyRoutes } from './key-routes';
import { handleError } from './errors';
import { principalOf } from './principal';
import * as schema from './schemas';

export interface HttpServerOptions {
  readonly services: Services;
  readonly authenticator: Authenticator;
  readonly bodyLimit?: number;
  /** A pino logger configuration or `false`; defaults to JSON logs at `info`. */
  readonly logger?: boolean | { level: string };
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
 * Builds the REST API (not yet listening). Every route declares JSON schemas for what it takes
 * and returns; unknown fields are refused, not stripped, and types are never coerced.
 */
export async function newHttpServer(options: HttpServerOptions): Promise<FastifyInstance> {
  const app = fastify({
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
  });
  const { services, authenticator } = options;

  const metrics = new Registry();
  collectDefaultMetrics({ register: metrics, prefix: 'keyfleet_gateway_' });
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
      info: { title: 'keyfleet gateway', version: '1' },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      },
    },
  });
  app.setErrorHandler(handleError);
  // JSON only: anything else is refused with 415 rather than parsed as a string.
  app.removeContentTypeParser('text/plain');
  app.setNotFoundHandler((request) => {
    throw new GatewayError(GatewayErrorCode.NotFound, `no route ${request.method} ${request.url.split('?')[0] ?? ''}`);
  });

  // Routes name the roles they admit in `config.roles`; routes without it are public.
  app.addHook('preHandler', async (request) => {
    const roles = request.routeOptions.config.roles;
    if (roles === undefined) return;
    const principal = await authenticator.authenticate(request.headers.authorization);
    if (!roles.includes(principal.role)) {
      throw new GatewayError(GatewayErrorCode.Forbidden, `role ${principal.role} may not do this`);
    }
    request.principal = principal;
  });
  const readers = { roles: [ApiRole.Operator, ApiRole.Auditor] };
  const operators = { roles: [ApiRole.Operator] };
  const secured = { security: [{ bearer: [] }] };

  app.get('/healthz', { schema: { response: { 200: schema.health, 503: schema.health } } }, async (_req, reply) => {
    const health = await services.health();
    const ok = health.hsm && health.ledger;
    return reply.status(ok ? 200 : 503).send({ status: ok ? 'ok' : 'degraded', ...health });
  });
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) =>
    reply.type(metrics.contentType).send(await metrics.metrics()),
  );
  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());

  await app.register(
    (v1, _opts, done) => {
      v1.post<{ Body: schema.EnrolmentTokenBody }>(
        '/enrolment-tokens',
        {
          config: operators,
          schema: { ...secured, body: schema.enrolmentTokenBody, response: { 201: schema.enrolmentToken } },
        },
        async (request, reply) => {
          const token = await services.devices.issueEnrolmentToken(principalOf(request), request.body);
          return reply.status(201).send(token);
        },
      );

      v1.post<{ Body: schema.EnrolmentBody }>(
        '/devices',
        { schema: { body: schema.enrolmentBody, response: { 201: schema.enrolment } } },
        async (request, reply) => reply.status(201).send(await services.devices.enrol(request.body)),
      );

      v1.get<{ Querystring: schema.ListQuery }>(
        '/devices',
        { config: readers, schema: { ...secured, querystring: schema.listQuery, response: { 200: schema.page } } },
        async (request) => {
          const { group, pageSize, bookmark } = request.query;
          return services.devices.list(principalOf(request), group, Number(pageSize), bookmark);
        },
      );

      v1.get<{ Params: schema.IdParams }>(
        '/devices/:id',
        {
          config: readers,
          schema: { ...secured, params: schema.idParams, response: { 200: schema.signedRecord } },
        },
        async (request) => services.devices.get(principalOf(request), request.params.id),
      );

      for (const action of Object.values(DeviceAction)) {
        v1.post<{ Params: schema.IdParams; Body: schema.ReasonBody }>(
          `/devices/:id/${action}`,
          {
            config: operators,
            schema: { ...secured, params: schema.idParams, body: schema.reasonBody, response: { 200: schema.written } },
          },
          async (request) =>
            services.devices.changeStatus(principalOf(request), request.params.id, action, request.body.reason),
        );
      }

      v1.post<{ Body: schema.KeyBody }>(
        '/keys',
        { config: operators, schema: { ...secured, body: schema.keyBody, response: { 201: schema.written } } },
        async (request, reply) =>
          reply.status(201).send(await services.keys.register(principalOf(request), request.body)),
      );

      v1.get<{ Params: schema.IdParams }>(
        '/keys/:id',
        {
          config: { roles: [ApiRole.Operator, ApiRole.Auditor, ApiRole.Application] },
          schema: { ...secured, params: schema.idParams, response: { 200: schema.signedRecord } },
        },
        async (request) => services.keys.get(principalOf(request), request.params.id),
      );

      for (const [path, history] of [
        ['/audit/devices/:id', (p: Principal, id: string) => services.devices.history(p, id)],
        ['/audit/keys/:id', (p: Principal, id: string) => services.keys.history(p, id)],
        ['/keys/:id/history', (p: Principal, id: string) => services.keys.history(p, id)],
      ] as const) {
        v1.get<{ Params: schema.IdParams }>(
          path,
          { config: readers, schema: { ...secured, params: schema.idParams, response: { 200: schema.history } } },
          async (request) => ({ entries: await history(principalOf(request), request.params.id) }),
        );
      }
      registerDeviceRoutes(v1, services);
      registerKeyRoutes(v1, { operations: services.keyOperations, rotation: services.keyRotation });
      done();
    },
    { prefix: '/v1' },
  );

  return app;
}
