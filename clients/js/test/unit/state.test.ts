import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { LocalState, type DataType, type JsonObject, type LogEntry, type Snapshot } from '@possync/client';

let ts = 0;
function entry(seq: number, dataType: DataType, recordId: string, action: string, data: JsonObject, deviceId = 'other'): LogEntry {
  ts++;
  return {
    seq,
    changeId: `c-${seq}`,
    dataType,
    recordId,
    action,
    data,
    deviceId,
    userId: null,
    timestamp: `2025-06-10T14:00:00.${String(ts % 1000).padStart(3, '0')}Z`,
  };
}

function emptyData(): Snapshot['data'] {
  return { orders: [], menu_items: [], inventory: [], tables: [], users: [], printers: [] };
}

describe('LocalState', () => {
  it('merges, sets the server fields and reports before/after', () => {
    const s = new LocalState('me');
    const e1 = entry(1, 'orders', 'o-1', 'created', { status: 'open', note: 'window', id: 'ignored', version: 99 });
    const [ev1] = s.offer(e1);
    assert.equal(ev1!.before, null);
    assert.deepEqual(ev1!.after, { status: 'open', note: 'window', id: 'o-1', version: 1, updated_at: e1.timestamp });
    assert.equal(ev1!.source, 'remote');
    const e2 = entry(2, 'orders', 'o-1', 'status_changed', { status: 'paid', note: null }, 'me');
    const [ev2] = s.offer(e2);
    assert.deepEqual(ev2!.before, ev1!.after);
    assert.deepEqual(ev2!.after, { status: 'paid', id: 'o-1', version: 2, updated_at: e2.timestamp });
    assert.equal(ev2!.source, 'own');
    assert.equal(s.seq, 2);
    // the record of the first event was not modified by the second change
    assert.equal(ev1!.after!.status, 'open');
  });

  it('deletes only for deleted, removed and item_removed; any other action merges', () => {
    const s = new LocalState();
    s.offer(entry(1, 'inventory', 'i-1', 'item_added', { qty: 1 }));
    s.offer(entry(2, 'inventory', 'i-2', 'stock_changed', { qty: 2 }));
    s.offer(entry(3, 'printers', 'p-1', 'added', { ip: '10.0.0.9' }));
    s.offer(entry(4, 'menu_items', 'm-1', 'created', { name: 'Soup' }));
    const [del1] = s.offer(entry(5, 'inventory', 'i-1', 'item_removed', {}));
    assert.deepEqual(del1!.before?.qty, 1);
    assert.equal(del1!.after, null);
    s.offer(entry(6, 'printers', 'p-1', 'removed', {}));
    s.offer(entry(7, 'menu_items', 'm-1', 'deleted', { name: 'ignored' }));
    assert.equal(s.get('inventory', 'i-1'), undefined);
    assert.equal(s.get('printers', 'p-1'), undefined);
    assert.equal(s.get('menu_items', 'm-1'), undefined);
    // low_stock_alert merges (it is not a deletion), also into a missing record
    s.offer(entry(8, 'inventory', 'i-3', 'low_stock_alert', { qty: 0 }));
    assert.deepEqual(s.get('inventory', 'i-3')?.qty, 0);
    // deleting a missing record still consumes its seq
    const [noop] = s.offer(entry(9, 'tables', 't-1', 'deleted', {}));
    assert.equal(noop!.before, null);
    assert.equal(noop!.after, null);
    assert.equal(s.seq, 9);
    // a merge after a deletion recreates the record from scratch
    s.offer(entry(10, 'inventory', 'i-1', 'item_added', { name: 'flour' }));
    assert.deepEqual(Object.keys(s.get('inventory', 'i-1')!).sort(), ['id', 'name', 'updated_at', 'version']);
    assert.equal(s.size('inventory'), 3);
  });

  it('applies in seq order: later seqs wait for the gap, repeats are ignored', () => {
    const s = new LocalState();
    assert.deepEqual(s.offer(entry(3, 'tables', 't-1', 'occupied', { guests: 3 })), []);
    assert.deepEqual(s.offer(entry(2, 'tables', 't-1', 'occupied', { guests: 2, x: 1 })), []);
    assert.equal(s.seq, 0);
    assert.equal(s.bufferedCount, 2);
    assert.equal(s.highestBuffered, 3);
    const events = s.offer(entry(1, 'tables', 't-1', 'reserved', { guests: 1, name: 'Ann' }));
    assert.deepEqual(events.map((e) => e.seq), [1, 2, 3]);
    assert.deepEqual(s.get('tables', 't-1'), {
      guests: 3,
      name: 'Ann',
      x: 1,
      id: 't-1',
      version: 3,
      updated_at: events[2]!.timestamp,
    });
    assert.deepEqual(s.offer(entry(2, 'tables', 't-1', 'occupied', { guests: 99 })), []);
    assert.equal(s.get('tables', 't-1')?.guests, 3);
    assert.equal(s.bufferedCount, 0);
  });

  it('loads a snapshot: reports the differences and applies buffered changes above it', () => {
    const s = new LocalState();
    s.offer(entry(1, 'orders', 'o-1', 'created', { a: 1 }));
    s.offer(entry(2, 'orders', 'o-2', 'created', { a: 2 }));
    s.offer(entry(3, 'orders', 'o-3', 'created', { a: 3 }));
    const o2 = s.get('orders', 'o-2')!;
    // buffered: 6 (covered by the snapshot) and 8 (after it)
    s.offer(entry(6, 'orders', 'o-9', 'created', { a: 6 }));
    s.offer(entry(8, 'users', 'u-1', 'created', { name: 'Bo' }));
    const data = emptyData();
    data.orders = [
      { ...o2 }, // unchanged
      { id: 'o-3', a: 33, version: 5, updated_at: 'x' }, // changed
      { id: 'o-4', a: 4, version: 7, updated_at: 'y' }, // new
    ];
    const events = s.load({ seq: 7, data });
    const summary = events.map((e) => `${e.source}:${e.dataType}/${e.recordId}:${e.before ? 'b' : '-'}${e.after ? 'a' : '-'}`);
    assert.deepEqual(summary, [
      'snapshot:orders/o-1:b-',
      'snapshot:orders/o-3:ba',
      'snapshot:orders/o-4:-a',
      'remote:users/u-1:-a',
    ]);
    assert.equal(s.seq, 8);
    assert.equal(s.get('orders', 'o-9'), undefined);
    assert.equal(s.bufferedCount, 0);
    const snap = s.snapshot();
    assert.deepEqual(snap.data.orders.map((r) => r.id), ['o-2', 'o-3', 'o-4']);
    assert.equal(snap.seq, 8);
  });

  it('snapshot() is a copy', () => {
    const s = new LocalState();
    s.offer(entry(1, 'orders', 'o-1', 'created', { items: [{ n: 1 }] }));
    const snap = s.snapshot();
    (snap.data.orders[0]!.items as Array<{ n: number }>)[0]!.n = 5;
    assert.deepEqual(s.get('orders', 'o-1')!.items, [{ n: 1 }]);
  });

  it('random workload: agrees with an independent model', () => {
    // The model: a plain object per record, rebuilt with a separately written merge.
    function merge(target: unknown, patch: unknown): unknown {
      if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return structuredClone(patch);
      const out: Record<string, unknown> =
        typeof target === 'object' && target !== null && !Array.isArray(target) ? structuredClone(target as object) as Record<string, unknown> : {};
      for (const [k, v] of Object.entries(patch)) {
        if (v === null) delete out[k];
        else out[k] = merge(out[k], v);
      }
      return out;
    }
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const value = (depth: number): unknown => {
      const k = rnd(depth > 2 ? 4 : 6);
      if (k === 0) return null;
      if (k === 1) return rnd(100) / 4;
      if (k === 2) return `s${rnd(5)}`;
      if (k === 3) return [rnd(3), { z: rnd(2) }];
      const o: Record<string, unknown> = {};
      for (let i = rnd(3); i >= 0; i--) o[`k${rnd(4)}`] = value(depth + 1);
      return o;
    };
    const model = new Map<string, Record<string, unknown>>();
    const entries: LogEntry[] = [];
    const actions = ['updated', 'status_changed', 'deleted', 'completed', 'created'];
    for (let seq = 1; seq <= 400; seq++) {
      const id = `o-${rnd(6)}`;
      const action = actions[rnd(actions.length)]!;
      const data: Record<string, unknown> = {};
      for (let i = rnd(4); i >= 0; i--) data[`k${rnd(4)}`] = value(1);
      const e = entry(seq, 'orders', id, action, data as JsonObject);
      entries.push(e);
      if (action === 'deleted') model.delete(id);
      else model.set(id, { ...(merge(model.get(id) ?? {}, data) as object), id, version: seq, updated_at: e.timestamp });
    }
    // delivered out of order and with repeats
    const s = new LocalState();
    const shuffled = [...entries, ...entries.slice(100, 200)];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = rnd(i + 1);
      [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
    }
    const seen: number[] = [];
    for (const e of shuffled) for (const ev of s.offer(e)) seen.push(ev.seq);
    assert.deepEqual(seen, entries.map((e) => e.seq));
    assert.equal(s.seq, 400);
    const expected = [...model.values()].sort((a, b) => String(a.id).localeCompare(String(b.id)));
    assert.deepEqual(s.snapshot().data.orders, expected);
  });
});
