import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { newAgent } from '@keyfleet/agent';
import { openConsoleInBrowser } from './support/console-browser';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture';

const run = promisify(execFile);
const cli = resolve(__dirname, '../../gateway/dist/cli/keyfleet.js');

/**
 * Batched attestation and the auditor's check: results anchored by a Merkle root on the ledger,
 * each device's inclusion proof verified by the `keyfleet` CLI against the ledger's batch record
 * and the verifier's pinned public key.
 */
describe('batched attestation and `keyfleet audit verify-proof`', function () {
  this.timeout(120_000);
  let f: GatewayFixture;
  let dir: string;
  const outcomes: { result: unknown; recorded: { batchId: string; proof: Record<string, unknown> } }[] = [];

  const verify = async (result: unknown, proof: unknown, anchor?: string) => {
    const resultFile = join(dir, 'result.json');
    const proofFile = join(dir, 'proof.json');
    writeFileSync(resultFile, JSON.stringify(result));
    writeFileSync(proofFile, JSON.stringify(proof));
    const args = [cli, 'audit', 'verify-proof', '--result', resultFile, '--proof', proofFile, '--json'];
    if (anchor !== undefined) args.push('--anchor', anchor);
    const env = {
      ...process.env,
      KEYFLEET_URL: f.url,
      KEYFLEET_CA_FILE: join(f.dataDir, 'device-ca.pem'),
      KEYFLEET_CREDENTIALS: await f.credentialsFile(f.callers.auditor),
    };
    try {
      const { stdout } = await run(process.execPath, args, { env });
      return { code: 0, verdict: JSON.parse(stdout) as { ok: boolean; reason?: string } };
    } catch (err) {
      const failed = err as { code: number; stdout: string };
      return { code: failed.code, verdict: JSON.parse(failed.stdout) as { ok: boolean; reason?: string } };
    }
  };

  before(async () => {
    f = await startGatewayFixture({}, { KEYFLEET_VERIFIER_BATCH_SIZE: '3', KEYFLEET_VERIFIER_BATCH_DELAY_MS: '5000' });
    dir = mkdtempSync(join(tmpdir(), 'keyfleet-audit-'));
    const firmware = join(dir, 'firmware.bin');
    writeFileSync(firmware, 'firmware 2.1');
    await f.operator('PUT', '/v1/reference-values/meters', {
      policyId: 'meters-v2',
      measurements: [
        { name: 'firmware', algorithm: 'sha-256', digest: createHash('sha256').update('firmware 2.1').digest('hex') },
      ],
    });
    const agents = await Promise.all(
      ['meter-1', 'meter-2', 'meter-3'].map(async (deviceId) => {
        const { token } = await f.operator('POST', '/v1/enrolment-tokens', {
          deviceId,
          group: 'meters',
          location: 'substation',
          function: 'meter',
        });
        const agent = newAgent({ keystorePath: join(dir, `${deviceId}.json`), gatewayUrl: f.url, deviceId });
        await agent.enrol(token as string);
        return agent;
      }),
    );
    // Three attestations at once fill one batch of three.
    const attested = await Promise.all(
      agents.map((agent) =>
        agent.attest({
          measuredFiles: [{ name: 'firmware', path: firmware }],
          hwmodel: 'kf-meter',
          swname: 'keyfleet-agent',
          swversion: '0.1.0',
        }),
      ),
    );
    for (const outcome of attested) {
      expect(outcome.status).to.equal('affirming');
      outcomes.push(outcome as (typeof outcomes)[number]);
    }
  });
  after(async () => {
    await f.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('anchors the three results in one batch on the ledger', async () => {
    const batches = new Set(outcomes.map((o) => o.recorded.batchId));
    expect(batches.size).to.equal(1);
    const transactions = await f.ledger.transactions();
    const anchors = transactions.filter((t) => t.method === 'RecordAttestationBatch');
    expect(anchors).to.have.length(1);
    // The batch transaction consumed the three nonces itself: one transaction for three results.
    expect(transactions.filter((t) => t.method === 'ConsumeNonce')).to.have.length(0);
    for (const { result, recorded } of outcomes) {
      const nonce = await f.ledger.evaluate<{ TxID: string }>(
        'GetNonce',
        (result as { NonceDigest: string }).NonceDigest,
      );
      expect(nonce.TxID).to.equal(recorded.proof.TransactionID);
    }
  });

  it('verifies every device’s proof, with the gateway-reported and with a pinned anchor', async () => {
    const pinned = join(dir, 'verifier.pem');
    writeFileSync(pinned, (await f.verifier.hsm.getPublicKey({ label: 'verifier' })).pem);
    for (const { result, recorded } of outcomes) {
      expect(await verify(result, recorded.proof)).to.deep.include({ code: 0 });
      const pinnedRun = await verify(result, recorded.proof, pinned);
      expect(pinnedRun.code).to.equal(0);
      expect(pinnedRun.verdict.ok).to.be.true;
    }
  });

  it('refuses a proof with one byte changed, a result with one field changed, and a wrong anchor', async () => {
    const [{ result, recorded }] = outcomes as [(typeof outcomes)[number]];
    const path = recorded.proof.AuditPath as string[];
    const flipped = `${path[0]?.[0] === 'a' ? 'b' : 'a'}${path[0]?.slice(1) ?? ''}`;
    const tamperedProof = { ...recorded.proof, AuditPath: [flipped, ...path.slice(1)] };
    expect(await verify(result, tamperedProof)).to.deep.include({ code: 1 });
    const tamperedResult = { ...(result as Record<string, unknown>), Status: 'warning' };
    expect((await verify(tamperedResult, recorded.proof)).code).to.equal(1);
    const wrongAnchor = join(dir, 'other.pem');
    writeFileSync(wrongAnchor, (await f.gateway.hsm.getPublicKey({ label: 'metadata-signing' })).pem);
    const wrong = await verify(result, recorded.proof, wrongAnchor);
    expect(wrong.code).to.equal(1);
    expect(wrong.verdict.reason).to.equal('BATCH_SIGNATURE_INVALID');
  });

  it('in the auditor’s console: charts the batch, and checks a member’s proof in the browser against the root', async () => {
    const [{ result, recorded }] = outcomes as [(typeof outcomes)[number]];
    const browserConsole = await openConsoleInBrowser(f);
    const { page, url } = browserConsole;
    try {
      await page.goto(`${url}/#/fleet`);
      await browserConsole.settled();
      const batched = await page.evaluate(() => {
        const chart = (
          globalThis as unknown as {
            Chart: { getChart(id: string): { data: { datasets: { label: string; data: number[] }[] } } };
          }
        ).Chart.getChart('chart-verdicts');
        return chart.data.datasets.map((d) => [d.label, d.data.reduce((a, b) => a + b, 0)]);
      });
      expect(batched).to.deep.equal([
        ['affirming', 0],
        ['batched', 3],
        ['warning', 0],
        ['contraindicated', 0],
      ]);

      await page.goto(`${url}/#/batch/${recorded.batchId}`);
      await browserConsole.settled();
      const check = async (member: unknown, proof: unknown) => {
        await page.fill('#membership-form textarea[name=result]', JSON.stringify(member));
        await page.fill('#membership-form textarea[name=proof]', JSON.stringify(proof));
        await page.click('#membership-form button');
        await page.waitForSelector('#membership[data-state]');
        const answer = await page.textContent('#membership');
        await page.$eval('#membership', (element: { removeAttribute(name: string): void }) => {
          element.removeAttribute('data-state');
        });
        return answer ?? '';
      };
      expect(await check(result, recorded.proof)).to.match(/^VERIFIED: leaf [0-9a-f]{64} is a member/);
      const path = recorded.proof.AuditPath as string[];
      const flipped = `${path[0]?.[0] === 'a' ? 'b' : 'a'}${path[0]?.slice(1) ?? ''}`;
      expect(await check(result, { ...recorded.proof, AuditPath: [flipped, ...path.slice(1)] })).to.equal(
        'NOT verified: NOT_INCLUDED',
      );
      expect(await check({ ...(result as object), Status: 'warning' }, recorded.proof)).to.equal(
        'NOT verified: NOT_INCLUDED',
      );
    } finally {
      await browserConsole.close();
    }
  });
});
