/**
 * Where the outbox is kept until the server has answered every change in it. The shape of the Web
 * Storage API (so `window.localStorage` can be passed as it is), with optional promises for
 * asynchronous backends (a file in Node, IndexedDB, React Native's AsyncStorage, ...).
 *
 * `setItem` must not return (or resolve) before the value is durable for the backend's purposes:
 * a change is sent to the server only after the outbox holding it was stored.
 */
export interface OutboxStorage {
  getItem(key: string): string | null | Promise<string | null>;
  setItem(key: string, value: string): void | Promise<void>;
  removeItem(key: string): void | Promise<void>;
}

/** Keeps everything in memory: the outbox survives reconnects but not a restart of the app. */
export class MemoryStorage implements OutboxStorage {
  private readonly items = new Map<string, string>();

  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }

  setItem(key: string, value: string): void {
    this.items.set(key, value);
  }

  removeItem(key: string): void {
    this.items.delete(key);
  }
}

/**
 * The browser's `localStorage` (or `sessionStorage`, or any Web Storage object). Equivalent to
 * passing the object itself; this wrapper looks it up lazily and reports a missing one clearly.
 */
export class WebStorage implements OutboxStorage {
  constructor(private readonly storage?: Pick<OutboxStorage, 'getItem' | 'setItem' | 'removeItem'>) {}

  private get target(): Pick<OutboxStorage, 'getItem' | 'setItem' | 'removeItem'> {
    const s = this.storage ?? (globalThis as { localStorage?: OutboxStorage }).localStorage;
    if (!s) throw new Error('no localStorage in this environment');
    return s;
  }

  getItem(key: string): string | null | Promise<string | null> {
    return this.target.getItem(key);
  }

  setItem(key: string, value: string): void | Promise<void> {
    return this.target.setItem(key, value);
  }

  removeItem(key: string): void | Promise<void> {
    return this.target.removeItem(key);
  }
}
