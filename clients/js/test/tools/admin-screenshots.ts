// Takes the screenshots of docs/admin.md: a real server with a few devices writing, the console
// the binary serves, Chromium at 1280x800 and a tablet's 820x1180. Run after ./run-tests (which
// builds this file):
//
//   node build/test/tools/admin-screenshots.js ../../docs
//
// Writes admin-signin.png, admin-restaurant.png and admin-tablet.png into that directory.
import { join, resolve } from 'node:path';

import type { PossyncClient } from '@possync/client/node';

import { closeSharedBrowser, openPage } from '../support/browser.js';
import { makeClient } from '../support/clients.js';
import { TestServer, sleep } from '../support/server.js';

async function main(): Promise<void> {
  const outDir = resolve(process.argv[2] ?? '.');
  const server = await new TestServer().start();
  const clients: PossyncClient[] = [];
  try {
    const connect = async (restaurant: string, device: string, role: string, userId?: string) => {
      const c = makeClient(server, await server.token(restaurant, device, role), userId ? { userId } : {});
      clients.push(c);
      c.connect();
      await c.ready();
      return c;
    };
    const pos1 = await connect('bistro-12', 'pos-1', 'pos', 'u-anna');
    const pos2 = await connect('bistro-12', 'pos-2', 'pos', 'u-ben');
    await connect('bistro-12', 'kds-1', 'kds');
    await connect('cafe-3', 'pos-1', 'pos', 'u-cleo');
    await connect('harbour-7', 'tablet-1', 'manager', 'u-dan');
    for (let i = 1; i <= 4; i++) {
      await pos1.change('tables', `t-${i}`, 'occupied', { seats: 2 + i, guests: i + 1 }).result;
    }
    await pos2.change('menu_items', 'm-soup', 'created', { name: 'Tomato soup', category: 'starters' }).result;

    const { context, page } = await openPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(`${server.url}/admin/`);
    await page.fill('#token', 'eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoicG9zIiwicmVzdGF1cmFudF9pZCI6ImJpc3Ryby0xMiJ9.x');
    await page.click('#signin-button');
    await page.waitForSelector('#signin-error:not([hidden])');
    await page.screenshot({ path: join(outDir, 'admin-signin.png') });

    await page.fill('#token', await server.adminToken());
    await page.click('#signin-button');
    await page.click('#restaurants tr[data-restaurant="bistro-12"]', { timeout: 10000 });
    await page.waitForSelector('#r-state.live');
    // Some traffic for about 20 seconds while the charts fill (a point every 2 s).
    // Five orders, each through the default life cycle (docs/rules.default.json).
    const statuses = ['pending', 'preparing', 'ready', 'served', 'completed'];
    for (let i = 0; i < 25; i++) {
      const c = i % 2 ? pos1 : pos2;
      await c.change('orders', `o-${100 + (i % 5)}`, i < 5 ? 'created' : 'status_changed', {
        status: statuses[Math.floor(i / 5)],
        table: String(1 + (i % 4)),
        items: [{ name: 'Tomato soup', quantity: 1 + (i % 2) }],
      }).result;
      await sleep(800);
    }
    await page.waitForSelector('#chart-commit svg path.line');
    await page.screenshot({ path: join(outDir, 'admin-restaurant.png') });

    await page.setViewportSize({ width: 820, height: 1180 });
    await sleep(300);
    await page.screenshot({ path: join(outDir, 'admin-tablet.png') });
    await context.close();
  } finally {
    for (const c of clients) await c.close();
    await closeSharedBrowser();
    await server.dispose();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
