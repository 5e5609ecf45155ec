// The possync admin console (served by the server at /admin/): an operator signs in with an admin
// token, sees the server's health, the restaurants with connections, and per restaurant its
// connected devices, a live feed of its changes and its current records. The live part is an
// observing @possync/client (read-only WebSocket, `?observe=1`); the rest is the admin REST API.

import {
  DATA_TYPES,
  PossyncClient,
  decodeTokenClaims,
  type ChangeEvent,
  type ConnectionState,
  type DataType,
  type PosRecord,
  type TokenClaims,
} from '../../js/src/index.js';
import { AdminApi, ApiError, type ConnectionRow, type RestaurantRow } from './api.js';
import { MetricsHistory, drawChart, formatValue, parseMetrics } from './metrics.js';

const TOKEN_KEY = 'possync.admin.token';
const POLL_MS = 2000;
const FEED_ROWS = 200;
const RECORD_ROWS = 300;
const FEED_BACKFILL = 30;

// ------------------------------------------------------------------ DOM helpers

function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`#${id} is missing from index.html`);
  return e as T;
}

function cell(text: string, className?: string, title?: string): HTMLTableCellElement {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  if (title) td.title = title;
  return td;
}

function row(...cells: HTMLTableCellElement[]): HTMLTableRowElement {
  const tr = document.createElement('tr');
  tr.append(...cells);
  return tr;
}

function timeOf(iso: string | null | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '–';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(t).toLocaleString();
}

function describe(e: unknown): string {
  if (e instanceof ApiError) return e.status === 0 ? e.message : `${e.message} (${e.code})`;
  return e instanceof Error ? e.message : String(e);
}

// ------------------------------------------------------------------ sign-in

/** Why a token cannot sign in before asking the server, or null. */
function tokenProblem(token: string, claims: TokenClaims | null): string | null {
  if (token === '') return 'Paste an admin token.';
  if (!claims) return 'This is not a possync token: a token is three base64url parts separated by dots.';
  if (claims.role !== undefined && claims.role !== 'admin') {
    return `This is a '${claims.role}' token of restaurant '${claims.restaurant_id ?? '?'}': the console needs an admin token (token issue --role admin --restaurant '*').`;
  }
  if (typeof claims.exp === 'number' && claims.exp * 1000 <= Date.now()) {
    return `This token expired at ${new Date(claims.exp * 1000).toLocaleString()}: issue a new one.`;
  }
  return null;
}

function refusal(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 401) return `The server refused the token: ${e.message} (${e.code}).`;
    if (e.status === 403) return `This token may not use the admin console: ${e.message} (${e.code}).`;
    if (e.status === 429) return 'Too many requests from this address: wait a moment and try again.';
    return `Sign-in failed: ${describe(e)}.`;
  }
  return `Sign-in failed: ${describe(e)}.`;
}

function showSignIn(message: string | null): void {
  byId('console').hidden = true;
  byId('signin').hidden = false;
  const error = byId('signin-error');
  error.textContent = message ?? '';
  error.hidden = !message;
  byId<HTMLButtonElement>('signin-button').disabled = false;
  byId('token').focus();
}

