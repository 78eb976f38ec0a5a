import './logging.js';

import { expect } from 'chai';

import {
  type DeviceRecord,
  ErrorCode,
  EventName,
  type HistoryEntry,
  type Page,
  TransactionName,
} from '@keyfleet/protocol';
import { Harness, expectRejected, hex } from './testing/harness.js';

describe('devices', () => {
  let h: Harness;

  beforeEach(async () => {
    h = await Harness.create();
    await h.bootstrap();
  });

  it('enrols a device and stores the record with its proof and index entry', async () => {
    const request = h.enrolRequest('dev-0001');
    const device = await h.write<DeviceRecord>(h.ids.operator, TransactionName.EnrolDevice, request);
    expect(device).to.include({
      DeviceID: 'dev-0001',
      Group: 'gw-edge',
      Status: 'active',
      Shard: 3,
      EnrolledBy: 'Org1MSP/operator/gateway-1',
      EnrolledAt: '2026-01-01T00:00:00.000Z',
    });
    expect(device.Proof.AnchorID).to.equal('hsm-metadata-1');
    expect(device.Proof.Principal).to.deep.equal({ Kind: 'operator', ID: 'alice' });
    expect(h.lastEvent).to.deep.include({ name: EventName.DeviceEnrolled });
    expect(h.lastEvent.payload).to.deep.equal({
      DeviceID: 'dev-0001',
      Group: 'gw-edge',
      Shard: 3,
      Principal: { Kind: 'operator', ID: 'alice' },
      TxID: h.lastEvent.txId,
    });
    const stored = await h.read<DeviceRecord>(h.ids.auditor, TransactionName.GetDevice, 'dev-0001');
    expect(stored).to.deep.equal(device);
  });

  it('refuses a second enrolment of the same id', async () => {
    await h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0001'));
    await expectRejected(
      h,
      h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0001')),
      ErrorCode.DeviceExists,
    );
  });

  it('consumes the enrolment token with the enrolment, so a token enrols one device only', async () => {
    const token = hex('enrolment-token-1');
    await h.write(
      h.ids.operator,
      TransactionName.EnrolDevice,
      h.enrolRequest('dev-0001', { EnrolmentNonceDigest: token }),
    );
    const nonce = await h.read<{ Purpose: string; Subject: string }>(h.ids.auditor, TransactionName.GetNonce, token);
    expect(nonce).to.include({ Purpose: 'enrolment', Subject: 'dev-0001' });
    await expectRejected(
      h,
      h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0002', { EnrolmentNonceDigest: token })),
      ErrorCode.NonceReplayed,
    );
    await expectRejected(h, h.read(h.ids.auditor, TransactionName.GetDevice, 'dev-0002'), ErrorCode.DeviceNotFound);
  });

  it('leaves the enrolment token unused when the enrolment is refused', async () => {
    await h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0001'));
    const token = hex('enrolment-token-2');
    await expectRejected(
      h,
      h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0001', { EnrolmentNonceDigest: token })),
      ErrorCode.DeviceExists,
    );
    await h.write(
      h.ids.operator,
      TransactionName.EnrolDevice,
      h.enrolRequest('dev-0003', { EnrolmentNonceDigest: token }),
    );
  });

  it('does not let ConsumeNonce burn enrolment tokens', async () => {
    await expectRejected(
      h,
      h.write(
        h.ids.operator,
        TransactionName.ConsumeNonce,
        h.req(TransactionName.ConsumeNonce, { NonceDigest: hex('t'), Purpose: 'enrolment', Subject: 'dev-0001' }),
      ),
      ErrorCode.InvalidArgument,
    );
  });

  it('suspends, reinstates and revokes, with an event and a history entry for each', async () => {
    await h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0001'));
    h.advance(10);
    const suspended = await h.write<DeviceRecord>(
      h.ids.operator,
      TransactionName.SuspendDevice,
      h.req(TransactionName.SuspendDevice, { DeviceID: 'dev-0001', Reason: 'maintenance' }),
    );
    expect(suspended).to.include({ Status: 'suspended', StatusReason: 'maintenance' });
    expect(h.lastEvent.name).to.equal(EventName.DeviceSuspended);
    h.advance(10);
    const reinstated = await h.write<DeviceRecord>(
      h.ids.operator,
      TransactionName.ReinstateDevice,
      h.req(TransactionName.ReinstateDevice, { DeviceID: 'dev-0001', Reason: 'back in service' }),
    );
    expect(reinstated.Status).to.equal('active');
    expect(h.lastEvent.name).to.equal(EventName.DeviceReinstated);
    h.advance(10);
    const revoked = await h.write<DeviceRecord>(
      h.ids.operator,
      TransactionName.RevokeDevice,
      h.req(TransactionName.RevokeDevice, { DeviceID: 'dev-0001', Reason: 'keyCompromise', Comment: 'stolen' }),
    );
    expect(revoked).to.include({ Status: 'revoked', RevocationReason: 'keyCompromise', StatusReason: 'stolen' });
    expect(h.lastEvent).to.deep.include({ name: EventName.DeviceRevoked });
    const history = await h.read<HistoryEntry<DeviceRecord>[]>(
      h.ids.auditor,
      TransactionName.GetDeviceHistory,
      'dev-0001',
    );
    expect(history.map((entry) => entry.Value?.Status)).to.deep.equal(['revoked', 'active', 'suspended', 'active']);
    expect(history[0]?.Timestamp).to.equal('2026-01-01T00:00:30.000Z');
  });

  const transitions: { from: 'active' | 'suspended' | 'revoked'; tx: string; code: ErrorCode | null }[] = [
    { from: 'active', tx: TransactionName.SuspendDevice, code: null },
    { from: 'active', tx: TransactionName.ReinstateDevice, code: ErrorCode.IllegalTransition },
    { from: 'active', tx: TransactionName.RevokeDevice, code: null },
    { from: 'suspended', tx: TransactionName.SuspendDevice, code: ErrorCode.IllegalTransition },
    { from: 'suspended', tx: TransactionName.ReinstateDevice, code: null },
    { from: 'suspended', tx: TransactionName.RevokeDevice, code: null },
    { from: 'revoked', tx: TransactionName.SuspendDevice, code: ErrorCode.DeviceRevoked },
    { from: 'revoked', tx: TransactionName.ReinstateDevice, code: ErrorCode.DeviceRevoked },
    { from: 'revoked', tx: TransactionName.RevokeDevice, code: ErrorCode.DeviceRevoked },
  ];
  const body = (tx: string): Record<string, unknown> =>
    tx === TransactionName.RevokeDevice
      ? { DeviceID: 'dev-0001', Reason: 'superseded' }
      : { DeviceID: 'dev-0001', Reason: 'test' };

  for (const { from, tx, code } of transitions) {
    it(`${from} --${tx}--> ${code ?? 'accepted'}`, async () => {
      await h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0001'));
      if (from === 'suspended')
        await h.write(
          h.ids.operator,
          TransactionName.SuspendDevice,
          h.req(TransactionName.SuspendDevice, body(TransactionName.SuspendDevice)),
        );
      if (from === 'revoked')
        await h.write(
          h.ids.operator,
          TransactionName.RevokeDevice,
          h.req(TransactionName.RevokeDevice, body(TransactionName.RevokeDevice)),
        );
      const attempt = h.write(h.ids.operator, tx as typeof TransactionName.SuspendDevice, h.req(tx, body(tx)));
      if (code === null) await attempt;
      else await expectRejected(h, attempt, code);
    });
  }

  it('lists a group page by page with a bookmark, and keeps groups apart', async () => {
    for (let i = 1; i <= 5; i++) {
      await h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest(`dev-000${i}`));
    }
    await h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('cam-0001', { Group: 'camera' }));
    const first = await h.read<Page<DeviceRecord>>(
      h.ids.verifier,
      TransactionName.ListDevicesByGroup,
      'gw-edge',
      '2',
      '',
    );
    expect(first.Records.map((d) => d.DeviceID)).to.deep.equal(['dev-0001', 'dev-0002']);
    expect(first.Bookmark).to.not.equal('');
    const second = await h.read<Page<DeviceRecord>>(
      h.ids.verifier,
      TransactionName.ListDevicesByGroup,
      'gw-edge',
      '2',
      first.Bookmark,
    );
    expect(second.Records.map((d) => d.DeviceID)).to.deep.equal(['dev-0003', 'dev-0004']);
    const third = await h.read<Page<DeviceRecord>>(
      h.ids.verifier,
      TransactionName.ListDevicesByGroup,
      'gw-edge',
      '2',
      second.Bookmark,
    );
    expect(third.Records.map((d) => d.DeviceID)).to.deep.equal(['dev-0005']);
    expect(third.Bookmark).to.equal('');
    const cameras = await h.read<Page<DeviceRecord>>(
      h.ids.auditor,
      TransactionName.ListDevicesByGroup,
      'camera',
      '10',
      '',
    );
    expect(cameras.Records.map((d) => d.DeviceID)).to.deep.equal(['cam-0001']);
  });

  it('lets a device read itself but not another device', async () => {
    await h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0001'));
    await h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0002'));
    const self = await h.read<DeviceRecord>(h.ids.device, TransactionName.GetDevice, 'dev-0001');
    expect(self.DeviceID).to.equal('dev-0001');
    await expectRejected(h, h.invoke(h.ids.device, TransactionName.GetDevice, 'dev-0002'), ErrorCode.AccessDenied);
    await expectRejected(h, h.invoke(h.ids.app, TransactionName.GetDevice, 'dev-0001'), ErrorCode.AccessDenied);
  });

  it('reports an unknown device', async () => {
    await expectRejected(h, h.invoke(h.ids.operator, TransactionName.GetDevice, 'dev-9999'), ErrorCode.DeviceNotFound);
    await expectRejected(
      h,
      h.write(
        h.ids.operator,
        TransactionName.SuspendDevice,
        h.req(TransactionName.SuspendDevice, { DeviceID: 'nope', Reason: 'x' }),
      ),
      ErrorCode.DeviceNotFound,
    );
  });

  it('stores the certificate fingerprint given at enrolment', async () => {
    const device = await h.write<DeviceRecord>(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0001'));
    expect(device.CertFingerprint).to.equal(hex('cert:dev-0001'));
  });
});
