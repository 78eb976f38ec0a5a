/**
 * JSON schemas (draft-07, as Fastify's Ajv reads them) of everything the REST API takes and
 * returns, with the matching TypeScript types. Bodies are closed: unknown fields are refused.
 */

import { DeviceIdSchema, IdSchema, PrintableTextPattern } from '@keyfleet/protocol';

/** keyfleet's one id grammar (@keyfleet/protocol ids.ts): key, group and batch ids. */
export const id = IdSchema;
/** Device ids: the same grammar, at most 64 characters (they are certificate CNs). */
export const deviceId = DeviceIdSchema;
/** A compact JWS (RFC 7515 §3.1) a device signed: evidence, rotation requests, acknowledgements. */
export const compactJws = {
  type: 'string',
  minLength: 1,
  maxLength: 16_384,
  pattern: '^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$',
} as const;
/** An object with exactly these properties (unknown fields refused). */
export const closed = (required: string[], properties: Record<string, unknown>) =>
  ({ type: 'object', additionalProperties: false, required, properties }) as const;
/** An answer whose fields the route's code decides. */
export const open = { type: 'object', additionalProperties: true } as const;
/** Free text: the ledger's own rule (no controls, bidi overrides, lone surrogates), written once. */
const text = { type: 'string', minLength: 1, maxLength: 256, pattern: PrintableTextPattern.source } as const;
export const health = {
  type: 'object',
  required: ['status', 'hsm', 'ledger'],
  properties: { status: { type: 'string' }, hsm: { type: 'boolean' }, ledger: { type: 'boolean' } },
} as const;

export const idParams = { type: 'object', required: ['id'], properties: { id } } as const;
export interface IdParams {
  id: string;
}

/** A key and one of its versions (decimal, 1 to 9999999) in the path. */
export const keyVersionParams = {
  type: 'object',
  required: ['id', 'version'],
  properties: {
    id,
    version: { type: 'string', pattern: '^[1-9][0-9]{0,6}$' },
  },
} as const;
export interface KeyVersionParams {
  id: string;
  version: string;
}

export const compromised = {
  type: 'object',
  required: ['outcome', 'keyId', 'version', 'transactionId', 'compromisedAt', 'nextRotationDue'],
  properties: {
    outcome: { enum: ['compromised', 'already-compromised'] },
    keyId: { type: 'string' },
    version: { type: 'integer' },
    transactionId: { type: ['string', 'null'] },
    compromisedAt: { type: 'string' },
    nextRotationDue: { type: ['string', 'null'] },
  },
} as const;

export const enrolmentTokenBody = {
  type: 'object',
  additionalProperties: false,
  required: ['deviceId', 'group', 'location', 'function'],
  properties: {
    deviceId,
    group: id,
    location: text,
    function: text,
    ttlSeconds: { type: 'integer', minimum: 60, maximum: 7 * 24 * 3600 },
  },
} as const;
export interface EnrolmentTokenBody {
  deviceId: string;
  group: string;
  location: string;
  function: string;
  ttlSeconds?: number;
}

export const enrolmentToken = {
  type: 'object',
  required: ['token', 'expiresAt'],
  properties: { token: { type: 'string' }, expiresAt: { type: 'string' } },
} as const;

export const enrolmentBody = {
  type: 'object',
  additionalProperties: false,
  required: ['enrolmentToken', 'csr'],
  properties: {
    enrolmentToken: { type: 'string', minLength: 1, maxLength: 4096 },
    csr: { type: 'string', minLength: 1, maxLength: 8192 },
  },
} as const;
export interface EnrolmentBody {
  enrolmentToken: string;
  csr: string;
}

export const enrolment = {
  type: 'object',
  required: [
    'deviceId',
    'certificate',
    'caCertificate',
    'certificateFingerprint',
    'transactionId',
    'keyExchangePublicKey',
    'metadataSigningPublicKey',
  ],
  properties: {
    keyExchangePublicKey: { type: 'string' },
    metadataSigningPublicKey: { type: 'string' },
    deviceId: { type: 'string' },
    certificate: { type: 'string' },
    caCertificate: { type: 'string' },
    certificateFingerprint: { type: 'string' },
    transactionId: { type: 'string' },
  },
} as const;

