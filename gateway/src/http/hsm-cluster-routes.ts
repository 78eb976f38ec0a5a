import type { FastifyInstance } from 'fastify';
import { ApiRole } from '../auth/bearer';
import { GatewayError, GatewayErrorCode } from '../errors';
import { tokenLabelPattern, type HsmClusterAdmin } from '../hsm/cluster/cluster-admin';
import { closed, open } from './schemas';

/**
 * The gateway's HSM cluster (docs/hsm-cluster.md): its state, and a token joined while the gateway
 * runs. On a gateway over one token both answer NOT_FOUND.
 */
export function registerHsmClusterRoutes(v1: FastifyInstance, cluster: HsmClusterAdmin | undefined): void {
  const secured = { security: [{ bearer: [] }] };
  const present = (): HsmClusterAdmin => {
    if (cluster === undefined) {
      throw new GatewayError(GatewayErrorCode.NotFound, 'this gateway runs on one HSM token: it has no cluster');
    }
    return cluster;
  };

  v1.get(
    '/hsm/cluster',
    { config: { roles: [ApiRole.Operator, ApiRole.Auditor] }, schema: { ...secured, response: { 200: open } } },
    () => present().status(),
  );

  v1.post<{ Body: { token: string } }>(
    '/hsm/cluster/members',
    {
      config: { roles: [ApiRole.Operator] },
      schema: {
        ...secured,
        body: closed(['token'], { token: { type: 'string', pattern: tokenLabelPattern } }),
        response: { 200: open },
      },
    },
    async (request) => await present().join(request.body.token),
  );
}
