import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'chai';
import { newTlsFetch } from '@keyfleet/agent';
import { chromium, type Page } from 'playwright-core';
import type { DeviceRecord, HistoryEntry, TrustAnchorRecord } from '@keyfleet/protocol';
import { newDeviceCsr, startGatewayFixture, type GatewayFixture } from './support/gateway-fixture';
import { chromiumPath, openConsoleInBrowser, type ConsoleInBrowser } from './support/console-browser';

/** The little of the DOM the page checks read (the test project has no DOM library). */
interface DomNode {
  getAttribute(name: string): string | null;
  querySelector(selector: string): DomNode | null;
  readonly textContent: string | null;
}

// The screenshots in docs/console are refreshed on request (KEYFLEET_SCREENSHOTS=1); otherwise a
// test run writes them to a temporary directory and leaves the work tree clean.
const screenshots =
  process.env.KEYFLEET_SCREENSHOTS === '1'
    ? resolve(__dirname, '..', '..', 'docs', 'console')
    : join(tmpdir(), `keyfleet-console-${String(process.pid)}`);

/**
 * The auditor's console in a real browser (Debian's Chromium, driven by playwright-core): the
 * console reads the suite's namespace as Org2's auditor; the page verifies every record with
 * WebCrypto against the anchor the auditor pinned. A tampered record is served by intercepting
 * the console's answer in the browser (as a lying server or a man in the middle would), so
 * nothing in the console itself knows about tampering.
 */
