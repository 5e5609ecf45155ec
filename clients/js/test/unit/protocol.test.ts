import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  backoffDelay,
  decodeServerMessage,
  decodeTokenClaims,
  encodeChange,
  entryFromChangeMessage,
  snapshotFromResponse,
} from '@possync/client';

describe('decodeServerMessage', () => {
  it('reads a forwarded typed update, exponent numbers included', () => {
    const msg = decodeServerMessage(
      '{"type":"order_update","order_id":"o-1001","action":"status_changed","data":{"total_amount":2.55E1,"n":1E0},' +
        '"data_type":"orders","device_id":"pos-1","restaurant_id":"rest-1","user_id":"u-anna",' +
        '"timestamp":"2025-06-10T14:04:00.318Z","seq":1208,"change_id":"c-1"}',
    );
    assert.deepEqual(msg, {
      kind: 'change',
      entry: {
        seq: 1208,
        changeId: 'c-1',
        dataType: 'orders',
        recordId: 'o-1001',
        action: 'status_changed',
        data: { total_amount: 25.5, n: 1 },
        deviceId: 'pos-1',
        userId: 'u-anna',
        timestamp: '2025-06-10T14:04:00.318Z',
      },
    });
  });

  it('user_update: the record id is in user_id, there is no author', () => {
    const msg = decodeServerMessage(
      '{"type":"user_update","user_id":"u-7","action":"role_changed","data":{"id":"u-7","role":"manager"},' +
        '"data_type":"users","device_id":"pos-1","restaurant_id":"rest-1","timestamp":"t","seq":3,"change_id":"x"}',
    );
    assert.equal(msg?.kind, 'change');
    if (msg?.kind === 'change') {
      assert.equal(msg.entry.recordId, 'u-7');
      assert.equal(msg.entry.userId, null);
    }
  });

  it('every typed update maps to its data type and id field', () => {
    const forms: Array<[string, string, string]> = [
      ['order_update', 'order_id', 'orders'],
      ['menu_update', 'item_id', 'menu_items'],
      ['inventory_update', 'item_id', 'inventory'],
      ['table_update', 'table_id', 'tables'],
      ['user_update', 'user_id', 'users'],
      ['printer_update', 'printer_id', 'printers'],
    ];
    for (const [type, field, dataType] of forms) {
      const e = entryFromChangeMessage({ type, [field]: 'r', action: 'updated', data: {}, seq: 1 });
      assert.equal(e?.dataType, dataType);
      assert.equal(e?.recordId, 'r');
    }
  });

  it('reads acks, conflicts, errors and control messages', () => {
    assert.deepEqual(decodeServerMessage('{"type":"ack","change_id":"a","seq":5,"status":"duplicate"}'), {
      kind: 'ack',
      changeId: 'a',
      status: 'duplicate',
      seq: 5,
    });
    const conflict = decodeServerMessage(
      '{"type":"ack","change_id":"t","seq":null,"status":"rejected","error":{"code":"conflict","message":"m"},' +
        '"current":{"id":"o-1","version":1,"updated_at":"x"}}',
    );
    assert.deepEqual(conflict, {
      kind: 'ack',
      changeId: 't',
      status: 'rejected',
      seq: null,
      error: { code: 'conflict', message: 'm' },
      current: { id: 'o-1', version: 1, updated_at: 'x' },
    });
    assert.deepEqual(decodeServerMessage('{"type":"error","code":"forbidden","message":"no","change_id":"c"}'), {
      kind: 'error',
      error: { code: 'forbidden', message: 'no' },
      changeId: 'c',
    });
    assert.deepEqual(decodeServerMessage('{"type":"caught_up","seq":9}'), { kind: 'caught_up', seq: 9 });
    assert.deepEqual(decodeServerMessage('{"type":"reset_required","seq":9,"message":"m"}'), {
      kind: 'reset_required',
      seq: 9,
      message: 'm',
    });
    assert.equal(decodeServerMessage('not json'), null);
    assert.equal(decodeServerMessage('[1]'), null);
    assert.deepEqual(decodeServerMessage('{"type":"sync_update"}'), { kind: 'other', type: 'sync_update' });
  });

  it('reads REST changes (data_change form) and snapshots', () => {
    const e = entryFromChangeMessage({
      seq: 4,
      change_id: 'c',
      type: 'data_change',
      data_type: 'tables',
      action: 'occupied',
      data: { id: 7, guests: 2 },
      device_id: 'd',
      user_id: 'u',
      timestamp: 't',
    });
    assert.equal(e?.recordId, '7');
    assert.equal(e?.userId, 'u');
    const snap = snapshotFromResponse({ restaurant_id: 'r', data: { orders: [{ id: 'o', version: 1, updated_at: 'x' }] }, seq: 3 });
    assert.equal(snap.seq, 3);
    assert.equal(snap.data.orders.length, 1);
    assert.deepEqual(snap.data.printers, []);
    assert.throws(() => snapshotFromResponse({ data: {} }));
  });

  it('encodes a change as data_change with data.id and base_version', () => {
    const text = encodeChange({
      changeId: 'c-1',
      dataType: 'tables',
      recordId: 't-4',
      action: 'occupied',
      data: { guests: 2, id: 'other' },
      baseVersion: 0,
      createdAt: 0,
    });
    assert.deepEqual(JSON.parse(text), {
      type: 'data_change',
      data_type: 'tables',
      action: 'occupied',
      data: { guests: 2, id: 't-4' },
      change_id: 'c-1',
      base_version: 0,
    });
  });
});

describe('backoffDelay', () => {
  it('grows exponentially up to the cap, with jitter below the nominal delay', () => {
    const opts = { initialDelayMs: 100, maxDelayMs: 1000, factor: 2, jitter: 0.5 };
    assert.equal(backoffDelay(0, opts, () => 0), 100);
    assert.equal(backoffDelay(3, opts, () => 0), 800);
    assert.equal(backoffDelay(10, opts, () => 0), 1000);
    assert.equal(backoffDelay(3, opts, () => 0.999999), 400);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(2, opts);
      assert.ok(d >= 200 && d <= 400, String(d));
    }
    const spread = new Set(Array.from({ length: 50 }, () => backoffDelay(5, opts)));
    assert.ok(spread.size > 10, 'delays are spread out');
  });
});

describe('decodeTokenClaims', () => {
  it('reads the payload of a JWT', () => {
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const token = `${b64({ alg: 'HS256' })}.${b64({ restaurant_id: 'r-ü', device_id: 'd', exp: 5 })}.sig`;
    assert.deepEqual(decodeTokenClaims(token), { restaurant_id: 'r-ü', device_id: 'd', exp: 5 });
    assert.equal(decodeTokenClaims('nope'), null);
    assert.equal(decodeTokenClaims('a.b.c'), null);
  });
});
