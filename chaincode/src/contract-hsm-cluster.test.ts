import './logging.js';

import { expect } from 'chai';

import {
  ErrorCode,
  HsmClusterAction,
  HsmClusterService,
  VerifierHsmClusterService,
  type HsmClusterEventRecord,
} from '@keyfleet/protocol';
import { Harness, expectRejected } from './testing/harness.js';

const service = { Kind: 'service', ID: HsmClusterService };
const verifierService = { Kind: 'service', ID: VerifierHsmClusterService };

describe('hsm-cluster contract: replications and failovers of the HSM cluster', () => {
  let h: Harness;

  const replication = (fields: Record<string, unknown> = {}): Record<string, unknown> =>
    h.req('hsm-cluster:RecordHsmReplication', {
      Principal: service,
      ClusterID: 'keyfleet',
      Source: 'keyfleet',
      Target: 'keyfleet-2',
      Reason: 'join',
      KekCheckValue: 'a1b2c3',
      Keys: [
        { Label: 'device-ca', ID: 'ab'.repeat(32), Type: 'ec-p256', CheckValue: 'ab'.repeat(32) },
        { Label: 'key:k1:v1', ID: '0102', Type: 'aes-256', CheckValue: '0a0b0c' },
      ],
      At: '2026-01-01T00:00:00.000Z',
      ...fields,
    });
  const failover = (fields: Record<string, unknown> = {}): Record<string, unknown> =>
    h.req('hsm-cluster:RecordHsmFailover', {
      Principal: service,
      ClusterID: 'keyfleet',
      From: 'keyfleet',
      To: 'keyfleet-2',
      Reason: 'HSM_KEY_NOT_FOUND (probe: cluster KEK gone)',
      At: '2026-01-01T00:00:01.000Z',
      ...fields,
    });

  beforeEach(async () => {
    h = await Harness.create();
    await h.bootstrap();
  });

  it('records replications and failovers written by the operator gateway; auditors and the verifier read them', async () => {
    await h.write(h.ids.operator, HsmClusterAction.RecordHsmReplication, replication());
    await h.write(h.ids.operator, HsmClusterAction.RecordHsmFailover, failover());
    for (const reader of [h.ids.auditor, h.ids.verifier, h.ids.operator]) {
      const events = await h.read<HsmClusterEventRecord[]>(reader, HsmClusterAction.ListHsmClusterEvents, 'keyfleet');
      expect(events.map((e) => e.DocType)).to.have.members(['hsm-replication', 'hsm-failover']);
      const fo = events.find((e) => e.DocType === 'hsm-failover');
      expect(fo).to.include({ From: 'keyfleet', To: 'keyfleet-2', RecordedBy: 'Org1MSP/operator/gateway-1' });
      expect(fo?.TxID).to.match(/^tx\d+$/);
    }
    expect(await h.read(h.ids.auditor, HsmClusterAction.ListHsmClusterEvents, 'other')).to.deep.equal([]);
  });

  it('refuses bad writes and writes nothing', async () => {
    const rows: [string, () => Promise<unknown>, ErrorCode][] = [
      [
        'an auditor',
        () => h.write(h.ids.auditor, HsmClusterAction.RecordHsmFailover, failover()),
        ErrorCode.AccessDenied,
      ],
      [
        'the verifier for the gateway’s service',
        () => h.write(h.ids.verifier, HsmClusterAction.RecordHsmFailover, failover(), h.signers.verifier),
        ErrorCode.PrincipalNotAllowed,
      ],
      [
        'the verifier, signed by the metadata-signing anchor',
        () =>
          h.write(
            h.ids.verifier,
            HsmClusterAction.RecordHsmFailover,
            failover({ Principal: verifierService, ClusterID: 'keyfleet-verifier' }),
          ),
        ErrorCode.AnchorKindMismatch,
      ],
      [
        'the operator for the verifier’s service',
        () => h.write(h.ids.operator, HsmClusterAction.RecordHsmFailover, failover({ Principal: verifierService })),
        ErrorCode.PrincipalNotAllowed,
      ],
      [
        'an application',
        () => h.write(h.ids.app, HsmClusterAction.RecordHsmFailover, failover()),
        ErrorCode.AccessDenied,
      ],
      [
        'an operator principal',
        () =>
          h.write(
            h.ids.operator,
            HsmClusterAction.RecordHsmFailover,
            failover({ Principal: { Kind: 'operator', ID: 'alice' } }),
          ),
        ErrorCode.PrincipalInvalid,
      ],
      [
        'From = To',
        () => h.write(h.ids.operator, HsmClusterAction.RecordHsmFailover, failover({ To: 'keyfleet' })),
        ErrorCode.InvalidArgument,
      ],
      [
        'Source = Target',
        () => h.write(h.ids.operator, HsmClusterAction.RecordHsmReplication, replication({ Target: 'keyfleet' })),
        ErrorCode.InvalidArgument,
      ],
      [
        'a 4-byte KEK check value',
        () =>
          h.write(h.ids.operator, HsmClusterAction.RecordHsmReplication, replication({ KekCheckValue: 'a1b2c3d4' })),
        ErrorCode.InvalidArgument,
      ],
      [
        'an upper-case check value',
        () =>
          h.write(
            h.ids.operator,
            HsmClusterAction.RecordHsmReplication,
            replication({ Keys: [{ Label: 'k', ID: '01', Type: 'aes-256', CheckValue: 'ABCDEF' }] }),
          ),
        ErrorCode.InvalidArgument,
      ],
      [
        'an unknown key type',
        () =>
          h.write(
            h.ids.operator,
            HsmClusterAction.RecordHsmReplication,
            replication({ Keys: [{ Label: 'k', ID: '01', Type: 'rsa', CheckValue: 'abcdef' }] }),
          ),
        ErrorCode.InvalidArgument,
      ],
      [
        'an Action without the contract namespace',
        () =>
          h.write(h.ids.operator, HsmClusterAction.RecordHsmFailover, { ...failover(), Action: 'RecordHsmFailover' }),
        ErrorCode.InvalidArgument,
      ],
      [
        'an unknown field',
        () => h.write(h.ids.operator, HsmClusterAction.RecordHsmFailover, failover({ Extra: 1 })),
        ErrorCode.InvalidArgument,
      ],
      [
        'a control character in the reason',
        () => h.write(h.ids.operator, HsmClusterAction.RecordHsmFailover, failover({ Reason: 'a\u0007b' })),
        ErrorCode.InvalidArgument,
      ],
      [
        'a signature by no anchor',
        () => h.write(h.ids.operator, HsmClusterAction.RecordHsmFailover, failover(), h.signers.spare),
        ErrorCode.AnchorNotFound,
      ],
      [
        'a signature by the verifier anchor',
        () => h.write(h.ids.operator, HsmClusterAction.RecordHsmFailover, failover(), h.signers.verifier),
        ErrorCode.AnchorKindMismatch,
      ],
    ];
    for (const [what, call, code] of rows) {
      await expectRejected(h, call(), code).catch((err: unknown) => {
        throw new Error(`${what}: ${String(err)}`);
      });
      expect(h.lastRejectedWrites, what).to.equal(0);
    }
    expect(await h.read(h.ids.auditor, HsmClusterAction.ListHsmClusterEvents, 'keyfleet')).to.deep.equal([]);
  });

  it('records the verifier’s own cluster, signed by its verifier anchor; neither writer writes into the other’s', async () => {
    const ours = { Principal: verifierService, ClusterID: 'keyfleet-verifier' };
    const fields = { ...ours, Source: 'keyfleet-verifier', Target: 'keyfleet-verifier-2' };
    await h.write(h.ids.verifier, HsmClusterAction.RecordHsmReplication, replication(fields), h.signers.verifier);
    await h.write(
      h.ids.verifier,
      HsmClusterAction.RecordHsmFailover,
      failover({ ...ours, From: 'keyfleet-verifier', To: 'keyfleet-verifier-2' }),
      h.signers.verifier,
    );
    const events = await h.read<HsmClusterEventRecord[]>(
      h.ids.auditor,
      HsmClusterAction.ListHsmClusterEvents,
      'keyfleet-verifier',
    );
    expect(events.map((e) => [e.DocType, e.RecordedBy, e.Principal.ID])).to.have.deep.members([
      ['hsm-replication', 'Org2MSP/verifier/verifier-1', VerifierHsmClusterService],
      ['hsm-failover', 'Org2MSP/verifier/verifier-1', VerifierHsmClusterService],
    ]);
    // The operator's cluster is the operator's: the verifier cannot add to its history, nor back.
    await h.write(h.ids.operator, HsmClusterAction.RecordHsmFailover, failover());
    await expectRejected(
      h,
      h.write(
        h.ids.verifier,
        HsmClusterAction.RecordHsmFailover,
        failover({ Principal: verifierService }),
        h.signers.verifier,
      ),
      ErrorCode.AccessDenied,
    );
    await expectRejected(
      h,
      h.write(h.ids.operator, HsmClusterAction.RecordHsmFailover, failover({ ClusterID: 'keyfleet-verifier' })),
      ErrorCode.AccessDenied,
    );
    expect(h.lastRejectedWrites).to.equal(0);
  });

  it('refuses a replayed request and reads by applications and devices', async () => {
    const request = failover();
    await h.write(h.ids.operator, HsmClusterAction.RecordHsmFailover, request);
    await expectRejected(
      h,
      h.write(h.ids.operator, HsmClusterAction.RecordHsmFailover, request),
      ErrorCode.RequestReplayed,
    );
    for (const reader of [h.ids.app, h.ids.device]) {
      await expectRejected(
        h,
        h.read(reader, HsmClusterAction.ListHsmClusterEvents, 'keyfleet'),
        ErrorCode.AccessDenied,
      );
    }
  });
});
