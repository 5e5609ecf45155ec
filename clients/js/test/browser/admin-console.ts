// The admin console (clients/admin), as the server binary itself serves it at /admin/, in
// Chromium: a wrong token is refused with a clear message; after signing in with an admin token a
// device that connects appears, a change it makes appears in the live feed, and "Disconnect"
// closes its connection (4002).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import type { BrowserContext, Page } from 'playwright-core';

import type { PossyncClient, StateChangeEvent } from '@possync/client/node';

import { openPage, unexpectedErrors } from '../support/browser.js';
import { makeClient } from '../support/clients.js';
import { TestServer } from '../support/server.js';

const R = 'r-console';

describe('the admin console in Chromium', () => {
  let server: TestServer;
  let context: BrowserContext;
  let page: Page;
  let errors: string[] = [];
  const devices: PossyncClient[] = [];

  before(async () => {
    server = await new TestServer().start();
    ({ context, page, errors } = await openPage({ viewport: { width: 1280, height: 800 } }));
  });

  after(async () => {
    for (const d of devices) await d.close();
    await context?.close();
    await server?.dispose();
  });

  async function signIn(token: string): Promise<void> {
    await page.fill('#token', token);
    await page.click('#signin-button');
  }

  async function refusal(token: string): Promise<string> {
    await signIn(token);
    await page.waitForSelector('#signin-error:not([hidden])');
    const text = await page.textContent('#signin-error');
    await page.evaluate(() => (document.getElementById('signin-error')!.hidden = true));
    return text ?? '';
  }

  it('refuses a wrong token with a clear message', async () => {
    const res = await page.goto(`${server.url}/admin`);
    assert.equal(res?.status(), 200);
    assert.equal(new URL(page.url()).pathname, '/admin/', 'redirected to /admin/');
    await page.waitForSelector('#signin:not([hidden])');

    assert.match(await refusal('not-a-token'), /not a possync token/);
    assert.match(await refusal(await server.token(R, 'pos-1', 'pos')), /'pos' token of restaurant 'r-console'.*needs an admin token/);
    // Signed with another key: only the server can tell.
    const admin = await server.adminToken();
    const forged = admin.slice(0, admin.lastIndexOf('.') + 1) + 'x'.repeat(43);
    assert.match(await refusal(forged), /The server refused the token: .*\(token_invalid\)/);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused token is not kept');
    assert.equal(await page.isVisible('#console'), false);
  });

  it('signs in, shows a device and its changes live, and disconnects it', async () => {
    await signIn(await server.adminToken());
    await page.waitForSelector('#console:not([hidden])');
    assert.deepEqual(await page.evaluate(() => Object.keys(sessionStorage)), ['possync.admin.token']);
    assert.deepEqual(await page.evaluate(() => Object.keys(localStorage)), [], 'nothing kept beyond the tab');

    // A device connects: its restaurant appears in the list, the device in the restaurant's view.
    const device = makeClient(server, await server.token(R, 'pos-7', 'pos'), { userId: 'u-anna' });
    devices.push(device);
    device.connect();
    await device.ready();
    await page.click(`#restaurants tr[data-restaurant="${R}"]`, { timeout: 10000 });
    await page.waitForSelector('#r-state.live');
    const deviceRow = await page.waitForSelector('#devices tr[data-device="pos-7"]', { timeout: 10000 });
    const cells = await deviceRow.$$eval('td', (tds) => tds.map((td) => td.textContent));
    assert.equal(cells[0], 'pos-7');
    assert.equal(cells[1], 'pos');
    assert.equal(cells[2], 'u-anna');
    assert.match(cells[3] ?? '', /:\d+$/, 'node');

    // A change the device makes appears in the feed (within a second of its ack) and the records.
    const { result } = device.change('orders', 'o-42', 'created', { status: 'pending', table: '4' });
    const applied = await result;
    assert.equal(applied.status, 'applied');
    const feedRow = await page.waitForSelector(`#feed tr[data-seq="${applied.seq}"]`, { timeout: 1000 });
    assert.deepEqual((await feedRow.$$eval('td', (tds) => tds.map((td) => td.textContent))).slice(0, 5), [
      String(applied.seq),
      'orders',
      'o-42',
      'created',
      'pos-7',
    ]);
    await page.waitForSelector('#records tr[data-record="o-42"]');
    assert.match((await page.textContent('#records tr[data-record="o-42"] td.fields')) ?? '', /"table":"4"/);

    // Disconnect: the device's connection is closed with 4002 (it reconnects by itself).
    const closed = new Promise<StateChangeEvent>((resolve) => {
      const off = device.on('state', (e) => {
        if (e.state === 'offline') {
          off();
          resolve(e);
        }
      });
    });
    await page.click('#devices button[data-device="pos-7"]');
    assert.equal((await closed).code, 4002);
    assert.match((await page.textContent('#r-notice:not([hidden])')) ?? '', /^Disconnected pos-7: 1 connection\(s\) closed/);

    // Health: the charts are drawn from /metrics.
    await page.waitForSelector('#chart-connections svg path.line', { timeout: 10000 });
    assert.match((await page.textContent('#chart-connections figcaption b')) ?? '', /^\d+$/);

    // The layout fits a 1280x800 screen and a tablet (portrait and landscape) without scrolling
    // sideways, the devices and the feed on screen.
    for (const viewport of [
      { width: 1280, height: 800 },
      { width: 820, height: 1180 },
      { width: 1180, height: 820 },
    ]) {
      await page.setViewportSize(viewport);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${viewport.width}x${viewport.height}: ${overflow}px wider than the screen`);
      for (const id of ['#devices', '#feed', '#restaurants', '#chart-changes']) {
        assert.ok(await page.isVisible(id), `${id} at ${viewport.width}x${viewport.height}`);
      }
    }

    // Signing out forgets the token.
    await page.click('#signout');
    await page.waitForSelector('#signin:not([hidden])');
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    assert.deepEqual(unexpectedErrors(errors), []);
  });
});
