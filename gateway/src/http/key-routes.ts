import type { FastifyInstance } from 'fastify';
import { principalOf } from './principal';
import { ApiRole } from '../auth/bearer';
import type { ApplicationKeyRotation, KeyOperations } from '../key-service';
import * as schema from '../key-service/schemas';

export interface KeyRouteServices {
  readonly operations: KeyOperations;
  readonly rotation: ApplicationKeyRotation;
}

const bytes = (b64url: string | undefined) => (b64url === undefined ? undefined : Buffer.from(b64url, 'base64url'));
const text = (data: Uint8Array) => Buffer.from(data).toString('base64url');

/**
 * Cryptographic operations by Key ID, inside the HSM (docs/key-service.md). Binary values travel
 * as base64url; every call reads the key's state and access policy from the ledger.
 */
export function registerKeyRoutes(v1: FastifyInstance, services: KeyRouteServices): void {
  const users = { roles: [ApiRole.Operator, ApiRole.Application] };
  const secured = { security: [{ bearer: [] }] };
  const { operations } = services;

  v1.post<{ Params: { id: string }; Body: { plaintext: string; aad?: string } }>(
    '/keys/:id/encrypt',
    {
      config: users,
      schema: {
        ...secured,
        params: schema.keyIdParams,
        body: schema.encryptBody,
        response: { 200: schema.encryptReply },
      },
    },
    async (request) => {
      const { plaintext, aad } = request.body;
      return operations.encrypt(
        principalOf(request),
        request.params.id,
        Buffer.from(plaintext, 'base64url'),
        bytes(aad),
      );
    },
  );

  v1.post<{ Body: schema.DecryptBody }>(
    '/keys/decrypt',
    { config: users, schema: { ...secured, body: schema.decryptBody, response: { 200: schema.decryptReply } } },
    async (request) => {
      const { ciphertext, aad, allowCompromised } = request.body;
      const result = await operations.decrypt(principalOf(request), ciphertext, bytes(aad), {
        allowCompromised: allowCompromised === true,
      });
      return { ...result, plaintext: text(result.plaintext) };
    },
  );

  v1.post<{ Params: { id: string }; Body: { data: string } }>(
    '/keys/:id/sign',
    {
      config: users,
      schema: { ...secured, params: schema.keyIdParams, body: schema.signBody, response: { 200: schema.signReply } },
    },
    async (request) => {
      const result = await operations.sign(
        principalOf(request),
        request.params.id,
        Buffer.from(request.body.data, 'base64url'),
      );
      return { ...result, signature: text(result.signature) };
    },
  );

  v1.post<{ Params: { id: string }; Body: schema.VerifyBody }>(
    '/keys/:id/verify',
    {
      config: users,
      schema: {
        ...secured,
        params: schema.keyIdParams,
        body: schema.verifyBody,
        response: { 200: schema.verifyReply },
      },
    },
    async (request) => {
      const { data, signature, version, allowCompromised } = request.body;
      return operations.verify(
        principalOf(request),
        request.params.id,
        Buffer.from(data, 'base64url'),
        Buffer.from(signature, 'base64url'),
        version,
        { allowCompromised: allowCompromised === true },
      );
    },
  );

  v1.post<{ Params: { id: string }; Body: { deviceId: string; certificate: string; version?: number } }>(
    '/keys/:id/export',
    {
      config: users,
      schema: {
        ...secured,
        params: schema.keyIdParams,
        body: schema.exportBody,
        response: { 200: schema.exportReply },
      },
    },
    async (request) => {
      const { deviceId, certificate, version } = request.body;
      return operations.exportPublicKey(
        principalOf(request),
        request.params.id,
        { deviceId, certificatePem: certificate },
        version,
      );
    },
  );

  v1.post<{ Params: { id: string } }>(
    '/keys/:id/rotate',
    {
      config: { roles: [ApiRole.Operator] },
      schema: { ...secured, params: schema.keyIdParams, response: { 200: schema.rotateReply } },
    },
    // The operator role only admits the route; the key's Rotate policy decides for this operator.
    async (request) => services.rotation.rotateApplicationKey(request.params.id, { by: principalOf(request) }),
  );
}
