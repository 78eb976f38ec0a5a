import { chromium, type Browser, type Page } from 'playwright-core';
import { loadConsoleConfig, openConsole, type AuditorConsole } from '@keyfleet/console';
import { connectionProfile } from './network';

const chromiumPath = process.env.KEYFLEET_CHROMIUM ?? '/usr/bin/chromium';

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

export async function openConsoleInBrowser(chaincode: string): Promise<ConsoleInBrowser> {
  const auditorConsole = await openConsole(
    loadConsoleConfig({
      KEYFLEET_CONSOLE_FABRIC_CONNECTION: connectionProfile,
      KEYFLEET_CONSOLE_FABRIC_CHAINCODE: chaincode,
      KEYFLEET_CONSOLE_LOG_LEVEL: process.env.KEYFLEET_TEST_LOG_LEVEL ?? 'silent',
    }),
  );
  const url = await auditorConsole.server.listen({ host: '127.0.0.1', port: 0 });
  // --no-sandbox: Chromium's sandbox refuses to run as root, which the test machines are.
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  return {
    url,
    page,
    browser,
    console: auditorConsole,
    async settled(p = page) {
      await p.waitForSelector('main[aria-busy="false"]');
      await p.waitForFunction('document.querySelectorAll(\'kf-verdict[state="pending"]\').length === 0');
    },
    async close() {
      await browser.close();
      await auditorConsole.close();
    },
  };
}
