/** The device registry: enrolment, status changes, reads. Rules in ./rules.ts. */
import { Context, Returns, Transaction } from 'fabric-contract-api';

import {
  DeviceUse,
  AnchorKind,
  canonicalJson,
  type Check,
  type DeviceRecord,
  DeviceStatus,
  ErrorCode,
  EventName,
  LedgerError,
  NoncePurpose,
  requests,
  Role,
  TransactionName,
} from '@keyfleet/protocol';
import { nonceRecord } from '../nonces/rules.js';
import { assertNonceUnused, loadDevice } from '../records.js';
import { KeyType, Store } from '../store.js';
import { TransactionGroup } from '../transaction/compose.js';
import { argId, assertOwnDevice, bookmark, Overseers, pageSize, reader } from '../transaction/read.js';
import { type Envelope, submit } from '../transaction/write.js';
import { enrolledDevice, type StatusRequest, withStatus } from './rules.js';

/** Suspend, reinstate and revoke: one path, the lifecycle (protocol lifecycle.ts) says which moves are legal. */
function changeStatus(
  ctx: Context,
  action: TransactionName,
  check: Check<Envelope & StatusRequest>,
  to: DeviceStatus,
  event: EventName,
  requestJson: string,
  jws: string,
): Promise<string> {
  return submit(
    ctx,
    {
      action,
      roles: [Role.Operator],
      check,
      apply: async (write) => {
        const { request, store } = write;
        const signer = await write.signedBy(AnchorKind.MetadataSigning);
        const device = await loadDevice(store, request.DeviceID);
        const updated = withStatus(device, to, request, write.now.iso, write.proof(signer.AnchorID));
        return {
          puts: [[store.key(KeyType.Device, device.DeviceID), updated]],
          event: { name: event, payload: { DeviceID: device.DeviceID, From: device.Status, Reason: request.Reason } },
          result: updated,
        };
      },
    },
    requestJson,
    jws,
  );
}

export class DeviceTransactions extends TransactionGroup {
  @Transaction()
  @Returns('string')
  async EnrolDevice(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return submit(
      ctx,
      {
        action: TransactionName.EnrolDevice,
        roles: [Role.Operator],
        check: requests.enrolDevice,
        apply: async (write) => {
          const { request, store } = write;
          const signer = await write.signedBy(AnchorKind.MetadataSigning);
          // The token first: a replayed token is reported as such, whatever else is wrong.
          const tokenDigest = request.EnrolmentNonceDigest;
          if (tokenDigest !== null) await assertNonceUnused(store, tokenDigest);
          if ((await store.get(store.key(KeyType.Device, request.DeviceID))) !== null) {
            throw new LedgerError(ErrorCode.DeviceExists, `device ${request.DeviceID} is already enrolled`);
          }
          const device = enrolledDevice(request, write.now.iso, write.by, write.proof(signer.AnchorID));
          const token =
            tokenDigest === null
              ? []
              : [
                  [
                    store.key(KeyType.Nonce, tokenDigest),
                    nonceRecord(write, tokenDigest, NoncePurpose.Enrolment, device.DeviceID),
                  ] as const,
                ];
          return {
            puts: [
              [store.key(KeyType.Device, device.DeviceID), device],
              [store.key(KeyType.DeviceByGroup, device.Group, device.DeviceID), { DeviceID: device.DeviceID }],
              ...token,
            ],
            event: {
              name: EventName.DeviceEnrolled,
              payload: { DeviceID: device.DeviceID, Group: device.Group, Shard: device.Shard },
            },
            result: device,
          };
        },
      },
      requestJson,
      jws,
    );
  }

  @Transaction()
  @Returns('string')
  async SuspendDevice(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return changeStatus(
      ctx,
      TransactionName.SuspendDevice,
      requests.suspendDevice,
      DeviceStatus.Suspended,
      EventName.DeviceSuspended,
      requestJson,
      jws,
    );
  }

  @Transaction()
  @Returns('string')
  async ReinstateDevice(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return changeStatus(
      ctx,
      TransactionName.ReinstateDevice,
      requests.reinstateDevice,
      DeviceStatus.Active,
      EventName.DeviceReinstated,
      requestJson,
      jws,
    );
  }

  @Transaction()
  @Returns('string')
  async RevokeDevice(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return changeStatus(
      ctx,
      TransactionName.RevokeDevice,
      requests.revokeDevice,
      DeviceStatus.Revoked,
      EventName.DeviceRevoked,
      requestJson,
      jws,
    );
  }

  /** Overseers read any device; a device reads only itself. */
  @Transaction(false)
  @Returns('string')
  async GetDevice(ctx: Context, deviceId: string): Promise<string> {
    const caller = reader(ctx, [...Overseers, Role.Device], TransactionName.GetDevice);
    const checkedId = argId(deviceId, 'deviceId');
    assertOwnDevice(caller, checkedId, 'itself');
    return canonicalJson(await loadDevice(new Store(ctx.stub), checkedId, DeviceUse.Read));
  }

  @Transaction(false)
  @Returns('string')
  async GetDeviceHistory(ctx: Context, deviceId: string): Promise<string> {
    reader(ctx, Overseers, TransactionName.GetDeviceHistory);
    const store = new Store(ctx.stub);
    const key = store.key(KeyType.Device, argId(deviceId, 'deviceId'));
    await loadDevice(store, deviceId, DeviceUse.History);
    return canonicalJson(await store.history<DeviceRecord>(key));
  }

  @Transaction(false)
  @Returns('string')
  async ListDevicesByGroup(ctx: Context, group: string, size: string, mark: string): Promise<string> {
    reader(ctx, Overseers, TransactionName.ListDevicesByGroup);
    const store = new Store(ctx.stub);
    const page = await store.pageByPartialKey<{ DeviceID: string }>(
      KeyType.DeviceByGroup,
      [argId(group, 'group')],
      pageSize(size),
      bookmark(mark),
    );
    const devices: DeviceRecord[] = [];
    for (const entry of page.Records) devices.push(await loadDevice(store, entry.DeviceID, DeviceUse.Read));
    return canonicalJson({ ...page, Records: devices });
  }
}
