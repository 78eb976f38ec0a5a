import './logging.js';

import { expect } from 'chai';

import {
  ErrorCode,
  EventName,
  resolveShard,
  ShardLimits,
  TransactionName,
  type ShardDecision,
  type ShardLoadRecord,
  type ShardMapRecord,
} from '@keyfleet/protocol';
import { Harness, expectRejected } from './testing/harness.js';
import type { TestIdentity } from './testing/identities.js';

const shards = ['keyfleet', 'keyfleet-shard1', 'keyfleet-shard2'];
const any = { Group: null, Location: null, Function: null };
const rules = [
  { Match: { ...any, Group: 'meters', Location: 'north' }, Shard: 'keyfleet-shard2' },
  { Match: { ...any, Group: 'meters' }, Shard: 'keyfleet-shard1' },
  { Match: { ...any, Function: 'gateway' }, Shard: 'keyfleet-shard2' },
];

/** The shard map on the governance channel: operators write it (signed, audited), anyone reads it. */
describe('the shard map: rules over group, location and function, with a default', () => {
  let h: Harness;
  const mapRequest = (fields: Record<string, unknown> = {}) =>
    h.req(TransactionName.SetShardMap, {
      ExpectedRevision: 0,
      Shards: shards,
      Rules: rules,
      Default: 'keyfleet',
      ...fields,
    });
  const readMap = (who: TestIdentity = h.ids.auditor) => h.read<ShardMapRecord>(who, TransactionName.GetShardMap);
  const resolve = (who: TestIdentity, group: string, location: string, fn: string) =>
    h.read<ShardDecision>(who, TransactionName.ResolveShard, group, location, fn);

  beforeEach(async () => {
    h = await Harness.create();
    const { metadata } = h.signers;
    await h.write(
      h.ids.operator,
      TransactionName.RegisterTrustAnchor,
      h.anchorRequest(metadata.anchorId, 'metadata-signing', metadata.publicJwk),
    );
  });

  it('is written by an operator as a signed request, with its proof, an event and a request log entry', async () => {
    const request = mapRequest();
    const record = await h.write<ShardMapRecord>(h.ids.operator, TransactionName.SetShardMap, request);
    expect(record).to.deep.include({
      DocType: 'shard-map',
      Revision: 1,
      Shards: shards,
      Rules: rules,
      Default: 'keyfleet',
    });
    expect(record.UpdatedBy).to.equal('Org1MSP/operator/gateway-1');
    expect(record.Proof).to.deep.include({
      AnchorID: h.signers.metadata.anchorId,
      Principal: { Kind: 'operator', ID: 'alice' },
    });
    expect(await readMap()).to.deep.equal(record);
    expect(h.lastEvent).to.deep.include({
      name: EventName.ShardMapChanged,
      payload: {
        Revision: 1,
        Shards: shards,
        Default: 'keyfleet',
        Principal: { Kind: 'operator', ID: 'alice' },
        TxID: record.Proof.TxID,
      },
    });
    const logged = [...h.stub.state].find(
      ([key]) => key.includes('request') && key.includes(String(request.RequestID)),
    );
    expect(JSON.parse(Buffer.from(logged?.[1] ?? []).toString('utf8'))).to.deep.include({
      Action: 'SetShardMap',
      TxID: record.Proof.TxID,
      By: 'Org1MSP/operator/gateway-1',
    });
  });

  it('changes only from the revision the writer read: a stale revision is refused and writes nothing', async () => {
    await h.write(h.ids.operator, TransactionName.SetShardMap, mapRequest());
    const moved = [{ Match: { ...any, Group: 'meters' }, Shard: 'keyfleet-shard2' }];
    const second = await h.write<ShardMapRecord>(
      h.ids.operator2,
      TransactionName.SetShardMap,
      mapRequest({ ExpectedRevision: 1, Rules: moved }),
    );
    expect(second).to.deep.include({ Revision: 2, Rules: moved });
    await expectRejected(
      h,
      h.write(h.ids.operator, TransactionName.SetShardMap, mapRequest({ ExpectedRevision: 1 })),
      ErrorCode.StaleVersion,
    );
    expect(await readMap()).to.deep.equal(second);
  });

  it('is read by every role, and written by operators only', async () => {
    await expectRejected(h, readMap(), ErrorCode.ShardMapNotFound);
    await expectRejected(h, resolve(h.ids.device, 'meters', '', ''), ErrorCode.ShardMapNotFound);
    const record = await h.write<ShardMapRecord>(h.ids.operator, TransactionName.SetShardMap, mapRequest());
    for (const who of [h.ids.operator, h.ids.verifier, h.ids.auditor, h.ids.app, h.ids.device]) {
      expect(await readMap(who), who.cn).to.deep.equal(record);
      expect(await resolve(who, 'meters', '', ''), who.cn).to.deep.equal({
        Shard: 'keyfleet-shard1',
        Rule: 1,
        Revision: 1,
      });
    }
    for (const who of [h.ids.noRole, h.ids.unknownRole, h.ids.foreignMsp]) {
      await expectRejected(h, readMap(who), ErrorCode.AccessDenied);
    }
    for (const who of [h.ids.verifier, h.ids.auditor, h.ids.app, h.ids.device, h.ids.operatorFromOrg2]) {
      await expectRejected(
        h,
        h.write(who, TransactionName.SetShardMap, mapRequest({ ExpectedRevision: 1 })),
        ErrorCode.AccessDenied,
      );
    }
  });

  it('resolves a device by the first matching rule, else by the default', async () => {
    await h.write(h.ids.operator, TransactionName.SetShardMap, mapRequest());
    const table: [string, string, string, ShardDecision][] = [
      ['meters', 'north', '', { Shard: 'keyfleet-shard2', Rule: 0, Revision: 1 }],
      ['meters', 'south', 'gateway', { Shard: 'keyfleet-shard1', Rule: 1, Revision: 1 }],
      ['meters', '', '', { Shard: 'keyfleet-shard1', Rule: 1, Revision: 1 }],
      ['pumps', 'north', 'gateway', { Shard: 'keyfleet-shard2', Rule: 2, Revision: 1 }],
      ['pumps', 'north', 'sensor', { Shard: 'keyfleet', Rule: null, Revision: 1 }],
      ['', '', '', { Shard: 'keyfleet', Rule: null, Revision: 1 }],
    ];
    for (const [group, location, fn, decision] of table) {
      expect(await resolve(h.ids.auditor, group, location, fn), `${group}/${location}/${fn}`).to.deep.equal(decision);
      // The gateway routes with the same pure function.
      const subject = { Group: group || null, Location: location || null, Function: fn || null };
      expect(resolveShard(await readMap(), subject)).to.deep.equal(decision);
    }
    await expectRejected(h, resolve(h.ids.auditor, 'meters/../x', '', ''), ErrorCode.InvalidArgument);
  });

  const hostile: [string, Record<string, unknown>, ErrorCode][] = [
    ['a default outside the shards', { Default: 'keyfleet-shard9' }, ErrorCode.InvalidArgument],
    [
      'a rule to a shard outside the shards',
      { Rules: [{ Match: { ...any, Group: 'g' }, Shard: 'elsewhere' }] },
      ErrorCode.InvalidArgument,
    ],
    ['a rule that matches everything', { Rules: [{ Match: any, Shard: 'keyfleet' }] }, ErrorCode.InvalidArgument],
    [
      'two rules with the same match',
      { Rules: [rules[1], { ...rules[1], Shard: 'keyfleet' }] },
      ErrorCode.InvalidArgument,
    ],
    ['no shards', { Shards: [] }, ErrorCode.InvalidArgument],
    ['a shard twice', { Shards: ['keyfleet', 'keyfleet'] }, ErrorCode.InvalidArgument],
    ['an upper-case channel name', { Shards: ['Keyfleet'], Default: 'Keyfleet', Rules: [] }, ErrorCode.InvalidArgument],
    ['an empty channel name', { Shards: [''], Default: '', Rules: [] }, ErrorCode.InvalidArgument],
    [
      'a 50-character channel name',
      { Shards: ['k'.repeat(50)], Default: 'k'.repeat(50), Rules: [] },
      ErrorCode.InvalidArgument,
    ],
    [
      'an unknown match field',
      { Rules: [{ Match: { ...any, Group: 'g', Site: 'x' }, Shard: 'keyfleet' }] },
      ErrorCode.InvalidArgument,
    ],
    [
      'a group that is not an identifier',
      { Rules: [{ Match: { ...any, Group: 'a b' }, Shard: 'keyfleet' }] },
      ErrorCode.InvalidArgument,
    ],
    [
      `${String(ShardLimits.Rules + 1)} rules`,
      {
        Rules: Array.from({ length: ShardLimits.Rules + 1 }, (_, i) => ({
          Match: { ...any, Group: `g${String(i)}` },
          Shard: 'keyfleet',
        })),
      },
      ErrorCode.InvalidArgument,
    ],
    ['a negative expected revision', { ExpectedRevision: -1 }, ErrorCode.InvalidArgument],
    ['a revision ahead of the map', { ExpectedRevision: 3 }, ErrorCode.StaleVersion],
    ['another action', { Action: 'SetReferenceValues' }, ErrorCode.InvalidArgument],
    ['an unknown field', { Owner: 'me' }, ErrorCode.InvalidArgument],
  ];
  for (const [what, fields, code] of hostile) {
    it(`refuses ${what} (${code}), and writes nothing`, async () => {
      await expectRejected(h, h.write(h.ids.operator, TransactionName.SetShardMap, mapRequest(fields)), code);
      await expectRejected(h, readMap(), ErrorCode.ShardMapNotFound);
    });
  }

  it('refuses a request signed by another key, and a request sent twice', async () => {
    await expectRejected(
      h,
      h.write(h.ids.operator, TransactionName.SetShardMap, mapRequest(), h.signers.rogue),
      ErrorCode.SignatureInvalid,
    );
    const request = mapRequest();
    await h.write(h.ids.operator, TransactionName.SetShardMap, request);
    await expectRejected(
      h,
      h.write(h.ids.operator, TransactionName.SetShardMap, { ...request, ExpectedRevision: 1 }),
      ErrorCode.RequestReplayed,
    );
  });

  it('counts the devices and keys the channel holds (GetShardLoad), not their indexes', async () => {
    const load = () => h.read<ShardLoadRecord>(h.ids.auditor, TransactionName.GetShardLoad);
    expect(await load()).to.deep.equal({ Devices: 0, Keys: 0 });
    for (const id of ['dev-a', 'dev-b', 'dev-c']) {
      await h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest(id));
    }
    // A device-owned key also writes its owner index (key~owner), and keys a due index: neither counts.
    await h.write(
      h.ids.operator,
      TransactionName.RegisterKey,
      h.keyRequest('k-1', { Owner: { Type: 'device', ID: 'dev-a' } }),
    );
    expect(await load()).to.deep.equal({ Devices: 3, Keys: 1 });
  });
});
