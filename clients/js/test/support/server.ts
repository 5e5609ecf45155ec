// Starts the real possync-server binary for the integration tests (no mock): a fresh SQLite store
// and key file in a temporary directory, a loopback port, tokens issued by the binary itself.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));
// build/test/support -> clients/js -> repository root
const REPO_ROOT = resolve(HERE, '..', '..', '..', '..', '..');

export const SERVER_BIN = process.env.POSSYNC_SERVER
  ? resolve(process.env.POSSYNC_SERVER)
  : join(REPO_ROOT, 'build', 'release', 'possync-server');

export interface ServerOptions {
  /** 'sqlite' (default: a file in the work directory, kept across restarts) or 'memory'. */
  store?: 'sqlite' | 'memory';
  extraArgs?: string[];
}

export class TestServer {
  readonly workdir: string;
  readonly keyFile: string;
  port = 0;
  private proc: ChildProcess | null = null;
  private exited: Promise<number | null> | null = null;
  private logs = 0;

  constructor(private readonly options: ServerOptions = {}) {
    this.workdir = mkdtempSync(join(tmpdir(), 'possync-js-'));
    this.keyFile = join(this.workdir, 'jwt.keys');
    writeFileSync(this.keyFile, `k1 ${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 });
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Starts the server (on its previous port after a restart) and waits for /api/health. */
  async start(): Promise<this> {
    if (this.running) throw new Error('server already running');
    let lastLog = '';
    for (let attempt = 0; attempt < 40; attempt++) {
      const logPath = join(this.workdir, `server-${this.logs++}.log`);
      const store = this.options.store === 'memory' ? 'memory' : `sqlite:${join(this.workdir, 'possync.db')}`;
      const args = [
        '--host', '127.0.0.1',
        '--port', String(this.port),
        '--store', store,
        '--jwt-secret-file', this.keyFile,
        '--threads', '2',
        '--shutdown-timeout', '2',
        ...(this.options.extraArgs ?? []),
      ];
      const fd = openSync(logPath, 'w');
      const proc = spawn(SERVER_BIN, args, { stdio: ['ignore', fd, fd] });
      closeSync(fd);
      this.proc = proc;
      this.exited = new Promise((res) => proc.once('exit', (code) => res(code)));
      const ok = await this.waitHealthy(logPath);
      if (ok) return this;
      lastLog = readFileSync(logPath, 'utf8');
      if (this.running) {
        await this.kill9();
        throw new Error(`server did not become healthy:\n${lastLog.slice(-3000)}`);
      }
      if (!/bind|in use/i.test(lastLog)) throw new Error(`server exited at start:\n${lastLog.slice(-3000)}`);
      // The port is still taken (a restart right after kill -9): try again shortly.
      await sleep(250);
    }
    throw new Error(`server could not bind port ${this.port}:\n${lastLog.slice(-3000)}`);
  }

  private async waitHealthy(logPath: string): Promise<boolean> {
    const deadline = Date.now() + 30000;
    while (Date.now() < deadline) {
      if (!this.running) return false;
      if (this.port === 0) {
        // The server's start line (common/log.h, text format): `possync listening ... port=N ...`.
        const m = /possync listening .*\bport=(\d+)/.exec(readFileSync(logPath, 'utf8'));
        if (m) this.port = Number(m[1]);
      }
      if (this.port !== 0) {
        try {
          const res = await fetch(`${this.url}/api/health`);
          if (res.status === 200) return true;
        } catch {
          // not yet
        }
      }
      await sleep(50);
    }
    return false;
  }

  /** kill -9: no graceful shutdown. */
  async kill9(): Promise<void> {
    if (!this.proc) return;
    if (this.running) this.proc.kill('SIGKILL');
    await this.exited;
    this.proc = null;
  }

  /** SIGTERM and wait. */
  async stop(): Promise<number | null> {
    if (!this.proc) return null;
    if (this.running) this.proc.kill('SIGTERM');
    const code = await this.exited;
    this.proc = null;
    return code;
  }

  pause(): void {
    this.proc?.kill('SIGSTOP');
  }

  resume(): void {
    this.proc?.kill('SIGCONT');
  }

  async restart(): Promise<void> {
    await this.kill9();
    await this.start();
  }

  /** A device token issued by the binary (`possync-server ... token issue`). */
  async token(restaurant: string, device: string, role = 'pos', ttl = '1h'): Promise<string> {
    const { stdout } = await execFileP(SERVER_BIN, [
      '--jwt-secret-file', this.keyFile,
      'token', 'issue',
      '--restaurant', restaurant,
      '--device', device,
      '--role', role,
      '--ttl', ttl,
    ]);
    return stdout.trim();
  }

  /**
   * A device token signed here (HS256 with Node's crypto: independent of the server's code, and
   * instant, for tests where the time to issue a token matters).
   */
  signToken(restaurant: string, device: string, role: string, ttlSeconds: number): string {
    const [kid, secret] = readFileSync(this.keyFile, 'utf8').trim().split(/\s+/);
    const now = Math.floor(Date.now() / 1000);
    const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const input = `${part({ alg: 'HS256', typ: 'JWT', kid })}.${part({
      restaurant_id: restaurant,
      device_id: device,
      role,
      iat: now,
      exp: now + ttlSeconds,
    })}`;
    const key = Buffer.from(secret!, 'base64url');
    return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
  }

  async adminToken(): Promise<string> {
    return this.token('*', 'test-admin', 'admin', '1h');
  }

  /** GET/POST with a bearer token; the body is parsed as JSON. */
  async request(method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: any }> {
    const res = await fetch(this.url + path, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  /** The server's snapshot of a restaurant (records sorted by id, as LocalState.snapshot()). */
  async snapshot(restaurant: string, token: string): Promise<{ seq: number; data: Record<string, any[]> }> {
    const res = await this.request('GET', `/api/restaurants/${encodeURIComponent(restaurant)}/data`, token);
    if (res.status !== 200) throw new Error(`snapshot: ${res.status} ${JSON.stringify(res.body)}`);
    const data: Record<string, any[]> = {};
    for (const [t, list] of Object.entries(res.body.data as Record<string, any[]>)) {
      data[t] = [...list].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    }
    return { seq: res.body.seq, data };
  }

  /** The whole log of a restaurant. */
  async log(restaurant: string, token: string): Promise<any[]> {
    const out: any[] = [];
    let since = 0;
    for (;;) {
      const res = await this.request('GET', `/api/restaurants/${encodeURIComponent(restaurant)}/changes?since=${since}&limit=1000`, token);
      if (res.status !== 200) throw new Error(`log: ${res.status} ${JSON.stringify(res.body)}`);
      out.push(...res.body.changes);
      if (!res.body.has_more || res.body.changes.length === 0) return out;
      since = res.body.changes[res.body.changes.length - 1].seq;
    }
  }

  logText(): string {
    let text = '';
    for (let i = 0; i < this.logs; i++) {
      try {
        text += readFileSync(join(this.workdir, `server-${i}.log`), 'utf8');
      } catch {
        // missing
      }
    }
    return text;
  }

  async dispose(): Promise<void> {
    await this.kill9();
    rmSync(this.workdir, { recursive: true, force: true });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Waits until `cond()` is true (polling), or fails with `what`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 20000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await sleep(20);
  }
}
