import type { OutboxStorage } from './storage.js';
import type { ChangeResult, OutboxEntry } from './types.js';

type Status =
  /** not yet in storage: must not be sent */
  | 'unsaved'
  /** stored, waiting to be sent (again) */
  | 'ready'
  /** sent on a connection; waiting for its answer */
  | 'sent'
  /** answered with a retryable refusal; ready again at `retryAt` */
  | 'backoff';

interface Slot {
  entry: OutboxEntry;
  status: Status;
  /** the connection it was last sent on (0: never sent) */
  connection: number;
  retryAt: number;
  attempts: number;
  waiters: Array<(r: ChangeResult) => void>;
}

export interface OutboxHooks {
  /** Something became sendable (stored, or its backoff ended). */
  onSendable?: () => void;
  /** Storage failed (the outbox keeps working from memory and tries again). */
  onStorageError?: (error: unknown) => void;
}

const FORMAT_VERSION = 1;

/**
 * The changes this device made that the server has not answered yet, in the order they were made.
 * Every change is written to the storage before it may be sent, and stays there until the server's
 * answer (applied, duplicate or a final rejection) removes it; after a restart of the app the
 * stored changes are loaded and sent again. The server deduplicates by change id, so sending a
 * change that was already committed is harmless (it is answered `duplicate`).
 */
export class Outbox {
  private readonly slots = new Map<string, Slot>();
  private loaded = false;
  private loadPromise: Promise<void> | null = null;
  private saving: Promise<void> | null = null;
  private dirty = false;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;

  constructor(
    private readonly storage: OutboxStorage,
    private readonly key: string,
    private readonly hooks: OutboxHooks = {},
  ) {}

  /** Reads the stored outbox (once). Changes added before it finished come after the stored ones. */
  load(): Promise<void> {
    if (!this.loadPromise) this.loadPromise = this.doLoad();
    return this.loadPromise;
  }

  private async doLoad(): Promise<void> {
    let stored: OutboxEntry[] = [];
    try {
      const text = await this.storage.getItem(this.key);
      if (text) stored = parseStored(text);
    } catch (e) {
      this.hooks.onStorageError?.(e);
    }
    const added = [...this.slots.values()];
    this.slots.clear();
    for (const entry of stored) {
      if (this.slots.has(entry.changeId)) continue;
      this.slots.set(entry.changeId, newSlot(entry, 'ready'));
    }
    for (const slot of added) {
      const existing = this.slots.get(slot.entry.changeId);
      if (existing) {
        existing.waiters.push(...slot.waiters);
      } else {
        this.slots.set(slot.entry.changeId, slot);
      }
    }
    this.loaded = true;
    if (added.length > 0) this.scheduleSave();
    if (stored.length > 0) this.hooks.onSendable?.();
  }

  get isLoaded(): boolean {
    return this.loaded;
  }

  /** Number of changes waiting for an answer. */
  get size(): number {
    return this.slots.size;
  }

  /** The waiting changes, oldest first (copies). */
  entries(): OutboxEntry[] {
    return [...this.slots.values()].map((s) => ({ ...s.entry }));
  }

  has(changeId: string): boolean {
    return this.slots.has(changeId);
  }

  get(changeId: string): OutboxEntry | undefined {
    return this.slots.get(changeId)?.entry;
  }

  /** Adds a change; it becomes sendable once stored. Resolves when the server has answered it. */
  add(entry: OutboxEntry): Promise<ChangeResult> {
    if (this.closed) throw new Error('the client is closed');
    if (this.slots.has(entry.changeId)) throw new Error(`change id '${entry.changeId}' is already in the outbox`);
    const slot = newSlot(entry, 'unsaved');
    const result = new Promise<ChangeResult>((resolve) => slot.waiters.push(resolve));
    this.slots.set(entry.changeId, slot);
    if (this.loaded) this.scheduleSave();
    return result;
  }

  /** Waits for the result of a change in the outbox (e.g. one loaded from storage). */
  waitFor(changeId: string): Promise<ChangeResult> | null {
    const slot = this.slots.get(changeId);
    if (!slot) return null;
    return new Promise<ChangeResult>((resolve) => slot.waiters.push(resolve));
  }

  /**
   * The changes to send now, oldest first, at most `max`: stored, not sent on the current
   * connection yet, not in backoff. They are marked as sent on `connection`.
   */
  takeSendable(connection: number, max: number, now = Date.now()): OutboxEntry[] {
    const out: OutboxEntry[] = [];
    if (!this.loaded || max <= 0) return out;
    let nextRetry = Infinity;
    for (const slot of this.slots.values()) {
      if (out.length >= max) break;
      if (slot.status === 'backoff') {
        if (slot.retryAt > now) {
          nextRetry = Math.min(nextRetry, slot.retryAt);
          continue;
        }
        slot.status = 'ready';
      }
      if (slot.status === 'sent' && slot.connection !== connection) slot.status = 'ready';
      if (slot.status !== 'ready') continue;
      slot.status = 'sent';
      slot.connection = connection;
      slot.attempts++;
      out.push(slot.entry);
    }
    if (nextRetry !== Infinity) this.armRetry(nextRetry - now);
    return out;
  }

