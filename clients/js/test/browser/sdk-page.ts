// The SDK bundled for the browser (esbuild, platform=browser: no Node module may leak in), run in
// a real Chromium page (Debian's /usr/bin/chromium driven by playwright-core) against the real
// server: the browser's own WebSocket with the token in Sec-WebSocket-Protocol, REST across
// origins (CORS), the outbox in localStorage across a page reload, and a kill -9 of the server.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

import { build } from 'esbuild';
import type { BrowserContext, Page } from 'playwright-core';

import { PossyncClient } from '@possync/client/node';

import { openPage, unexpectedErrors } from '../support/browser.js';
import { assertSameState, makeClient, waitForSeq } from '../support/clients.js';
import { TestServer, sleep, waitFor } from '../support/server.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const PACKAGE_ROOT = resolve(HERE, '..', '..', '..');

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>possync browser test</title>
<script type="module">
  import * as possync from '/possync.js';
  window.possync = possync;
  window.possyncLoaded = true;
</script>`;

describe('the SDK in Chromium', () => {
  let server: TestServer;
  let web: Server;
  let webUrl: string;
  let context: BrowserContext;
  let page: Page;
  let bundleBytes = 0;
  const nodeClients: PossyncClient[] = [];
  let consoleErrors: string[] = [];

  before(async () => {
    // The bundle: the package's browser entry and everything it imports, in one ES module.
    const out = await build({
      entryPoints: [join(PACKAGE_ROOT, 'dist', 'index.js')],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2020',
      write: false,
      minify: true,
      logLevel: 'silent',
    });
    const bundle = out.outputFiles[0]!.text;
    bundleBytes = Buffer.byteLength(bundle);
    web = createServer((req, res) => {
      if (req.url === '/possync.js') {
        res.writeHead(200, { 'Content-Type': 'text/javascript' });
        res.end(bundle);
      } else if (req.url === '/' || req.url === '/index.html') {
        res.writeHead(200, { 'Content-Type': 'text/html' });
        res.end(PAGE);
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    const addr = web.address();
    webUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;

    server = await new TestServer().start();

    ({ context, page, errors: consoleErrors } = await openPage());
  });

  after(async () => {
    for (const c of nodeClients) await c.close();
    await context?.close();
    await new Promise((r) => web?.close(r));
    await server?.dispose();
  });

  async function load(): Promise<void> {
    await page.goto(`${webUrl}/`);
    await page.waitForFunction(() => (window as any).possyncLoaded === true, undefined, { timeout: 20000 });
  }

  it('syncs with the real server: outbox in localStorage across a reload, kill -9 of the server, state equal to the snapshot', async () => {
    assert.ok(bundleBytes > 1000 && bundleBytes < 100000, `bundle size ${bundleBytes}`);
    const r = 'r-browser';
    const browserToken = await server.token(r, 'tablet-1', 'manager');
    const admin = await server.adminToken();
    await load();

    // 1. Offline: changes go into localStorage; the page is then reloaded.
    const offline = await page.evaluate(
      async ({ url, token }) => {
        const { PossyncClient, WebStorage } = (window as any).possync;
        const c = new PossyncClient({ url, token, storage: new WebStorage() });
        const ids: string[] = [];
        for (let i = 0; i < 5; i++) ids.push(c.change('orders', `b-${i}`, 'created', { from: 'browser', i, price: 2.5 * i }).changeId);
        await c.close();
        return { ids, keys: Object.keys(localStorage), hasWebSocket: typeof WebSocket === 'function' };
      },
      { url: server.url, token: browserToken },
    );
    assert.deepEqual(offline.keys, [`possync:outbox:${r}:tablet-1`]);
    assert.ok(offline.hasWebSocket);
    await page.reload();
    await page.waitForFunction(() => (window as any).possyncLoaded === true);

    // 2. After the reload: the stored changes are sent once connected.
    const resumed = await page.evaluate(
      async ({ url, token }) => {
        const w = window as any;
        const { PossyncClient } = w.possync;
        const c = new PossyncClient({ url, token, storage: localStorage, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } });
        w.client = c;
        w.seqs = [];
        w.states = [];
        w.results = [];
        c.on('change', (e: any) => {
          if (e.source !== 'snapshot') w.seqs.push(e.seq);
        });
        c.on('state', (e: any) => w.states.push(e.state));
        await c.loaded();
        const pending = c.pendingChanges().map((e: any) => e.changeId);
        const results = pending.map((id: string) => c.resultOf(id));
        c.connect();
        await c.ready(20000);
        const settled = await Promise.all(results);
        return { pending, statuses: settled.map((x: any) => x.status), protocol: 'ok' };
      },
      { url: server.url, token: browserToken },
    );
    assert.deepEqual(resumed.pending, offline.ids);
    assert.deepEqual(resumed.statuses, ['applied', 'applied', 'applied', 'applied', 'applied']);

    // 3. The browser and a Node device write at the same time; the server is killed and restarted.
    const node = makeClient(server, await server.token(r, 'pos-node', 'manager'));
    nodeClients.push(node);
    node.connect();
    await node.ready();
    const browserWrites = page.evaluate(async () => {
      const w = window as any;
      for (let i = 0; i < 60; i++) {
        const p = w.client.change('tables', `t-${i % 7}`, i % 9 === 0 ? 'deleted' : 'occupied', { guests: i, by: 'browser', extra: i % 2 ? null : { n: i } });
        w.results.push(p.result);
        await new Promise((r) => setTimeout(r, 10));
      }
    });
    const nodeResults: Array<Promise<unknown>> = [];
    for (let i = 0; i < 60; i++) {
      nodeResults.push(node.change('tables', `t-${i % 5}`, 'reserved', { name: `n${i}`, guests: null }).result);
      if (i === 25) {
        await server.kill9();
        await sleep(200);
        await server.start();
      }
      await sleep(10);
    }
    await browserWrites;
    await Promise.all(nodeResults);
    const browserStatuses: string[] = await page.evaluate(async () =>
      (await Promise.all((window as any).results)).map((x: any) => x.status),
    );
    assert.equal(browserStatuses.length, 60);
    for (const s of browserStatuses) assert.ok(s === 'applied' || s === 'duplicate', s);

    const snap = await server.snapshot(r, admin);
    await waitFor(
      async () => (await page.evaluate(() => (window as any).client.seq)) === snap.seq,
      `the browser at seq ${snap.seq}`,
    );
    await waitForSeq(node, snap.seq);
    const inBrowser = await page.evaluate(() => {
      const w = window as any;
      return { snapshot: w.client.snapshot(), seqs: w.seqs, states: w.states, state: w.client.connectionState };
    });
    assertSameState(inBrowser.snapshot, snap, 'browser');
    assertSameState(node.snapshot(), snap, 'node');
    // every seq applied once, in order, in the browser
    assert.deepEqual(inBrowser.seqs, Array.from({ length: snap.seq }, (_, i) => i + 1));
    assert.ok(inBrowser.states.includes('offline'), 'the kill -9 was noticed');
    assert.equal(inBrowser.state, 'live');
    const log = await server.log(r, admin);
    assert.equal(new Set(log.map((e) => e.change_id)).size, log.length);
    assert.equal(log.length, 5 + 60 + 60);
    assert.deepEqual(
      await page.evaluate(() => Object.keys(localStorage)),
      [],
      'the outbox key is removed once empty',
    );
    assert.deepEqual(unexpectedErrors(consoleErrors), []);
  });
});
