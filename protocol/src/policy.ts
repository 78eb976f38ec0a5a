import { ErrorCode, LedgerError } from './errors.js';
import {
  Msp,
  Permission,
  PrincipalKind,
  Role,
  RoleMsps,
  ServicePrefix,
  type AccessPolicy,
  type KeyRecord,
  type Principal,
  type RequestPrincipal,
} from './types.js';

/** The authenticated caller: MSP id, role attribute and subject CN of its certificate. */
export interface Caller {
  MSPID: string;
  Role: Role;
  ID: string;
}

/** How a caller is written into records (`EnrolledBy`, `ConsumedBy`, …): `MSPID/role/ID`. */
export function callerName(caller: Caller): string {
  return `${caller.MSPID}/${caller.Role}/${caller.ID}`;
}

/**
 * Whether `caller` may write on behalf of `principal`: the operator gateway for operators, applications,
 * devices and its own (`gateway.`) services; the verifier for devices and its own (`verifier.`) services;
 * an application or a device only for itself. Auditors never write.
 */
export function assertPrincipalFor(caller: Caller, principal: RequestPrincipal): void {
  const ownService = (role: keyof typeof ServicePrefix): boolean =>
    principal.Kind === PrincipalKind.Service && principal.ID.startsWith(`${ServicePrefix[role]}.`);
  let allowed: boolean;
  switch (caller.Role) {
    case Role.Operator:
      allowed =
        principal.Kind === PrincipalKind.Operator ||
        principal.Kind === PrincipalKind.Application ||
        principal.Kind === PrincipalKind.Device ||
        ownService(Role.Operator);
      break;
    case Role.Verifier:
      allowed = principal.Kind === PrincipalKind.Device || ownService(Role.Verifier);
      break;
    case Role.Application:
      allowed = principal.Kind === PrincipalKind.Application && principal.ID === caller.ID;
      break;
    case Role.Device:
      allowed = principal.Kind === PrincipalKind.Device && principal.ID === caller.ID;
      break;
    case Role.Auditor:
      allowed = false;
      break;
  }
  if (!allowed) {
    throw new LedgerError(
      ErrorCode.PrincipalNotAllowed,
      `caller ${callerName(caller)} may not write on behalf of ${principal.Kind} ${principal.ID}`,
    );
  }
}

/** What each role could ever be granted on a key: only operators administer. */
export const RoleCeiling: Readonly<Record<Role, readonly Permission[]>> = {
  operator: [Permission.Read, Permission.Use, Permission.Rotate, Permission.Administer],
  verifier: [Permission.Read],
  auditor: [Permission.Read],
  application: [Permission.Read, Permission.Use, Permission.Rotate],
  device: [Permission.Read, Permission.Use, Permission.Rotate],
};

/** What each role holds on every key without being named: the two orgs' oversight roles read everything. */
export const RoleImplicit: Readonly<Record<Role, readonly Permission[]>> = {
  operator: [Permission.Read],
  verifier: [Permission.Read],
  auditor: [Permission.Read],
  application: [],
  device: [],
};

export function principalMatches(principal: Principal, caller: Caller): boolean {
  return (
    principal.MSPID === caller.MSPID &&
    principal.Role === caller.Role &&
    (principal.ID === null || principal.ID === caller.ID)
  );
}

/** Pure decision: role ceiling first, then the role's implicit grants, then the key's policy. */
export function isPermitted(policy: AccessPolicy, caller: Caller, permission: Permission): boolean {
  if (!RoleCeiling[caller.Role].includes(permission)) return false;
  if (RoleImplicit[caller.Role].includes(permission)) return true;
  return policy[permission].some((principal) => principalMatches(principal, caller));
}

export function assertKeyPermission(key: KeyRecord, caller: Caller, permission: Permission): void {
  if (!isPermitted(key.AccessPolicy, caller, permission)) {
    throw new LedgerError(
      ErrorCode.AccessDenied,
      `${callerName(caller)} may not ${permission.toLowerCase()} key ${key.KeyID}`,
    );
  }
}

export function assertRole(caller: Caller, roles: readonly Role[], action: string): void {
  if (!roles.includes(caller.Role)) {
    throw new LedgerError(ErrorCode.AccessDenied, `role ${caller.Role} may not call ${action}`);
  }
}

/**
 * A policy must be satisfiable and must not lock the operators out: every principal pairs a role with
 * an MSP that may issue it, is only named for permissions its role can hold, and at least one
 * operator principal administers the key.
 */
export function assertPolicyWellFormed(policy: AccessPolicy): void {
  for (const permission of Object.values(Permission)) {
    for (const principal of policy[permission]) {
      if (!RoleMsps[principal.Role].includes(principal.MSPID)) {
        throw new LedgerError(
          ErrorCode.InvalidArgument,
          `AccessPolicy.${permission}: role ${principal.Role} cannot come from ${principal.MSPID}`,
        );
      }
      if (!RoleCeiling[principal.Role].includes(permission)) {
        throw new LedgerError(
          ErrorCode.InvalidArgument,
          `AccessPolicy.${permission}: role ${principal.Role} can never be granted ${permission}`,
        );
      }
    }
  }
  const administeredByOperator = policy.Administer.some(
    (principal) => principal.Role === Role.Operator && principal.MSPID === Msp.Operator,
  );
  if (!administeredByOperator) {
    throw new LedgerError(ErrorCode.InvalidArgument, 'AccessPolicy.Administer must name at least one operator');
  }
}
