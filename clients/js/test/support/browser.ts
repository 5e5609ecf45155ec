// One headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core) for every page
// test of a run: starting it takes seconds, a new context per suite takes milliseconds.
import { existsSync } from 'node:fs';

import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';

export const CHROMIUM = process.env.POSSYNC_CHROMIUM ?? '/usr/bin/chromium';

let browser: Promise<Browser> | null = null;

export function sharedBrowser(): Promise<Browser> {
  if (!browser) {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing (apt-get install chromium)`);
    browser = chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  }
  return browser;
}

export async function closeSharedBrowser(): Promise<void> {
  const b = browser;
  browser = null;
  if (b) await (await b).close();
}

/** A fresh context (own storage) and page; the page's errors are collected in `errors`. */
export async function openPage(
  options: BrowserContextOptions = {},
): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
  const context = await (await sharedBrowser()).newContext(options);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  return { context, page, errors };
}

/** Errors a page logs when a server it talks to goes away on purpose. */
export function unexpectedErrors(errors: string[]): string[] {
  return errors.filter((e) => !/WebSocket|Failed to load resource|ERR_CONNECTION_REFUSED|net::ERR_/.test(e));
}
