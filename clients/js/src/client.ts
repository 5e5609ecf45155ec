import { backoffDelay, type BackoffOptions } from './backoff.js';
import { Emitter } from './events.js';
import { isPlainObject } from './json.js';
import { decodeTokenClaims } from './jwt.js';
import { Outbox } from './outbox.js';
import {
  decodeServerMessage,
  emptySnapshot,
  encodeChange,
  entryFromChangeMessage,
  snapshotFromResponse,
  type ServerMessage,
} from './protocol.js';
import { LocalState } from './state.js';
import { MemoryStorage, type OutboxStorage } from './storage.js';
import {
  isDataType,
  type ChangeEvent,
  type ChangeOptions,
  type ChangeResult,
  type ConnectionState,
  type DataType,
  type FetchLike,
  type JsonObject,
  type LogEntry,
  type OutboxEntry,
  type PendingChange,
  type PosRecord,
  type RejectionEvent,
  type ServerError,
  type Snapshot,
  type WebSocketConstructor,
  type WebSocketLike,
} from './types.js';

/** Where the token travels on the WebSocket upgrade (REST always uses `Authorization: Bearer`). */
export type TokenTransport =
  /** `Sec-WebSocket-Protocol: possync, bearer.<token>`: works in browsers, keeps the token out of URLs */
  | 'protocol'
  /** `?token=<token>` in the URL (ends up in proxy logs) */
  | 'query'
  /** `Authorization: Bearer <token>`: only with a WebSocket implementation that takes headers (`ws`) */
  | 'header';

export type TokenSource = string | (() => string | Promise<string>);

export interface ClientOptions {
  /** The server's base URL: `https://sync.example.com` or `wss://...` (a path prefix is kept). */
  url: string;
  /**
   * The device token, or a function returning a fresh one (called when connecting, before the
   * current token expires, and after the server refused it). Omit only for a server run with
   * `--auth off`.
   */
  token?: TokenSource;
  /** Default: the token's `restaurant_id` claim (required when `token` is a function). */
  restaurantId?: string;
  /** Default: the token's `device_id` claim (required when `token` is a function). */
  deviceId?: string;
  /** The user logged in on the device (the author of the changes); see also `setUser`. */
  userId?: string;
  /**
   * Watch the restaurant read-only (`?observe=1`): every committed change arrives, this device's
   * own too, and `change()` throws. For an operator's console with an admin token (which names no
   * restaurant: pass `restaurantId`). Default false.
   */
  observe?: boolean;
  /** Where the outbox is kept: `new MemoryStorage()` (default), `localStorage`, `new FileStorage(dir)` (Node). */
  storage?: OutboxStorage;
  /** Storage key of the outbox. Default `possync:outbox:<restaurant>:<device>`. */
  storageKey?: string;
  /** Start from a state saved earlier with `snapshot()` instead of loading the server's snapshot. */
  initialState?: Snapshot;
  /** Default `'protocol'`. */
  tokenTransport?: TokenTransport;
  /** WebSocket implementation. Default: `globalThis.WebSocket` (the `/node` entry supplies `ws` on Node 20). */
  WebSocket?: WebSocketConstructor;
  /** fetch implementation. Default: `globalThis.fetch`. */
  fetch?: FetchLike;
  /** A `heartbeat` is sent when nothing was sent for this long (ms). Default 30000, as today's app. */
  heartbeatIntervalMs?: number;
  /**
   * The connection is considered dead (and replaced) when nothing at all arrived for
   * heartbeatIntervalMs + heartbeatTimeoutMs. Default 20000.
   */
  heartbeatTimeoutMs?: number;
  /** Time allowed for the WebSocket to open (ms). Default 15000. */
  connectTimeoutMs?: number;
  /** Time allowed for one REST request (ms). Default 15000. */
  requestTimeoutMs?: number;
  /** Reconnect delays (jittered exponential backoff). */
  reconnect?: BackoffOptions;
  /**
   * Changes sent per second at most (the server refuses more than --device-message-rate, 100 by
   * default, with a burst of 500). Default 80.
   */
  sendRate?: number;
  /** Changes that may be sent at once above sendRate. Default 200. */
  sendBurst?: number;
  /** Changes sent and not yet answered, at most. Default 256. */
  maxInFlight?: number;
  /**
   * A change made by this device is not forwarded to it live (it gets an ack); its committed form
   * (commit time, server-side rewriting such as hashed PINs) is read with `GET .../changes` this
   * long after the ack, together with whatever else was committed meanwhile. Default 30 ms.
   */
  ownChangeFetchDelayMs?: number;
  /** A gap in the seqs received live that is not filled after this long is read from the log. Default 1000 ms. */
  gapFetchDelayMs?: number;
  /** Refresh the token this long before it expires (at most 20% of its lifetime). Default 300000. */
  tokenRefreshMarginMs?: number;
  /**
   * The server's --max-frame-bytes (default 1 MiB): `change()` refuses a change whose message
   * would be larger, since the server would close the connection on it every time it is sent.
   */
  maxMessageBytes?: number;
}