describe('auditor console in Chromium', function () {
  this.timeout(120_000);
  let f: GatewayFixture;
  let browserConsole: ConsoleInBrowser;
  let url: string;
  let page: Page;

  const post = async (path: string, body: unknown, auth?: string) => {
    const response = await fetch(`${f.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(auth === undefined ? {} : { authorization: auth }) },
      body: JSON.stringify(body),
    });
    const answer = (await response.json()) as Record<string, unknown>;
    expect(response.status, JSON.stringify(answer)).to.be.oneOf([200, 201]);
    return answer;
  };
  const enrol = async (deviceId: string) => {
    const operator = await f.bearer(f.callers.operator);
    const { token } = await post(
      '/v1/enrolment-tokens',
      { deviceId, group: 'lab', location: 'bench 4', function: 'thermometer' },
      operator,
    );
    const { csr } = await newDeviceCsr(deviceId);
    await post('/v1/devices', { enrolmentToken: token, csr });
  };
  const settled = (p: Page) => browserConsole.settled(p);
  const timeline = (p: Page) =>
    p.$$eval('#timeline tbody tr', (rows: DomNode[]) =>
      rows.map((row) => {
        const verdict = row.querySelector('kf-verdict');
        return {
          txId: row.getAttribute('data-txid') ?? '',
          state: verdict?.getAttribute('state') ?? '',
          block: Number(verdict?.getAttribute('data-block') ?? -1),
          action: verdict?.getAttribute('data-action') ?? '',
          status: row.querySelector('.status')?.textContent ?? '',
          reasons: verdict?.querySelector('.reasons')?.textContent ?? '',
        };
      }),
    );

  before(async () => {
    f = await startGatewayFixture();
    await enrol('sensor-c1');
    await enrol('sensor-c2');
    const operator = await f.bearer(f.callers.operator);
    await post('/v1/devices/sensor-c1/suspend', { reason: 'seal broken on site visit' }, operator);
    await post('/v1/devices/sensor-c1/reinstate', { reason: 'seal replaced' }, operator);
    browserConsole = await openConsoleInBrowser(f);
    ({ url, page } = browserConsole);
    mkdirSync(screenshots, { recursive: true });
  });
  after(async () => {
    await browserConsole.close();
    await f.close();
  });

  it('serves HTTPS that Chromium refuses unless the console’s key is the one pinned', async () => {
    expect(url).to.match(/^https:\/\/127\.0\.0\.1:/);
    const unpinned = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
    try {
      const refused = await (await unpinned.newPage()).goto(`${url}/healthz`).catch((err: unknown) => err);
      expect(String(refused)).to.match(/net::ERR_CERT_AUTHORITY_INVALID/);
    } finally {
      await unpinned.close();
    }
  });

  it('offers the ledger’s metadata-signing anchor with its thumbprint, and verifies nothing before it is pinned', async () => {
    await page.goto(`${url}/#/device/sensor-c1`);
    await settled(page);
    const anchors = await f.ledger.evaluate<TrustAnchorRecord[]>('ListTrustAnchors');
    const metadata = anchors.find((a) => a.Kind === 'metadata-signing' && a.Status === 'active');
    expect(await page.textContent('#default-thumbprint')).to.equal(metadata?.Thumbprint);
    const rows = await timeline(page);
    expect(rows).to.have.length(3);
    for (const row of rows) {
      expect(row.state).to.equal('failed');
      expect(row.reasons).to.include('is not pinned');
    }
  });

  it('shows the device timeline as the ledger holds it, every record verified, with tx ids and block numbers', async () => {
    await page.click('#pin-default');
    await settled(page);
    const history = await f.ledger.evaluate<HistoryEntry<DeviceRecord>[]>('GetDeviceHistory', 'sensor-c1');
    const blocks = new Map((await f.ledger.transactions()).map((t) => [t.transactionId, t.blockNumber]));
    const rows = await timeline(page);
    expect(rows.map((r) => r.txId)).to.deep.equal(history.map((e) => e.TxID).reverse());
    expect(rows.map((r) => r.block)).to.deep.equal(history.map((e) => blocks.get(e.TxID)).reverse());
    expect(rows.map((r) => r.status)).to.deep.equal(['active', 'suspended', 'active']);
    expect(rows.map((r) => r.action)).to.deep.equal(['EnrolDevice', 'SuspendDevice', 'ReinstateDevice']);
    expect(rows.map((r) => r.state)).to.deep.equal(['verified', 'verified', 'verified']);
    await page.screenshot({ path: resolve(screenshots, 'device.png'), fullPage: true });
  });

  it('shows a record whose signature was altered on its way to the page as NOT verified', async () => {
    // Same context as `page`, so the same pinned anchor (localStorage).
    const tampered = await page.context().newPage();
    // The real answer, fetched trusting Org2's TLS CA (Playwright's own route.fetch() knows
    // nothing of the SPKI pinned in Chromium), then altered on its way to the page.
    const fetchConsole = newTlsFetch({ ca: f.verifierCaCertificate });
    await tampered.route('**/api/devices/sensor-c1', async (route) => {
      const response = await fetchConsole(route.request().url());
      const body = (await response.json()) as { History: HistoryEntry<DeviceRecord>[] };
      const suspended = body.History[1]?.Value;
      if (suspended) {
        const [header, payload, signature = ''] = suspended.Proof.JWS.split('.');
        const flipped = `${signature.slice(0, 20)}${signature[20] === 'A' ? 'B' : 'A'}${signature.slice(21)}`;
        suspended.Proof.JWS = `${header ?? ''}.${payload ?? ''}.${flipped}`;
      }
      await route.fulfill({ status: response.status, json: body });
    });
    await tampered.goto(`${url}/#/device/sensor-c1`);
    await settled(tampered);
    const rows = await timeline(tampered);
    expect(rows.map((r) => r.state)).to.deep.equal(['verified', 'failed', 'verified']);
    expect(rows[1]?.reasons).to.include('the signature does not verify');
    await tampered.screenshot({ path: resolve(screenshots, 'device-tampered.png'), fullPage: true });
    await tampered.close();
  });

  it('lists the fleet by group with every record verified, and the trust anchors with their thumbprints', async () => {
    await page.goto(`${url}/#/fleet?group=lab`);
    await settled(page);
    const devices = await page.$$eval('#fleet tbody tr', (rows: DomNode[]) =>
      rows.map((r) => [r.getAttribute('data-device'), r.querySelector('kf-verdict')?.getAttribute('state')]),
    );
    expect(devices).to.deep.equal([
      ['sensor-c1', 'verified'],
      ['sensor-c2', 'verified'],
    ]);
    await page.screenshot({ path: resolve(screenshots, 'fleet.png'), fullPage: true });

    await page.goto(`${url}/#/anchors`);
    await settled(page);
    const anchors = await f.ledger.evaluate<TrustAnchorRecord[]>('ListTrustAnchors');
    const shown = await page.$$eval('#anchors tbody tr', (rows: DomNode[]) =>
      rows.map((r) => [r.getAttribute('data-anchor'), r.querySelector('.mono')?.textContent]),
    );
    expect(shown).to.deep.equal(anchors.map((a) => [a.AnchorID, a.Thumbprint]));
    await page.screenshot({ path: resolve(screenshots, 'anchors.png'), fullPage: true });
  });

  it('charts the fleet from the blocks, and lists the keys due in a window, as the ledger says', async () => {
    await f.operator('POST', '/v1/keys', {
      keyId: 'console-billing',
      algorithm: 'AES-256',
      purpose: 'encrypt',
      owner: { type: 'application', id: 'billing' },
      rotationIntervalSeconds: 86400,
      accessPolicy: { read: [], use: [], rotate: [], administer: [{ mspId: 'Org1MSP', role: 'operator' }] },
    });
    await f.operator('POST', '/v1/devices/sensor-c2/suspend', { reason: 'enclosure opened' });

    await page.goto(`${url}/#/fleet`);
    await settled(page);
    // The figures the page drew, read back from Chart.js's own charts on the page.
    const drawn = (id: string) =>
      page.evaluate((canvasId: string) => {
        const chart = (
          globalThis as unknown as {
            Chart: {
              getChart(id: string): { data: { labels: string[]; datasets: { label: string; data: number[] }[] } };
            };
          }
        ).Chart.getChart(canvasId);
        return { labels: chart.data.labels, datasets: chart.data.datasets.map((d) => [d.label, d.data]) };
      }, id);
    expect(await drawn('chart-devices')).to.deep.equal({
      labels: ['lab'],
      datasets: [
        ['active', [1]],
        ['suspended', [1]],
      ],
    });
    // Every device on the ledger, as Org2's auditor lists the group, is counted once.
    const listed = await f.ledger.evaluate<{ Records: DeviceRecord[] }>('ListDevicesByGroup', 'lab', '50', '');
    expect(listed.Records.map((d) => d.Status).sort()).to.deep.equal(['active', 'suspended']);
    const verdicts = await drawn('chart-verdicts');
    expect(verdicts.datasets.map(([label]) => label)).to.deep.equal([
      'affirming',
      'batched',
      'warning',
      'contraindicated',
    ]);
    expect(await page.textContent('#keys-due')).to.equal('No key is due now.');

    await page.click('text=within 7 days');
    await page.waitForFunction("location.hash === '#/fleet?due=604800'");
    await settled(page);
    const due = await page.$$eval('#keys-due tbody tr', (rows: DomNode[]) =>
      rows.map((r) => r.getAttribute('data-key')),
    );
    const fromLedger = await f.ledger.evaluate<{ Records: { KeyID: string }[] }>(
      'ListKeysDueForRotation',
      new Date(Date.now() + 7 * 86400_000).toISOString(),
      '50',
      '',
    );
    expect(due).to.deep.equal(fromLedger.Records.map((k) => k.KeyID));
    expect(due).to.include('console-billing');
  });

  it('finds a device by search and a transaction by its id', async () => {
    await page.fill('#search input', 'sensor-c2');
    await page.press('#search input', 'Enter');
    await page.waitForFunction("location.hash === '#/device/sensor-c2'");
    await settled(page);
    const [row] = await timeline(page);
    await page.fill('#search input', row?.txId ?? '');
    await page.press('#search input', 'Enter');
    await page.waitForFunction("location.hash.startsWith('#/tx/')");
    await settled(page);
    expect(await page.textContent('main')).to.include('EnrolDevice');
  });
});
