import { expect } from 'chai';

import { KeyTransitions, isLegalKeyTransition } from './lifecycle.js';
import { isPermitted, type Caller } from './policy.js';
import { KeyState, Permission, type AccessPolicy } from './types.js';

describe('access decisions (pure)', () => {
  const policy: AccessPolicy = {
    Read: [{ MSPID: 'Org1MSP', Role: 'application', ID: null }],
    Use: [{ MSPID: 'Org1MSP', Role: 'application', ID: 'app-1' }],
    Rotate: [{ MSPID: 'Org1MSP', Role: 'device', ID: 'dev-1' }],
    Administer: [{ MSPID: 'Org1MSP', Role: 'operator', ID: 'gw-1' }],
  };
  const caller = (Role: Caller['Role'], ID: string, MSPID = 'Org1MSP'): Caller => ({ MSPID, Role, ID });

  const table: [Caller, Permission, boolean][] = [
    [caller('operator', 'gw-1'), Permission.Administer, true],
    [caller('operator', 'gw-2'), Permission.Administer, false],
    [caller('operator', 'gw-2'), Permission.Read, true],
    [caller('operator', 'gw-1'), Permission.Use, false],
    [caller('auditor', 'a-1', 'Org2MSP'), Permission.Read, true],
    [caller('auditor', 'a-1', 'Org2MSP'), Permission.Use, false],
    [caller('verifier', 'v-1', 'Org2MSP'), Permission.Rotate, false],
    [caller('application', 'app-9'), Permission.Read, true],
    [caller('application', 'app-9'), Permission.Use, false],
    [caller('application', 'app-1'), Permission.Use, true],
    [caller('application', 'app-1', 'Org2MSP'), Permission.Use, false],
    [caller('device', 'dev-1'), Permission.Rotate, true],
    [caller('device', 'dev-1'), Permission.Read, false],
    [caller('device', 'dev-2'), Permission.Rotate, false],
  ];
  for (const [who, permission, expected] of table) {
    it(`${who.MSPID}/${who.Role}/${who.ID} ${permission}: ${expected ? 'granted' : 'denied'}`, () => {
      expect(isPermitted(policy, who, permission)).to.equal(expected);
    });
  }
});

describe('KMIP transition table (pure)', () => {
  it('never allows a state to move to itself or out of destroyed', () => {
    for (const state of Object.values(KeyState)) expect(isLegalKeyTransition(state, state)).to.equal(false);
    expect(KeyTransitions.destroyed).to.deep.equal([]);
  });

  it('allows exactly the eight KMIP transitions', () => {
    const count = Object.values(KeyTransitions).reduce((sum, targets) => sum + targets.length, 0);
    expect(count).to.equal(8);
    expect(isLegalKeyTransition(KeyState.Active, KeyState.Destroyed)).to.equal(false);
    expect(isLegalKeyTransition(KeyState.Deactivated, KeyState.Active)).to.equal(false);
  });
});
