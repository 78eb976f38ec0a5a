import type { FastifyRequest } from 'fastify';
import type { Principal } from '../auth/bearer';
import { GatewayError, GatewayErrorCode } from '../errors';

/** The caller the server's preHandler authenticated; routes with `config.roles` always have one. */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new GatewayError(GatewayErrorCode.Unauthenticated, 'not authenticated');
  return request.principal;
}
