import type { FastifyInstance } from 'fastify';
import { asPrincipal, devicePrincipal } from '../ledger/principal-context';
import { principalOf } from './principal';
import { ApiRole } from '../auth/bearer';
import type { Services } from '../domain/services';
import { closed, compactJws as jws, deviceId, id, open } from './schemas';
import { DigestHexLength } from '@keyfleet/protocol';

/**
 * Device routes write on behalf of the device named in the path. The services verify the signed body
 * against that device's certificate before any write, so an unproven device never reaches the ledger.
 */
const asDevice = <T>(deviceId: string, fn: () => Promise<T>): Promise<T> => asPrincipal(devicePrincipal(deviceId), fn);

const deviceKeyParams = closed(['id', 'keyId'], { id: deviceId, keyId: id });

/** A reference measurement; its digest must have its algorithm's length (the ledger's rule). */
const measurement = {
  ...closed(['name', 'algorithm', 'digest'], {
    name: { type: 'string', minLength: 1, maxLength: 128 },
    algorithm: { enum: Object.keys(DigestHexLength) },
    digest: { type: 'string', pattern: '^(?:[0-9a-f]{2}){32,64}$' },
  }),
  allOf: Object.entries(DigestHexLength).map(([algorithm, digits]) => ({
    if: { properties: { algorithm: { const: algorithm } } },
    then: { properties: { digest: { type: 'string', pattern: `^[0-9a-f]{${String(digits)}}$` } } },
  })),
};

/**
 * Routes devices call (they prove possession of their certified key inside the signed bodies,
 * so they carry no bearer token) and the operator routes that prepare them: device keys,
 * rotation, and the reference values attestation appraises against. The attestation routes
 * themselves are in attestation-routes.ts, shared with the verifier service.
 */
export function registerDeviceRoutes(v1: FastifyInstance, services: Services): void {
  const operators = { roles: [ApiRole.Operator] };
  const secured = { security: [{ bearer: [] }] };

  v1.post<{ Params: { id: string }; Body: { keyId: string } }>(
    '/devices/:id/keys',
    {
      config: operators,
      schema: {
        ...secured,
        params: closed(['id'], { id }),
        body: closed(['keyId'], { keyId: id }),
        response: { 201: open },
      },
    },
    async (request, reply) =>
      reply
        .status(201)
        .send(await services.rotation.provisionDeviceKey({ deviceId: request.params.id, keyId: request.body.keyId })),
  );

  v1.post<{ Params: { id: string; keyId: string }; Body: { request: string } }>(
    '/devices/:id/keys/:keyId/rotate',
    { schema: { params: deviceKeyParams, body: closed(['request'], { request: jws }), response: { 200: open } } },
    async (request) => {
      const { response, version, transactionId, redelivered } = await asDevice(request.params.id, () =>
        services.rotation.rotateDeviceKey(request.body.request, {
          deviceId: request.params.id,
          keyId: request.params.keyId,
        }),
      );
      return { response, version, transactionId, redelivered };
    },
  );

  v1.post<{ Params: { id: string; keyId: string }; Body: { ack: string } }>(
    '/devices/:id/keys/:keyId/rotate/ack',
    { schema: { params: deviceKeyParams, body: closed(['ack'], { ack: jws }), response: { 200: open } } },
    async (request) =>
      asDevice(request.params.id, () =>
        services.rotation.acknowledgeRotation(request.body.ack, {
          deviceId: request.params.id,
          keyId: request.params.keyId,
        }),
      ),
  );

  v1.post<{ Params: { id: string }; Body: { checkIn: string } }>(
    '/devices/:id/check-in',
    {
      schema: { params: closed(['id'], { id }), body: closed(['checkIn'], { checkIn: jws }), response: { 200: open } },
    },
    async (request) =>
      asDevice(request.params.id, () =>
        services.rotation.checkIn(request.body.checkIn, { deviceId: request.params.id }),
      ),
  );

  v1.put<{
    Params: { group: string };
    Body: { policyId: string; measurements: { name: string; algorithm: string; digest: string }[] };
  }>(
    '/reference-values/:group',
    {
      config: operators,
      schema: {
        ...secured,
        params: closed(['group'], { group: id }),
        body: closed(['policyId', 'measurements'], {
          policyId: id,
          measurements: {
            type: 'array',
            minItems: 1,
            maxItems: 256,
            items: measurement,
          },
        }),
        response: { 200: open },
      },
    },
    async (request) =>
      services.attestation.setReferenceValues(principalOf(request), request.params.group, request.body),
  );
}
