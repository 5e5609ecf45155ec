// Reconnects, reset_required, token refresh, a dead server, and an outbox that outlives the client.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { FileStorage, type ChangeResult, type PossyncClient, type StateChangeEvent } from '@possync/client/node';

import { EventReplica, assertSameState, makeClient, waitForSeq } from '../support/clients.js';
import { TestServer, sleep, waitFor } from '../support/server.js';

const servers: TestServer[] = [];
const clients: PossyncClient[] = [];
async function startServer(options: ConstructorParameters<typeof TestServer>[0] = {}): Promise<TestServer> {
  const s = new TestServer(options);
  servers.push(s);
  return s.start();
}
function track<T extends PossyncClient>(c: T): T {
  clients.push(c);
  return c;
}

after(async () => {
  for (const c of clients) await c.close();
  for (const s of servers) await s.dispose();
});

describe('resilience', () => {
  it('reset_required (history pruned while offline): reloads the snapshot and resumes from its seq', async () => {
    const server = await startServer({ extraArgs: ['--retain-changes', '16'] });
    const admin = await server.adminToken();
    const r = 'r-pruned';
    const writer = track(makeClient(server, await server.token(r, 'pos-w')));
    const reader = track(makeClient(server, await server.token(r, 'pos-r')));
    const replica = new EventReplica(reader);
    const snapshots: string[] = [];
    reader.on('snapshot', (e) => snapshots.push(e.reason));
    writer.connect();
    reader.connect();
    await Promise.all([writer.ready(), reader.ready()]);
    for (let i = 0; i < 10; i++) writer.change('orders', `o-${i % 4}`, 'updated', { n: i, [`f${i}`]: i });
    await waitForSeq(reader, 10);
    reader.disconnect();
    // 60 more changes, deletions included: far beyond the 16 retained
    const results: Array<Promise<ChangeResult>> = [];
    for (let i = 10; i < 70; i++) {
      const action = i % 7 === 0 ? 'deleted' : 'updated';
      results.push(writer.change('orders', `o-${i % 5}`, action, { n: i, [`f${i % 3}`]: null }).result);
    }
    await Promise.all(results);
    // the reader also made a change while offline: it is sent after the reset
    const offline = reader.change('tables', 't-1', 'occupied', { guests: 3 });
    reader.connect();
    assert.equal((await offline.result).status, 'applied');
    await waitForSeq(reader, 71);
    await reader.ready();
    assert.deepEqual(snapshots, ['initial', 'reset']);
    const snap = await server.snapshot(r, admin);
    assertSameState(reader.snapshot(), snap, 'reader');
    assert.deepEqual(replica.problems, []);
    assert.deepEqual(replica.data(), snap.data);
  });

  it('reset_required (the server lost its data, since ahead of the log): starts over from the new log', async () => {
    const server = await startServer({ store: 'memory' });
    const r = 'r-ahead';
    const a = track(makeClient(server, await server.token(r, 'pos-a')));
    const replica = new EventReplica(a);
    a.connect();
    await a.ready();
    for (let i = 0; i < 5; i++) a.change('tables', `t-${i}`, 'occupied', { guests: i });
    await waitForSeq(a, 5);
    await server.restart(); // memory store: everything is gone
    const admin = await server.adminToken();
    const other = track(makeClient(server, await server.token(r, 'pos-b')));
    other.connect();
    await other.ready();
    await other.change('tables', 't-9', 'reserved', { name: 'Ann' }).result;
    await waitFor(() => a.connectionState === 'live' && a.seq === 1 && a.get('tables', 't-9') !== undefined, 'a reset to the new log');
    assert.equal(a.list('tables').length, 1);
    assertSameState(a.snapshot(), await server.snapshot(r, admin), 'a');
    assert.deepEqual(replica.problems, []);
    assert.equal(replica.records.size, 1);
  });

  it('refreshes the token before it expires (auth message), and recovers from an expired one (4001)', async () => {
    const server = await startServer();
    const r = 'r-token';
    let issued = 0;
    let failNext = false;
    const provider = async () => {
      issued++;
      if (failNext) {
        failNext = false;
        throw new Error('token service unavailable');
      }
      return server.signToken(r, 'pos-t', 'pos', 3);
    };
    const history: string[] = [];
    const t0 = Date.now();
    const recordingFetch = async (url: string, init?: any) => {
      const res = await fetch(url, init);
      history.push(`${Date.now() - t0} ${init?.method} ${url.replace(server.url, '')} -> ${res.status} (token exp ${JSON.parse(Buffer.from(String(init?.headers?.Authorization).split('.')[1]!, 'base64url').toString()).exp})`);
      return res;
    };
    const c = track(makeClient(server, provider, { restaurantId: r, deviceId: 'pos-t', fetch: recordingFetch }));
    const closes: StateChangeEvent[] = [];
    c.on('state', (e) => {
      if (e.state === 'offline') closes.push(e);
    });
    const auths: string[] = [];
    c.on('auth', (e) => auths.push(e.expiresAt));
    c.on('auth', (e) => history.push(`${Date.now() - t0} auth_ok ${e.expiresAt}`));
    c.on('state', (e) => history.push(`${Date.now() - t0} ${e.state} ${e.code ?? ''}`));
    c.on('error', (e) => history.push(`${Date.now() - t0} error ${e.code} ${e.message}`));
    c.connect();
    await c.ready();
    // two refreshes (at ~2.4 s and ~4.8 s), no disconnect
    await waitFor(() => auths.length >= 2, 'two auth_ok', 10000);
    assert.equal(closes.length, 0);
    assert.equal((await c.change('orders', 'o-1', 'created', {}).result).status, 'applied');
    // the next refresh fails: the server closes at expiry with 4001, the client reconnects with a new token
    failNext = true;
    history.push(`${Date.now() - t0} failNext`);
    await waitFor(() => closes.some((e) => e.code === 4001), 'close 4001', 10000).catch((e) => {
      throw new Error(`${(e as Error).message}\n${history.join('\n')}`);
    });
    await c.ready(10000);
    assert.ok(issued >= 4);
    assert.equal((await c.change('orders', 'o-2', 'created', {}).result).status, 'applied');
  });

  it('a dead server (SIGSTOP) is noticed by the heartbeat; changes made meanwhile are applied once after it resumes', async () => {
    const server = await startServer();
    const admin = await server.adminToken();
    const r = 'r-stop';
    const a = track(
      makeClient(server, await server.token(r, 'pos-a'), { heartbeatIntervalMs: 200, heartbeatTimeoutMs: 600, connectTimeoutMs: 800 }),
    );
    const b = track(makeClient(server, await server.token(r, 'pos-b')));
    a.connect();
    b.connect();
    await Promise.all([a.ready(), b.ready()]);
    // heartbeats keep last_seen fresh while the device is otherwise silent
    await sleep(2500);
    const status = await server.request('GET', `/api/restaurants/${r}/status`, admin);
    const seen = status.body.connected_devices.find((d: { device_id: string }) => d.device_id === 'pos-a');
    assert.ok(Date.now() - Date.parse(seen.last_seen) < 1200, `last_seen ${seen.last_seen}`);

    server.pause();
    try {
      const pending = [1, 2, 3].map((i) => a.change('orders', `o-${i}`, 'created', { i }));
      await waitFor(() => a.connectionState === 'offline' || a.connectionState === 'connecting', 'a notices the dead server', 5000);
      server.resume();
      // Sent before the client noticed: the stopped server may still commit them when it resumes;
      // then the copies sent after the reconnect are duplicates. Either way: committed once.
      const results = await Promise.all(pending.map((p) => p.result));
      for (const x of results) assert.ok(x.status === 'applied' || x.status === 'duplicate', x.status);
    } finally {
      server.resume();
    }
    await waitForSeq(a, 3);
    await waitForSeq(b, 3);
    const snap = await server.snapshot(r, admin);
    assertSameState(a.snapshot(), snap, 'a');
    assertSameState(b.snapshot(), snap, 'b');
    const log = await server.log(r, admin);
    assert.equal(log.length, 3);
    assert.equal(new Set(log.map((e) => e.change_id)).size, 3);
  });

  it('a server that accepts TCP but never answers the upgrade: connect timeouts, then live once it answers', async () => {
    const server = await startServer();
    const r = 'r-hang';
    const token = await server.token(r, 'pos-h');
    const c = track(makeClient(server, token, { connectTimeoutMs: 300, initialState: { seq: 0, data: { orders: [], menu_items: [], inventory: [], tables: [], users: [], printers: [] } } }));
    const codes: string[] = [];
    c.on('error', (e) => codes.push(e.code));
    server.pause();
    try {
      c.connect();
      const pending = c.change('orders', 'o-1', 'created', {});
      await waitFor(() => codes.filter((x) => x === 'connect_timeout').length >= 2, 'two connect timeouts', 10000);
      server.resume();
      await c.ready(10000);
      assert.equal((await pending.result).status, 'applied');
    } finally {
      server.resume();
    }
  });

  it('the outbox in a file outlives the client; an operator disconnect (4002) is resumed', async () => {
    const server = await startServer();
    const admin = await server.adminToken();
    const dir = await mkdtemp(join(tmpdir(), 'possync-outbox-'));
    try {
      const r = 'r-file';
      const token = await server.token(r, 'pos-f');
      const first = makeClient(server, token, { storage: new FileStorage(dir) });
      const ids = [1, 2, 3].map((i) => first.change('orders', `o-${i}`, 'created', { i }).changeId);
      await first.close(); // never connected: the changes are only in the file
      const second = track(makeClient(server, token, { storage: new FileStorage(dir) }));
      await second.loaded();
      assert.deepEqual(second.pendingChanges().map((e) => e.changeId), ids);
      const results = ids.map((id) => second.resultOf(id)!);
      const replica = new EventReplica(second);
      const closes: Array<number | undefined> = [];
      second.on('state', (e) => {
        if (e.state === 'offline') closes.push(e.code);
      });
      second.connect();
      assert.deepEqual((await Promise.all(results)).map((x) => x.status), ['applied', 'applied', 'applied']);
      await waitForSeq(second, 3);

      const res = await server.request('POST', `/api/admin/restaurants/${r}/disconnect`, admin);
      assert.equal(res.body.disconnected, 1);
      await waitFor(() => closes.includes(4002), 'close 4002');
      const more = second.change('orders', 'o-4', 'created', { i: 4 });
      assert.equal((await more.result).status, 'applied');
      await second.ready();
      await waitForSeq(second, 4);
      assert.equal(second.pendingChanges().length, 0);
      const snap = await server.snapshot(r, admin);
      assertSameState(second.snapshot(), snap, 'second');
      assert.deepEqual(replica.seqs, [1, 2, 3, 4]);
      const log = await server.log(r, admin);
      assert.equal(log.length, 4);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
