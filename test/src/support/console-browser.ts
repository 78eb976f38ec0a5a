import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { loadConsoleConfig, openConsole, type AuditorConsole } from '@keyfleet/console';
import { hsmSigningKey, newDeviceCa, writeServerCertificateFiles } from '@keyfleet/gateway';
import type { GatewayFixture } from './gateway-fixture';
import { connectionProfile } from './network';

export const chromiumPath = process.env.KEYFLEET_CHROMIUM ?? '/usr/bin/chromium';

/** The auditor's console on a suite's namespace, listening over HTTPS on a free loopback port. */
export interface ConsoleOverHttps {
  /** `https://127.0.0.1:<port>`. */
  readonly url: string;
  readonly console: AuditorConsole;
  /** base64 SHA-256 of the console certificate's SubjectPublicKeyInfo: what a browser pins. */
  readonly spkiSha256: string;
  close(): Promise<void>;
}

/**
 * Opens the console as `npm start` does: Org2's TLS CA (the `tls-ca` key in the fixture verifier's
 * token) issues its certificate and key files, which the console then serves.
 */
export async function openConsoleOverHttps(f: GatewayFixture): Promise<ConsoleOverHttps> {
  const dir = mkdtempSync(join(tmpdir(), 'keyfleet-console-'));
  const ca = await newDeviceCa({
    key: await hsmSigningKey(f.verifier.hsm, 'tls-ca'),
    certificatePem: f.verifierCaCertificate,
  });
  const files = await writeServerCertificateFiles(ca, ['localhost', '127.0.0.1', '::1'], dir);
  const auditorConsole = await openConsole(
    loadConsoleConfig({
      KEYFLEET_CONSOLE_FABRIC_CONNECTION: connectionProfile,
      KEYFLEET_CONSOLE_FABRIC_CHAINCODE: f.chaincode,
      KEYFLEET_CONSOLE_TLS_CERT: files.certFile,
      KEYFLEET_CONSOLE_TLS_KEY: files.keyFile,
      KEYFLEET_CONSOLE_LOG_LEVEL: process.env.KEYFLEET_TEST_LOG_LEVEL ?? 'silent',
    }),
  );
  const url = await auditorConsole.server.listen({ host: '127.0.0.1', port: 0 });
  const spki = new X509Certificate(readFileSync(files.certFile)).publicKey.export({ type: 'spki', format: 'der' });
  return {
    url,
    console: auditorConsole,
    spkiSha256: createHash('sha256').update(spki).digest('base64'),
    async close() {
      await auditorConsole.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The auditor's console on a suite's namespace, and a page of Debian's Chromium to look at it. */
export interface ConsoleInBrowser {
  readonly url: string;
  readonly page: Page;
  readonly browser: Browser;
  readonly console: AuditorConsole;
  /** Waits until the page has rendered and every record on it has been checked. */
  settled(page?: Page): Promise<void>;
  close(): Promise<void>;
}

export async function openConsoleInBrowser(f: GatewayFixture): Promise<ConsoleInBrowser> {
  const served = await openConsoleOverHttps(f);
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: [
      // Chromium's sandbox refuses to run as root, which the test machines are.
      '--no-sandbox',
      // The test's CA is not in the system's store: Chromium trusts exactly the console's key
      // (its SPKI pinned), so any other certificate is still refused.
      `--ignore-certificate-errors-spki-list=${served.spkiSha256}`,
    ],
  });
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  return {
    url: served.url,
    page,
    browser,
    console: served.console,
    async settled(p = page) {
      await p.waitForSelector('main[aria-busy="false"]');
      await p.waitForFunction('document.querySelectorAll(\'kf-verdict[state="pending"]\').length === 0');
    },
    async close() {
      await browser.close();
      await served.close();
    },
  };
}