  /** Number of changes sent on `connection` and not answered yet. */
  inFlight(connection: number): number {
    let n = 0;
    for (const slot of this.slots.values()) if (slot.status === 'sent' && slot.connection === connection) n++;
    return n;
  }

  /** True if something could be sent on a connection now. */
  hasSendable(connection: number, now = Date.now()): boolean {
    for (const slot of this.slots.values()) {
      if (slot.status === 'ready') return true;
      if (slot.status === 'sent' && slot.connection !== connection) return true;
      if (slot.status === 'backoff' && slot.retryAt <= now) return true;
    }
    return false;
  }

  /** The connection was lost: everything it carried without an answer is sent again on the next one. */
  connectionLost(connection: number): void {
    for (const slot of this.slots.values()) {
      if (slot.status === 'sent' && slot.connection === connection) slot.status = 'ready';
    }
  }

  /** The server refused the change for now (rate limit, store unavailable, shutting down). */
  retryLater(changeId: string, delayMs: number, now = Date.now()): void {
    const slot = this.slots.get(changeId);
    if (!slot || slot.status === 'unsaved') return;
    slot.status = 'backoff';
    slot.retryAt = now + delayMs;
    this.armRetry(delayMs);
  }

  /** How many times the change was sent. */
  attempts(changeId: string): number {
    return this.slots.get(changeId)?.attempts ?? 0;
  }

  /** The server answered the change for good: it leaves the outbox. Returns the entry, if it was there. */
  settle(changeId: string, result: ChangeResult): OutboxEntry | undefined {
    const slot = this.slots.get(changeId);
    if (!slot) return undefined;
    this.slots.delete(changeId);
    this.scheduleSave();
    for (const w of slot.waiters) w(result);
    return slot.entry;
  }

  /** Resolves once everything changed so far is in the storage. */
  async flush(): Promise<void> {
    if (this.loadPromise) await this.loadPromise;
    while (this.saving) await this.saving;
  }

  /** Stops timers. Pending waiters stay unresolved. */
  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private armRetry(delayMs: number): void {
    if (this.closed) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.hooks.onSendable?.();
    }, Math.max(0, delayMs));
  }

  private scheduleSave(): void {
    if (!this.loaded) return;
    this.dirty = true;
    if (this.saving) return;
    this.saving = this.saveLoop().finally(() => {
      this.saving = null;
      // A change that came after the loop's last check but before this point.
      if (this.dirty && !this.closed) this.scheduleSave();
    });
  }

  private async saveLoop(): Promise<void> {
    // Let the changes of the current task accumulate into one write.
    await Promise.resolve();
    while (this.dirty) {
      this.dirty = false;
      const included = [...this.slots.values()];
      const text = JSON.stringify({ v: FORMAT_VERSION, entries: included.map((s) => s.entry) });
      let ok = true;
      try {
        if (included.length === 0) await this.storage.removeItem(this.key);
        else await this.storage.setItem(this.key, text);
      } catch (e) {
        ok = false;
        this.hooks.onStorageError?.(e);
      }
      // Even when the storage failed, the changes are sent (they are still kept in memory):
      // refusing to sync because the disk or quota is full would be worse.
      let newlySendable = false;
      for (const slot of included) {
        if (slot.status === 'unsaved') {
          slot.status = 'ready';
          newlySendable = true;
        }
      }
      if (newlySendable) this.hooks.onSendable?.();
      if (!ok) {
        await new Promise((r) => setTimeout(r, 1000));
        if (this.closed) return;
        this.dirty = true;
      }
    }
  }
}

function newSlot(entry: OutboxEntry, status: Status): Slot {
  return { entry, status, connection: 0, retryAt: 0, attempts: 0, waiters: [] };
}

function parseStored(text: string): OutboxEntry[] {
  const parsed = JSON.parse(text) as { v?: number; entries?: unknown };
  if (!parsed || parsed.v !== FORMAT_VERSION || !Array.isArray(parsed.entries)) {
    throw new Error('stored outbox has an unknown format');
  }
  return parsed.entries.filter(
    (e): e is OutboxEntry =>
      typeof e === 'object' &&
      e !== null &&
      typeof (e as OutboxEntry).changeId === 'string' &&
      typeof (e as OutboxEntry).dataType === 'string' &&
      typeof (e as OutboxEntry).recordId === 'string' &&
      typeof (e as OutboxEntry).action === 'string' &&
      typeof (e as OutboxEntry).data === 'object',
  );
}
