import type { FastifyInstance } from 'fastify';
import type { ShardMapBody } from '../domain/shards';
import type { Registry } from 'prom-client';
import { ApiRole, type Authenticator, type Principal } from '../auth/bearer';
import { DeviceAction, type Services } from '../domain/services';
import { registerAttestationRoutes } from './attestation-routes';
import { newBaseServer } from './base';
import type { HttpsOptions } from './tls';
import { registerDeviceRoutes } from './device-routes';
import { registerKeyRoutes } from './key-routes';
import { registerHsmClusterRoutes } from './hsm-cluster-routes';
import { registerShardMoveRoutes } from './shard-move-routes';
import { principalOf } from './principal';
import * as schema from './schemas';

export interface HttpServerOptions {
  readonly services: Services;
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
 * Builds the operator gateway's REST API (not yet listening). Every route declares JSON schemas
 * for what it takes and returns; unknown fields are refused, not stripped, and types are never coerced.
 */
export async function newHttpServer(options: HttpServerOptions): Promise<FastifyInstance> {
  const { services, authenticator } = options;
  const app = await newBaseServer({
    authenticator,
    health: () => services.health(),
    ...(options.bodyLimit === undefined ? {} : { bodyLimit: options.bodyLimit }),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
    ...(options.https === undefined ? {} : { https: options.https }),
    service: { title: 'keyfleet gateway', metricsPrefix: 'keyfleet_gateway_' },
  });
  const readers = { roles: [ApiRole.Operator, ApiRole.Auditor] };
  const operators = { roles: [ApiRole.Operator] };
  const secured = { security: [{ bearer: [] }] };

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

      // KMIP Revoke (keyCompromise) of one version: operators only, and the key's Administer policy.
      v1.post<{ Params: schema.KeyVersionParams; Body: schema.ReasonBody }>(
        '/keys/:id/versions/:version/compromise',
        {
          config: operators,
          schema: {
            ...secured,
            params: schema.keyVersionParams,
            body: schema.reasonBody,
            response: { 200: schema.compromised },
          },
        },
        async (request) =>
          services.keys.markCompromised(
            principalOf(request),
            request.params.id,
            Number(request.params.version),
            request.body.reason,
          ),
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
      // The shard map and the load of each shard (`keyfleet shards`): operators only.
      const { shards } = services;
      if (shards !== undefined) {
        v1.get('/shards', { config: operators, schema: { ...secured, response: { 200: schema.open } } }, async () =>
          shards.overview(),
        );
        v1.put<{ Body: ShardMapBody }>(
          '/shards/map',
          { config: operators, schema: { ...secured, body: schema.shardMapBody, response: { 200: schema.written } } },
          async (request) => shards.setMap(request.body),
        );
      }
      if (services.shardMoves !== undefined) registerShardMoveRoutes(v1, services.shardMoves);
      registerDeviceRoutes(v1, services);
      registerAttestationRoutes(v1, services.attestation);
      registerKeyRoutes(v1, { operations: services.keyOperations, rotation: services.keyRotation });
      registerHsmClusterRoutes(v1, services.hsmCluster);
      done();
    },
    { prefix: '/v1' },
  );

  return app;
}
