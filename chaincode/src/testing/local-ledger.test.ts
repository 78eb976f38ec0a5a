import '../logging.js';

import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

import { LocalLedger, type LocalCreator } from './local-ledger.js';
import { Harness } from './harness.js';
import { type DeviceRecord, type HistoryEntry, TransactionName } from '@keyfleet/protocol';

describe('LocalLedger', () => {
  let dir: string;
  let file: string;
  let h: Harness;
  let operator: LocalCreator;
  let clock: number;

  const open = () => new LocalLedger({ file, now: () => clock });
  const snapshotOf = () => {
    const ledger = open();
    try {
      return ledger.snapshot();
    } finally {
      ledger.close();
    }
  };
  const write = async (ledger: LocalLedger, request: Record<string, unknown>) =>
    ledger.submit(operator, request.Action as string, [
      JSON.stringify(request),
      await h.signers.metadata.sign(request),
    ]);
  const bootstrap = async (ledger: LocalLedger) => {
    const anchor = h.anchorRequest(h.signers.metadata.anchorId, 'metadata-signing', h.signers.metadata.publicJwk);
    await write(ledger, anchor);
  };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keyfleet-local-ledger-'));
    file = join(dir, 'ledger.jsonl');
    h = await Harness.create();
    operator = { mspId: h.ids.operator.mspId, certificatePem: h.ids.operator.pem };
    clock = Date.parse('2026-03-01T00:00:00.000Z');
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps committed state, history and events across a reopen', async () => {
    const first = open();
    await bootstrap(first);
    await write(first, h.enrolRequest('dev-1'));
    clock += 1000;
    await write(first, h.req(TransactionName.SuspendDevice, { DeviceID: 'dev-1', Reason: 'maintenance' }));
    const snapshot = first.snapshot();
    first.close();

    const second = open();
    expect(second.snapshot()).to.equal(snapshot);
    const device = JSON.parse(await second.evaluate(operator, 'GetDevice', ['dev-1'])) as DeviceRecord;
    expect(device.Status).to.equal('suspended');
    const history = JSON.parse(
      await second.evaluate(operator, 'GetDeviceHistory', ['dev-1']),
    ) as HistoryEntry<DeviceRecord>[];
    expect(history.map((e) => e.Value?.Status)).to.deep.equal(['suspended', 'active']);
    expect(second.events().map((e) => e.name)).to.deep.equal([
      'TrustAnchorRegistered',
      'DeviceEnrolled',
      'DeviceSuspended',
    ]);
    second.close();
  });

  it('journals one line per committed transaction, and nothing for a refused or read-only one', async () => {
    const ledger = open();
    await bootstrap(ledger);
    await write(ledger, h.enrolRequest('dev-1'));
    await write(ledger, h.enrolRequest('dev-1')).catch(() => undefined);
    await ledger.evaluate(operator, 'GetDevice', ['dev-1']);
    ledger.close();
    expect(readFileSync(file, 'utf8').trimEnd().split('\n')).to.have.length(2);
  });

  it('drops a last line cut short by a crash, and the next entry starts on a line of its own', async () => {
    const ledger = open();
    await bootstrap(ledger);
    ledger.close();
    const intact = snapshotOf();

    appendFileSync(file, '{"txId":"half-writ');
    const reopened = open();
    expect(reopened.snapshot()).to.equal(intact);
    await write(reopened, h.enrolRequest('dev-1'));
    const withDevice = reopened.snapshot();
    reopened.close();
    expect(snapshotOf()).to.equal(withDevice);
  });

  it('refuses a journal damaged before its last line', async () => {
    const ledger = open();
    await bootstrap(ledger);
    await write(ledger, h.enrolRequest('dev-1'));
    ledger.close();
    const [first, second] = readFileSync(file, 'utf8').split('\n');
    writeFileSync(file, `${first ?? ''}\n{"txId":\n${second ?? ''}\n`);
    expect(() => open()).to.throw(/line 2 is not a journal entry/);
  });

  it('is opened by one owner at a time, and takes over the lock of a process that is gone', () => {
    const first = open();
    expect(() => open()).to.throw(/already open in this process/);
    first.close();
    // A lock held by a live process (our parent) is refused.
    writeFileSync(`${file}.lock`, String(process.ppid));
    expect(() => open()).to.throw(`in use by process ${process.ppid}`);
    // A lock left by a process that died (pid 2^22 + 1 is above Linux's pid_max default).
    writeFileSync(`${file}.lock`, String(4_194_305));
    const second = open();
    second.close();
    expect(() => readFileSync(`${file}.lock`)).to.throw(/ENOENT/);
  });

  it('runs only the contract’s declared transactions', async () => {
    const ledger = open();
    for (const name of ['constructor', 'getName', 'beforeTransaction', 'toString', '__proto__']) {
      let refused: unknown;
      await ledger.evaluate(operator, name, []).catch((err: unknown) => (refused = err));
      expect(refused, name).to.be.instanceOf(Error);
    }
    ledger.close();
  });
});