async function signIn(token: string): Promise<void> {
  token = token.trim();
  const claims = decodeTokenClaims(token);
  const problem = tokenProblem(token, claims);
  if (problem) return showSignIn(problem);
  byId<HTMLButtonElement>('signin-button').disabled = true;
  const api = new AdminApi(location.origin, token);
  try {
    await api.restaurants();
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    return showSignIn(refusal(e));
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  byId<HTMLTextAreaElement>('token').value = '';
  new AdminConsole(api, token, claims ?? {}).start();
}

// ------------------------------------------------------------------ the console

interface FeedEntry {
  seq: number;
  dataType: string;
  recordId: string;
  action: string;
  deviceId: string;
  timestamp: string;
}

class AdminConsole {
  private pollTimer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;
  private readonly metricsHistory = new MetricsHistory();
  private restaurants: RestaurantRow[] = [];
  private selected: string | null = null;
  private client: PossyncClient | null = null;
  private unsubscribe: Array<() => void> = [];
  private feed = new Map<number, FeedEntry>();
  private freshSeqs = new Set<number>();
  private recordType: DataType = 'orders';
  private renderQueued = false;
  private readonly listeners: Array<() => void> = [];

  constructor(
    private readonly api: AdminApi,
    private readonly token: string,
    private readonly claims: TokenClaims,
  ) {}

  start(): void {
    byId('signin').hidden = true;
    byId('console').hidden = false;
    this.listen(byId('signout'), 'click', () => this.signOut(null));
    this.listen(byId('open-form'), 'submit', (ev) => {
      ev.preventDefault();
      const id = byId<HTMLInputElement>('open-id').value.trim();
      if (id) this.select(id);
    });
    this.listen(byId('restaurants'), 'click', (ev) => {
      const tr = (ev.target as Element).closest('tr[data-restaurant]');
      if (tr) this.select(tr.getAttribute('data-restaurant')!);
    });
    this.listen(byId('devices'), 'click', (ev) => {
      const button = (ev.target as Element).closest('button[data-device]');
      if (button instanceof HTMLButtonElement) void this.disconnect(button);
    });
    this.listen(byId('type-tabs'), 'click', (ev) => {
      const button = (ev.target as Element).closest('button[data-type]');
      if (!button) return;
      this.recordType = button.getAttribute('data-type') as DataType;
      this.render();
    });
    this.listen(window, 'hashchange', () => this.selectFromHash());
    this.renderTabs();
    this.selectFromHash();
    void this.poll();
  }

  private listen(target: EventTarget, type: string, handler: (ev: Event) => void): void {
    target.addEventListener(type, handler);
    this.listeners.push(() => target.removeEventListener(type, handler));
  }

  private signOut(message: string | null): void {
    this.stopped = true;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.closeClient();
    for (const off of this.listeners) off();
    sessionStorage.removeItem(TOKEN_KEY);
    history.replaceState(null, '', location.pathname);
    showSignIn(message);
  }

  // ---------------------------------------------------------------- polling

  private async poll(): Promise<void> {
    if (this.stopped) return;
    const selected = this.selected;
    const [restaurants, metrics, devices] = await Promise.allSettled([
      this.api.restaurants(),
      this.api.metrics(),
      selected ? this.api.devices(selected) : Promise.resolve(null),
    ]);
    if (this.stopped) return;
    for (const r of [restaurants, metrics, devices]) {
      if (r.status === 'rejected' && r.reason instanceof ApiError && r.reason.status === 401) {
        return this.signOut(`Signed out: ${r.reason.message} (${r.reason.code}).`);
      }
    }
    const status: string[] = [];
    if (restaurants.status === 'fulfilled') {
      this.restaurants = restaurants.value.restaurants;
      byId('node').textContent = `node ${restaurants.value.node}`;
      this.renderRestaurants();
    } else {
      status.push(`restaurants: ${describe(restaurants.reason)}`);
    }
    if (metrics.status === 'fulfilled') {
      this.renderHealth(metrics.value);
    } else {
      status.push(`metrics: ${describe(metrics.reason)}`);
    }
    if (selected === this.selected && selected !== null) {
      if (devices.status === 'fulfilled' && devices.value) {
        this.renderDevices(devices.value.connections);
        this.showDetailError(null);
      } else if (devices.status === 'rejected') {
        this.showDetailError(describe(devices.reason));
      }
    }
    byId('poll-status').textContent = status.length ? `⚠ ${status.join('; ')}` : '';
    this.renderExpiry();
    this.pollTimer = setTimeout(() => void this.poll(), POLL_MS);
  }

  private renderExpiry(): void {
    const exp = this.claims.exp;
    if (typeof exp !== 'number') return;
    const left = exp * 1000 - Date.now();
    if (left <= 0) return this.signOut('Signed out: the token expired.');
    const minutes = Math.floor(left / 60000);
    byId('expiry').textContent =
      minutes >= 120 ? `token valid ${Math.floor(minutes / 60)} h` : `token valid ${Math.max(1, minutes)} min`;
  }

  private renderHealth(text: string): void {
    const point = this.metricsHistory.add(parseMetrics(text), Date.now());
    const pts = this.metricsHistory.points;
    const set = (id: string, caption: string, series: Array<Array<number | null>>) => {
      const figure = byId(id);
      figure.querySelector('figcaption b')!.textContent = caption;
      drawChart(figure, series, 90);
    };
    set('chart-connections', formatValue(point.connections), [pts.map((p) => p.connections)]);
    set('chart-changes', formatValue(point.changesPerSecond), [pts.map((p) => p.changesPerSecond)]);
    set('chart-commit', `${formatValue(point.commitMeanMs, 2)} · ${formatValue(point.commitP95Ms, 2)}`, [
      pts.map((p) => p.commitMeanMs),
      pts.map((p) => p.commitP95Ms),
    ]);
    set('chart-fanout', `${formatValue(point.fanoutMeanMs, 2)} · ${formatValue(point.fanoutP95Ms, 2)}`, [
      pts.map((p) => p.fanoutMeanMs),
      pts.map((p) => p.fanoutP95Ms),
    ]);
  }

  private renderRestaurants(): void {
    const tbody = byId('restaurants').querySelector('tbody')!;
    const rows = [...this.restaurants].sort((a, b) => a.restaurant_id.localeCompare(b.restaurant_id));
    byId('restaurant-count').textContent = `${rows.length}`;
    tbody.replaceChildren(
      ...rows.map((r) => {
        const tr = row(
          cell(r.restaurant_id),
          cell(String(r.devices), 'num', `${r.connections} connection(s), ${r.observers} observer(s)`),
          cell(r.seq === null ? '–' : `#${r.seq} · ${ago(r.last_change_at)}`, 'num', r.last_change_at ?? ''),
        );
        tr.dataset.restaurant = r.restaurant_id;
        if (r.restaurant_id === this.selected) tr.className = 'selected';
        return tr;
      }),
    );
  }

  // ---------------------------------------------------------------- one restaurant

  private selectFromHash(): void {
    const m = /^#restaurant=(.+)$/.exec(location.hash);
    const id = m ? decodeURIComponent(m[1]!) : null;
    if (id && id !== this.selected) this.select(id);
  }

  private select(id: string): void {
    if (id === this.selected) return;
    this.closeClient();
    this.selected = id;
    const hash = `#restaurant=${encodeURIComponent(id)}`;
    if (location.hash !== hash) history.replaceState(null, '', hash);
    this.feed.clear();
    this.freshSeqs.clear();
    byId('detail-empty').hidden = true;
    byId('detail-body').hidden = false;
    byId('r-title').textContent = id;
    byId('r-seq').textContent = '';
    this.showDetailError(null);
    this.showNotice(null);
    this.renderDevices([]);
    this.renderRestaurants();
    this.setBadge('connecting');

    const client = new PossyncClient({
      url: location.origin,
      token: this.token,
      restaurantId: id,
      deviceId: this.claims.device_id ?? 'admin-console',
      observe: true,
      reconnect: { initialDelayMs: 300, maxDelayMs: 5000 },
    });
    this.client = client;
    this.unsubscribe = [
      client.on('state', (e) => this.setBadge(e.state)),
      client.on('change', (e) => this.onChange(client, e)),
      client.on('snapshot', (e) => void this.backfill(client, id, e.seq)),
      client.on('error', (e) => {
        if (e.code === 'connect_failed') this.showDetailError(e.message);
      }),
      client.on('caught_up', () => this.showDetailError(null)),
    ];
    client.connect();
    this.render();
    void this.api.devices(id).then(
      (d) => this.selected === id && this.renderDevices(d.connections),
      (e) => this.selected === id && this.showDetailError(describe(e)),
    );
  }

  private closeClient(): void {
    for (const off of this.unsubscribe) off();
    this.unsubscribe = [];
    if (this.client) void this.client.close();
    this.client = null;
  }

  private setBadge(state: ConnectionState): void {
    const badge = byId('r-state');
    badge.textContent = state.replace('_', ' ');
    badge.className = `badge ${state}`;
  }

  private showNotice(message: string | null): void {
    const e = byId('r-notice');
    e.textContent = message ?? '';
    e.hidden = !message;
  }

  private showDetailError(message: string | null): void {
    const e = byId('r-error');
    e.textContent = message ?? '';
    e.hidden = !message;
  }

  /** The feed starts with the last changes before the snapshot; live ones follow. */
  private async backfill(client: PossyncClient, id: string, seq: number): Promise<void> {
    if (seq === 0) return;
    try {
      const changes = await this.api.changes(id, Math.max(0, seq - FEED_BACKFILL), FEED_BACKFILL);
      if (client !== this.client) return;
      for (const c of changes) {
        if (this.feed.has(c.seq)) continue;
        this.feed.set(c.seq, {
          seq: c.seq,
          dataType: c.data_type,
          recordId: String(c.data.id),
          action: c.action,
          deviceId: c.device_id,
          timestamp: c.timestamp,
        });
      }
      this.render();
    } catch {
      // history pruned or not readable: the live feed still works
    }
  }

  private onChange(client: PossyncClient, e: ChangeEvent): void {
    if (client !== this.client) return;
    if (e.source !== 'snapshot' && !this.feed.has(e.seq)) {
      this.feed.set(e.seq, {
        seq: e.seq,
        dataType: e.dataType,
        recordId: e.recordId,
        action: e.action,
        deviceId: e.deviceId ?? '',
        timestamp: e.timestamp ?? '',
      });
      this.freshSeqs.add(e.seq);
    }
    this.render();
  }

  private async disconnect(button: HTMLButtonElement): Promise<void> {
    const restaurant = this.selected;
    const device = button.dataset.device!;
    if (!restaurant) return;
    button.disabled = true;
    button.textContent = 'Disconnecting…';
    try {
      const res = await this.api.disconnect(restaurant, device);
      this.showNotice(
        `Disconnected ${device}: ${res.disconnected} connection(s) closed (4002). It may reconnect; to keep it out, revoke its token.`,
      );
      const d = await this.api.devices(restaurant);
      if (this.selected === restaurant) this.renderDevices(d.connections);
    } catch (e) {
      button.disabled = false;
      button.textContent = 'Disconnect';
      this.showDetailError(`Disconnecting ${device} failed: ${describe(e)}`);
    }
  }

  private renderDevices(connections: ConnectionRow[]): void {
    const tbody = byId('devices').querySelector('tbody')!;
    const now = Date.now();
    const rows = [...connections].sort(
      (a, b) => Number(a.observer) - Number(b.observer) || a.device_id.localeCompare(b.device_id),
    );
    tbody.replaceChildren(
      ...rows.map((c) => {
        const button = document.createElement('button');
        button.className = 'danger';
        button.textContent = 'Disconnect';
        button.dataset.device = c.device_id;
        const action = document.createElement('td');
        action.append(button);
        const tr = row(
          cell(c.device_id, undefined, c.address),
          cell(
            c.observer ? 'observer' : `${c.role ?? '–'}${c.legacy ? ' (legacy, no token)' : ''}`,
            undefined,
            c.legacy ? 'an enrolled legacy device, connected without a token (--auth mixed)' : undefined,
          ),
          cell(c.user_id ?? '–'),
          cell(c.node),
          cell(new Date(c.connected_at).toLocaleString(), 'num', c.connected_at),
          cell(ago(c.last_seen, now), 'num', c.last_seen),
          action,
        );
        tr.dataset.device = c.device_id;
        if (c.observer) tr.className = 'observer';
        return tr;
      }),
    );
    if (rows.length === 0) {
      const td = cell('No device is connected to this restaurant on this node.', 'muted');
      td.colSpan = 7;
      tbody.append(row(td));
    }
  }

  /** Feed and records, at most once per frame. */
  private render(): void {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      this.renderFeed();
      this.renderTabs();
      this.renderRecords();
      if (this.client) byId('r-seq').textContent = `seq ${this.client.seq}`;
    });
  }

  private renderFeed(): void {
    const entries = [...this.feed.values()].sort((a, b) => b.seq - a.seq).slice(0, FEED_ROWS);
    for (const seq of [...this.feed.keys()]) if (seq < (entries[entries.length - 1]?.seq ?? 0)) this.feed.delete(seq);
    const tbody = byId('feed').querySelector('tbody')!;
    tbody.replaceChildren(
      ...entries.map((f) => {
        const tr = row(
          cell(String(f.seq), 'num'),
          cell(f.dataType),
          cell(f.recordId),
          cell(f.action),
          cell(f.deviceId),
          cell(timeOf(f.timestamp), 'num', f.timestamp),
        );
        tr.dataset.seq = String(f.seq);
        if (this.freshSeqs.has(f.seq)) tr.className = 'fresh';
        return tr;
      }),
    );
    this.freshSeqs.clear();
  }

  private renderTabs(): void {
    const tabs = byId('type-tabs');
    tabs.replaceChildren(
      ...DATA_TYPES.map((t) => {
        const b = document.createElement('button');
        b.type = 'button';
        b.setAttribute('role', 'tab');
        b.dataset.type = t;
        b.setAttribute('aria-selected', String(t === this.recordType));
        const n = this.client ? this.client.list(t).length : 0;
        b.textContent = `${t} ${n}`;
        return b;
      }),
    );
  }

  private renderRecords(): void {
    const tbody = byId('records').querySelector('tbody')!;
    const records: PosRecord[] = this.client ? [...this.client.list(this.recordType)] : [];
    records.sort((a, b) => b.version - a.version);
    const shown = records.slice(0, RECORD_ROWS);
    tbody.replaceChildren(
      ...shown.map((r) => {
        const { id, version, updated_at, ...fields } = r;
        const text = JSON.stringify(fields);
        const tr = row(
          cell(id),
          cell(String(version), 'num'),
          cell(ago(updated_at), 'num', updated_at),
          cell(text.length > 160 ? `${text.slice(0, 160)}…` : text, 'fields', text.length > 160 ? text : undefined),
        );
        tr.dataset.record = id;
        return tr;
      }),
    );
    if (records.length > shown.length) {
      const td = cell(`${records.length - shown.length} more, not shown`, 'muted');
      td.colSpan = 4;
      tbody.append(row(td));
    }
  }
}

// ------------------------------------------------------------------ start

function main(): void {
  byId('signin-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    void signIn(byId<HTMLTextAreaElement>('token').value);
  });
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) void signIn(saved);
  else showSignIn(null);
}

main();
