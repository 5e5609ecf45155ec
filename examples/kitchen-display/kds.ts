// A kitchen display on @possync/client: open orders appear as they are committed anywhere in the
// restaurant; "Bump" marks one `ready`. The bump goes through the SDK's outbox, kept in
// localStorage, so it survives a server restart, an offline spell and a page reload: it is sent
// when the connection is back, exactly once.
//
// Configuration comes from the page's fragment (never sent to a web server):
//   #server=http://127.0.0.1:3000&token=<kds token>[&pos=<pos token>]
// `run` (beside this file) prints such a link. With a `pos` token the page also has a
// "+ Test order" button that creates orders as a second device would.

import { PossyncClient, WebStorage, type PosRecord } from '../../clients/js/src/index.js';

// Statuses that take an order off the screen (the default life cycle's closing ones, and later ones).
const DONE = new Set(['ready', 'served', 'paid', 'completed', 'cancelled', 'refunded', 'closed']);
const LATE_MIN = 10;
const VERY_LATE_MIN = 20;

const params = new URLSearchParams(location.hash.slice(1));
const server = params.get('server') ?? `${location.protocol}//${location.hostname}:3000`;
const token = params.get('token');
const posToken = params.get('pos');

function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  return document.getElementById(id) as T;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text?: string, className?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (className) e.className = className;
  return e;
}

function problem(message: string | null): void {
  const p = byId('problem');
  p.textContent = message ?? '';
  p.hidden = !message;
}

function text(v: unknown): string {
  return typeof v === 'string' || typeof v === 'number' ? String(v) : '';
}

function minutesSince(iso: unknown): number {
  const t = typeof iso === 'string' ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? 0 : Math.max(0, Math.floor((Date.now() - t) / 60000));
}

function start(): void {
  if (!token) {
    problem('Open this page with #token=<kds token> in its address: examples/kitchen-display/run prints the link.');
    return;
  }
  let client: PossyncClient;
  try {
    client = new PossyncClient({
      url: server,
      token,
      storage: new WebStorage(),
      reconnect: { initialDelayMs: 250, maxDelayMs: 5000 },
    });
  } catch (e) {
    problem(`This token cannot be used: ${e instanceof Error ? e.message : String(e)}`);
    return;
  }
  byId('restaurant').textContent = client.restaurantId;
  (window as unknown as { kds: PossyncClient }).kds = client; // for a look from the browser's console

  let queued = false;
  const render = () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      renderOrders(client);
    });
  };
  client.on('state', ({ state }) => {
    const badge = byId('state');
    badge.textContent = state.replace('_', ' ');
    badge.className = `badge ${state}`;
    render();
  });
  client.on('change', (e) => {
    if (e.dataType === 'orders') render();
  });
  client.on('settled', render);
  client.on('rejected', ({ change, error }) => problem(`Order ${change.recordId} was not bumped: ${error.message} (${error.code})`));
  client.on('conflict', ({ change }) => problem(`Order ${change.recordId} changed meanwhile; check it.`));
  client.on('caught_up', () => problem(null));

  byId('orders').addEventListener('click', (ev) => {
    const button = (ev.target as Element).closest('button[data-order]');
    if (!(button instanceof HTMLButtonElement)) return;
    client.change('orders', button.dataset.order!, 'status_changed', { status: 'ready' });
    render();
  });
  if (posToken) startTestOrders(posToken);
  setInterval(render, 15000); // ages
  client.connect();
  void client.loaded().then(render);
}

function renderOrders(client: PossyncClient): void {
  const bumping = new Set(
    client
      .pendingChanges()
      .filter((c) => c.dataType === 'orders' && c.data.status === 'ready')
      .map((c) => c.recordId),
  );
  const all = client.list('orders');
  const open = all
    .filter((o) => !DONE.has(text(o.status)))
    .sort((a, b) => text(a.created_at ?? a.updated_at).localeCompare(text(b.created_at ?? b.updated_at)));
  const offline = client.connectionState !== 'live';
  byId('orders').replaceChildren(...open.map((o) => card(o, bumping.has(o.id), offline)));
  byId('empty').hidden = open.length > 0;
  byId('pending').textContent = bumping.size ? `${bumping.size} bump(s) ${offline ? 'queued offline' : 'sending'}` : '';
  const ready = all
    .filter((o) => text(o.status) === 'ready')
    .sort((a, b) => b.updated_at.localeCompare(a.updated_at))
    .slice(0, 8);
  byId('ready').replaceChildren(...ready.map((o) => el('li', text(o.order_number) || o.id)));
}

function card(order: PosRecord, bumping: boolean, offline: boolean): HTMLElement {
  const age = minutesSince(order.created_at ?? order.updated_at);
  const article = el('article', undefined, `order${age >= VERY_LATE_MIN ? ' very-late' : age >= LATE_MIN ? ' late' : ''}`);
  article.dataset.order = order.id;
  const h2 = el('h2', text(order.order_number) || order.id);
  h2.append(el('small', [text(order.table) && `table ${text(order.table)}`, `${age} min`].filter(Boolean).join(' · ')));
  const items = el('ul');
  for (const item of Array.isArray(order.items) ? order.items : []) {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) continue;
    const qty = text(item.quantity ?? item.qty);
    const li = el('li', `${qty ? `${qty} × ` : ''}${text(item.name) || '?'}`);
    if (text(item.notes)) li.append(el('small', text(item.notes)));
    items.append(li);
  }
  article.append(h2, items);
  if (text(order.notes)) article.append(el('p', text(order.notes), 'note'));
  const button = el('button', bumping ? (offline ? 'Bumped · queued offline' : 'Bumped · sending') : 'Bump → ready', 'bump');
  button.dataset.order = order.id;
  button.disabled = bumping;
  article.append(button);
  return article;
}

const MENU = ['Margherita', 'Caesar salad', 'Fries', 'Burger', 'Tomato soup', 'Tiramisu', 'Risotto', 'Lemonade'];

function startTestOrders(pos: string): void {
  const register = new PossyncClient({ url: server, token: pos, storage: new WebStorage() });
  register.connect();
  const button = byId<HTMLButtonElement>('test-order');
  button.hidden = false;
  let n = 0;
  button.addEventListener('click', () => {
    n++;
    const id = `o-${Date.now().toString(36)}`;
    const items = Array.from({ length: 1 + Math.floor(Math.random() * 3) }, () => ({
      name: MENU[Math.floor(Math.random() * MENU.length)]!,
      quantity: 1 + Math.floor(Math.random() * 2),
    }));
    register.change('orders', id, 'created', {
      order_number: String(100 + n + Math.floor(Math.random() * 800)),
      table: String(1 + Math.floor(Math.random() * 12)),
      status: 'pending', // the first status of the default order life cycle (docs/rules.default.json)
      items,
      created_at: new Date().toISOString(),
    });
  });
}

start();