export interface StateChangeEvent {
  state: ConnectionState;
  previous: ConnectionState;
  /** For `offline`: the close code and reason, when a connection closed. */
  code?: number;
  reason?: string;
}

/** Something went wrong that the client handles by itself (it retries), reported for logging. */
export interface SyncError extends ServerError {
  cause?: unknown;
}

export interface ClientEvents {
  /** A record of the local state changed (also for snapshot loads: every difference). */
  change: (event: ChangeEvent) => void;
  /** A change was refused because its baseVersion did not match: `current` is the server's record. */
  conflict: (event: RejectionEvent) => void;
  /** A change was refused for another reason (validation, permission): it will not be sent again. */
  rejected: (event: RejectionEvent) => void;
  /** The server answered a change of the outbox (applied, duplicate or rejected). */
  settled: (event: { change: OutboxEntry; result: ChangeResult }) => void;
  /** The connection state changed. */
  state: (event: StateChangeEvent) => void;
  /** Every change up to `seq` is in the local state; changes arrive live from now on. */
  caught_up: (event: { seq: number }) => void;
  /** The local state was replaced by the server's snapshot (`initial` load or after `reset_required`). */
  snapshot: (event: { seq: number; reason: 'initial' | 'reset' }) => void;
  /** The server accepted a refreshed token. */
  auth: (event: { expiresAt: string }) => void;
  /** Something failed and is being retried (network, storage, refused token, ...). */
  error: (error: SyncError) => void;
}

const OPEN = 1;
const RETRYABLE_CODES = new Set(['store_unavailable', 'shutting_down', 'rate_limited', 'overloaded']);
const CLOSE_TOKEN_EXPIRED = 4001;
const CLOSE_RATE_LIMITED = 4029;

interface RestResult {
  status: number;
  body: unknown;
}

/**
 * A device's connection to possync: a live copy of its restaurant's records and an outbox of the
 * changes it makes. See README.md.
 */
export class PossyncClient {
  readonly restaurantId: string;
  readonly deviceId: string;

  private readonly opts: ClientOptions;
  private readonly emitter = new Emitter<ClientEvents>((e) => this.reportListenerError(e));
  private readonly localState: LocalState;
  private readonly outbox: Outbox;
  private readonly httpBase: string;
  private readonly wsBase: string;

  private connState: ConnectionState = 'offline';
  private started = false;
  private closed = false;
  private userId: string | undefined;

  private ws: WebSocketLike | null = null;
  private connId = 0;
  private opened = false;
  private live = false;
  private attempt = 0;
  private attemptGen = 0;
  private needSnapshot: boolean;
  private resetting = false;
  private resetQueue: LogEntry[] = [];
  private pendingCaughtUp: number | null = null;
  private readonly ownSeqs = new Set<number>();
  private fetchingLog = false;
  private gapTimer: ReturnType<typeof setTimeout> | null = null;
  private gapTimerDue = 0;
  private gapFailures = 0;

  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private connectTimer: ReturnType<typeof setTimeout> | null = null;
  private tickTimer: ReturnType<typeof setInterval> | null = null;
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private lastSentAt = 0;
  private lastReceivedAt = 0;
  private tokens: number;
  private tokensAt = 0;

  private token: string | null = null;
  private tokenPromise: Promise<string | null> | null = null;
  private forceTokenRefresh = false;
  private failedOpens = 0;
  private changeCounter = 0;
  private onlineListener: (() => void) | null = null;

  constructor(options: ClientOptions) {
    if (!options || typeof options.url !== 'string') throw new TypeError('options.url is required');
    this.opts = options;
    const claims = typeof options.token === 'string' ? decodeTokenClaims(options.token) : null;
    if (typeof options.token === 'string') this.token = options.token;
    const restaurantId = options.restaurantId ?? claims?.restaurant_id;
    const deviceId = options.deviceId ?? claims?.device_id;
    if (!restaurantId || restaurantId === '*') throw new TypeError('options.restaurantId is required');
    if (!deviceId) throw new TypeError('options.deviceId is required');
    this.restaurantId = restaurantId;
    this.deviceId = deviceId;
    this.userId = options.userId;
    const base = options.url.replace(/\/+$/, '');
    if (/^wss?:\/\//i.test(base)) {
      this.wsBase = base;
      this.httpBase = base.replace(/^ws/i, 'http');
    } else if (/^https?:\/\//i.test(base)) {
      this.httpBase = base;
      this.wsBase = base.replace(/^http/i, 'ws');
    } else {
      throw new TypeError(`options.url must start with http://, https://, ws:// or wss:// (got '${options.url}')`);
    }
    this.localState = new LocalState(deviceId);
    this.needSnapshot = true;
    if (options.initialState) {
      this.localState.load(options.initialState);
      this.needSnapshot = false;
    }
    this.tokens = this.sendBurst;
    const storage = options.storage ?? new MemoryStorage();
    const key = options.storageKey ?? `possync:outbox:${restaurantId}:${deviceId}`;
    this.outbox = new Outbox(storage, key, {
      onSendable: () => this.flushOutbox(),
      onStorageError: (e) => this.emitError('storage_error', 'the outbox could not be stored', e),
    });
    void this.outbox.load();
  }

