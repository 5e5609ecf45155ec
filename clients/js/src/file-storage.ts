/// <reference types="node" />
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';

import type { OutboxStorage } from './storage.js';

let tmpCounter = 0;

/**
 * Node only: keeps each key in a file of `directory` (created if missing). A write goes to a
 * temporary file that is fsynced and then renamed over the old one, so after a crash the file holds
 * either the old or the new outbox, never a torn one.
 */
export class FileStorage implements OutboxStorage {
  private ready: Promise<void> | null = null;

  constructor(readonly directory: string) {}

  private pathOf(key: string): string {
    return join(this.directory, `${encodeURIComponent(key).replace(/\*/g, '%2A')}.json`);
  }

  private ensureDir(): Promise<void> {
    if (!this.ready) {
      this.ready = mkdir(this.directory, { recursive: true }).then(() => undefined);
      this.ready.catch(() => {
        this.ready = null;
      });
    }
    return this.ready;
  }

  async getItem(key: string): Promise<string | null> {
    try {
      return await readFile(this.pathOf(key), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async setItem(key: string, value: string): Promise<void> {
    await this.ensureDir();
    const target = this.pathOf(key);
    const tmp = `${target}.${process.pid}.${++tmpCounter}.tmp`;
    const file = await open(tmp, 'w', 0o600);
    try {
      await file.writeFile(value, 'utf8');
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, target);
    await this.syncDirectory();
  }

  async removeItem(key: string): Promise<void> {
    try {
      await unlink(this.pathOf(key));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    await this.syncDirectory();
  }

  private async syncDirectory(): Promise<void> {
    // Makes the rename durable; not possible on every platform (Windows), so best effort.
    try {
      const dir = await open(this.directory, 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    } catch {
      // ignore
    }
  }
}
