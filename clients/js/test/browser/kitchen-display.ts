// examples/kitchen-display, started with its own `run` script against a real server, in Chromium:
// orders made by a POS device appear, "Bump" marks one ready; through an offline spell of the
// display's network (the server keeps running) a bump is queued and orders made meanwhile arrive
// afterwards; a bump made while the server is down (kill -9) is kept in the page's outbox, also
// across a reload of the page, and applied once after the restart.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

import type { BrowserContext, Page } from 'playwright-core';

import type { PossyncClient } from '@possync/client/node';

import { openPage, unexpectedErrors } from '../support/browser.js';
import { makeClient } from '../support/clients.js';
import { CuttableLink } from '../support/link.js';
import { SERVER_BIN, TestServer, waitFor } from '../support/server.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const RUN = resolve(HERE, '..', '..', '..', '..', '..', 'examples', 'kitchen-display', 'run');
const R = 'r-kitchen';

describe('the kitchen display example in Chromium', () => {
  let server: TestServer;
  let link: CuttableLink; // the display's network to the server
  let example: ChildProcess;
  let pageUrl: string;
  let context: BrowserContext;
  let page: Page;
  let errors: string[] = [];
  let pos: PossyncClient;

  before(async () => {
    server = await new TestServer().start();
    link = await new CuttableLink(() => server.port).start();
    example = spawn(
      RUN,
      ['--restaurant', R, '--port', '0', '--possync', link.url, '--server-bin', SERVER_BIN, '--jwt-secret-file', server.keyFile],
      // Its own process group: `run` is a shell script serving the page from a python3 child,
      // and both must go at the end (a child left behind keeps this test process alive).
      { stdio: ['ignore', 'pipe', 'inherit'], detached: true },
    );
    pageUrl = await new Promise<string>((resolveLink, reject) => {
      let out = '';
      example.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const m = /open (http:\/\/\S+)/.exec(out);
        if (m) resolveLink(m[1]!);
      });
      example.once('exit', (code) => reject(new Error(`examples/kitchen-display/run exited ${code}: ${out}`)));
    });
    ({ context, page, errors } = await openPage({ viewport: { width: 1024, height: 768 } }));
    pos = makeClient(server, await server.token(R, 'pos-1', 'pos'));
    pos.connect();
    await pos.ready();
  });

  after(async () => {
    await pos?.close();
    await context?.close();
    if (example?.pid !== undefined && example.exitCode === null) {
      const exited = new Promise((resolveExit) => example.once('exit', resolveExit));
      process.kill(-example.pid, 'SIGTERM');
      await exited;
    }
    await link?.close();
    await server?.dispose();
  });

  const order = (id: string) => page.locator(`article.order[data-order="${id}"]`);

  it('shows orders live and bumps them, through an offline spell and a kill -9 of the server', async () => {
    await page.goto(pageUrl);
    await page.waitForSelector('#state.live');
    assert.equal(await page.textContent('#restaurant'), R);

    for (const [id, n] of [['o-1', '101'], ['o-2', '102']] as const) {
      const created = await pos.change('orders', id, 'created', {
        order_number: n,
        table: '3',
        status: 'pending',
        items: [{ name: 'Soup', quantity: 2 }],
        created_at: new Date().toISOString(),
      }).result;
      assert.equal(created.status, 'applied');
    }
    await order('o-1').waitFor();
    await order('o-2').waitFor();
    assert.match((await order('o-1').textContent()) ?? '', /2 × Soup/);

    // Bump while live.
    await order('o-1').locator('button.bump').click();
    await order('o-1').waitFor({ state: 'detached' });
    await page.waitForSelector('#ready li:has-text("101")');

    // An offline spell of the display's network, the server running: a bump is queued, and an
    // order made meanwhile by the POS arrives once the network is back, with the bump applied.
    link.cutOff();
    await page.waitForSelector('#state.offline');
    await order('o-2').locator('button.bump').click();
    await page.waitForSelector('article.order[data-order="o-2"] button.bump:has-text("queued offline")');
    const during = await pos.change('orders', 'o-3', 'created', { order_number: '103', status: 'pending', items: [] }).result;
    assert.equal(during.status, 'applied');
    link.restore();
    await order('o-2').waitFor({ state: 'detached', timeout: 20000 });
    await order('o-3').waitFor({ timeout: 20000 });
    await page.waitForSelector('#state.live');

    // The server dies; a bump is kept (localStorage) and shown as queued, also after a reload.
    await server.kill9();
    await page.waitForSelector('#state.offline');
    await order('o-3').locator('button.bump').click();
    await page.waitForSelector('article.order[data-order="o-3"] button.bump:has-text("queued offline")');
    assert.equal((await page.evaluate(() => Object.keys(localStorage))).length, 1);
    await page.reload();
    await page.waitForSelector('#pending:has-text("1 bump(s) queued offline")');

    // Back: the bump is sent once and the order stays off the screen; new orders still arrive.
    await server.start();
    await page.waitForSelector('#state.live', { timeout: 20000 });
    await pos.ready();
    await pos.change('orders', 'o-4', 'created', { order_number: '104', status: 'pending', items: [] }).result;
    await order('o-4').waitFor({ timeout: 20000 });
    assert.equal(await order('o-3').count(), 0);

    const admin = await server.adminToken();
    const snap = await server.snapshot(R, admin);
    const status = Object.fromEntries(snap.data.orders!.map((o) => [o.id, o.status]));
    assert.deepEqual(status, { 'o-1': 'ready', 'o-2': 'ready', 'o-3': 'ready', 'o-4': 'pending' });
    const bumps = (await server.log(R, admin)).filter((e) => e.action === 'status_changed');
    assert.deepEqual(bumps.map((e) => [e.data.id, e.device_id]), [
      ['o-1', 'kds-1'],
      ['o-2', 'kds-1'],
      ['o-3', 'kds-1'],
    ]);
    await waitFor(async () => (await page.evaluate(() => localStorage.length)) === 0, 'the outbox emptied');
    assert.deepEqual(unexpectedErrors(errors), []);
  });
});
