/**
 * JSON schemas (draft-07, as Fastify's Ajv reads them) of the key service's REST bodies, with the
 * matching TypeScript types, in the style of http/schemas.ts. Bodies are closed. Binary values
 * are base64url without padding (RFC 4648 §5).
 */

import { DeviceIdSchema, IdSchema } from '@keyfleet/protocol';

const keyId = IdSchema;
const deviceId = DeviceIdSchema;
/** Up to 1 MiB of data as base64url. */
const b64url = { type: 'string', pattern: '^[A-Za-z0-9_-]*$', maxLength: 1_398_102 } as const;
const version = { type: 'integer', minimum: 1, maximum: 9_999_999 } as const;
/** Process (decrypt, verify) with a compromised version: KMIP's recovery case, asked for explicitly. */
const allowCompromised = { type: 'boolean' } as const;

export const keyIdParams = { type: 'object', required: ['id'], properties: { id: keyId } } as const;
export interface KeyIdParams {
  id: string;
}

/** `POST /v1/keys/:id/encrypt` */
export const encryptBody = {
  type: 'object',
  additionalProperties: false,
  required: ['plaintext'],
  properties: { plaintext: b64url, aad: { ...b64url, maxLength: 87_382 } },
} as const;
export interface EncryptBody {
  plaintext: string;
  aad?: string;
}
export const encryptReply = {
  type: 'object',
  required: ['ciphertext', 'keyId', 'version'],
  properties: { ciphertext: { type: 'string' }, keyId: { type: 'string' }, version: { type: 'integer' } },
} as const;

/** `POST /v1/keys/decrypt` — the envelope names the key and version. */
export const decryptBody = {
  type: 'object',
  additionalProperties: false,
  required: ['ciphertext'],
  properties: {
    ciphertext: { type: 'string', minLength: 1, maxLength: 1_400_000 },
    aad: { ...b64url, maxLength: 87_382 },
    allowCompromised,
  },
} as const;
export interface DecryptBody {
  ciphertext: string;
  aad?: string;
  allowCompromised?: boolean;
}
export const decryptReply = {
  type: 'object',
  required: ['plaintext', 'keyId', 'version', 'state'],
  properties: {
    plaintext: { type: 'string' },
    keyId: { type: 'string' },
    version: { type: 'integer' },
    state: { type: 'string' },
  },
} as const;

/** `POST /v1/keys/:id/sign` */
export const signBody = {
  type: 'object',
  additionalProperties: false,
  required: ['data'],
  properties: { data: b64url },
} as const;
export interface SignBody {
  data: string;
}
export const signReply = {
  type: 'object',
  required: ['signature', 'keyId', 'version'],
  properties: { signature: { type: 'string' }, keyId: { type: 'string' }, version: { type: 'integer' } },
} as const;

/** `POST /v1/keys/:id/verify` — `version` defaults to the active one. */
export const verifyBody = {
  type: 'object',
  additionalProperties: false,
  required: ['data', 'signature'],
  properties: { data: b64url, signature: { ...b64url, maxLength: 200 }, version, allowCompromised },
} as const;
export interface VerifyBody {
  data: string;
  signature: string;
  version?: number;
  allowCompromised?: boolean;
}
export const verifyReply = {
  type: 'object',
  required: ['valid', 'keyId', 'version', 'state'],
  properties: {
    valid: { type: 'boolean' },
    keyId: { type: 'string' },
    version: { type: 'integer' },
    state: { type: 'string' },
  },
} as const;

/** `POST /v1/keys/:id/rotate` (operator) — no body. */
export const rotateReply = {
  type: 'object',
  required: ['outcome', 'keyId'],
  properties: {
    outcome: { type: 'string' },
    keyId: { type: 'string' },
    version: { type: 'integer' },
    previousVersion: { type: 'integer' },
    transactionId: { type: 'string' },
  },
} as const;

/**
 * `POST /v1/keys/:id/export` — the receiving device and the certificate it enrolled with (the
 * ledger keeps only its fingerprint, so a GET with `?device=` alone cannot name the device's key).
 */
export const exportBody = {
  type: 'object',
  additionalProperties: false,
  required: ['deviceId', 'certificate'],
  properties: { deviceId, certificate: { type: 'string', minLength: 1, maxLength: 8192 }, version },
} as const;
export interface ExportBody {
  deviceId: string;
  certificate: string;
  version?: number;
}
export const exportReply = {
  type: 'object',
  required: ['keyId', 'version', 'deviceId', 'fingerprint', 'wrapped'],
  properties: {
    keyId: { type: 'string' },
    version: { type: 'integer' },
    deviceId: { type: 'string' },
    fingerprint: { type: 'string' },
    wrapped: { type: 'string' },
  },
} as const;
