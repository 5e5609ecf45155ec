// Two devices write a random workload while the server is killed with SIGKILL and restarted
// (twice), a client drops its connection, and an operator disconnects everyone. Afterwards every
// change is in the server's log exactly once, every device applied every seq exactly once in
// order, and every device's state equals the server's snapshot.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import {
  FileStorage,
  type ChangeResult,
  type DataType,
  type JsonObject,
  type JsonValue,
  type PossyncClient,
} from '@possync/client/node';

import { EventReplica, assertSameState, makeClient } from '../support/clients.js';
import { TestServer, sleep, waitFor } from '../support/server.js';

const ACTIONS: Record<DataType, { merge: string[]; remove: string[] }> = {
  orders: { merge: ['created', 'updated', 'status_changed', 'completed', 'upsert'], remove: ['deleted'] },
  menu_items: { merge: ['created', 'updated', 'availability_changed'], remove: ['deleted'] },
  inventory: { merge: ['stock_changed', 'item_added', 'low_stock_alert'], remove: ['item_removed'] },
  tables: { merge: ['occupied', 'available', 'reserved', 'cleaning'], remove: ['deleted'] },
  users: { merge: ['created', 'updated', 'role_changed'], remove: ['deleted'] },
  printers: { merge: ['added', 'configured', 'assignment_changed', 'status_changed'], remove: ['removed'] },
};
const TYPES = Object.keys(ACTIONS) as DataType[];

