import { sha256Hex } from '@keyfleet/protocol';
import type { Principal } from '../auth/bearer';
import type { DeviceCa } from '../ca/device-ca';
import type { EcSigningKey } from '../crypto/ec-key';
import { GatewayError, GatewayErrorCode } from '../errors';
import type { LedgerClient } from '../ledger/ledger-client';
import { asPrincipal } from '../ledger/principal-context';
import { issueEnrolmentToken, verifyEnrolmentToken } from './enrolment-token';
import {
  type DeviceRecord,
  type HistoryEntry as LedgerHistoryEntry,
  type Page as LedgerPage,
  PrincipalKind,
} from '@keyfleet/protocol';
import { fromBookmark, notFoundAs, signed, toHistory, toPage } from './records';
import { DeviceAction, type DeviceService } from './services';

export interface DeviceServiceOptions {
  readonly ledger: LedgerClient;
  readonly ca: DeviceCa;
  /** The HSM key that signs enrolment tokens. */
  readonly tokenKey: EcSigningKey;
  readonly defaultTokenTtlSeconds: number;
  /** Public keys handed to every enrolled device: key exchange and the pinned metadata anchor. */
  readonly keyExchangePublicKeyPem: string;
  readonly metadataSigningPublicKeyPem: string;
  readonly now?: () => Date;
}

const statusTransaction: Readonly<Record<DeviceAction, string>> = {
  suspend: 'SuspendDevice',
  reinstate: 'ReinstateDevice',
  revoke: 'RevokeDevice',
};

export function newDeviceService(options: DeviceServiceOptions): DeviceService {
  const { ledger, ca, tokenKey } = options;
  const now = options.now ?? (() => new Date());

  return {
    issueEnrolmentToken(by: Principal, request) {
      const { ttlSeconds, ...grant } = request;
      return issueEnrolmentToken(tokenKey, grant, by.subject, ttlSeconds ?? options.defaultTokenTtlSeconds, now());
    },

    async enrol(request) {
      const grant = await verifyEnrolmentToken(request.enrolmentToken, tokenKey.publicKey, now());
      const certificate = await ca.issue(request.csr, grant.deviceId);
      // The ledger write consumes the token's id in the same transaction, so a token enrols
      // at most one device across every gateway, and a failed write leaves the token usable.
      // The certificate is returned only after the commit.
      let transactionId: string;
      try {
        // Who asked is the operator who issued the token (the device only presents it).
        const issuer = { Kind: PrincipalKind.Operator, ID: grant.issuedBy };
        ({ transactionId } = await asPrincipal(issuer, () =>
          ledger.write('EnrolDevice', {
            DeviceID: grant.deviceId,
            Group: grant.group,
            Location: grant.location,
            Function: grant.function,
            Shard: grant.shard,
            CertFingerprint: certificate.fingerprint,
            EnrolmentNonceDigest: sha256Hex(grant.tokenId),
          }),
        ));
      } catch (err) {
        if (err instanceof GatewayError && err.detail === 'NONCE_REPLAYED') {
          throw new GatewayError(GatewayErrorCode.EnrolmentTokenUsed, 'this enrolment token was already used');
        }
        throw err;
      }
      return {
        deviceId: grant.deviceId,
        certificate: certificate.pem,
        caCertificate: ca.certificatePem,
        certificateFingerprint: certificate.fingerprint,
        transactionId,
        keyExchangePublicKey: options.keyExchangePublicKeyPem,
        metadataSigningPublicKey: options.metadataSigningPublicKeyPem,
      };
    },

    async get(_by, deviceId) {
      return signed(await notFoundAs(ledger.read<DeviceRecord>('GetDevice', deviceId), 'DEVICE_NOT_FOUND'));
    },

    async list(_by, group, pageSize, bookmark) {
      const mark = fromBookmark(bookmark);
      try {
        return toPage(await ledger.read<LedgerPage<DeviceRecord>>('ListDevicesByGroup', group, String(pageSize), mark));
      } catch (err) {
        // The group and page size passed the route's schema: the ledger refused the bookmark.
        if (mark !== '' && err instanceof GatewayError && err.detail === 'INVALID_ARGUMENT') {
          throw new GatewayError(
            GatewayErrorCode.BadRequest,
            'the bookmark is not one this query handed out',
            'BOOKMARK_INVALID',
          );
        }
        throw err;
      }
    },

    async changeStatus(_by, deviceId, action, reason) {
      const fields =
        action === DeviceAction.Revoke
          ? { DeviceID: deviceId, Reason: 'unspecified', Comment: reason }
          : { DeviceID: deviceId, Reason: reason };
      return notFoundAs(ledger.write(statusTransaction[action], fields), 'DEVICE_NOT_FOUND');
    },

    async history(_by, deviceId) {
      return toHistory(
        await notFoundAs(
          ledger.read<LedgerHistoryEntry<DeviceRecord>[]>('GetDeviceHistory', deviceId),
          'DEVICE_NOT_FOUND',
        ),
      );
    },
  };
}
