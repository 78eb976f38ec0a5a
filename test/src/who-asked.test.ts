import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import type { DeviceRecord } from '@keyfleet/chaincode';
import { newDeviceCsr, startGatewayFixture, type GatewayFixture } from './support/gateway-fixture';
import { connectionProfile } from './support/network';

const run = promisify(execFile);
const cli = resolve(__dirname, '../../gateway/dist/cli/keyfleet.js');

/**
 * Who asked, on the real network: the principal the gateway authenticated is inside every
 * HSM-signed write, and an auditor finds the transaction in its block through Fabric's qscc with
 * an Org2 identity of its own (`keyfleet audit tx`), checking the signature against a pinned key.
 */
describe('who asked: the principal of every write, and the auditor’s offline check', function () {
  this.timeout(120_000);
  let f: GatewayFixture;
  let dir: string;
  let transactionId: string;
  const deviceId = 'who-1';

  const keyfleet = async (...args: string[]) => {
    try {
      const { stdout } = await run(process.execPath, [cli, ...args, '--json'], {
        env: {
          ...process.env,
          KEYFLEET_URL: f.url,
          KEYFLEET_CREDENTIALS: await f.credentialsFile(f.callers.auditor),
          KEYFLEET_FABRIC_CONNECTION: connectionProfile,
        },
      });
      return { code: 0, body: JSON.parse(stdout) as Record<string, unknown> };
    } catch (err) {
      const failed = err as { code: number; stdout: string };
      return { code: failed.code, body: JSON.parse(failed.stdout) as Record<string, unknown> };
    }
  };

  before(async () => {
    f = await startGatewayFixture();
    dir = mkdtempSync(join(tmpdir(), 'keyfleet-who-'));
    const operator = await f.bearer(f.callers.operator);
    const post = async (path: string, body: unknown, auth?: string) => {
      const response = await fetch(`${f.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
        body: JSON.stringify(body),
      });
      expect(response.status, path).to.equal(201);
      return (await response.json()) as Record<string, unknown>;
    };
    const { token } = await post(
      '/v1/enrolment-tokens',
      { deviceId, group: 'lab', location: 'bench', function: 'probe' },
      operator,
    );
    const { csr } = await newDeviceCsr(deviceId);
    ({ transactionId } = (await post('/v1/devices', { enrolmentToken: token, csr })) as { transactionId: string });
  });
  after(async () => {
    await f.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('records the operator who issued the enrolment token as the one who asked', async () => {
    const device = await f.ledger.evaluate<DeviceRecord & { Proof: { Principal: unknown; TxID: string } }>(
      'GetDevice',
      deviceId,
    );
    expect(device.Proof.TxID).to.equal(transactionId);
    expect(device.Proof.Principal).to.deep.equal({ Kind: 'operator', ID: f.callers.operator.subject });
  });

  it('finds the write in its block through qscc and checks its HSM signature against a pinned key', async () => {
    const pinned = join(dir, 'metadata-signing.pem');
    writeFileSync(pinned, (await f.gateway.hsm.getPublicKey({ label: 'metadata-signing' })).pem);
    const fromBlocks = (await f.ledger.transactions()).find((t) => t.transactionId === transactionId);

    const { code, body } = await keyfleet('audit', 'tx', transactionId, '--anchor', pinned);
    expect(code).to.equal(0);
    expect(body).to.deep.include({
      found: true,
      blockNumber: fromBlocks?.blockNumber ?? expect.fail('not in the blocks'),
      valid: true,
      chaincode: f.chaincode,
      method: 'EnrolDevice',
      principal: { Kind: 'operator', ID: f.callers.operator.subject },
      signature: 'valid',
    });
    expect((body.creator as { subject: string }).subject).to.match(/CN=keyfleet-gateway/);
  });

  it('says INVALID against another key, and NOT FOUND for a transaction no block holds', async () => {
    const other = join(dir, 'verifier.pem');
    writeFileSync(other, (await f.verifier.hsm.getPublicKey({ label: 'verifier' })).pem);
    const wrongKey = await keyfleet('audit', 'tx', transactionId, '--anchor', other);
    expect(wrongKey.code).to.equal(1);
    expect(wrongKey.body).to.include({ found: true, signature: 'invalid' });

    const missing = await keyfleet('audit', 'tx', 'f'.repeat(64));
    expect(missing.code).to.equal(1);
    expect(missing.body).to.deep.equal({ found: false, transactionId: 'f'.repeat(64) });
  });

  it('shows who and the block in the device’s audit trail', async () => {
    const { code, body } = await keyfleet('audit', 'device', deviceId);
    expect(code).to.equal(0);
    const blocks = body.blocks as Record<string, number>;
    const fromBlocks = (await f.ledger.transactions()).find((t) => t.transactionId === transactionId);
    expect(blocks[transactionId]).to.equal(fromBlocks?.blockNumber);
  });
});
