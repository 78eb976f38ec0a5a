import { type ApiErrorCode, type ErrorCode, GatewayErrorCode } from '@keyfleet/protocol';
import type { FabricEnrolmentFailure } from './ca/fabric-enrolment';
import type { HsmErrorCode } from './hsm/hsm-error';
import type { BodyErrorDetail } from './http/json-body';
import type { KeyServiceErrorDetail } from './key-service/errors';
import type { RotationErrorDetail } from './rotation/service';

/**
 * The gateway's coded errors. Callers switch on `code`, never on the message; the HTTP layer
 * maps each code to a status once (http/errors.ts). {@link GatewayError} is the one error base of
 * the gateway: attestation refusals (attestation/errors.ts) and HSM errors (hsm/hsm-error.ts) are
 * GatewayErrors with codes of their own. The codes an HTTP answer carries are the API's
 * (protocol/src/api-errors.ts), shared with the clients.
 */
export { GatewayErrorCode };

/** The closed set of codes a gateway error carries: the API's, and the HSM layer's own. */
export type GatewayCode = ApiErrorCode | HsmErrorCode;

/**
 * The closed set of further codes in a gateway error's `detail`: the contract's own (with
 * LEDGER_REJECTED and NOT_FOUND), Fabric's validation code of a transaction that did not commit
 * (`COMMIT_<code>`), the HSM's codes, and the finer reasons of the key service, rotation, enrolment
 * and JSON bodies.
 */
export type GatewayDetail =
  | ErrorCode
  | `COMMIT_${string}`
  | KeyServiceErrorDetail
  | RotationErrorDetail
  | FabricEnrolmentFailure
  | BodyErrorDetail
  | HsmErrorCode
  | 'BOOKMARK_INVALID'
  | ShardRoutingDetail;

/**
 * Why the shard router (ledger/shard-router.ts) could not route a call: a record found on several
 * shards, a map naming a channel the network does not have, a batch whose devices are on several,
 * a shard map written to a network that has no governance channel.
 */
export type ShardRoutingDetail =
  'SHARD_AMBIGUOUS' | 'SHARD_UNKNOWN' | 'SHARDS_MIXED' | 'NOT_SHARDED' | 'SHARD_MOVE_RUNNING';

export class GatewayError extends Error {
  override readonly name: string = 'GatewayError';

  /**
   * @param code what went wrong, for machines
   * @param message what went wrong, for people; shown to callers for 4xx codes only
   * @param detail a further machine-readable code, e.g. the chaincode's `DEVICE_EXISTS`
   */
  constructor(
    readonly code: GatewayCode,
    message: string,
    readonly detail?: GatewayDetail,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export function isGatewayError(err: unknown): err is GatewayError {
  return err instanceof GatewayError;
}
