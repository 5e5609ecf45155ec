// The SDK against the real possync-server: connecting, changes in both directions, the outbox's
// answers (applied, duplicate, conflict, rejected), the local state against the server's snapshot.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import type { ChangeEvent, ConnectionState, PossyncClient, RejectionEvent } from '@possync/client/node';

import { EventReplica, assertSameState, makeClient, waitForSeq } from '../support/clients.js';
import { TestServer, waitFor } from '../support/server.js';

describe('basics', () => {
  let server: TestServer;
  let admin: string;
  const clients: PossyncClient[] = [];
  const track = (c: PossyncClient) => {
    clients.push(c);
    return c;
  };

  before(async () => {
    server = await new TestServer().start();
    admin = await server.adminToken();
  });

  after(async () => {
    for (const c of clients) await c.close();
    await server.dispose();
  });

  it('two devices: changes reach the other device once, with the record before and after', async () => {
    const r = 'r-two';
    const a = track(makeClient(server, await server.token(r, 'pos-a')));
    const b = track(makeClient(server, await server.token(r, 'pos-b')));
    const states: ConnectionState[] = [];
    a.on('state', (e) => states.push(e.state));
    const replicaA = new EventReplica(a);
    const replicaB = new EventReplica(b);
    const eventsB: ChangeEvent[] = [];
    b.on('change', (e) => eventsB.push(e));
    a.connect();
    b.connect();
    await Promise.all([a.ready(), b.ready()]);
    assert.deepEqual(states, ['connecting', 'catching_up', 'live']);

    const first = a.change('orders', 'o-1', 'created', { status: 'open', total_amount: 25.5, items: [{ sku: 'x', qty: 2 }], note: 'window' });
    assert.match(first.changeId, /^pos-a\./);
    assert.deepEqual(await first.result, { status: 'applied', changeId: first.changeId, seq: 1 });
    await waitForSeq(b, 1);
    assert.equal(eventsB.length, 1);
    assert.equal(eventsB[0]!.before, null);
    assert.equal(eventsB[0]!.source, 'remote');
    assert.equal(eventsB[0]!.changeId, first.changeId);
    assert.equal(eventsB[0]!.deviceId, 'pos-a');
    assert.deepEqual(eventsB[0]!.after, {
      status: 'open',
      total_amount: 25.5,
      items: [{ sku: 'x', qty: 2 }],
      note: 'window',
      id: 'o-1',
      version: 1,
      updated_at: eventsB[0]!.timestamp,
    });

    const second = b.change('orders', 'o-1', 'status_changed', { status: 'paid', note: null, tip: 1.25 });
    assert.equal((await second.result).status, 'applied');
    await waitForSeq(a, 2);
    // the author's own change reaches its state too, in seq order
    await waitForSeq(b, 2);
    const e2 = eventsB[1]!;
    assert.equal(e2.source, 'own');
    assert.equal(e2.before?.status, 'open');
    assert.deepEqual(Object.keys(e2.after!).sort(), ['id', 'items', 'status', 'tip', 'total_amount', 'updated_at', 'version']);

    const del = a.change('orders', 'o-1', 'deleted', {});
    assert.equal((await del.result).status, 'applied');
    a.change('tables', 7, 'occupied', { guests: 4 });
    await waitForSeq(a, 4);
    await waitForSeq(b, 4);
    assert.equal(b.get('orders', 'o-1'), undefined);
    assert.equal(b.get('tables', '7')?.guests, 4);

    const snap = await server.snapshot(r, admin);
    assertSameState(a.snapshot(), snap, 'a');
    assertSameState(b.snapshot(), snap, 'b');
    assert.deepEqual(replicaA.problems, []);
    assert.deepEqual(replicaB.problems, []);
    assert.deepEqual(replicaB.data(), snap.data);
    assert.deepEqual(replicaB.seqs, [1, 2, 3, 4]);
    assert.equal(a.pendingChanges().length, 0);
  });

  it('a device that joins later loads the snapshot (one change event per record), then goes live', async () => {
    const r = 'r-late';
    const a = track(makeClient(server, await server.token(r, 'mgr-a', 'manager')));
    a.connect();
    await a.ready();
    for (let i = 0; i < 5; i++) a.change('menu_items', `m-${i}`, 'created', { name: `dish ${i}`, price: 9 + i / 4 });
    a.change('menu_items', 'm-0', 'deleted', {});
    await waitForSeq(a, 6);
    const late = track(makeClient(server, await server.token(r, 'kds-1', 'kds')));
    const replica = new EventReplica(late);
    const snapshots: Array<{ seq: number; reason: string }> = [];
    late.on('snapshot', (e) => snapshots.push(e));
    late.connect();
    await late.ready();
    assert.deepEqual(snapshots, [{ seq: 6, reason: 'initial' }]);
    assert.equal(replica.records.size, 4);
    a.change('menu_items', 'm-1', 'availability_changed', { available: false });
    await waitForSeq(late, 7);
    const snap = await server.snapshot(r, admin);
    assertSameState(late.snapshot(), snap, 'late');
    assert.deepEqual(replica.data(), snap.data);
    assert.deepEqual(replica.problems, []);
  });

  it('every token transport: Sec-WebSocket-Protocol, ?token=, Authorization header', async () => {
    const r = 'r-transport';
    for (const tokenTransport of ['protocol', 'query', 'header'] as const) {
      const c = track(makeClient(server, await server.token(r, `dev-${tokenTransport}`), { tokenTransport }));
      c.connect();
      await c.ready();
      const res = await c.change('tables', `t-${tokenTransport}`, 'occupied', { guests: 2 }).result;
      assert.equal(res.status, 'applied', tokenTransport);
      await c.close();
    }
    // a wrong token never gets in
    const bad = track(makeClient(server, (await server.token(r, 'dev-x')).slice(0, -4) + 'AAAA'));
    const errors: string[] = [];
    bad.on('error', (e) => errors.push(e.message));
    bad.connect();
    await waitFor(() => errors.some((m) => /401/.test(m)), 'a 401 reported');
    assert.notEqual(bad.connectionState, 'live');
    await bad.close();
  });

  it('conflict: reported with the server record; the changes after it are not held back', async () => {
    const r = 'r-conflict';
    const a = track(makeClient(server, await server.token(r, 'pos-a')));
    const b = track(makeClient(server, await server.token(r, 'pos-b')));
    a.connect();
    b.connect();
    await Promise.all([a.ready(), b.ready()]);
    const created = await a.change('orders', 'o-7', 'created', { status: 'open' }, { baseVersion: 0 }).result;
    assert.equal(created.status, 'applied');
    await waitForSeq(b, 1);
    const version = b.get('orders', 'o-7')!.version;
    // a moves the record on; b still edits on top of version 1
    await a.change('orders', 'o-7', 'updated', { status: 'preparing' }).result;
    const conflicts: RejectionEvent[] = [];
    b.on('conflict', (e) => conflicts.push(e));
    const stale = b.change('orders', 'o-7', 'updated', { status: 'cancelled' }, { baseVersion: version });
    const next = b.change('orders', 'o-8', 'created', { status: 'open' });
    const res = await stale.result;
    assert.equal(res.status, 'rejected');
    if (res.status === 'rejected') {
      assert.equal(res.error.code, 'conflict');
      assert.equal(res.current?.status, 'preparing');
      assert.equal(res.current?.version, 2);
    }
    assert.equal((await next.result).status, 'applied');
    assert.equal(conflicts.length, 1);
    assert.equal(conflicts[0]!.change.changeId, stale.changeId);
    assert.equal(conflicts[0]!.current?.status, 'preparing');
    // create-only when absent: a second baseVersion 0 conflicts
    const again = await a.change('orders', 'o-7', 'created', {}, { baseVersion: 0 }).result;
    assert.equal(again.status, 'rejected');
    await waitForSeq(b, 3);
    assert.equal(b.get('orders', 'o-7')!.status, 'preparing');
    assertSameState(b.snapshot(), await server.snapshot(r, admin), 'b');
  });

  it('rejected: a change the role may not make, or with an unknown action, is reported and dropped', async () => {
    const r = 'r-rejected';
    const kds = track(makeClient(server, await server.token(r, 'kds-1', 'kds')));
    const rejections: RejectionEvent[] = [];
    kds.on('rejected', (e) => rejections.push(e));
    kds.connect();
    await kds.ready();
    const first = await kds.change('orders', 'o-1', 'status_changed', { status: 'preparing' }).result;
    assert.equal(first.status, 'applied');
    await waitForSeq(kds, 1);
    const forbidden = kds.change('menu_items', 'm-1', 'created', { name: 'x', price: 1 });
    const unknown = kds.change('orders', 'o-1', 'teleported', { x: 1 });
    const fine = kds.change('orders', 'o-1', 'status_changed', { status: 'ready' });
    const [f, u, ok] = await Promise.all([forbidden.result, unknown.result, fine.result]);
    assert.equal(f.status, 'rejected');
    assert.equal(u.status, 'rejected');
    if (f.status === 'rejected') assert.equal(f.error.code, 'forbidden');
    if (u.status === 'rejected') assert.equal(u.error.code, 'unknown_action');
    assert.equal(ok.status, 'applied');
    assert.deepEqual(rejections.map((e) => e.error.code).sort(), ['forbidden', 'unknown_action']);
    assert.equal(kds.pendingChanges().length, 0);
    const unknownEvent = rejections.find((e) => e.error.code === 'unknown_action')!;
    // the current record of the local state is reported
    assert.equal(unknownEvent.current?.status, 'preparing');
    assert.equal(rejections.find((e) => e.error.code === 'forbidden')!.current, null);
    await waitForSeq(kds, 2);
    assert.equal(kds.get('orders', 'o-1')?.status, 'ready');
  });

  it('duplicate counts as success and is not applied twice', async () => {
    const r = 'r-dup';
    const token = await server.token(r, 'pos-a');
    // The same change id committed before over REST (as if this device's earlier run sent it).
    const post = await server.request('POST', '/api/sync', token, {
      restaurant_id: r,
      device_id: 'pos-a',
      changes: [{ type: 'data_change', data_type: 'orders', action: 'created', data: { id: 'o-1', n: 1 }, change_id: 'fixed-1' }],
    });
    assert.equal(post.status, 200);
    const a = track(makeClient(server, token));
    const events: ChangeEvent[] = [];
    a.on('change', (e) => events.push(e));
    a.connect();
    await a.ready();
    const res = await a.change('orders', 'o-1', 'created', { n: 2 }, { changeId: 'fixed-1' }).result;
    assert.deepEqual(res, { status: 'duplicate', changeId: 'fixed-1', seq: 1 });
    const res2 = await a.change('orders', 'o-1', 'updated', { m: 3 }).result;
    assert.equal(res2.status, 'applied');
    await waitForSeq(a, 2);
    assert.equal(a.get('orders', 'o-1')!.n, 1);
    assert.equal(events.filter((e) => e.source !== 'snapshot').length, 1);
    assertSameState(a.snapshot(), await server.snapshot(r, admin), 'a');
  });

  it("own changes are applied as the server committed them (commit time, hashed PIN)", async () => {
    const r = 'r-own';
    const m = track(makeClient(server, await server.token(r, 'mgr-1', 'manager')));
    m.connect();
    await m.ready();
    const res = await m.change('users', 'u-1', 'created', { name: 'Anna', pin: '1234', role: 'waiter' }).result;
    assert.equal(res.status, 'applied');
    await waitForSeq(m, 1);
    const user = m.get('users', 'u-1')!;
    assert.notEqual(user.pin, '1234');
    assert.match(String(user.pin), /argon2id/);
    assertSameState(m.snapshot(), await server.snapshot(r, admin), 'manager');
  });

  it('a closed client sends nothing; changes made before connect() wait in the outbox', async () => {
    const r = 'r-offline';
    const a = track(makeClient(server, await server.token(r, 'pos-a')));
    const pending = [1, 2, 3].map((i) => a.change('tables', `t-${i}`, 'occupied', { guests: i }));
    assert.equal(a.connectionState, 'offline');
    await a.loaded();
    assert.equal(a.pendingChanges().length, 3);
    a.connect();
    const results = await Promise.all(pending.map((p) => p.result));
    assert.deepEqual(results.map((x) => x.status === 'applied' && x.seq), [1, 2, 3]);
    await waitForSeq(a, 3);
    assert.throws(() => a.change('nope' as never, 'x', 'created', {}), /unknown data type/);
    assert.throws(() => a.change('orders', '', 'created', {}), /recordId/);
    assert.throws(() => a.change('orders', 'o', 'created', [] as never), /JSON object/);
  });

  it('resumes from a saved state (initialState): since = its seq, no snapshot reload', async () => {
    const r = 'r-saved';
    const token = await server.token(r, 'pos-a');
    const a = track(makeClient(server, token));
    a.connect();
    await a.ready();
    for (let i = 0; i < 3; i++) a.change('orders', `o-${i}`, 'created', { i });
    await waitForSeq(a, 3);
    const saved = JSON.parse(JSON.stringify(a.snapshot()));
    await a.close();
    const b = track(makeClient(server, await server.token(r, 'pos-b')));
    b.connect();
    await b.ready();
    await b.change('orders', 'o-1', 'deleted', {}).result;
    await b.change('orders', 'o-2', 'updated', { j: 1 }).result;
    const again = track(makeClient(server, token, { initialState: saved }));
    const events: ChangeEvent[] = [];
    const snapshots: unknown[] = [];
    again.on('change', (e) => events.push(e));
    again.on('snapshot', (e) => snapshots.push(e));
    assert.equal(again.seq, 3);
    again.connect();
    await again.ready();
    await waitForSeq(again, 5);
    assert.deepEqual(snapshots, []);
    assert.deepEqual(events.map((e) => [e.seq, e.source, e.action]), [
      [4, 'remote', 'deleted'],
      [5, 'remote', 'updated'],
    ]);
    assertSameState(again.snapshot(), await server.snapshot(r, admin), 'again');
  });

  it('setUser: names the author of the changes that follow', async () => {
    const r = 'r-user';
    const c = track(makeClient(server, await server.token(r, 'pos-a'), { userId: 'u-anna' }));
    c.connect();
    await c.ready();
    await c.change('orders', 'o-1', 'created', {}).result;
    c.setUser('u-ben');
    await c.change('orders', 'o-1', 'updated', { x: 1 }).result;
    c.setUser(null);
    await c.change('orders', 'o-1', 'updated', { x: 2 }).result;
    const log = await server.log(r, admin);
    assert.deepEqual(log.map((e) => e.user_id), ['u-anna', 'u-ben', null]);
  });

  it('refuses a change larger than the server accepts, instead of sending it forever', async () => {
    const c = track(makeClient(server, await server.token('r-big', 'pos-a'), { maxMessageBytes: 2048 }));
    assert.throws(() => c.change('orders', 'o-1', 'created', { blob: 'x'.repeat(3000) }), RangeError);
    assert.equal(c.pendingChanges().length, 0);
  });

  it('two connections of one device (two tabs): each gets the other one\'s changes (read from the log)', async () => {
    const r = 'r-tabs';
    const token = await server.token(r, 'pos-a');
    const tab1 = track(makeClient(server, token, { storageKey: 'tab1', gapFetchDelayMs: 200 }));
    const tab2 = track(makeClient(server, token, { storageKey: 'tab2', gapFetchDelayMs: 200 }));
    const replica = new EventReplica(tab2);
    tab1.connect();
    tab2.connect();
    await Promise.all([tab1.ready(), tab2.ready()]);
    // The server forwards nothing of pos-a's changes to pos-a's connections: tab2 sees a gap
    // only once a later change arrives, or never if none does; tab1's changes reach it through
    // the log when it writes itself.
    await tab1.change('orders', 'o-1', 'created', { by: 'tab1' }).result;
    await tab2.change('orders', 'o-2', 'created', { by: 'tab2' }).result;
    await waitForSeq(tab2, 2);
    assert.equal(tab2.get('orders', 'o-1')?.by, 'tab1');
    const other = track(makeClient(server, await server.token(r, 'pos-b')));
    other.connect();
    await other.ready();
    await tab1.change('orders', 'o-3', 'created', { by: 'tab1' }).result;
    await other.change('orders', 'o-4', 'created', { by: 'other' }).result;
    await waitForSeq(tab2, 4);
    await waitForSeq(tab1, 4);
    const snap = await server.snapshot(r, admin);
    assertSameState(tab1.snapshot(), snap, 'tab1');
    assertSameState(tab2.snapshot(), snap, 'tab2');
    assert.deepEqual(replica.seqs, [1, 2, 3, 4]);
  });
});
