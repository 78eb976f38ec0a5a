import { expect } from 'chai';
import { newMoveGate } from './move-gate';

describe('the move gate: requests for a device being moved wait for its batch', () => {
  it('holds requests naming a held id until the batch is released, and lets others through', async () => {
    const gate = newMoveGate();
    const release = gate.hold(['d-1', 'd-1-data']);
    const order: string[] = [];
    const held = gate.passed(['d-1-data'], 10_000).then(() => order.push('held request'));
    await gate.passed(['d-2'], 10_000).then(() => order.push('other device'));
    await new Promise((r) => setTimeout(r, 20));
    order.push('release');
    release();
    await held;
    expect(order).to.deep.equal(['other device', 'release', 'held request']);
  });

  it('lets a request go after maxMs even if the batch is still held', async () => {
    const gate = newMoveGate();
    gate.hold(['d-1']);
    const started = Date.now();
    await gate.passed(['d-1'], 50);
    expect(Date.now() - started).to.be.at.least(45);
  });

  it('keeps a later hold of the same id when an earlier batch releases', async () => {
    const gate = newMoveGate();
    const first = gate.hold(['d-1']);
    const second = gate.hold(['d-1']);
    first();
    let passed = false;
    const waiting = gate.passed(['d-1'], 10_000).then(() => (passed = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(passed).to.equal(false);
    second();
    await waiting;
    expect(passed).to.equal(true);
  });
});
