import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { MemoryStorage, Outbox, WebStorage, type OutboxEntry, type OutboxStorage } from '@possync/client';
import { FileStorage } from '@possync/client/node';

function entry(n: number, extra: Partial<OutboxEntry> = {}): OutboxEntry {
  return { changeId: `c-${n}`, dataType: 'orders', recordId: `o-${n}`, action: 'updated', data: { n }, createdAt: n, ...extra };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

/** A storage whose writes complete only when the test says so. */
class GatedStorage implements OutboxStorage {
  readonly inner = new MemoryStorage();
  writes: string[] = [];
  private gates: Array<() => void> = [];
  getItem(key: string) {
    return this.inner.getItem(key);
  }
  setItem(key: string, value: string): Promise<void> {
    return new Promise((resolve) => {
      this.gates.push(() => {
        this.inner.setItem(key, value);
        this.writes.push(value);
        resolve();
      });
    });
  }
  removeItem(key: string): Promise<void> {
    return new Promise((resolve) => {
      this.gates.push(() => {
        this.inner.removeItem(key);
        this.writes.push('<removed>');
        resolve();
      });
    });
  }
  release(): number {
    const g = this.gates;
    this.gates = [];
    for (const f of g) f();
    return g.length;
  }
}

describe('Outbox', () => {
  it('sends a change only after the storage holds it', async () => {
    const storage = new GatedStorage();
    let sendable = 0;
    const box = new Outbox(storage, 'k', { onSendable: () => sendable++ });
    await box.load();
    void box.add(entry(1));
    void box.add(entry(2));
    await tick();
    assert.deepEqual(box.takeSendable(1, 10), []);
    assert.equal(storage.release(), 1, 'both changes go into one write');
    await tick();
    assert.equal(sendable, 1);
    assert.deepEqual(JSON.parse(storage.inner.getItem('k')!).entries.map((e: OutboxEntry) => e.changeId), ['c-1', 'c-2']);
    assert.deepEqual(box.takeSendable(1, 10).map((e) => e.changeId), ['c-1', 'c-2']);
    assert.deepEqual(box.takeSendable(1, 10), [], 'not sent twice on one connection');
  });

  it('keeps changes until answered, resends them after a lost connection, in order', async () => {
    const box = new Outbox(new MemoryStorage(), 'k');
    await box.load();
    const results = [1, 2, 3, 4].map((n) => box.add(entry(n)));
    await box.flush();
    assert.deepEqual(box.takeSendable(1, 2).map((e) => e.changeId), ['c-1', 'c-2']);
    assert.equal(box.inFlight(1), 2);
    box.settle('c-1', { status: 'applied', changeId: 'c-1', seq: 10 });
    box.connectionLost(1);
    assert.deepEqual(box.takeSendable(2, 10).map((e) => e.changeId), ['c-2', 'c-3', 'c-4']);
    assert.equal(box.attempts('c-2'), 2);
    assert.deepEqual(await results[0], { status: 'applied', changeId: 'c-1', seq: 10 });
    assert.equal(box.size, 3);
  });

  it('a change sent on an older connection is sent again on a new one even without connectionLost', async () => {
    const box = new Outbox(new MemoryStorage(), 'k');
    await box.load();
    void box.add(entry(1));
    await box.flush();
    assert.equal(box.takeSendable(1, 10).length, 1);
    assert.equal(box.takeSendable(2, 10).length, 1);
  });

  it('a refusal does not hold back the changes after it; retries wait for their delay', async () => {
    let sendable = 0;
    const box = new Outbox(new MemoryStorage(), 'k', { onSendable: () => sendable++ });
    await box.load();
    const r1 = box.add(entry(1));
    void box.add(entry(2));
    void box.add(entry(3));
    await box.flush();
    box.takeSendable(1, 10);
    box.settle('c-1', {
      status: 'rejected',
      changeId: 'c-1',
      seq: null,
      error: { code: 'conflict', message: 'm' },
      current: null,
    });
    const t0 = Date.now();
    box.retryLater('c-2', 40, t0);
    box.connectionLost(1);
    assert.deepEqual(box.takeSendable(2, 10, t0).map((e) => e.changeId), ['c-3']);
    assert.ok(!box.hasSendable(2, t0 + 39));
    assert.ok(box.hasSendable(2, t0 + 40));
    const before = sendable;
    await new Promise((r) => setTimeout(r, 80));
    assert.ok(sendable > before, 'onSendable fires when the backoff ends');
    assert.deepEqual(box.takeSendable(2, 10).map((e) => e.changeId), ['c-2']);
    assert.equal((await r1).status, 'rejected');
  });

  it('survives a restart: a new outbox on the same storage has the unanswered changes', async () => {
    const storage = new MemoryStorage();
    const a = new Outbox(storage, 'k');
    await a.load();
    for (let n = 1; n <= 5; n++) void a.add(entry(n, { baseVersion: n }));
    await a.flush();
    a.settle('c-2', { status: 'duplicate', changeId: 'c-2', seq: 2 });
    a.settle('c-4', { status: 'applied', changeId: 'c-4', seq: 4 });
    await a.flush();
    a.close();

    let sendable = 0;
    const b = new Outbox(storage, 'k', { onSendable: () => sendable++ });
    const early = b.add(entry(9)); // made before the stored outbox was read: comes after it
    await b.load();
    await b.flush();
    assert.equal(sendable > 0, true);
    assert.deepEqual(b.entries().map((e) => [e.changeId, e.baseVersion]), [
      ['c-1', 1],
      ['c-3', 3],
      ['c-5', 5],
      ['c-9', undefined],
    ]);
    const late = b.waitFor('c-3')!;
    b.takeSendable(1, 10);
    b.settle('c-3', { status: 'applied', changeId: 'c-3', seq: 30 });
    b.settle('c-9', { status: 'applied', changeId: 'c-9', seq: 31 });
    assert.equal((await late).status, 'applied');
    assert.equal((await early).status, 'applied');
    for (const id of ['c-1', 'c-5']) b.settle(id, { status: 'applied', changeId: id, seq: 1 });
    await b.flush();
    assert.equal(storage.getItem('k'), null, 'an empty outbox removes its key');
  });

  it('refuses a change id that is already waiting', async () => {
    const box = new Outbox(new MemoryStorage(), 'k');
    await box.load();
    void box.add(entry(1));
    assert.throws(() => box.add(entry(1)), /already in the outbox/);
  });

  it('keeps working from memory when the storage fails, and reports it', async () => {
    const errors: unknown[] = [];
    let fail = true;
    const storage: OutboxStorage = {
      getItem: () => null,
      setItem: () => {
        if (fail) throw new Error('quota exceeded');
      },
      removeItem: () => {},
    };
    const box = new Outbox(storage, 'k', { onStorageError: (e) => errors.push(e) });
    await box.load();
    void box.add(entry(1));
    await tick();
    await tick();
    assert.equal(errors.length, 1);
    assert.deepEqual(box.takeSendable(1, 10).map((e) => e.changeId), ['c-1']);
    fail = false;
    box.close();
  });

  it('ignores a stored outbox it cannot read (and reports it)', async () => {
    const storage = new MemoryStorage();
    storage.setItem('k', '{"v":99}');
    const errors: unknown[] = [];
    const box = new Outbox(storage, 'k', { onStorageError: (e) => errors.push(e) });
    await box.load();
    assert.equal(box.size, 0);
    assert.equal(errors.length, 1);
  });
});

describe('storages', () => {
  it('FileStorage: round trip, atomic replace, remove', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'possync-fs-'));
    try {
      const fs = new FileStorage(join(dir, 'nested', 'outbox'));
      assert.equal(await fs.getItem('possync:outbox:r 1:d/1'), null);
      await fs.setItem('possync:outbox:r 1:d/1', 'one');
      await fs.setItem('possync:outbox:r 1:d/1', 'two');
      assert.equal(await fs.getItem('possync:outbox:r 1:d/1'), 'two');
      const files = await readdir(join(dir, 'nested', 'outbox'));
      assert.equal(files.length, 1, 'no temporary files are left');
      assert.equal(await readFile(join(dir, 'nested', 'outbox', files[0]!), 'utf8'), 'two');
      await fs.removeItem('possync:outbox:r 1:d/1');
      await fs.removeItem('possync:outbox:r 1:d/1');
      assert.equal(await fs.getItem('possync:outbox:r 1:d/1'), null);

      // an outbox on a file survives a "restart"
      const a = new Outbox(fs, 'k');
      await a.load();
      void a.add(entry(1));
      void a.add(entry(2));
      await a.flush();
      const b = new Outbox(new FileStorage(join(dir, 'nested', 'outbox')), 'k');
      await b.load();
      assert.deepEqual(b.entries().map((e) => e.changeId), ['c-1', 'c-2']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('WebStorage wraps a Web Storage object', () => {
    const backing = new Map<string, string>();
    const ws = new WebStorage({
      getItem: (k) => backing.get(k) ?? null,
      setItem: (k, v) => void backing.set(k, v),
      removeItem: (k) => void backing.delete(k),
    });
    ws.setItem('a', '1');
    assert.equal(ws.getItem('a'), '1');
    ws.removeItem('a');
    assert.equal(backing.size, 0);
    assert.throws(() => new WebStorage().getItem('x'), /no localStorage/);
  });
});
