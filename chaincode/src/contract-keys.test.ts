import './logging.js';

import { expect } from 'chai';

import {
  type DueKey,
  ErrorCode,
  EventName,
  type HistoryEntry,
  type KeyRecord,
  KeyState,
  nextKeyCommitment,
  type NonceRecord,
  type Page,
  TransactionName,
} from '@keyfleet/protocol';
import { Harness, expectRejected, hex, versionFields } from './testing/harness.js';

describe('keys', () => {
  let h: Harness;

  beforeEach(async () => {
    h = await Harness.create();
    await h.bootstrap();
  });

  const register = (keyId = 'k-1', extra: Record<string, unknown> = {}) =>
    h.write<KeyRecord>(h.ids.operator, TransactionName.RegisterKey, h.keyRequest(keyId, extra));
  const rotate = (keyId: string, current: number, extra: Record<string, unknown> = {}) =>
    h.write<KeyRecord>(h.ids.operator, TransactionName.RotateKey, h.rotateRequest(keyId, current, extra));
  const versionTx = (tx: 'ActivateKey' | 'DeactivateKey' | 'DestroyKeyVersion', keyId: string, version: number) =>
    h.write<KeyRecord>(h.ids.operator, tx, h.req(tx, { KeyID: keyId, Version: version }));
  const compromise = (keyId: string, version: number | null) =>
    h.write<KeyRecord>(
      h.ids.operator,
      TransactionName.MarkKeyCompromised,
      h.req(TransactionName.MarkKeyCompromised, { KeyID: keyId, Version: version, Reason: 'HSM audit finding' }),
    );

  it('registers a key with its first version active, its policies, and a due date', async () => {
    const key = await register();
    expect(key).to.include({
      KeyID: 'k-1',
      LatestVersion: 1,
      ActiveVersion: 1,
      NextRotationDue: '2026-01-02T00:00:00.000Z',
    });
    expect(key.Versions[0]).to.include({ Version: 1, State: 'active', ActivatedAt: '2026-01-01T00:00:00.000Z' });
    expect(key.Versions[0]?.Pkcs11URI).to.equal('pkcs11:token=keyfleet;object=k-1-v1;type=secret-key');
    expect(h.lastEvent.name).to.equal(EventName.KeyRegistered);
    expect(await h.read<KeyRecord>(h.ids.auditor, TransactionName.GetKey, 'k-1')).to.deep.equal(key);
  });

  it('refuses a duplicate Key ID, and a device owner that is not enrolled', async () => {
    await register();
    await expectRejected(h, register(), ErrorCode.KeyExists);
    await expectRejected(h, register('k-2', { Owner: { Type: 'device', ID: 'dev-none' } }), ErrorCode.DeviceNotFound);
  });

  it('rotates: new version active, previous deactivated, due date moves, event names both', async () => {
    await register();
    h.advance(3600);
    const key = await rotate('k-1', 1);
    expect(key).to.include({ LatestVersion: 2, ActiveVersion: 2, NextRotationDue: '2026-01-02T01:00:00.000Z' });
    expect(key.Versions.map((v) => v.State)).to.deep.equal(['deactivated', 'active']);
    expect(key.Versions[0]?.DeactivatedAt).to.equal('2026-01-01T01:00:00.000Z');
    expect(h.lastEvent.payload).to.include({ KeyID: 'k-1', Version: 2, PreviousVersion: 1 });
  });

  it('refuses a rotation from a stale version (the second of two racing gateways)', async () => {
    await register();
    await rotate('k-1', 1);
    await expectRejected(h, rotate('k-1', 1), ErrorCode.StaleVersion);
  });

  it('enforces the next-key commitment and accepts the committed key', async () => {
    const next = versionFields('k-1', 2);
    await register('k-1', { NextKeyCommitment: nextKeyCommitment(next.Fingerprint as string) });
    await expectRejected(
      h,
      rotate('k-1', 1, { NewVersion: { ...next, Fingerprint: hex('some other key') } }),
      ErrorCode.NextKeyMismatch,
    );
    const key = await rotate('k-1', 1, { NextKeyCommitment: hex('commit-3') });
    expect(key.NextKeyCommitment).to.equal(hex('commit-3'));
  });

  it('refuses a new version that repeats an old fingerprint', async () => {
    await register();
    await expectRejected(h, rotate('k-1', 1, { NewVersion: versionFields('k-1', 1) }), ErrorCode.InvalidArgument);
  });

  it('consumes a rotation nonce once', async () => {
    await register();
    await rotate('k-1', 1, { NonceDigest: hex('rotation-nonce') });
    const nonce = await h.read<NonceRecord>(h.ids.auditor, TransactionName.GetNonce, hex('rotation-nonce'));
    expect(nonce).to.include({ Purpose: 'rotation', Subject: 'k-1', ConsumedBy: 'Org1MSP/operator/gateway-1' });
    await expectRejected(h, rotate('k-1', 2, { NonceDigest: hex('rotation-nonce') }), ErrorCode.NonceReplayed);
  });

  it('activates a pre-active first version', async () => {
    const key = await register('k-1', { InitialState: 'pre-active' });
    expect(key).to.include({ ActiveVersion: null, NextRotationDue: null });
    await expectRejected(h, rotate('k-1', 1), ErrorCode.IllegalTransition);
    const active = await versionTx('ActivateKey', 'k-1', 1);
    expect(active.ActiveVersion).to.equal(1);
    expect(h.lastEvent.name).to.equal(EventName.KeyActivated);
  });

  it('deactivates, then destroys only after the retention period', async () => {
    await register();
    const deactivated = await versionTx('DeactivateKey', 'k-1', 1);
    expect(deactivated).to.include({ ActiveVersion: null, NextRotationDue: null });
    expect(h.lastEvent.name).to.equal(EventName.KeyDeactivated);
    h.advance(7 * 86_400 - 1);
    await expectRejected(h, versionTx('DestroyKeyVersion', 'k-1', 1), ErrorCode.RetentionNotElapsed);
    h.advance(1);
    const destroyed = await versionTx('DestroyKeyVersion', 'k-1', 1);
    expect(destroyed.Versions[0]).to.include({ State: 'destroyed', DestroyedAt: '2026-01-08T00:00:00.000Z' });
    expect(h.lastEvent.name).to.equal(EventName.KeyVersionDestroyed);
  });

  it('marks a version compromised; the compromise trigger makes the key due at once', async () => {
    await register();
    h.advance(60);
    const key = await compromise('k-1', 1);
    expect(key.Versions[0]).to.include({ State: 'compromised', CompromisedAt: '2026-01-01T00:01:00.000Z' });
    expect(key).to.include({ ActiveVersion: null, NextRotationDue: '2026-01-01T00:01:00.000Z' });
    expect(h.lastEvent.payload).to.include({ KeyID: 'k-1' });
    expect(h.lastEvent.payload.Versions).to.deep.equal([1]);
    const due = await h.read<Page<DueKey>>(
      h.ids.operator,
      TransactionName.ListKeysDueForRotation,
      '2026-01-01T00:01:00.000Z',
      '10',
      '',
    );
    expect(due.Records.map((d) => d.KeyID)).to.deep.equal(['k-1']);
    const rotated = await rotate('k-1', 1);
    expect(rotated.Versions.map((v) => v.State)).to.deep.equal(['compromised', 'active']);
  });

  it('marks every live version compromised when no version is named', async () => {
    await register();
    await rotate('k-1', 1);
    const key = await compromise('k-1', null);
    expect(key.Versions.map((v) => v.State)).to.deep.equal(['compromised', 'compromised']);
    await expectRejected(h, compromise('k-1', null), ErrorCode.IllegalTransition);
  });

  it('keeps the whole history with transaction ids and times', async () => {
    await register();
    h.advance(100);
    await rotate('k-1', 1);
    h.advance(100);
    await versionTx('DeactivateKey', 'k-1', 2);
    const history = await h.read<HistoryEntry<KeyRecord>[]>(h.ids.auditor, TransactionName.GetKeyHistory, 'k-1');
    expect(history).to.have.length(3);
    expect(history.map((e) => e.Timestamp)).to.deep.equal([
      '2026-01-01T00:03:20.000Z',
      '2026-01-01T00:01:40.000Z',
      '2026-01-01T00:00:00.000Z',
    ]);
    expect(history.map((e) => e.TxID)).to.satisfy((ids: string[]) => new Set(ids).size === 3);
    expect(history[0]?.Value?.Versions.map((v) => v.State)).to.deep.equal(['deactivated', 'deactivated']);
    expect(history[2]?.Value?.Versions.map((v) => v.State)).to.deep.equal(['active']);
  });

  it('lists keys due at a time, earliest first, paginated, with grace and overdue', async () => {
    await register('k-a');
    h.advance(10);
    await register('k-b', {
      RotationPolicy: { IntervalSeconds: 600, GraceSeconds: 60, RetentionSeconds: 0, Triggers: [] },
    });
    h.advance(10);
    await register('k-c');
    await register('k-d', {
      RotationPolicy: { IntervalSeconds: 30 * 86_400, GraceSeconds: 0, RetentionSeconds: 0, Triggers: [] },
    });
    const at = '2026-01-02T00:00:10.000Z';
    const first = await h.read<Page<DueKey>>(h.ids.operator, TransactionName.ListKeysDueForRotation, at, '1', '');
    expect(first.Records.map((d) => d.KeyID)).to.deep.equal(['k-b']);
    expect(first.Records[0]).to.include({ Overdue: true, GraceEndsAt: '2026-01-01T00:11:10.000Z' });
    expect(first.Bookmark).to.not.equal('');
    const second = await h.read<Page<DueKey>>(
      h.ids.operator,
      TransactionName.ListKeysDueForRotation,
      at,
      '1',
      first.Bookmark,
    );
    expect(second.Records.map((d) => d.KeyID)).to.deep.equal(['k-a']);
    expect(second.Records[0]).to.include({ Overdue: false });
    expect(second.Bookmark).to.equal('');
    await rotate('k-a', 1);
    const after = await h.read<Page<DueKey>>(h.ids.verifier, TransactionName.ListKeysDueForRotation, at, '10', '');
    expect(after.Records.map((d) => d.KeyID)).to.deep.equal(['k-b']);
  });

  it('changes the rotation policy and moves the due date', async () => {
    await register();
    const key = await h.write<KeyRecord>(
      h.ids.operator,
      TransactionName.SetRotationPolicy,
      h.req(TransactionName.SetRotationPolicy, {
        KeyID: 'k-1',
        RotationPolicy: { IntervalSeconds: 3600, GraceSeconds: 0, RetentionSeconds: 0, Triggers: [] },
      }),
    );
    expect(key.NextRotationDue).to.equal('2026-01-01T01:00:00.000Z');
    expect(h.lastEvent.name).to.equal(EventName.RotationPolicyChanged);
    const due = await h.read<Page<DueKey>>(
      h.ids.operator,
      TransactionName.ListKeysDueForRotation,
      '2026-01-01T01:00:00.000Z',
      '10',
      '',
    );
    expect(due.Records.map((d) => d.KeyID)).to.deep.equal(['k-1']);
  });

  describe('access policy at run time', () => {
    it('applications read and use only keys whose policy names them', async () => {
      await register();
      expect((await h.read<KeyRecord>(h.ids.app, TransactionName.GetKey, 'k-1')).KeyID).to.equal('k-1');
      const use = await h.read<Record<string, unknown>>(
        h.ids.app,
        TransactionName.AuthorizeKeyUse,
        'k-1',
        'encrypt',
        '',
      );
      expect(use).to.include({ Version: 1, State: 'active', Caller: 'Org1MSP/application/app-billing' });
      await expectRejected(h, h.invoke(h.ids.app2, TransactionName.GetKey, 'k-1'), ErrorCode.AccessDenied);
      await expectRejected(
        h,
        h.invoke(h.ids.app2, TransactionName.AuthorizeKeyUse, 'k-1', 'encrypt', ''),
        ErrorCode.AccessDenied,
      );
      await expectRejected(
        h,
        h.invoke(h.ids.auditor, TransactionName.AuthorizeKeyUse, 'k-1', 'encrypt', ''),
        ErrorCode.AccessDenied,
      );
    });

    it('a policy change takes effect on the next call and emits AccessPolicyChanged', async () => {
      await register();
      const policy = {
        Read: [{ MSPID: 'Org1MSP', Role: 'application', ID: 'app-other' }],
        Use: [{ MSPID: 'Org1MSP', Role: 'application', ID: 'app-other' }],
        Rotate: [{ MSPID: 'Org1MSP', Role: 'operator', ID: 'gateway-2' }],
        Administer: [{ MSPID: 'Org1MSP', Role: 'operator', ID: null }],
      };
      await h.write(
        h.ids.operator,
        TransactionName.SetAccessPolicy,
        h.req(TransactionName.SetAccessPolicy, { KeyID: 'k-1', AccessPolicy: policy }),
      );
      expect(h.lastEvent.name).to.equal(EventName.AccessPolicyChanged);
      await expectRejected(h, h.invoke(h.ids.app, TransactionName.GetKey, 'k-1'), ErrorCode.AccessDenied);
      expect((await h.read<KeyRecord>(h.ids.app2, TransactionName.GetKey, 'k-1')).KeyID).to.equal('k-1');
      await expectRejected(h, rotate('k-1', 1), ErrorCode.AccessDenied);
      const rotated = await h.write<KeyRecord>(h.ids.operator2, TransactionName.RotateKey, h.rotateRequest('k-1', 1));
      expect(rotated.LatestVersion).to.equal(2);
    });

    it('a device named in Rotate may rotate its key; others may not administer', async () => {
      await h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0001'));
      const policy = {
        Read: [{ MSPID: 'Org1MSP', Role: 'device', ID: 'dev-0001' }],
        Use: [{ MSPID: 'Org1MSP', Role: 'device', ID: 'dev-0001' }],
        Rotate: [{ MSPID: 'Org1MSP', Role: 'device', ID: 'dev-0001' }],
        Administer: [{ MSPID: 'Org1MSP', Role: 'operator', ID: null }],
      };
      await register('k-dev', { Owner: { Type: 'device', ID: 'dev-0001' }, AccessPolicy: policy });
      const rotated = await h.write<KeyRecord>(h.ids.device, TransactionName.RotateKey, h.rotateRequest('k-dev', 1));
      expect(rotated.LatestVersion).to.equal(2);
      await expectRejected(
        h,
        h.write(h.ids.device2, TransactionName.RotateKey, h.rotateRequest('k-dev', 2)),
        ErrorCode.AccessDenied,
      );
      await expectRejected(
        h,
        h.write(
          h.ids.device,
          TransactionName.DeactivateKey,
          h.req(TransactionName.DeactivateKey, { KeyID: 'k-dev', Version: 2 }),
        ),
        ErrorCode.AccessDenied,
      );
    });

    it('refuses a policy that locks the operators out or grants a role what it can never hold', async () => {
      await register();
      const lockout = {
        Read: [],
        Use: [],
        Rotate: [],
        Administer: [{ MSPID: 'Org1MSP', Role: 'application', ID: 'app-billing' }],
      };
      await expectRejected(
        h,
        h.write(
          h.ids.operator,
          TransactionName.SetAccessPolicy,
          h.req(TransactionName.SetAccessPolicy, { KeyID: 'k-1', AccessPolicy: lockout }),
        ),
        ErrorCode.InvalidArgument,
      );
      const auditorUse = {
        Read: [],
        Use: [{ MSPID: 'Org2MSP', Role: 'auditor', ID: null }],
        Rotate: [],
        Administer: [{ MSPID: 'Org1MSP', Role: 'operator', ID: null }],
      };
      await expectRejected(
        h,
        h.write(
          h.ids.operator,
          TransactionName.SetAccessPolicy,
          h.req(TransactionName.SetAccessPolicy, { KeyID: 'k-1', AccessPolicy: auditorUse }),
        ),
        ErrorCode.InvalidArgument,
      );
    });

    it('an operator not named in Administer cannot administer', async () => {
      const policy = {
        Read: [],
        Use: [],
        Rotate: [{ MSPID: 'Org1MSP', Role: 'operator', ID: 'gateway-1' }],
        Administer: [{ MSPID: 'Org1MSP', Role: 'operator', ID: 'gateway-1' }],
      };
      await register('k-1', { AccessPolicy: policy });
      await expectRejected(
        h,
        h.write(
          h.ids.operator2,
          TransactionName.DeactivateKey,
          h.req(TransactionName.DeactivateKey, { KeyID: 'k-1', Version: 1 }),
        ),
        ErrorCode.AccessDenied,
      );
    });
  });

  describe('AuthorizeKeyUse by version state', () => {
    it('protect operations need the active version, process operations any live one', async () => {
      await register();
      await rotate('k-1', 1);
      await compromise('k-1', 1);
      const use = (op: string, version: string) =>
        h.invoke(h.ids.app, TransactionName.AuthorizeKeyUse, 'k-1', op, version);
      expect(JSON.parse(await use('encrypt', ''))).to.include({ Version: 2 });
      expect(JSON.parse(await use('decrypt', '1'))).to.include({ State: 'compromised' });
      await expectRejected(h, use('encrypt', '1'), ErrorCode.KeyNotUsable);
      await expectRejected(h, use('decrypt', '9'), ErrorCode.VersionNotFound);
      await expectRejected(h, use('launch', ''), ErrorCode.InvalidArgument);
    });
  });
});

