import { expect } from 'chai';
import { Registry } from 'prom-client';
import { combineContractEvents, newDeviceDenials, type ContractEvents, type DeniedStatus } from './index';

/** One shard's events as the combination sees them: a deny set, and what start and close were told. */
function shardEvents(denied: Record<string, DeniedStatus>, log: string[], name: string): ContractEvents {
  return {
    denials: newDeviceDenials(new Map(Object.entries(denied))),
    metrics: new Registry(),
    start: () => log.push(`start ${name}`),
    close: () => {
      log.push(`close ${name}`);
      return Promise.resolve();
    },
  };
}

describe('the events of several shards as one', () => {
  it('refuses a device that any shard’s events refuse, and counts every shard', () => {
    const log: string[] = [];
    const shards = [
      shardEvents({ a: 'suspended' }, log, '0'),
      shardEvents({}, log, '1'),
      shardEvents({ b: 'revoked', c: 'suspended' }, log, '2'),
    ];
    const events = combineContractEvents(shards);
    const table: [string, DeniedStatus | undefined][] = [
      ['a', 'suspended'],
      ['b', 'revoked'],
      ['c', 'suspended'],
      ['d', undefined],
    ];
    for (const [device, status] of table) expect(events.denials.refusal(device), device).to.equal(status);
    expect(events.denials.counts()).to.deep.equal({ suspended: 2, revoked: 1 });
    expect([...events.denials.entries().keys()].sort()).to.deep.equal(['a', 'b', 'c']);
    expect(events.metrics).to.equal(shards[0]?.metrics);
  });

  it('starts and closes every shard’s stream; one shard is itself', async () => {
    const log: string[] = [];
    const events = combineContractEvents([shardEvents({}, log, '0'), shardEvents({}, log, '1')]);
    events.start();
    await events.close();
    expect(log).to.deep.equal(['start 0', 'start 1', 'close 0', 'close 1']);
    const alone = shardEvents({}, log, 'alone');
    expect(combineContractEvents([alone])).to.equal(alone);
    expect(() => combineContractEvents([])).to.throw(RangeError);
  });
});
