import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { isAttestationError } from '../attestation';
import { type ApiErrorCode, ErrorCode, isApiErrorCode } from '@keyfleet/protocol';
import { GatewayErrorCode, isGatewayError, type GatewayError } from '../errors';

/** The body of every error answer. */
export interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string; readonly detail?: string };
}

/** The HTTP status of every code an answer carries (the API's codes, protocol/src/api-errors.ts): the one table. */
const statusOf: Readonly<Record<ApiErrorCode, number>> = {
  BAD_REQUEST: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  ENROLMENT_TOKEN_INVALID: 401,
  ENROLMENT_TOKEN_USED: 409,
  CSR_INVALID: 400,
  LEDGER_REJECTED: 409,
  LEDGER_UNAVAILABLE: 503,
  HSM_FAILURE: 500,
  CONFIG_INVALID: 500,
  FABRIC_CA_UNAVAILABLE: 503,
  FABRIC_ENROLMENT_REFUSED: 500,
  VERIFIER_UNAVAILABLE: 503,
  UNSUPPORTED_MEDIA_TYPE: 415,
  BODY_TOO_LARGE: 413,
  HEADERS_TOO_LARGE: 431,
  REQUEST_TIMEOUT: 408,
  INTERNAL: 500,
  // Attestation refusals (attestation/errors.ts).
  DEVICE_ID_INVALID: 400,
  EVIDENCE_MALFORMED: 400,
  EVIDENCE_SIGNATURE_INVALID: 401,
  CERTIFICATE_UNTRUSTED: 401,
  CLAIMS_INVALID: 400,
  EVIDENCE_NOT_FRESH: 400,
  NONCE_INVALID: 401,
  NONCE_EXPIRED: 401,
  NONCE_WRONG_DEVICE: 401,
  NONCE_REPLAYED: 409,
  DEVICE_UNKNOWN: 403,
  KEY_NOT_ENROLLED: 403,
  DEVICE_REVOKED: 403,
  REFERENCE_VALUES_MISSING: 409,
  BATCH_FAILED: 503,
};

/** The chaincode's codes that are not conflicts (409) but the caller's input or rights. */
const ledgerDetailStatus: Readonly<Partial<Record<ErrorCode, number>>> = {
  [ErrorCode.InvalidArgument]: 400,
  [ErrorCode.MalformedJson]: 400,
  [ErrorCode.AccessDenied]: 403,
  // A shard move froze the device; the gateway already retried (shards/follow-moves.ts): retry later.
  [ErrorCode.DeviceMoving]: 503,
};

/** Fastify's own error codes that are the caller's fault, and the code we answer with. */
const fastifyClientErrors: Readonly<Record<string, { status: number; code: ApiErrorCode; message: string }>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: GatewayErrorCode.BodyTooLarge, message: 'the body is too large' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    status: 415,
    code: GatewayErrorCode.UnsupportedMediaType,
    message: 'the body must be application/json',
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    status: 400,
    code: GatewayErrorCode.BadRequest,
    message: 'the body length does not match its Content-Length',
  },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: GatewayErrorCode.BadRequest, message: 'the body is empty' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: GatewayErrorCode.BadRequest, message: 'the body is not JSON' },
  // The path itself (percent-encoding that does not decode): never echoed back.
  FST_ERR_BAD_URL: { status: 400, code: GatewayErrorCode.BadRequest, message: 'the request path is not valid' },
  FST_ERR_ASYNC_CONSTRAINT: { status: 400, code: GatewayErrorCode.BadRequest, message: 'the request cannot be routed' },
};

/**
 * The one place where errors become HTTP answers. Caller mistakes keep their message; server
 * faults answer a fixed text so nothing internal (HSM, ledger, stack) reaches a caller.
 */
export function handleError(err: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  // Attestation refusals name what was wrong with the evidence, whatever their status.
  if (isAttestationError(err)) {
    return send(reply, statusOf[err.code], err.code, err.message);
  }
  if (isGatewayError(err)) {
    const code = answerCode(err);
    const status =
      (code === GatewayErrorCode.LedgerRejected ? ledgerDetailStatus[err.detail as ErrorCode] : undefined) ??
      statusOf[code];
    if (err.detail === ErrorCode.DeviceMoving) {
      // Not a fault: the caller retries (shards/follow-moves.ts already did, for a while).
      void reply.header('retry-after', '2');
      return send(reply, status, code, 'the device is moving between shards; retry shortly', err.detail);
    }
    if (status >= 500) {
      request.log.error({ err, code: err.code }, 'request failed');
      return send(reply, status, code, 'the gateway could not complete the request');
    }
    return send(reply, status, code, err.message, err.detail);
  }
  if (err.validation) {
    return send(reply, 400, GatewayErrorCode.BadRequest, `${err.validationContext ?? 'request'}${message(err)}`);
  }
  const known = fastifyClientErrors[err.code];
  if (known) return send(reply, known.status, known.code, known.message);
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
    // Another framework refusal: its own text may quote the request, so a fixed one is sent.
    request.log.info({ err }, 'request refused by the framework');
    return send(reply, err.statusCode, GatewayErrorCode.BadRequest, 'the request is not valid');
  }
  request.log.error({ err }, 'unexpected error');
  return send(reply, 500, GatewayErrorCode.Internal, 'the gateway could not complete the request');
}

/**
 * The code a gateway error is answered with: its own if it is one of the API's; the only others are
 * the HSM layer's (hsm/hsm-error.ts), answered as HSM_FAILURE: never the caller's fault, and the
 * token's inner workings stay out of answers.
 */
function answerCode(err: GatewayError): ApiErrorCode {
  const { code } = err;
  return isApiErrorCode(code) ? code : GatewayErrorCode.HsmFailure;
}

function message(err: FastifyError): string {
  const first = err.validation?.[0];
  if (!first) return ' is invalid';
  const where = first.instancePath === '' ? '' : first.instancePath;
  const extra =
    first.keyword === 'additionalProperties'
      ? ` (unknown field "${String((first.params as { additionalProperty?: unknown }).additionalProperty)}")`
      : '';
  // A pattern's source says nothing useful to a caller (and can be long): name what failed instead.
  const text = first.keyword === 'pattern' ? 'has a character or a form this field does not take' : first.message;
  return `${where} ${text ?? 'is invalid'}${extra}`;
}

function send(reply: FastifyReply, status: number, code: ApiErrorCode, text: string, detail?: string): FastifyReply {
  const body: ErrorBody = { error: detail === undefined ? { code, message: text } : { code, message: text, detail } };
  return reply.status(status).send(body);
}
