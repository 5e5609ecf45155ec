import assert from 'node:assert/strict';

import { MemoryStorage, PossyncClient, type ChangeEvent, type ClientOptions, type Snapshot } from '@possync/client/node';

import type { TestServer } from './server.js';
import { waitFor } from './server.js';

/** A client against a test server with short reconnect delays. */
export function makeClient(server: TestServer, token: ClientOptions['token'], options: Partial<ClientOptions> = {}): PossyncClient {
  return new PossyncClient({
    url: server.url,
    token,
    storage: new MemoryStorage(),
    reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
    ...options,
  });
}

/**
 * Rebuilds a client's state from its `change` events alone, checking on the way that every
 * event's `before` is what the previous events left, and that the seqs of applied changes follow
 * each other without gap or repeat (1, 2, 3, ..., counting from the last snapshot's seq).
 */
export class EventReplica {
  readonly records = new Map<string, any>();
  readonly seqs: number[] = [];
  readonly problems: string[] = [];

  private lastSeq = 0;

  constructor(client: PossyncClient) {
    client.on('change', (e) => this.onChange(e));
    // After a snapshot load the log may start over (a replaced database): seqs count from it.
    client.on('snapshot', (e) => {
      this.lastSeq = e.seq;
    });
  }

  private onChange(e: ChangeEvent): void {
    const key = `${e.dataType}/${e.recordId}`;
    const current = this.records.get(key) ?? null;
    try {
      assert.deepStrictEqual(e.before, current);
    } catch {
      this.problems.push(`seq ${e.seq} ${key}: before ${JSON.stringify(e.before)} but replica has ${JSON.stringify(current)}`);
    }
    if (e.after) this.records.set(key, e.after);
    else this.records.delete(key);
    if (e.source !== 'snapshot') {
      if (e.seq !== this.lastSeq + 1) this.problems.push(`seq ${e.seq} applied after ${this.lastSeq}`);
      this.lastSeq = e.seq;
      this.seqs.push(e.seq);
    }
  }

  /** The replica in the shape of Snapshot.data (records sorted by id). */
  data(): Record<string, any[]> {
    const data: Record<string, any[]> = { orders: [], menu_items: [], inventory: [], tables: [], users: [], printers: [] };
    for (const [key, record] of this.records) data[key.slice(0, key.indexOf('/'))]!.push(record);
    for (const list of Object.values(data)) list.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return data;
  }
}

export async function waitForSeq(client: PossyncClient, seq: number, timeoutMs = 20000): Promise<void> {
  await waitFor(() => client.seq >= seq, `client ${client.deviceId} at seq ${seq} (is ${client.seq}, ${client.connectionState})`, timeoutMs);
}

export function assertSameState(actual: Snapshot, expected: { seq: number; data: Record<string, any[]> }, who: string): void {
  assert.equal(actual.seq, expected.seq, `${who}: seq`);
  assert.deepStrictEqual(actual.data, expected.data, `${who}: records`);
}