/** Every (from, to) pair of the KMIP state machine, driven through real transactions. */
describe('key version state machine through the contract', () => {
  type Setup = (h: Harness) => Promise<void>;
  const reg =
    (state: 'active' | 'pre-active'): Setup =>
    async (h) => {
      await h.write(
        h.ids.operator,
        TransactionName.RegisterKey,
        h.keyRequest('k-1', {
          InitialState: state,
          RotationPolicy: { IntervalSeconds: 3600, GraceSeconds: 0, RetentionSeconds: 0, Triggers: [] },
        }),
      );
    };
  const tx = async (h: Harness, name: 'ActivateKey' | 'DeactivateKey' | 'DestroyKeyVersion', version = 1) =>
    h.write(h.ids.operator, name, h.req(name, { KeyID: 'k-1', Version: version }));
  const comp = async (h: Harness) =>
    h.write(
      h.ids.operator,
      TransactionName.MarkKeyCompromised,
      h.req(TransactionName.MarkKeyCompromised, { KeyID: 'k-1', Version: 1, Reason: 'x' }),
    );
  const setups: Record<KeyState, Setup> = {
    'pre-active': reg('pre-active'),
    active: reg('active'),
    deactivated: async (h) => {
      await reg('active')(h);
      await tx(h, 'DeactivateKey');
    },
    compromised: async (h) => {
      await reg('active')(h);
      await comp(h);
    },
    destroyed: async (h) => {
      await reg('pre-active')(h);
      await tx(h, 'DestroyKeyVersion');
    },
  };
  const moves: Record<Exclude<KeyState, 'pre-active'>, (h: Harness) => Promise<unknown>> = {
    active: (h) => tx(h, 'ActivateKey'),
    deactivated: (h) => tx(h, 'DeactivateKey'),
    compromised: (h) => comp(h),
    destroyed: (h) => tx(h, 'DestroyKeyVersion'),
  };
  const legal: Record<KeyState, KeyState[]> = {
    'pre-active': ['active', 'compromised', 'destroyed'],
    active: ['deactivated', 'compromised'],
    deactivated: ['compromised', 'destroyed'],
    compromised: ['destroyed'],
    destroyed: [],
  };
  for (const from of Object.values(KeyState)) {
    for (const to of Object.keys(moves) as (keyof typeof moves)[]) {
      const ok = legal[from].includes(to);
      it(`${from} -> ${to}: ${ok ? 'accepted' : 'ILLEGAL_TRANSITION'}`, async () => {
        const h = await Harness.create();
        await h.bootstrap();
        await setups[from](h);
        if (ok) {
          const key = (await moves[to](h)) as KeyRecord;
          expect(key.Versions[0]?.State).to.equal(to);
        } else {
          await expectRejected(h, moves[to](h), ErrorCode.IllegalTransition);
        }
      });
    }
  }
});
