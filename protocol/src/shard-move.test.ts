import { expect } from 'chai';

import { ErrorCode, LedgerError } from './errors.js';
import {
  assertDeviceUsable,
  DeviceUse,
  movedDeviceOf,
  planShardMoves,
  withGroupRule,
  type DeviceMoveMarker,
  type ShardDeviceEntry,
} from './shard-move.js';

const any = { Group: null, Location: null, Function: null };
const map = {
  Revision: 4,
  Shards: ['keyfleet', 'keyfleet-shard1', 'keyfleet-shard2'],
  Rules: [
    { Match: { ...any, Location: 'plant-7' }, Shard: 'keyfleet-shard2' },
    { Match: { ...any, Group: 'meters' }, Shard: 'keyfleet-shard1' },
  ],
  Default: 'keyfleet',
};
const device = (id: string, group: string, location = 'plant-1', moving: string | null = null): ShardDeviceEntry => ({
  DeviceID: id,
  Group: group,
  Location: location,
  Function: 'meter',
  KeyIDs: [`${id}-key`],
  Moving: moving,
});

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return err instanceof LedgerError ? err.code : 'not a LedgerError';
  }
  return undefined;
};

describe('shard moves: the pure rules', () => {
  it('plans every device whose shard the map changes, in batches per source and destination', () => {
    const onShards = new Map([
      [
        'keyfleet',
        [device('a', 'meters'), device('b', 'meters'), device('c', 'pumps'), device('d', 'meters', 'plant-7')],
      ],
      ['keyfleet-shard1', [device('e', 'pumps'), device('f', 'meters')]],
    ]);
    expect(planShardMoves(map, onShards, 1)).to.deep.equal([
      { Source: 'keyfleet', Destination: 'keyfleet-shard1', Devices: ['a'] },
      { Source: 'keyfleet', Destination: 'keyfleet-shard1', Devices: ['b'] },
      { Source: 'keyfleet', Destination: 'keyfleet-shard2', Devices: ['d'] },
      { Source: 'keyfleet-shard1', Destination: 'keyfleet', Devices: ['e'] },
    ]);
    expect(planShardMoves(map, onShards).map((p) => p.Devices)).to.deep.equal([['a', 'b'], ['d'], ['e']]);
  });

  it('leaves out devices another move freezes, and plans nothing when every device is in place', () => {
    const onShards = new Map([['keyfleet', [device('a', 'meters', 'plant-1', 'mv-1'), device('c', 'pumps')]]]);
    expect(planShardMoves(map, onShards)).to.deep.equal([]);
  });

  it('sends a group to a channel: its group-only rule replaced, or a new one first', () => {
    const moved = withGroupRule(map, 'meters', 'keyfleet-shard2');
    expect(moved.ExpectedRevision).to.equal(4);
    expect(moved.Rules[1]).to.deep.equal({ Match: { ...any, Group: 'meters' }, Shard: 'keyfleet-shard2' });
    expect(moved.Rules).to.have.length(2);
    const added = withGroupRule(map, 'pumps', 'keyfleet-shard1');
    expect(added.Rules[0]).to.deep.equal({ Match: { ...any, Group: 'pumps' }, Shard: 'keyfleet-shard1' });
    expect(added.Rules).to.have.length(3);
    expect(codeOf(() => withGroupRule(map, 'pumps', 'keyfleet-shard9'))).to.equal(ErrorCode.InvalidArgument);
  });

  it('answers for a device by its marker: frozen refuses writes, gone refuses all but history', () => {
    const marker = (State: DeviceMoveMarker['State']): DeviceMoveMarker => ({
      DocType: 'device-move',
      DeviceID: 'a',
      MoveID: 'mv-1',
      State,
      Source: 'keyfleet',
      Destination: 'keyfleet-shard1',
      Previous: null,
    });
    const rows: [DeviceMoveMarker | null, DeviceUse, string | undefined][] = [
      [null, DeviceUse.Write, undefined],
      [marker('moving'), DeviceUse.Read, undefined],
      [marker('moving'), DeviceUse.Write, ErrorCode.DeviceMoving],
      [marker('moving'), DeviceUse.History, undefined],
      [marker('arriving'), DeviceUse.Read, ErrorCode.DeviceMoving],
      [marker('arriving'), DeviceUse.Write, ErrorCode.DeviceMoving],
      [marker('moved'), DeviceUse.Read, ErrorCode.DeviceMoved],
      [marker('moved'), DeviceUse.Write, ErrorCode.DeviceMoved],
      [marker('moved'), DeviceUse.History, undefined],
    ];
    for (const [m, use, code] of rows) {
      expect(
        codeOf(() => {
          assertDeviceUsable(m, use);
        }),
        `${m?.State ?? 'none'} ${use}`,
      ).to.equal(code);
    }
  });

  it('reads the device and destination back from a DEVICE_MOVED refusal, and nothing from others', () => {
    const rows: [string, ReturnType<typeof movedDeviceOf>][] = [
      [
        'DEVICE_MOVED: device dev-1 moved to keyfleet-shard1 (move mv-1)',
        { deviceId: 'dev-1', destination: 'keyfleet-shard1' },
      ],
      ['device dev-1 moved to keyfleet (move mv-2)', { deviceId: 'dev-1', destination: 'keyfleet' }],
      ['DEVICE_MOVING: device dev-1 is moving to keyfleet-shard1 (move mv-1); retry shortly', null],
      ['device dev-1 moved to Keyfleet (move m)', null],
      ['', null],
    ];
    for (const [message, expected] of rows) expect(movedDeviceOf(message), message).to.deep.equal(expected);
  });
});
