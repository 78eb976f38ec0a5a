import type { FastifyInstance } from 'fastify';
import { ApiRole } from '../auth/bearer';
import type { AttestationApi } from '../domain/services';
import { closed, compactJws, deviceId, id, open } from './schemas';

/**
 * The attestation routes, the same in the operator gateway (which forwards the device-facing ones
 * to the verifier) and in the verifier service (docs/protocol-attestation.md §8): challenges and
 * evidence for devices, which carry no bearer token (evidence is signed by the device's certified
 * key), and the reads operators and auditors check results with.
 */
export function registerAttestationRoutes(v1: FastifyInstance, attestation: AttestationApi): void {
  const readers = { roles: [ApiRole.Operator, ApiRole.Auditor] };
  const secured = { security: [{ bearer: [] }] };

  v1.post<{ Body: { deviceId: string } }>(
    '/attestation/challenges',
    { schema: { body: closed(['deviceId'], { deviceId }), response: { 201: open } } },
    async (request, reply) => reply.status(201).send(await attestation.challenge(request.body.deviceId)),
  );

  v1.post<{ Body: { evidence: string } }>(
    '/attestation/evidence',
    { schema: { body: closed(['evidence'], { evidence: compactJws }), response: { 200: open } } },
    async (request) => {
      const { ear, status, deviceId, result, recorded, actions, findings } = await attestation.appraise(
        request.body.evidence,
      );
      // `result` is the ledger record (a batch's Merkle leaf): with `recorded.proof` it lets anyone
      // check the device's verdict against the ledger later (keyfleet audit verify-proof).
      return { ear, status, deviceId, result, recorded, actions, findings };
    },
  );

  v1.get<{ Params: { group: string } }>(
    '/reference-values/:group',
    { config: readers, schema: { ...secured, params: closed(['group'], { group: id }), response: { 200: open } } },
    async (request) => attestation.getReferenceValues(request.params.group),
  );

  v1.get<{ Params: { id: string } }>(
    '/audit/attestation-batches/:id',
    { config: readers, schema: { ...secured, params: closed(['id'], { id }), response: { 200: open } } },
    async (request) => attestation.getBatch(request.params.id),
  );

  v1.get(
    '/audit/trust-anchors',
    { config: readers, schema: { ...secured, response: { 200: { type: 'array', items: open } } } },
    async () => attestation.trustAnchors(),
  );
}