  // ------------------------------------------------------------------ public API

  /** Subscribes to an event; returns the function that unsubscribes. */
  on<K extends keyof ClientEvents>(event: K, handler: ClientEvents[K]): () => void {
    return this.emitter.on(event, handler);
  }

  once<K extends keyof ClientEvents>(event: K, handler: ClientEvents[K]): () => void {
    return this.emitter.once(event, handler);
  }

  off<K extends keyof ClientEvents>(event: K, handler: ClientEvents[K]): void {
    this.emitter.off(event, handler);
  }

  /** The connection state. */
  get connectionState(): ConnectionState {
    return this.connState;
  }

  /** The seq of the last change in the local state. */
  get seq(): number {
    return this.localState.seq;
  }

  /** One record of the local state (read-only), or undefined. */
  get(dataType: DataType, recordId: string | number): PosRecord | undefined {
    return this.localState.get(dataType, recordId);
  }

  /** The records of one data type in the local state (read-only), in no particular order. */
  list(dataType: DataType): PosRecord[] {
    return this.localState.list(dataType);
  }

  /** A copy of the local state, shaped like `GET /api/restaurants/:id/data` (records sorted by id). */
  snapshot(): Snapshot {
    return this.localState.snapshot();
  }

  /** The changes waiting for the server's answer, oldest first. */
  pendingChanges(): OutboxEntry[] {
    return this.outbox.entries();
  }

  /** Resolves once the outbox was read from its storage. */
  loaded(): Promise<void> {
    return this.outbox.load();
  }

  /** The result of a change still in the outbox (e.g. one stored by an earlier run), or null. */
  resultOf(changeId: string): Promise<ChangeResult> | null {
    return this.outbox.waitFor(changeId);
  }

  /** Starts syncing: connects, and reconnects whenever the connection is lost, until `disconnect()`. */
  connect(): void {
    if (this.closed) throw new Error('the client is closed');
    if (this.started) return;
    this.started = true;
    const g = globalThis as { addEventListener?: (t: string, l: () => void) => void };
    if (typeof g.addEventListener === 'function' && typeof (globalThis as { navigator?: unknown }).navigator === 'object') {
      this.onlineListener = () => {
        if (this.reconnectTimer) {
          clearTimeout(this.reconnectTimer);
          this.reconnectTimer = null;
          void this.startAttempt();
        }
      };
      g.addEventListener('online', this.onlineListener);
    }
    void this.startAttempt();
  }

