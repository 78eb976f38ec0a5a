import type { FastifyInstance } from 'fastify';
import { ApiRole } from '../auth/bearer';
import type { ShardMovesApi } from '../domain/shard-moves';
import { GatewayError, GatewayErrorCode } from '../errors';
import { principalOf, requestPrincipalOf } from './principal';
import { closed, id, open } from './schemas';

const channel = { type: 'string', minLength: 1, maxLength: 49, pattern: '^[a-z][a-z0-9.-]*$' };

/**
 * Live re-sharding, operators only (docs/operations.md, "Moving a group between shards"): a move
 * starts as a job (202) and is followed by its id until `state` is `done` or `failed`.
 */
export function registerShardMoveRoutes(v1: FastifyInstance, moves: ShardMovesApi): void {
  const operators = { roles: [ApiRole.Operator] };
  const secured = { security: [{ bearer: [] }] };
  const operator = (request: Parameters<typeof principalOf>[0]) => {
    const by = requestPrincipalOf(principalOf(request));
    if (by === undefined) throw new GatewayError(GatewayErrorCode.Forbidden, 'only operators move shards');
    return by;
  };

  v1.post<{ Body: { group: string; to: string } }>(
    '/shards/moves',
    {
      config: operators,
      schema: { ...secured, body: closed(['group', 'to'], { group: id, to: channel }), response: { 202: open } },
    },
    async (request, reply) =>
      reply.status(202).send(moves.moveGroup(operator(request), request.body.group, request.body.to)),
  );

  v1.post(
    '/shards/rebalance',
    { config: operators, schema: { ...secured, response: { 202: open } } },
    async (request, reply) => reply.status(202).send(moves.rebalance(operator(request))),
  );

  v1.get<{ Params: { jobId: string } }>(
    '/shards/moves/:jobId',
    { config: operators, schema: { ...secured, params: closed(['jobId'], { jobId: id }), response: { 200: open } } },
    (request, reply) => reply.send(moves.job(request.params.jobId)),
  );
}
