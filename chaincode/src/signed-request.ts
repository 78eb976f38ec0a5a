/**
 * The write path of the side contracts (`hsm-cluster`, `shard-move`): role, principal, schema,
 * replay, then the JWS by the active metadata-signing anchor, as the keyfleet contract does it for
 * its own writes. Only after all of them passed does a transaction write anything.
 */
import type { Context } from 'fabric-contract-api';

import {
  AnchorKind,
  AnchorStatus,
  assertPrincipalFor,
  assertRole,
  canonicalBytes,
  ErrorCode,
  LedgerError,
  parseJson,
  requests,
  validate,
  type Caller,
  type Check,
  type RequestPrincipal,
  type Role,
  type TrustAnchorRecord,
} from '@keyfleet/protocol';
import { callerOf } from './identity.js';
import { jwsKeyId, verifyJws } from './signature.js';
import { KeyType, Store } from './store.js';

export interface SignedRequestOptions<T> {
  readonly roles: readonly Role[];
  readonly check: Check<T>;
  /** Which principals may ask for this write, beyond what the caller's role allows (PRINCIPAL_INVALID). */
  readonly principal: (principal: RequestPrincipal) => string | null;
  readonly requestBytes: number;
  readonly jwsBytes: number;
}

export interface SignedRequest<T> {
  readonly store: Store;
  readonly caller: Caller;
  readonly principal: RequestPrincipal;
  readonly request: T;
  /** The anchor whose JWS authorised the write. */
  readonly anchorId: string;
}

export async function authenticateSignedRequest<T extends { Action: string; RequestID: string }>(
  ctx: Context,
  requestJson: string,
  jws: string,
  options: SignedRequestOptions<T>,
): Promise<SignedRequest<T>> {
  const caller = callerOf(ctx);
  const { fcn } = ctx.stub.getFunctionAndParameters();
  assertRole(caller, options.roles, fcn);
  const raw = parseJson(requestJson, 'request', options.requestBytes);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new LedgerError(ErrorCode.InvalidArgument, 'request must be an object');
  }
  const { Principal, ...rest } = raw as Record<string, unknown>;
  let principal: RequestPrincipal;
  try {
    principal = validate(requests.requestPrincipal, Principal, 'request.Principal');
  } catch (err) {
    if (err instanceof LedgerError && err.code === ErrorCode.InvalidArgument) {
      throw new LedgerError(ErrorCode.PrincipalInvalid, err.detail);
    }
    throw err;
  }
  assertPrincipalFor(caller, principal);
  const refusal = options.principal(principal);
  if (refusal !== null) throw new LedgerError(ErrorCode.PrincipalInvalid, refusal);
  const request = validate(options.check, rest);
  const store = new Store(ctx.stub);
  if ((await store.get(store.key(KeyType.Request, request.RequestID))) !== null) {
    throw new LedgerError(ErrorCode.RequestReplayed, `request ${request.RequestID} was already executed`);
  }
  const anchorId = await verifyMetadataSignature(store, jws, raw, options.jwsBytes);
  return { store, caller, principal, request, anchorId };
}

async function verifyMetadataSignature(store: Store, jws: string, raw: unknown, jwsBytes: number): Promise<string> {
  if (typeof jws !== 'string' || jws.length > jwsBytes) {
    throw new LedgerError(ErrorCode.InvalidArgument, `jws must be a string of at most ${String(jwsBytes)} bytes`);
  }
  const kid = jwsKeyId(jws);
  const anchor = await store.get<TrustAnchorRecord>(store.key(KeyType.Anchor, kid));
  if (anchor === null) throw new LedgerError(ErrorCode.AnchorNotFound, `trust anchor ${kid} does not exist`);
  if (anchor.Status !== AnchorStatus.Active) {
    throw new LedgerError(ErrorCode.AnchorInactive, `trust anchor ${kid} is ${anchor.Status}`);
  }
  if (anchor.Kind !== AnchorKind.MetadataSigning) {
    throw new LedgerError(ErrorCode.AnchorKindMismatch, `trust anchor ${kid} is ${anchor.Kind}, not metadata-signing`);
  }
  await verifyJws(jws, anchor.PublicKey, canonicalBytes(raw));
  return kid;
}
