import { X509Certificate } from 'node:crypto';

import type { Context } from 'fabric-contract-api';

import { type Caller, ErrorCode, isId, LedgerError, Role, RoleMsps } from '@keyfleet/protocol';

/** Name of the certificate attribute (Fabric CA attribute extension 1.2.3.4.5.6.7.8.1) holding the role. */
export const RoleAttribute = 'role';

const roles: ReadonlySet<string> = new Set(Object.values(Role));

function subjectCommonName(idBytes: Uint8Array): string | null {
  try {
    const certificate = new X509Certificate(Buffer.from(idBytes));
    for (const line of certificate.subject.split('\n')) {
      if (line.startsWith('CN=')) return line.slice(3);
    }
    return null;
  } catch {
    return null;
  }
}

/**
 * The caller from its certificate: MSP id, `role` attribute, and subject CN as its identity within the
 * MSP (Fabric CA writes the enrolment id there). The role must be one this MSP may issue.
 */
export function callerOf(ctx: Context): Caller {
  const identity = ctx.clientIdentity;
  const mspId = identity.getMSPID();
  const role = identity.getAttributeValue(RoleAttribute);
  if (role === null || !roles.has(role)) {
    throw new LedgerError(ErrorCode.AccessDenied, `caller from ${mspId} has no keyfleet role attribute`);
  }
  const typedRole = role as Role;
  if (!RoleMsps[typedRole].includes(mspId)) {
    throw new LedgerError(ErrorCode.AccessDenied, `role ${role} is not accepted from ${mspId}`);
  }
  const cn = subjectCommonName(identity.getIDBytes());
  if (cn === null || !isId(cn)) {
    throw new LedgerError(ErrorCode.AccessDenied, 'caller certificate has no usable subject CN');
  }
  return { MSPID: mspId, Role: typedRole, ID: cn };
}