  /** Resolves when the client is live (caught up), or rejects after `timeoutMs`. */
  ready(timeoutMs = 30000): Promise<void> {
    if (this.connState === 'live') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`not live within ${timeoutMs} ms (state: ${this.connState})`));
      }, timeoutMs);
      const off = this.on('state', (e) => {
        if (e.state === 'live') {
          clearTimeout(timer);
          off();
          resolve();
        }
      });
    });
  }

  /** Stops syncing (the outbox and the state stay; `connect()` resumes). */
  disconnect(): void {
    if (!this.started) return;
    this.started = false;
    this.attemptGen++;
    if (this.onlineListener) {
      (globalThis as { removeEventListener?: (t: string, l: () => void) => void }).removeEventListener?.(
        'online',
        this.onlineListener,
      );
      this.onlineListener = null;
    }
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    if (this.refreshTimer) clearTimeout(this.refreshTimer); // rescheduled when connecting again
    this.refreshTimer = null;
    if (this.ws) this.dropConnection(1000, 'client disconnect');
    this.setState('offline');
  }

  /** Disconnects for good and waits until the outbox is stored. */
  async close(): Promise<void> {
    this.disconnect();
    this.closed = true;
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    await this.outbox.flush();
    this.outbox.close();
  }

  /**
   * Makes a change to one record: it is given a change id at once, stored in the outbox, and sent
   * (again after every reconnect) until the server answers. The local state changes when the
   * committed change comes back in seq order, not before.
   */
  change(
    dataType: DataType,
    recordId: string | number,
    action: string,
    data: JsonObject,
    options: ChangeOptions = {},
  ): PendingChange {
    if (this.closed) throw new Error('the client is closed');
    if (this.opts.observe) throw new Error('an observing client cannot make changes');
    if (!isDataType(dataType)) throw new TypeError(`unknown data type '${String(dataType)}'`);
    if (typeof recordId === 'number' && Number.isInteger(recordId)) recordId = String(recordId);
    if (typeof recordId !== 'string' || recordId.length === 0) throw new TypeError('recordId must be a non-empty string');
    if (typeof action !== 'string' || action.length === 0) throw new TypeError('action must be a non-empty string');
    if (!isPlainObject(data)) throw new TypeError('data must be a JSON object');
    const { baseVersion } = options;
    if (baseVersion !== undefined && !(Number.isInteger(baseVersion) && baseVersion >= 0)) {
      throw new TypeError('baseVersion must be a non-negative integer');
    }
    const changeId = options.changeId ?? this.newChangeId();
    const entry: OutboxEntry = {
      changeId,
      dataType,
      recordId,
      action,
      // A copy as JSON: later changes to the caller's object do not alter the change.
      data: JSON.parse(JSON.stringify(data)) as JsonObject,
      createdAt: Date.now(),
    };
    if (baseVersion !== undefined) entry.baseVersion = baseVersion;
    const bytes = utf8Length(encodeChange(entry));
    const limit = this.opts.maxMessageBytes ?? 1048576;
    if (bytes > limit) throw new RangeError(`the change is ${bytes} bytes as a message; the limit is ${limit}`);
    const result = this.outbox.add(entry);
    return { changeId, result };
  }

  /** Sets the user logged in on the device (`''` or null: nobody); the author of later changes. */
  setUser(userId: string | null): void {
    this.userId = userId || undefined;
    this.sendControl({ type: 'user_changed', user_id: userId ?? '' });
  }

  /** Replaces the token (e.g. after the app logged in again); sent to the server at once if connected. */
  setToken(token: string): void {
    this.token = token;
    this.scheduleTokenRefresh(token);
    this.sendControl({ type: 'auth', token });
  }

  // ------------------------------------------------------------------ connection

  private get sendBurst(): number {
    return this.opts.sendBurst ?? 200;
  }

  private setState(state: ConnectionState, extra: { code?: number; reason?: string } = {}): void {
    if (state === this.connState) return;
    const previous = this.connState;
    this.connState = state;
    this.emitter.emit('state', { state, previous, ...extra });
  }

  private async startAttempt(): Promise<void> {
    if (!this.started || this.closed) return;
    const gen = ++this.attemptGen;
    this.reconnectTimer = null;
    this.setState('connecting');
    try {
      await this.outbox.load();
      const token = await this.currentToken(this.forceTokenRefresh);
      this.forceTokenRefresh = false;
      if (gen !== this.attemptGen) return;
      if (token && !this.refreshTimer) this.scheduleTokenRefresh(token);
      if (this.needSnapshot) {
        await this.loadSnapshot('initial');
        if (gen !== this.attemptGen) return;
      }
      this.openSocket(token);
    } catch (e) {
      if (gen !== this.attemptGen) return;
      this.emitError('connect_failed', errorMessage(e), e);
      this.setState('offline');
      this.scheduleReconnect();
    }
  }

  private scheduleReconnect(code?: number): void {
    if (!this.started || this.closed || this.reconnectTimer) return;
    let delay = backoffDelay(this.attempt++, this.opts.reconnect);
    if (code === CLOSE_RATE_LIMITED) delay = Math.max(delay, 5000);
    this.reconnectTimer = setTimeout(() => void this.startAttempt(), delay);
  }

  private openSocket(token: string | null): void {
    const Impl = this.opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Impl) {
      throw new Error("no WebSocket implementation: pass options.WebSocket, or import from '@possync/client/node'");
    }
    const transport = this.opts.tokenTransport ?? 'protocol';
    const params = new URLSearchParams();
    params.set('restaurant_id', this.restaurantId);
    params.set('device_id', this.deviceId);
    params.set('since', String(this.localState.seq));
    if (this.userId) params.set('user_id', this.userId);
    if (this.opts.observe) params.set('observe', '1');
    if (token && transport === 'query') params.set('token', token);
    const url = `${this.wsBase}/ws?${params.toString()}`;
    const protocols = ['possync'];
    if (token && transport === 'protocol') protocols.push(`bearer.${token}`);
    const wsOptions = token && transport === 'header' ? { headers: { Authorization: `Bearer ${token}` } } : undefined;

    const id = ++this.connId;
    const ws = wsOptions ? new Impl(url, protocols, wsOptions) : new Impl(url, protocols);
    this.ws = ws;
    this.opened = false;
    this.live = false;
    this.connectTimer = setTimeout(() => {
      if (id === this.connId && !this.opened) {
        this.emitError('connect_timeout', 'the WebSocket did not open in time');
        this.dropConnection(4000, 'connect timeout');
      }
    }, this.opts.connectTimeoutMs ?? 15000);
    ws.onopen = () => {
      if (id !== this.connId) return;
      this.onOpen();
    };
    ws.onmessage = (ev) => {
      if (id !== this.connId) return;
      this.lastReceivedAt = Date.now();
      if (typeof ev.data !== 'string') return;
      const msg = decodeServerMessage(ev.data);
      if (msg) this.onMessage(msg);
    };
    ws.onerror = (ev: unknown) => {
      if (id !== this.connId) return;
      // `ws` reports a refused upgrade as "Unexpected server response: 401"; browsers say nothing.
      const message = String((ev as { message?: unknown })?.message ?? '');
      if (/\b40[13]\b/.test(message)) this.forceTokenRefresh = true;
      if (message) this.emitError('socket_error', message, ev);
    };
    ws.onclose = (ev) => {
      if (id !== this.connId) return;
      this.onClosed(ev.code, ev.reason);
    };
  }

  private onOpen(): void {
    this.opened = true;
    this.failedOpens = 0;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    const now = Date.now();
    this.lastReceivedAt = now;
    this.lastSentAt = now;
    this.setState('catching_up');
    const interval = this.opts.heartbeatIntervalMs ?? 30000;
    const tick = Math.max(50, Math.min(1000, Math.floor(interval / 2)));
    this.tickTimer = setInterval(() => this.onTick(), tick);
    this.flushOutbox();
  }

  private onTick(): void {
    if (!this.ws || !this.opened) return;
    const now = Date.now();
    const interval = this.opts.heartbeatIntervalMs ?? 30000;
    const timeout = this.opts.heartbeatTimeoutMs ?? 20000;
    if (now - this.lastReceivedAt > interval + timeout) {
      this.emitError('heartbeat_timeout', `nothing received for ${now - this.lastReceivedAt} ms`);
      this.dropConnection(4000, 'heartbeat timeout');
      return;
    }
    if (now - this.lastSentAt >= interval) this.sendControl({ type: 'heartbeat' });
  }

  /** Closes the current socket without waiting for its close handshake, and handles the loss at once. */
  private dropConnection(code: number, reason: string): void {
    const ws = this.ws;
    if (!ws) return;
    try {
      const terminate = (ws as { terminate?: () => void }).terminate;
      if (code !== 1000 && typeof terminate === 'function') terminate.call(ws);
      else ws.close(code === 1000 ? 1000 : 4000, reason);
    } catch {
      // already closing
    }
    this.onClosed(code, reason);
  }

  private onClosed(code: number, reason: string): void {
    const id = this.connId;
    this.connId++; // events of the old socket are ignored from now on
    if (this.ws) {
      // No-ops rather than null: `ws` emits 'error' after an aborted handshake, and an EventEmitter
      // 'error' without a listener would throw.
      this.ws.onopen = this.ws.onmessage = this.ws.onerror = this.ws.onclose = noop;
    }
    this.ws = null;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    if (this.tickTimer) clearInterval(this.tickTimer);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.gapTimer) clearTimeout(this.gapTimer);
    this.connectTimer = this.tickTimer = this.flushTimer = this.gapTimer = null;
    if (!this.opened && ++this.failedOpens % 3 === 0) {
      // A browser does not tell why an upgrade failed: a revoked or rotated token looks like a
      // network error. Every third failure in a row, ask the token function for a new one.
      this.forceTokenRefresh = true;
    }
    this.outbox.connectionLost(id);
    this.localState.clearBuffer();
    this.ownSeqs.clear();
    this.live = false;
    this.opened = false;
    this.pendingCaughtUp = null;
    if (code === CLOSE_TOKEN_EXPIRED) this.forceTokenRefresh = true;
    this.setState('offline', { code, reason });
    this.scheduleReconnect(code);
  }

  private send(text: string): boolean {
    const ws = this.ws;
    if (!ws || !this.opened || ws.readyState !== OPEN) return false;
    try {
      ws.send(text);
    } catch (e) {
      this.emitError('socket_error', errorMessage(e), e);
      return false;
    }
    this.lastSentAt = Date.now();
    return true;
  }

  private sendControl(msg: JsonObject): void {
    this.takeToken();
    this.send(JSON.stringify(msg));
  }

  // ------------------------------------------------------------------ messages

  private onMessage(msg: ServerMessage): void {
    switch (msg.kind) {
      case 'change':
        this.acceptEntries([msg.entry]);
        break;
      case 'caught_up':
        if (this.resetting) {
          this.pendingCaughtUp = msg.seq;
        } else {
          this.goLive(msg.seq);
        }
        break;
      case 'reset_required':
        void this.reset();
        break;
      case 'ack':
        this.onAck(msg);
        break;
      case 'error':
        this.onServerError(msg.error, msg.changeId);
        break;
      case 'auth_ok':
        this.emitter.emit('auth', { expiresAt: msg.expiresAt });
        break;
      default:
        break;
    }
  }

  private goLive(seq: number): void {
    this.live = true;
    this.attempt = 0;
    this.setState('live');
    this.emitter.emit('caught_up', { seq: Math.max(seq, this.localState.seq) });
    this.checkGaps();
  }

  /** Applies committed changes (from the socket or the log) in seq order. */
  private acceptEntries(entries: LogEntry[]): void {
    if (this.resetting) {
      this.resetQueue.push(...entries);
      return;
    }
    const events: ChangeEvent[] = [];
    for (const entry of entries) events.push(...this.localState.offer(entry));
    this.afterApply(events);
  }

  private afterApply(events: ChangeEvent[]): void {
    const seq = this.localState.seq;
    for (const s of this.ownSeqs) if (s <= seq) this.ownSeqs.delete(s);
    for (const e of events) this.emitter.emit('change', e);
    this.checkGaps();
  }

  private async reset(): Promise<void> {
    if (this.resetting) return;
    this.resetting = true;
    const conn = this.connId;
    try {
      await this.loadSnapshot('reset');
    } catch (e) {
      this.resetting = false;
      this.resetQueue = [];
      this.emitError('reset_failed', `could not reload the snapshot: ${errorMessage(e)}`, e);
      if (conn === this.connId) this.dropConnection(4000, 'snapshot reload failed');
      return;
    }
    // pendingCaughtUp is cleared when a connection is lost: a value belongs to the current one.
    const caughtUp = this.pendingCaughtUp;
    this.pendingCaughtUp = null;
    if (caughtUp !== null && this.ws) this.goLive(caughtUp);
    else this.checkGaps();
  }

  /** Replaces the local state with the server's snapshot (then applies what arrived meanwhile). */
  private async loadSnapshot(reason: 'initial' | 'reset'): Promise<void> {
    this.resetting = true;
    try {
      const res = await this.rest('GET', `/api/restaurants/${encodeURIComponent(this.restaurantId)}/data`);
      let snapshot: Snapshot;
      if (res.status === 404) {
        snapshot = emptySnapshot(); // nothing committed yet and nobody connected
      } else if (res.status === 200) {
        snapshot = snapshotFromResponse(res.body);
      } else {
        throw new Error(`GET .../data answered ${res.status}: ${describeBody(res.body)}`);
      }
      const events = this.localState.load(snapshot);
      this.needSnapshot = false;
      const queued = this.resetQueue;
      this.resetQueue = [];
      this.resetting = false;
      for (const entry of queued) events.push(...this.localState.offer(entry));
      this.emitter.emit('snapshot', { seq: snapshot.seq, reason });
      this.afterApply(events);
    } finally {
      this.resetting = false;
    }
  }

  /**
   * While live, every seq reaches this connection except the device's own changes (acked instead).
   * A gap in front of a seq this device wrote, or one that stays open, is read from the log.
   */
  private checkGaps(): void {
    if (!this.live || this.resetting || this.fetchingLog || !this.ws) return;
    const next = this.localState.seq + 1;
    let highest = this.localState.highestBuffered;
    for (const s of this.ownSeqs) if (s > highest) highest = s;
    if (highest < next) {
      if (this.gapTimer) clearTimeout(this.gapTimer);
      this.gapTimer = null;
      return;
    }
    let delay = this.ownSeqs.has(next) ? (this.opts.ownChangeFetchDelayMs ?? 30) : (this.opts.gapFetchDelayMs ?? 1000);
    if (this.gapFailures > 0) delay = Math.max(delay, backoffDelay(this.gapFailures - 1, { initialDelayMs: 500, maxDelayMs: 10000 }));
    const due = Date.now() + delay;
    if (this.gapTimer && this.gapTimerDue <= due) return;
    if (this.gapTimer) clearTimeout(this.gapTimer);
    this.gapTimerDue = due;
    this.gapTimer = setTimeout(() => {
      this.gapTimer = null;
      void this.fetchLog();
    }, delay);
  }

  private async fetchLog(): Promise<void> {
    if (this.fetchingLog || !this.live || this.resetting) return;
    this.fetchingLog = true;
    const conn = this.connId;
    try {
      for (;;) {
        const since = this.localState.seq;
        const res = await this.rest(
          'GET',
          `/api/restaurants/${encodeURIComponent(this.restaurantId)}/changes?since=${since}&limit=1000`,
        );
        if (conn !== this.connId) return;
        if (res.status === 410) {
          this.fetchingLog = false;
          await this.reset();
          return;
        }
        if (res.status !== 200 || !isPlainObject(res.body) || !Array.isArray(res.body.changes)) {
          throw new Error(`GET .../changes answered ${res.status}: ${describeBody(res.body)}`);
        }
        const entries: LogEntry[] = [];
        for (const c of res.body.changes) {
          const entry = isPlainObject(c) ? entryFromChangeMessage({ ...c, type: 'data_change' }) : null;
          if (entry) entries.push(entry);
        }
        this.gapFailures = 0;
        this.acceptEntries(entries);
        if (res.body.has_more !== true || entries.length === 0) break;
        let highest = this.localState.highestBuffered;
        for (const s of this.ownSeqs) if (s > highest) highest = s;
        if (highest <= this.localState.seq) break;
      }
    } catch (e) {
      this.gapFailures++;
      this.emitError('log_read_failed', errorMessage(e), e);
    } finally {
      this.fetchingLog = false;
    }
    this.checkGaps(); // (also for a newer connection that went live while this read ran)
  }

  // ------------------------------------------------------------------ outbox

  private onAck(msg: Extract<ServerMessage, { kind: 'ack' }>): void {
    const entry = this.outbox.get(msg.changeId);
    if (!entry) return;
    if (msg.status === 'applied' || msg.status === 'duplicate') {
      const seq = msg.seq ?? 0;
      if (seq > this.localState.seq) this.ownSeqs.add(seq);
      this.settle(entry, { status: msg.status, changeId: msg.changeId, seq });
      this.checkGaps();
    } else {
      this.onRefused(entry, msg.error ?? { code: 'unknown', message: '' }, msg.current);
    }
    this.flushOutbox();
  }

  private onServerError(error: ServerError, changeId?: string): void {
    const entry = changeId !== undefined ? this.outbox.get(changeId) : undefined;
    if (entry) {
      this.onRefused(entry, error, undefined);
      this.flushOutbox();
      return;
    }
    this.emitter.emit('error', { ...error });
  }

  private onRefused(entry: OutboxEntry, error: ServerError, current: PosRecord | null | undefined): void {
    if (RETRYABLE_CODES.has(error.code)) {
      const attempts = this.outbox.attempts(entry.changeId);
      this.outbox.retryLater(entry.changeId, backoffDelay(attempts - 1, { initialDelayMs: 1000, maxDelayMs: 30000 }));
      this.emitError(error.code, `change ${entry.changeId} will be sent again: ${error.message}`);
      return;
    }
    const isConflict = error.code === 'conflict';
    const record = isConflict ? (current ?? null) : (this.localState.get(entry.dataType, entry.recordId) ?? null);
    this.settle(entry, { status: 'rejected', changeId: entry.changeId, seq: null, error, current: record });
    this.emitter.emit(isConflict ? 'conflict' : 'rejected', { change: entry, error, current: record });
  }

  private settle(entry: OutboxEntry, result: ChangeResult): void {
    this.outbox.settle(entry.changeId, result);
    this.emitter.emit('settled', { change: entry, result });
  }

  private refillTokens(): void {
    const now = Date.now();
    const rate = this.opts.sendRate ?? 80;
    if (this.tokensAt === 0) this.tokensAt = now;
    this.tokens = Math.min(this.sendBurst, this.tokens + ((now - this.tokensAt) / 1000) * rate);
    this.tokensAt = now;
  }

  private takeToken(): void {
    this.refillTokens();
    this.tokens -= 1;
  }

  private flushOutbox(): void {
    if (!this.ws || !this.opened || this.closed) return;
    if (this.flushTimer) return; // a paced flush is already scheduled
    this.refillTokens();
    const maxInFlight = this.opts.maxInFlight ?? 256;
    const window = maxInFlight - this.outbox.inFlight(this.connId);
    const budget = Math.min(window, Math.floor(this.tokens));
    const batch = this.outbox.takeSendable(this.connId, budget);
    for (const entry of batch) {
      if (!this.send(encodeChange(entry))) {
        this.outbox.connectionLost(this.connId);
        return;
      }
      this.tokens -= 1;
    }
    if (budget < window && this.outbox.hasSendable(this.connId)) {
      const rate = this.opts.sendRate ?? 80;
      const wait = Math.max(5, Math.ceil(((1 - this.tokens) / rate) * 1000));
      this.flushTimer = setTimeout(() => {
        this.flushTimer = null;
        this.flushOutbox();
      }, wait);
    }
  }

  private newChangeId(): string {
    const bytes = new Uint8Array(6);
    const c = (globalThis as { crypto?: { getRandomValues?: (a: Uint8Array) => Uint8Array } }).crypto;
    if (c?.getRandomValues) c.getRandomValues(bytes);
    else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
    let rnd = '';
    for (const b of bytes) rnd += b.toString(16).padStart(2, '0');
    this.changeCounter = (this.changeCounter + 1) % 1679616;
    return `${this.deviceId}.${Date.now().toString(36)}.${this.changeCounter.toString(36)}.${rnd}`;
  }

  // ------------------------------------------------------------------ tokens and REST

  private async currentToken(force: boolean): Promise<string | null> {
    const source = this.opts.token;
    if (source === undefined) return this.token;
    if (typeof source === 'string' || (!force && this.token && !tokenNearExpiry(this.token))) {
      return this.token;
    }
    if (!this.tokenPromise) {
      this.tokenPromise = (async () => {
        try {
          const token = await source();
          if (typeof token !== 'string' || token.length === 0) throw new Error('the token function returned no token');
          this.token = token;
          this.scheduleTokenRefresh(token);
          return token;
        } finally {
          this.tokenPromise = null;
        }
      })();
    }
    return this.tokenPromise;
  }

  private scheduleTokenRefresh(token: string): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    if (typeof this.opts.token !== 'function' || this.closed || !this.started) return;
    const claims = decodeTokenClaims(token);
    if (!claims || typeof claims.exp !== 'number') return;
    const now = Date.now();
    let lifetime = claims.exp * 1000 - now;
    // A freshly issued token: its lifetime counts from now even if the device's clock is off.
    if (typeof claims.iat === 'number') lifetime = Math.min(lifetime, (claims.exp - claims.iat) * 1000);
    const margin = Math.min(this.opts.tokenRefreshMarginMs ?? 300000, lifetime * 0.2);
    const delay = Math.max(0, Math.min(lifetime - margin, 2 ** 31 - 1));
    this.refreshTimer = setTimeout(() => void this.refreshToken(), delay);
  }

  private async refreshToken(): Promise<void> {
    this.refreshTimer = null;
    try {
      const token = await this.currentToken(true);
      if (token) this.sendControl({ type: 'auth', token });
    } catch (e) {
      this.emitError('token_refresh_failed', errorMessage(e), e);
      if (!this.closed && this.started) this.refreshTimer = setTimeout(() => void this.refreshToken(), 5000);
    }
  }

  private async rest(method: string, path: string): Promise<RestResult> {
    const fetchImpl = this.opts.fetch ?? (globalThis as { fetch?: FetchLike }).fetch;
    if (!fetchImpl) throw new Error('no fetch implementation: pass options.fetch');
    let refreshed = false;
    for (let tries = 0; ; tries++) {
      const token = await this.currentToken(false);
      const headers: Record<string, string> = { Accept: 'application/json' };
      if (token) headers.Authorization = `Bearer ${token}`;
      const controller = typeof AbortController === 'function' ? new AbortController() : null;
      const timer = setTimeout(() => controller?.abort(), this.opts.requestTimeoutMs ?? 15000);
      let status: number;
      let text: string;
      let retryAfter: string | null;
      try {
        const res = await fetchImpl(this.httpBase + path, { method, headers, signal: controller?.signal });
        status = res.status;
        retryAfter = res.headers.get('retry-after');
        text = await res.text();
      } finally {
        clearTimeout(timer);
      }
      let body: unknown = null;
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        body = text;
      }
      if (status === 401 && !refreshed && typeof this.opts.token === 'function') {
        refreshed = true;
        await this.currentToken(true);
        continue;
      }
      if ((status === 429 || status === 503) && tries < 5) {
        const seconds = Number(retryAfter);
        const wait = Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 10) * 1000 : 1000;
        await new Promise((r) => setTimeout(r, wait));
        continue;
      }
      return { status, body };
    }
  }

  // ------------------------------------------------------------------ errors

  private emitError(code: string, message: string, cause?: unknown): void {
    const error: SyncError = { code, message };
    if (cause !== undefined) error.cause = cause;
    this.emitter.emit('error', error);
  }

  private reportListenerError(e: unknown): void {
    console.error('possync: an event listener threw', e);
  }
}

function tokenNearExpiry(token: string): boolean {
  const claims = decodeTokenClaims(token);
  if (!claims || typeof claims.exp !== 'number') return false;
  // Only a token about to expire in transit; refreshing ahead of time is the refresh timer's job.
  return claims.exp * 1000 - Date.now() < 1000;
}

function noop(): void {}

function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function describeBody(body: unknown): string {
  if (isPlainObject(body) && typeof body.code === 'string') return `${body.code}: ${String(body.message ?? '')}`;
  return typeof body === 'string' ? body.slice(0, 200) : JSON.stringify(body)?.slice(0, 200) ?? '';
}

/** Creates a client (see ClientOptions). */
export function createClient(options: ClientOptions): PossyncClient {
  return new PossyncClient(options);
}
