import { cloneJson, jsonEqual, mergePatch } from './json.js';
import {
  DATA_TYPES,
  isDeletion,
  type ChangeEvent,
  type DataType,
  type JsonObject,
  type LogEntry,
  type PosRecord,
  type Snapshot,
} from './types.js';

/**
 * The local copy of a restaurant's records (data type → record id → record), kept equal to the
 * server's by applying committed changes strictly in seq order, with the server's rules
 * (src/store/apply.cpp): every action merges its data as a JSON Merge Patch into the record (a
 * missing record starts empty) except `deleted`, `removed` and `item_removed`, which delete it;
 * after a merge `id`, `version` (the seq) and `updated_at` (the commit time) are set.
 *
 * Entries may be offered in any order and more than once: an entry at or below `seq` is ignored,
 * one beyond `seq + 1` waits in a buffer until the gap before it is filled.
 *
 * Records handed out are shared with the state: treat them as read-only.
 */
export class LocalState {
  private readonly records = new Map<DataType, Map<string, PosRecord>>();
  private readonly pending = new Map<number, LogEntry>();
  private seqValue = 0;
  private maxPending = 0;

  constructor(private readonly ownDeviceId?: string) {
    for (const t of DATA_TYPES) this.records.set(t, new Map());
  }

  /** The seq of the last change applied: the state reflects exactly the log up to it. */
  get seq(): number {
    return this.seqValue;
  }

  /** Number of entries waiting for a gap before them to be filled. */
  get bufferedCount(): number {
    return this.pending.size;
  }

  /** The highest seq waiting in the buffer (0 if none). */
  get highestBuffered(): number {
    return this.pending.size === 0 ? 0 : this.maxPending;
  }

  get(dataType: DataType, recordId: string | number): PosRecord | undefined {
    return this.table(dataType).get(String(recordId));
  }

  /** The records of one data type, in no particular order. */
  list(dataType: DataType): PosRecord[] {
    return [...this.table(dataType).values()];
  }

  /** Number of records of one type (or of all types). */
  size(dataType?: DataType): number {
    if (dataType) return this.table(dataType).size;
    let n = 0;
    for (const t of DATA_TYPES) n += this.table(t).size;
    return n;
  }

  /** A deep copy of the state in the shape of `GET /api/restaurants/:id/data` (records sorted by id). */
  snapshot(): Snapshot {
    const data = {} as Record<DataType, PosRecord[]>;
    for (const t of DATA_TYPES) {
      data[t] = [...this.table(t).values()]
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
        .map((r) => cloneJson(r));
    }
    return { seq: this.seqValue, data };
  }

  /**
   * Offers one committed change. Returns the change events of everything this made applicable:
   * the entry itself if it was the next one, followed by buffered entries it unblocked.
   */
  offer(entry: LogEntry): ChangeEvent[] {
    if (entry.seq <= this.seqValue) return [];
    if (entry.seq !== this.seqValue + 1) {
      if (!this.pending.has(entry.seq)) {
        this.pending.set(entry.seq, entry);
        if (entry.seq > this.maxPending) this.maxPending = entry.seq;
      }
      return [];
    }
    const events = [this.apply(entry)];
    this.drain(events);
    return events;
  }

  /** Drops every buffered entry (they will be delivered again, e.g. by a catch-up). */
  clearBuffer(): void {
    this.pending.clear();
    this.maxPending = 0;
  }

  /**
   * Replaces the whole state with a snapshot. Returns one `snapshot` event per record that differs
   * from before (in data type order), then the events of buffered entries above the snapshot's seq
   * that can now be applied. Buffered entries at or below it are dropped.
   */
  load(snapshot: Snapshot): ChangeEvent[] {
    const events: ChangeEvent[] = [];
    for (const t of DATA_TYPES) {
      const oldTable = this.table(t);
      const newTable = new Map<string, PosRecord>();
      for (const r of snapshot.data[t] ?? []) newTable.set(String(r.id), r);
      for (const [id, before] of oldTable) {
        const after = newTable.get(id) ?? null;
        if (after === null || !jsonEqual(before, after)) {
          events.push(snapshotEvent(t, id, before, after, snapshot.seq));
        }
      }
      for (const [id, after] of newTable) {
        if (!oldTable.has(id)) events.push(snapshotEvent(t, id, null, after, snapshot.seq));
      }
      this.records.set(t, newTable);
    }
    this.seqValue = snapshot.seq;
    for (const seq of [...this.pending.keys()]) if (seq <= snapshot.seq) this.pending.delete(seq);
    if (this.pending.size === 0) this.maxPending = 0;
    this.drain(events);
    return events;
  }

  private drain(events: ChangeEvent[]): void {
    for (;;) {
      const next = this.pending.get(this.seqValue + 1);
      if (!next) break;
      this.pending.delete(next.seq);
      events.push(this.apply(next));
    }
    if (this.pending.size === 0) this.maxPending = 0;
  }

  private apply(entry: LogEntry): ChangeEvent {
    const table = this.table(entry.dataType);
    const before = table.get(entry.recordId) ?? null;
    let after: PosRecord | null = null;
    if (isDeletion(entry.action)) {
      table.delete(entry.recordId);
    } else {
      const merged = mergePatch(before ?? {}, entry.data) as JsonObject;
      merged.id = entry.recordId;
      merged.version = entry.seq;
      merged.updated_at = entry.timestamp;
      after = merged as PosRecord;
      table.set(entry.recordId, after);
    }
    this.seqValue = entry.seq;
    return {
      dataType: entry.dataType,
      recordId: entry.recordId,
      action: entry.action,
      seq: entry.seq,
      before,
      after,
      source: this.ownDeviceId !== undefined && entry.deviceId === this.ownDeviceId ? 'own' : 'remote',
      changeId: entry.changeId,
      deviceId: entry.deviceId,
      userId: entry.userId,
      timestamp: entry.timestamp,
    };
  }

  private table(dataType: DataType): Map<string, PosRecord> {
    const t = this.records.get(dataType);
    if (!t) throw new TypeError(`unknown data type '${String(dataType)}'`);
    return t;
  }
}

function snapshotEvent(
  dataType: DataType,
  recordId: string,
  before: PosRecord | null,
  after: PosRecord | null,
  seq: number,
): ChangeEvent {
  return { dataType, recordId, action: 'snapshot', seq, before, after, source: 'snapshot' };
}
