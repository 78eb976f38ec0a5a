import { randomBytes, type KeyObject } from 'node:crypto';
import { duplicateMemberInCompact } from '@keyfleet/protocol';
import { errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { EcSigningKey } from '../crypto/ec-key';
import { signCompactJws } from '../crypto/jws';
import { GatewayError, GatewayErrorCode } from '../errors';

/** What an operator fixes about a device when issuing its enrolment token. */
export interface EnrolmentGrant {
  readonly deviceId: string;
  readonly group: string;
  readonly location: string;
  readonly function: string;
}

export interface VerifiedGrant extends EnrolmentGrant {
  /** Single use: its digest is consumed on the ledger together with the enrolment. */
  readonly tokenId: string;
  readonly issuedBy: string;
}

const TYPE = 'keyfleet-enrolment+jwt';
const AUDIENCE = 'keyfleet-enrolment';

/**
 * Enrolment tokens are short-lived JWTs signed by an HSM key, so any gateway sharing the token
 * can check them without shared storage; single use is enforced by the ledger, which refuses a
 * second enrolment consuming the same token id.
 */
export async function issueEnrolmentToken(
  key: EcSigningKey,
  grant: EnrolmentGrant,
  issuedBy: string,
  ttlSeconds: number,
  now: Date,
): Promise<{ token: string; expiresAt: string }> {
  const iat = Math.floor(now.getTime() / 1000);
  const exp = iat + ttlSeconds;
  const claims = {
    aud: AUDIENCE,
    exp,
    fn: grant.function,
    grp: grant.group,
    iat,
    iss: issuedBy,
    jti: randomBytes(16).toString('base64url'),
    loc: grant.location,
    sub: grant.deviceId,
  };
  const token = await signCompactJws(key, { kid: key.label, typ: TYPE }, Buffer.from(JSON.stringify(claims)));
  return { token, expiresAt: new Date(exp * 1000).toISOString() };
}

/** Checks signature, type, audience and expiry; throws ENROLMENT_TOKEN_INVALID otherwise. */
export async function verifyEnrolmentToken(token: string, publicKey: KeyObject, now: Date): Promise<VerifiedGrant> {
  if (duplicateMemberInCompact(token) !== null) {
    throw new GatewayError(GatewayErrorCode.EnrolmentTokenInvalid, 'enrolment token rejected (a member repeats)');
  }
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, publicKey, {
      algorithms: ['ES256'],
      audience: AUDIENCE,
      typ: TYPE,
      currentDate: now,
      requiredClaims: ['sub', 'jti', 'exp', 'iat', 'iss'],
    }));
  } catch (err) {
    const reason = err instanceof joseErrors.JOSEError ? err.code : 'malformed';
    throw new GatewayError(GatewayErrorCode.EnrolmentTokenInvalid, `enrolment token rejected (${reason})`);
  }
  const { sub, jti, iss, grp, loc, fn } = payload;
  if (
    typeof sub !== 'string' ||
    typeof jti !== 'string' ||
    typeof iss !== 'string' ||
    typeof grp !== 'string' ||
    typeof loc !== 'string' ||
    typeof fn !== 'string'
  ) {
    throw new GatewayError(GatewayErrorCode.EnrolmentTokenInvalid, 'enrolment token lacks a claim');
  }
  return { deviceId: sub, group: grp, location: loc, function: fn, tokenId: jti, issuedBy: iss };
}
