import { expect } from 'chai';
import { cpuByKind, kindOf, residentBytes, rssByKind, sampleProcesses, type ProcessSample } from './processes';

describe('the scale bench: Fabric processes by kind', () => {
  const names: [string, string | undefined][] = [
    ['peer0.org1', 'peer'],
    ['peer1.org2', 'peer'],
    ['orderer0', 'orderer'],
    ['orderer3', 'orderer'],
    ['cc.org1', 'chaincode'],
    ['cc.org2', 'chaincode'],
    ['ca.org1', 'ca'],
    ['ca.orderer', 'ca'],
    // Not a Fabric process of the network, or not in network.sh's naming: left out, not guessed.
    ['gateway', undefined],
    ['peer0', undefined],
    ['orderer', undefined],
    ['cc.org1.old', undefined],
    ['xpeer0.org1', undefined],
  ];
  for (const [name, kind] of names) {
    it(`${name} is ${kind ?? 'no kind'}`, () => {
      expect(kindOf(name)).to.equal(kind);
    });
  }

  const sample = (name: string, kind: ProcessSample['kind'], cpuSeconds: number, rssBytes: number): ProcessSample => ({
    name,
    kind,
    cpuSeconds,
    rssBytes,
  });

  it('adds the CPU each kind used between two samples, matching processes by name', () => {
    const before = [
      sample('peer0.org1', 'peer', 10, 0),
      sample('peer0.org2', 'peer', 20, 0),
      sample('orderer0', 'orderer', 5, 0),
    ];
    const after = [
      sample('peer0.org1', 'peer', 12.5, 0),
      sample('peer0.org2', 'peer', 21, 0),
      sample('orderer0', 'orderer', 5.25, 0),
      // Started between the samples: nothing to subtract from, so it is not counted.
      sample('cc.org1', 'chaincode', 3, 0),
    ];
    const cpu = cpuByKind(before, after);
    expect(cpu.get('peer')).to.equal(3.5);
    expect(cpu.get('orderer')).to.equal(0.25);
    expect(cpu.has('chaincode')).to.equal(false);
  });

  it('averages resident memory over the processes of each kind', () => {
    const rss = rssByKind([
      sample('peer0.org1', 'peer', 0, 100),
      sample('peer0.org2', 'peer', 0, 300),
      sample('orderer0', 'orderer', 0, 50),
    ]);
    expect(Object.fromEntries(rss)).to.deep.equal({ peer: 200, orderer: 50 });
  });

  it('reads this process from /proc, and NaN for a process that does not exist', () => {
    expect(residentBytes(process.pid)).to.be.above(1 << 20);
    expect(residentBytes(2 ** 22 + 1)).to.be.NaN;
    const [mine] = sampleProcesses(new Map([['peer9.org1', process.pid]]));
    expect(mine?.kind).to.equal('peer');
    expect(mine?.cpuSeconds).to.be.above(0);
  });
});