export const listQuery = {
  type: 'object',
  additionalProperties: false,
  required: ['group'],
  properties: {
    group: id,
    pageSize: { type: 'string', pattern: '^[1-9][0-9]{0,2}$', default: '50' },
    bookmark: { type: 'string', maxLength: 1024, pattern: '^[A-Za-z0-9_-]*$', default: '' },
  },
} as const;
export interface ListQuery {
  group: string;
  pageSize: string;
  bookmark: string;
}

export const reasonBody = {
  type: 'object',
  additionalProperties: false,
  required: ['reason'],
  properties: { reason: text },
} as const;
export interface ReasonBody {
  reason: string;
}

const principal = {
  type: 'object',
  additionalProperties: false,
  required: ['mspId', 'role'],
  properties: {
    mspId: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' },
    role: { enum: ['operator', 'verifier', 'auditor', 'application', 'device'] },
    id: id,
  },
} as const;
const principals = { type: 'array', maxItems: 32, uniqueItems: true, items: principal } as const;

export const keyBody = {
  type: 'object',
  additionalProperties: false,
  required: ['keyId', 'algorithm', 'purpose', 'owner', 'rotationIntervalSeconds', 'accessPolicy'],
  properties: {
    keyId: id,
    algorithm: { enum: ['AES-256', 'EC-P256'] },
    purpose: { enum: ['encrypt', 'sign', 'wrap'] },
    owner: {
      type: 'object',
      additionalProperties: false,
      required: ['type', 'id'],
      properties: { type: { enum: ['application', 'device'] }, id },
    },
    rotationIntervalSeconds: { type: 'integer', minimum: 60, maximum: 3650 * 86400 },
    retentionSeconds: { type: 'integer', minimum: 0, maximum: 3650 * 86400, default: 30 * 86400 },
    accessPolicy: {
      type: 'object',
      additionalProperties: false,
      required: ['read', 'use', 'rotate', 'administer'],
      properties: { read: principals, use: principals, rotate: principals, administer: principals },
    },
  },
} as const;
export interface AccessPolicyBody {
  read: PrincipalBody[];
  use: PrincipalBody[];
  rotate: PrincipalBody[];
  administer: PrincipalBody[];
}
export interface PrincipalBody {
  mspId: string;
  role: 'operator' | 'verifier' | 'auditor' | 'application' | 'device';
  id?: string;
}
export interface KeyBody {
  keyId: string;
  algorithm: 'AES-256' | 'EC-P256';
  purpose: 'encrypt' | 'sign' | 'wrap';
  owner: { type: 'application' | 'device'; id: string };
  rotationIntervalSeconds: number;
  retentionSeconds: number;
  accessPolicy: AccessPolicyBody;
}

const anyRecord = { type: 'object', additionalProperties: true } as const;

export const signedRecord = {
  type: 'object',
  required: ['record', 'signature'],
  properties: { record: anyRecord, signature: { type: ['string', 'null'] } },
} as const;

export const written = {
  type: 'object',
  required: ['transactionId', 'record'],
  properties: { transactionId: { type: 'string' }, record: anyRecord },
} as const;

export const page = {
  type: 'object',
  required: ['items', 'bookmark'],
  properties: { items: { type: 'array', items: anyRecord }, bookmark: { type: 'string' } },
} as const;

export const history = {
  type: 'object',
  required: ['entries'],
  properties: {
    entries: {
      type: 'array',
      items: {
        type: 'object',
        required: ['transactionId', 'timestamp', 'isDelete'],
        properties: {
          transactionId: { type: 'string' },
          timestamp: { type: 'string' },
          isDelete: { type: 'boolean' },
          value: {},
        },
      },
    },
  },
} as const;

/** `PUT /v1/shards/map`: the shard map's shape; the contract checks that its channels agree. */
const channelName = { type: 'string', minLength: 1, maxLength: 49, pattern: '^[a-z][a-z0-9.-]*$' } as const;
const nullableId = { anyOf: [id, { type: 'null' }] } as const;
export const shardMapBody = {
  type: 'object',
  additionalProperties: false,
  required: ['expectedRevision', 'shards', 'rules', 'default'],
  properties: {
    expectedRevision: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
    shards: { type: 'array', minItems: 1, maxItems: 64, uniqueItems: true, items: channelName },
    rules: {
      type: 'array',
      maxItems: 256,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['match', 'shard'],
        properties: {
          match: {
            type: 'object',
            additionalProperties: false,
            required: ['group', 'location', 'function'],
            properties: { group: nullableId, location: nullableId, function: nullableId },
          },
          shard: channelName,
        },
      },
    },
    default: channelName,
  },
} as const;
