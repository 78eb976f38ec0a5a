import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { canonicalBytes } from '@keyfleet/protocol';
import { GatewayError } from '../errors';
import type { LedgerEvent } from '../ledger/events';
import { denialFile } from './denial-file';
import { newDeviceDenials, type DeniedStatus, type DenialStore } from './device-denials';
import { newEventDispatcher } from './dispatch';

let tx = 0;
const event = (name: string, payload: unknown): LedgerEvent => {
  tx += 1;
  const transactionId = `tx-${String(tx)}`;
  const bytes =
    typeof payload === 'string'
      ? Buffer.from(payload)
      : canonicalBytes({ ...(payload as object), TxID: transactionId });
  return { name, payload: bytes, blockNumber: BigInt(tx), transactionId };
};
const recorded = (deviceId: string, status: string, suspended: boolean, keys: string[]) =>
  event('AttestationRecorded', {
    DeviceID: deviceId,
    ResultID: 'r',
    Status: status,
    VerifierID: 'v',
    DeviceSuspended: suspended,
    KeysDueForRotation: keys,
  });

/** A store that remembers every save, and can be made to fail. */
const memoryStore = () => {
  const saves: Record<string, DeniedStatus>[] = [];
  let failing = false;
  const store: DenialStore & { saves: typeof saves; fail(on: boolean): void } = {
    saves,
    fail: (on) => (failing = on),
    load: () => Promise.resolve(new Map()),
    save(devices) {
      if (failing) return Promise.reject(new Error('ENOSPC'));
      saves.push(Object.fromEntries(devices));
      return Promise.resolve();
    },
  };
  return store;
};

describe('event dispatch', () => {
  it('feeds the deny set and saves it when an event changed it, not otherwise', async () => {
    const denials = newDeviceDenials();
    const store = memoryStore();
    const dispatch = newEventDispatcher({ denials, store });
    await dispatch(event('DeviceSuspended', { DeviceID: 'd1', From: 'active', Reason: 'stolen' }));
    await dispatch(event('DeviceSuspended', { DeviceID: 'd1', From: 'active', Reason: 'again' }));
    await dispatch(event('KeyRegistered', { KeyID: 'k1' }));
    await dispatch(event('DeviceReinstated', { DeviceID: 'd1', From: 'suspended', Reason: 'found' }));
    expect(store.saves).to.deep.equal([{ d1: 'suspended' }, {}]);
    expect(denials.refusal('d1')).to.equal(undefined);
  });

  it('a contraindicated result: the device refused, the rotation trigger fired once with its due keys', async () => {
    const denials = newDeviceDenials();
    const due: (readonly string[])[] = [];
    const dispatch = newEventDispatcher({ denials, onKeysDue: (keys) => due.push(keys) });
    await dispatch(recorded('d1', 'contraindicated', true, ['k1', 'k2']));
    expect(denials.refusal('d1')).to.equal('suspended');
    expect(due).to.deep.equal([['k1', 'k2']]);
  });

  it('does not fire the rotation trigger when no key became due', async () => {
    const due: (readonly string[])[] = [];
    const dispatch = newEventDispatcher({ denials: newDeviceDenials(), onKeysDue: (keys) => due.push(keys) });
    await dispatch(recorded('d1', 'contraindicated', true, []));
    await dispatch(recorded('d2', 'affirming', false, []));
    await dispatch(event('KeyCompromised', { KeyID: 'k9', Versions: [1] }));
    expect(due).to.deep.equal([]);
  });

  it("fires it for a batch's due keys and refuses the batch's suspended members", async () => {
    const denials = newDeviceDenials();
    const due: (readonly string[])[] = [];
    const dispatch = newEventDispatcher({ denials, onKeysDue: (keys) => due.push(keys) });
    await dispatch(
      event('AttestationBatchRecorded', {
        BatchID: 'b1',
        VerifierID: 'v',
        MerkleRoot: 'm',
        Count: 3,
        SuspendedDevices: ['d7'],
        KeysDueForRotation: ['k7'],
      }),
    );
    expect(denials.refusal('d7')).to.equal('suspended');
    expect(due).to.deep.equal([['k7']]);
  });

  it('skips and counts a malformed payload instead of stopping the stream', async () => {
    const malformed: string[] = [];
    const denials = newDeviceDenials();
    const dispatch = newEventDispatcher({ denials, onMalformed: (name) => malformed.push(name) });
    await dispatch(event('DeviceSuspended', '{"DeviceID": 7}'));
    await dispatch(event('DeviceRevoked', 'not json'));
    expect(malformed).to.deep.equal(['DeviceSuspended', 'DeviceRevoked']);
    expect(denials.counts()).to.deep.equal({ suspended: 0, revoked: 0 });
  });

  it('throws when the deny set cannot be saved, so the event is not checkpointed', async () => {
    const store = memoryStore();
    store.fail(true);
    const dispatch = newEventDispatcher({ denials: newDeviceDenials(), store });
    let thrown: unknown;
    await dispatch(event('DeviceRevoked', { DeviceID: 'd1', From: 'active', Reason: 'superseded' })).catch(
      (err: unknown) => (thrown = err),
    );
    expect(thrown).to.be.instanceOf(Error);
  });
});

describe('deny-set file', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'keyfleet-denials-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts empty, and loads what was saved', async () => {
    const file = denialFile(join(dir, 'denied-devices.json'));
    expect([...(await file.load())]).to.deep.equal([]);
    await file.save(
      new Map<string, DeniedStatus>([
        ['d1', 'suspended'],
        ['d2', 'revoked'],
      ]),
    );
    expect(Object.fromEntries(await denialFile(join(dir, 'denied-devices.json')).load())).to.deep.equal({
      d1: 'suspended',
      d2: 'revoked',
    });
    expect(JSON.parse(readFileSync(join(dir, 'denied-devices.json'), 'utf8'))).to.deep.equal({
      version: 1,
      devices: { d1: 'suspended', d2: 'revoked' },
    });
  });

  for (const [what, text] of [
    ['not JSON', '{'],
    ['another version', '{"version":2,"devices":{}}'],
    ['an unknown status', '{"version":1,"devices":{"d1":"active"}}'],
  ] as const) {
    it(`refuses a file with ${what}: CONFIG_INVALID, naming the file`, async () => {
      const path = join(dir, 'denied-devices.json');
      writeFileSync(path, text);
      let thrown: unknown;
      await denialFile(path)
        .load()
        .catch((err: unknown) => (thrown = err));
      expect(thrown).to.be.instanceOf(GatewayError);
      expect(thrown).to.include({ code: 'CONFIG_INVALID' });
      expect((thrown as Error).message).to.include(path);
    });
  }
});