/** A small deterministic PRNG (mulberry32), so that a failure can be replayed with its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomValue(rnd: () => number, depth: number): JsonValue {
  const k = Math.floor(rnd() * (depth >= 3 ? 5 : 7));
  switch (k) {
    case 0:
      return null; // removes the member
    case 1:
      return Math.floor(rnd() * 400) / 4 - 20; // quarters: exact in binary and in any decimal form
    case 2:
      return ['open', 'paid', 'ready', 'ünïcödé ✓', ''][Math.floor(rnd() * 5)]!;
    case 3:
      return rnd() < 0.5;
    case 4:
      return [Math.floor(rnd() * 10), { q: Math.floor(rnd() * 3) }, 'x'];
    default: {
      const o: JsonObject = {};
      const n = 1 + Math.floor(rnd() * 3);
      for (let i = 0; i < n; i++) o[`k${Math.floor(rnd() * 4)}`] = randomValue(rnd, depth + 1);
      return o;
    }
  }
}

describe('chaos', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('kill -9 + restart mid-stream while two devices write: every change once, every state equals the snapshot', async () => {
    const seed = Number(process.env.POSSYNC_CHAOS_SEED ?? Date.now() % 100000);
    const perWriter = Number(process.env.POSSYNC_CHAOS_CHANGES ?? 250);
    const server = new TestServer();
    cleanups.push(() => server.dispose());
    await server.start();
    const r = 'r-chaos';
    const dirs = [await mkdtemp(join(tmpdir(), 'possync-a-')), await mkdtemp(join(tmpdir(), 'possync-b-'))];
    cleanups.push(async () => {
      for (const d of dirs) await rm(d, { recursive: true, force: true });
    });
    const opts = { heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 2000 };
    const a = makeClient(server, await server.token(r, 'pos-a', 'manager'), { storage: new FileStorage(dirs[0]!), ...opts });
    const b = makeClient(server, await server.token(r, 'pos-b', 'manager'), { storage: new FileStorage(dirs[1]!), ...opts });
    const watcher = makeClient(server, await server.token(r, 'kds-w', 'kds'), opts);
    const all: PossyncClient[] = [a, b, watcher];
    cleanups.push(async () => {
      for (const c of all) await c.close();
    });
    const replicas = all.map((c) => new EventReplica(c));
    const drops = new Map<string, number>();
    for (const c of all) {
      c.on('state', (e) => {
        if (e.state === 'offline') drops.set(c.deviceId, (drops.get(c.deviceId) ?? 0) + 1);
      });
    }
    for (const c of all) c.connect();
    await Promise.all(all.map((c) => c.ready()));

    const results = new Map<string, Promise<ChangeResult>>();
    let made = 0;
    const total = 2 * perWriter;
    async function write(client: PossyncClient, rnd: () => number): Promise<void> {
      for (let i = 0; i < perWriter; i++) {
        const type = TYPES[Math.floor(rnd() * TYPES.length)]!;
        const id = `${type.slice(0, 2)}-${Math.floor(rnd() * 6)}`;
        const roll = rnd();
        const actions = ACTIONS[type];
        let pending;
        if (roll < 0.12) {
          pending = client.change(type, id, actions.remove[0]!, {});
        } else {
          const data: JsonObject = {};
          const n = 1 + Math.floor(rnd() * 4);
          for (let j = 0; j < n; j++) data[`f${Math.floor(rnd() * 6)}`] = randomValue(rnd, 1);
          const action = actions.merge[Math.floor(rnd() * actions.merge.length)]!;
          // some changes are optimistic: on top of the version this device knows
          const options = roll > 0.85 ? { baseVersion: client.get(type, id)?.version ?? 0 } : {};
          pending = client.change(type, id, action, data, options);
        }
        results.set(pending.changeId, pending.result);
        made++;
        if (rnd() < 0.7) await sleep(Math.floor(rnd() * 16));
      }
    }

    async function disrupt(): Promise<void> {
      const at = async (fraction: number) => waitFor(() => made >= total * fraction, `${fraction} of the workload`, 60000);
      await at(0.2);
      await server.kill9();
      await sleep(300);
      await server.start();
      await at(0.4);
      a.disconnect();
      await sleep(150);
      a.connect();
      await at(0.55);
      const admin = await server.adminToken();
      await server.request('POST', `/api/admin/restaurants/${r}/disconnect`, admin);
      await at(0.7);
      await server.kill9();
      await sleep(200);
      await server.start();
      await at(0.85);
      // killed again while the clients are still catching up after the restart
      await sleep(50);
      await server.kill9();
      await server.start();
    }

    await Promise.all([write(a, prng(seed)), write(b, prng(seed + 1)), disrupt()]);
    const outcomes = new Map<string, ChangeResult>();
    await waitFor(
      () => a.pendingChanges().length + b.pendingChanges().length === 0,
      `every change answered (${a.pendingChanges().length + b.pendingChanges().length} waiting)`,
      60000,
    );
    for (const [id, p] of results) outcomes.set(id, await p);

    const admin = await server.adminToken();
    const log = await server.log(r, admin);
    const snap = await server.snapshot(r, admin);
    const counts: Record<string, number> = {};
    for (const o of outcomes.values()) {
      const key = o.status === 'rejected' ? `rejected:${o.error.code}` : o.status;
      counts[key] = (counts[key] ?? 0) + 1;
    }
    const context = `seed ${seed}, outcomes ${JSON.stringify(counts)}, connection losses ${JSON.stringify([...drops])}`;
    // the disruptions hit every device (4 for everyone, one more for pos-a)
    for (const c of all) assert.ok((drops.get(c.deviceId) ?? 0) >= 4, context);

    // The log: gapless, each change id once, exactly the changes answered applied/duplicate.
    assert.equal(snap.seq, log.length, context);
    assert.deepEqual(log.map((e) => e.seq), log.map((_, i) => i + 1), context);
    assert.equal(new Set(log.map((e) => e.change_id)).size, log.length, `a change id twice in the log; ${context}`);
    const logged = new Map(log.map((e) => [e.change_id as string, e.seq as number]));
    for (const [id, o] of outcomes) {
      if (o.status === 'rejected') {
        assert.equal(o.error.code, 'conflict', `${id}: ${o.error.code} ${o.error.message}; ${context}`);
        assert.ok(!logged.has(id), `${id} was rejected but is in the log; ${context}`);
      } else {
        assert.equal(logged.get(id), o.seq, `${id}: answered seq ${o.seq}, log has ${logged.get(id)}; ${context}`);
      }
    }
    assert.equal(log.length, outcomes.size - (counts['rejected:conflict'] ?? 0), context);
    assert.ok(counts.applied! > perWriter, context);

    // Every device: live at the head, its state equal to the snapshot, every seq applied once in order.
    await waitFor(
      () => all.every((c) => c.connectionState === 'live' && c.seq === snap.seq),
      `all devices at seq ${snap.seq} (${all.map((c) => `${c.deviceId}:${c.seq}/${c.connectionState}`).join(', ')})`,
      30000,
    );
    all.forEach((c, i) => {
      assertSameState(c.snapshot(), snap, `${c.deviceId}; ${context}`);
      const replica = replicas[i]!;
      assert.deepEqual(replica.problems, [], `${c.deviceId}; ${context}`);
      assert.deepEqual(replica.data(), snap.data, `${c.deviceId} events; ${context}`);
      assert.deepEqual(replica.seqs, log.map((e) => e.seq), `${c.deviceId} applied seqs; ${context}`);
      assert.equal(c.pendingChanges().length, 0);
    });
    console.log(`chaos: ${log.length} changes committed; ${context}`);
  });
});
