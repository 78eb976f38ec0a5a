import { ErrorCode, PrincipalKind, sha256Hex } from '@keyfleet/protocol';
import type { Principal } from '../auth/bearer';
import type { DeviceCa } from '../ca/device-ca';
import type { EcSigningKey } from '../crypto/ec-key';
import { GatewayError, GatewayErrorCode } from '../errors';
import type { LedgerClient } from '../ledger/ledger-client';
import { ledgerPort, ledgerRefusalCode } from '../ledger/port';
import { asPrincipal } from '../ledger/principal-context';
import { issueEnrolmentToken, verifyEnrolmentToken } from './enrolment-token';
import { fromBookmark, signed, toHistory, toPage } from './records';
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

export function newDeviceService(options: DeviceServiceOptions): DeviceService {
  const { ca, tokenKey } = options;
  const ledger = ledgerPort(options.ledger);
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
          ledger.devices.enrol({
            DeviceID: grant.deviceId,
            Group: grant.group,
            Location: grant.location,
            Function: grant.function,
            CertFingerprint: certificate.fingerprint,
            EnrolmentNonceDigest: sha256Hex(grant.tokenId),
          }),
        ));
      } catch (err) {
        if (ledgerRefusalCode(err) === ErrorCode.NonceReplayed) {
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
      return signed(await ledger.devices.require(deviceId));
    },

    async list(_by, group, pageSize, bookmark) {
      const mark = fromBookmark(bookmark);
      try {
        return toPage(await ledger.devices.listByGroup(group, pageSize, mark));
      } catch (err) {
        // The group and page size passed the route's schema: the ledger refused the bookmark.
        if (mark !== '' && ledgerRefusalCode(err) === ErrorCode.InvalidArgument) {
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
      switch (action) {
        case DeviceAction.Suspend:
          return ledger.devices.suspend({ DeviceID: deviceId, Reason: reason });
        case DeviceAction.Reinstate:
          return ledger.devices.reinstate({ DeviceID: deviceId, Reason: reason });
        case DeviceAction.Revoke:
          return ledger.devices.revoke({ DeviceID: deviceId, Reason: 'unspecified', Comment: reason });
      }
    },

    async history(_by, deviceId) {
      return toHistory(await ledger.devices.history(deviceId));
    },
  };
}
