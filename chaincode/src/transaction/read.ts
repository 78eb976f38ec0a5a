/**
 * The shared steps of read transactions: the role gate and the checks of their plain string
 * arguments (ids, page sizes, bookmarks). Reads take no JWS and write nothing.
 */
import type { Context } from 'fabric-contract-api';

import { assertRole, type Caller, ErrorCode, id, int, LedgerError, Limits, Role, validate } from '@keyfleet/protocol';
import { callerOf } from '../identity.js';

/** Roles that read everything (the two organisations' staff and services). */
export const Overseers = [Role.Operator, Role.Verifier, Role.Auditor] as const;
export const AllRoles = Object.values(Role);

/** The caller of a read, once its role may send `action`. */
export function reader(ctx: Context, roles: readonly Role[], action: string): Caller {
  const caller = callerOf(ctx);
  assertRole(caller, roles, action);
  return caller;
}

/** A device reads only its own records; everyone the role gate let in reads any. */
export function assertOwnDevice(caller: Caller, deviceId: string, what: string): void {
  if (caller.Role === Role.Device && caller.ID !== deviceId) {
    throw new LedgerError(ErrorCode.AccessDenied, `device ${caller.ID} may only read ${what}`);
  }
}

export function notFound(code: ErrorCode, what: string): never {
  throw new LedgerError(code, `${what} does not exist`);
}

export const argId = (value: string, name: string): string => validate(id, value, name);

export function pageSize(value: string): number {
  if (!/^\d{1,4}$/.test(value)) throw new LedgerError(ErrorCode.InvalidArgument, 'pageSize must be an integer');
  return validate(int(1, Limits.PageSize), Number(value), 'pageSize');
}

export function bookmark(value: string): string {
  if (typeof value !== 'string' || value.length > 1024) {
    throw new LedgerError(ErrorCode.InvalidArgument, 'bookmark must be a string of at most 1024 characters');
  }
  return value;
}
