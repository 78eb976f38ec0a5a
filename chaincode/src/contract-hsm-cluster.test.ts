import './logging.js';

import { expect } from 'chai';

import {
  ErrorCode,
  HsmClusterService,
  VerifierHsmClusterService,
  type HsmClusterEventRecord,
} from '@keyfleet/protocol';
import { HsmClusterContract } from './contract-hsm-cluster.js';
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
    // The harness drives one contract object; from here on it is the HSM cluster's.
    Object.defineProperty(h, 'contract', { value: new HsmClusterContract() });
  });

  it('records replications and failovers written by the operator gateway; auditors and the verifier read them', async () => {
    await h.write(h.ids.operator, 'RecordHsmReplication' as never, replication());
    await h.write(h.ids.operator, 'RecordHsmFailover' as never, failover());
    for (const reader of [h.ids.auditor, h.ids.verifier, h.ids.operator]) {
      const events = await h.read<HsmClusterEventRecord[]>(reader, 'ListHsmClusterEvents' as never, 'keyfleet');
      expect(events.map((e) => e.DocType)).to.have.members(['hsm-replication', 'hsm-failover']);
      const fo = events.find((e) => e.DocType === 'hsm-failover');
      expect(fo).to.include({ From: 'keyfleet', To: 'keyfleet-2', RecordedBy: 'Org1MSP/operator/gateway-1' });
      expect(fo?.TxID).to.match(/^tx\d+$/);
    }
    expect(await h.read(h.ids.auditor, 'ListHsmClusterEvents' as never, 'other')).to.deep.equal([]);
  });

  it('refuses bad writes and writes nothing', async () => {
    const rows: [string, () => Promise<unknown>, ErrorCode][] = [
      ['an auditor', () => h.write(h.ids.auditor, 'RecordHsmFailover' as never, failover()), ErrorCode.AccessDenied],
      [
        'the verifier for the gateway’s service',
        () => h.write(h.ids.verifier, 'RecordHsmFailover' as never, failover(), h.signers.verifier),
        ErrorCode.PrincipalNotAllowed,
      ],
      [
        'the verifier, signed by the metadata-signing anchor',
        () =>
          h.write(
            h.ids.verifier,
            'RecordHsmFailover' as never,
            failover({ Principal: verifierService, ClusterID: 'keyfleet-verifier' }),
          ),
        ErrorCode.AnchorKindMismatch,
      ],
      [
        'the operator for the verifier’s service',
        () => h.write(h.ids.operator, 'RecordHsmFailover' as never, failover({ Principal: verifierService })),
        ErrorCode.PrincipalNotAllowed,
      ],
      ['an application', () => h.write(h.ids.app, 'RecordHsmFailover' as never, failover()), ErrorCode.AccessDenied],
      [
        'an operator principal',
        () =>
          h.write(
            h.ids.operator,
            'RecordHsmFailover' as never,
            failover({ Principal: { Kind: 'operator', ID: 'alice' } }),
          ),
        ErrorCode.PrincipalInvalid,
      ],
      [
        'From = To',
        () => h.write(h.ids.operator, 'RecordHsmFailover' as never, failover({ To: 'keyfleet' })),
        ErrorCode.InvalidArgument,
      ],
      [
        'Source = Target',
        () => h.write(h.ids.operator, 'RecordHsmReplication' as never, replication({ Target: 'keyfleet' })),
        ErrorCode.InvalidArgument,
      ],
      [
        'a 4-byte KEK check value',
        () => h.write(h.ids.operator, 'RecordHsmReplication' as never, replication({ KekCheckValue: 'a1b2c3d4' })),
        ErrorCode.InvalidArgument,
      ],
      [
        'an upper-case check value',
        () =>
          h.write(
            h.ids.operator,
            'RecordHsmReplication' as never,
            replication({ Keys: [{ Label: 'k', ID: '01', Type: 'aes-256', CheckValue: 'ABCDEF' }] }),
          ),
        ErrorCode.InvalidArgument,
      ],
      [
        'an unknown key type',
        () =>
          h.write(
            h.ids.operator,
            'RecordHsmReplication' as never,
            replication({ Keys: [{ Label: 'k', ID: '01', Type: 'rsa', CheckValue: 'abcdef' }] }),
          ),
        ErrorCode.InvalidArgument,
      ],
      [
        'an Action without the contract namespace',
        () => h.write(h.ids.operator, 'RecordHsmFailover' as never, { ...failover(), Action: 'RecordHsmFailover' }),
        ErrorCode.InvalidArgument,
      ],
      [
        'an unknown field',
        () => h.write(h.ids.operator, 'RecordHsmFailover' as never, failover({ Extra: 1 })),
        ErrorCode.InvalidArgument,
      ],
      [
        'a control character in the reason',
        () => h.write(h.ids.operator, 'RecordHsmFailover' as never, failover({ Reason: 'a\u0007b' })),
        ErrorCode.InvalidArgument,
      ],
      [
        'a signature by no anchor',
        () => h.write(h.ids.operator, 'RecordHsmFailover' as never, failover(), h.signers.spare),
        ErrorCode.AnchorNotFound,
      ],
      [
        'a signature by the verifier anchor',
        () => h.write(h.ids.operator, 'RecordHsmFailover' as never, failover(), h.signers.verifier),
        ErrorCode.AnchorKindMismatch,
      ],
    ];
    for (const [what, call, code] of rows) {
      await expectRejected(h, call(), code).catch((err: unknown) => {
        throw new Error(`${what}: ${String(err)}`);
      });
      expect(h.lastRejectedWrites, what).to.equal(0);
    }
    expect(await h.read(h.ids.auditor, 'ListHsmClusterEvents' as never, 'keyfleet')).to.deep.equal([]);
  });

  it('records the verifier’s own cluster, signed by its verifier anchor; neither writer writes into the other’s', async () => {
    const ours = { Principal: verifierService, ClusterID: 'keyfleet-verifier' };
    const fields = { ...ours, Source: 'keyfleet-verifier', Target: 'keyfleet-verifier-2' };
    await h.write(h.ids.verifier, 'RecordHsmReplication' as never, replication(fields), h.signers.verifier);
    await h.write(
      h.ids.verifier,
      'RecordHsmFailover' as never,
      failover({ ...ours, From: 'keyfleet-verifier', To: 'keyfleet-verifier-2' }),
      h.signers.verifier,
    );
    const events = await h.read<HsmClusterEventRecord[]>(
      h.ids.auditor,
      'ListHsmClusterEvents' as never,
      'keyfleet-verifier',
    );
    expect(events.map((e) => [e.DocType, e.RecordedBy, e.Principal.ID])).to.have.deep.members([
      ['hsm-replication', 'Org2MSP/verifier/verifier-1', VerifierHsmClusterService],
      ['hsm-failover', 'Org2MSP/verifier/verifier-1', VerifierHsmClusterService],
    ]);
    // The operator's cluster is the operator's: the verifier cannot add to its history, nor back.
    await h.write(h.ids.operator, 'RecordHsmFailover' as never, failover());
    await expectRejected(
      h,
      h.write(
        h.ids.verifier,
        'RecordHsmFailover' as never,
        failover({ Principal: verifierService }),
        h.signers.verifier,
      ),
      ErrorCode.AccessDenied,
    );
    await expectRejected(
      h,
      h.write(h.ids.operator, 'RecordHsmFailover' as never, failover({ ClusterID: 'keyfleet-verifier' })),
      ErrorCode.AccessDenied,
    );
    expect(h.lastRejectedWrites).to.equal(0);
  });

  it('refuses a replayed request and reads by applications and devices', async () => {
    const request = failover();
    await h.write(h.ids.operator, 'RecordHsmFailover' as never, request);
    await expectRejected(h, h.write(h.ids.operator, 'RecordHsmFailover' as never, request), ErrorCode.RequestReplayed);
    for (const reader of [h.ids.app, h.ids.device]) {
      await expectRejected(h, h.read(reader, 'ListHsmClusterEvents' as never, 'keyfleet'), ErrorCode.AccessDenied);
    }
  });
});
