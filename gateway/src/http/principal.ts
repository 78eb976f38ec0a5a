import type { FastifyRequest } from 'fastify';
import { PrincipalKind, type RequestPrincipal } from '@keyfleet/protocol';
import { ApiRole, type Principal } from '../auth/bearer';
import { GatewayError, GatewayErrorCode } from '../errors';

/** The caller the server's preHandler authenticated; routes with `config.roles` always have one. */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new GatewayError(GatewayErrorCode.Unauthenticated, 'not authenticated');
  return request.principal;
}

/**
 * The ledger's name for a bearer-token caller: operators and applications as themselves. Auditors
 * only read, so they get none, and a write made for one would throw.
 */
export function requestPrincipalOf(principal: Principal): RequestPrincipal | undefined {
  switch (principal.role) {
    case ApiRole.Operator:
      return { Kind: PrincipalKind.Operator, ID: principal.subject };
    case ApiRole.Application:
      return { Kind: PrincipalKind.Application, ID: principal.subject };
    case ApiRole.Auditor:
      return undefined;
  }
}
