import { createHash, randomBytes as nodeRandomBytes, timingSafeEqual } from 'node:crypto';
import { DeviceIdMaxLength, IdRuleText, isDeviceId } from '@keyfleet/protocol';
import type { Hsm } from '../hsm';
import { AttestationError, AttestationErrorCode } from './errors';

/**
 * The secret that binds challenges: HMAC-SHA256 with a key any verifier sharing it can use, so
 * challenges need no server-side state. In production an HSM `hmac-sha256` key ({@link hsmChallengeKey}).
 */
export interface ChallengeKey {
  readonly label: string;
  /** HMAC-SHA256 of `data` (32 bytes). */
  mac(data: Uint8Array): Promise<Uint8Array>;
}

/** An HSM `hmac-sha256` key (CKM_SHA256_HMAC) as a {@link ChallengeKey}; the key never leaves the token. */
export function hsmChallengeKey(hsm: Hsm, label: string): ChallengeKey {
  return { label, mac: (data) => hsm.hmacSha256({ label }, data) };
}

export interface Challenge {
  readonly deviceId: string;
  /** The value the device puts in `eat_nonce`: 71 base64url characters (53 bytes). */
  readonly nonce: string;
  readonly expiresAt: Date;
}

export interface CheckedNonce {
  /** SHA-256 of the nonce bytes, lower-case hex: the ledger's NonceDigest. */
  readonly nonceDigest: string;
  readonly expiresAt: Date;
}

export interface ChallengeIssuer {
  /** A fresh single-use nonce for `deviceId`, valid for the issuer's time to live. */
  issue(deviceId: string): Promise<Challenge>;
  /**
   * Checks that `nonce` was made by this key, for `deviceId`, and has not expired. Single use is
   * not checked here: the ledger refuses a NonceDigest it has seen (RecordAttestation, ConsumeNonce).
   * @throws AttestationError NONCE_INVALID, NONCE_WRONG_DEVICE, NONCE_EXPIRED
   */
  check(nonce: string, deviceId: string): Promise<CheckedNonce>;
}

export interface ChallengeIssuerOptions {
  readonly key: ChallengeKey;
  /** Time to live of a challenge; 1 to 3600 seconds, default 120. */
  readonly ttlSeconds?: number;
  readonly now?: () => Date;
  readonly randomBytes?: (size: number) => Uint8Array;
}

/*
 * Nonce layout (53 bytes; RFC 9711 §4.1 allows 8 to 64):
 *   0      version 0x01
 *   1..4   expiry, seconds since the epoch, unsigned big-endian
 *   5..20  16 random bytes
 *   21..36 device tag: first 16 bytes of SHA-256("keyfleet-device\0" ‖ device id)
 *   37..52 first 16 bytes of HMAC-SHA256(key, "keyfleet-attestation-challenge-v1\0" ‖ bytes 0..36)
 */
const Version = 0x01;
const BodyLength = 37;
const MacLength = 16;
const NonceLength = BodyLength + MacLength;
const noncePattern = /^[A-Za-z0-9_-]{71}$/;
const macDomain = Buffer.from('keyfleet-attestation-challenge-v1\0', 'utf8');

function deviceTag(deviceId: string): Buffer {
  return createHash('sha256').update(`keyfleet-device\0${deviceId}`, 'utf8').digest().subarray(0, 16);
}

/** SHA-256 of the nonce's bytes, hex: what the ledger records and refuses to see twice. */
export function nonceDigestOf(nonce: string): string {
  return createHash('sha256').update(Buffer.from(nonce, 'base64url')).digest('hex');
}

/** Issues and checks stateless, device-bound, short-lived challenges (docs/protocol-attestation.md). */
export function newChallengeIssuer(options: ChallengeIssuerOptions): ChallengeIssuer {
  const ttlSeconds = options.ttlSeconds ?? 120;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > 3600) {
    throw new RangeError('ttlSeconds must be an integer from 1 to 3600');
  }
  const now = options.now ?? (() => new Date());
  const randomBytes = options.randomBytes ?? nodeRandomBytes;
  const mac = async (body: Uint8Array): Promise<Buffer> =>
    Buffer.from(await options.key.mac(Buffer.concat([macDomain, body]))).subarray(0, MacLength);

  return {
    async issue(deviceId) {
      if (!isDeviceId(deviceId)) {
        throw new AttestationError(
          AttestationErrorCode.DeviceIdInvalid,
          `device id must be ${IdRuleText}, at most ${DeviceIdMaxLength} characters`,
        );
      }
      const expires = Math.ceil(now().getTime() / 1000) + ttlSeconds;
      const body = Buffer.alloc(BodyLength);
      body[0] = Version;
      body.writeUInt32BE(expires, 1);
      Buffer.from(randomBytes(16)).copy(body, 5, 0, 16);
      deviceTag(deviceId).copy(body, 21);
      const nonce = Buffer.concat([body, await mac(body)]).toString('base64url');
      return { deviceId, nonce, expiresAt: new Date(expires * 1000) };
    },

    async check(nonce, deviceId) {
      const bytes = noncePattern.test(nonce) ? Buffer.from(nonce, 'base64url') : Buffer.alloc(0);
      // Re-encoding catches non-canonical base64url (stray bits in the last character).
      if (bytes.length !== NonceLength || bytes.toString('base64url') !== nonce || bytes[0] !== Version) {
        throw new AttestationError(AttestationErrorCode.NonceInvalid, 'eat_nonce is not a keyfleet challenge');
      }
      const body = bytes.subarray(0, BodyLength);
      if (!timingSafeEqual(await mac(body), bytes.subarray(BodyLength))) {
        throw new AttestationError(AttestationErrorCode.NonceInvalid, 'eat_nonce was not issued by this verifier');
      }
      if (!deviceTag(deviceId).equals(body.subarray(21, 37))) {
        throw new AttestationError(AttestationErrorCode.NonceWrongDevice, `eat_nonce was not issued to ${deviceId}`);
      }
      const expiresAt = new Date(body.readUInt32BE(1) * 1000);
      if (now().getTime() >= expiresAt.getTime()) {
        throw new AttestationError(
          AttestationErrorCode.NonceExpired,
          `eat_nonce expired at ${expiresAt.toISOString()}`,
        );
      }
      return { nonceDigest: createHash('sha256').update(bytes).digest('hex'), expiresAt };
    },
  };
}
