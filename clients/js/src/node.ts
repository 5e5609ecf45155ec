/// <reference types="node" />
// Entry point for Node: the browser-safe API plus FileStorage, with a WebSocket implementation
// filled in: the global one where Node has it (22 and later), else the `ws` package.
import { PossyncClient as BaseClient, type ClientOptions } from './client.js';
import type { WebSocketConstructor } from './types.js';

export * from './index.js';
export { FileStorage } from './file-storage.js';

async function findWebSocket(): Promise<WebSocketConstructor | null> {
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (global) return global;
  try {
    const mod = (await import('ws')) as unknown as { default?: WebSocketConstructor; WebSocket?: WebSocketConstructor };
    return mod.default ?? mod.WebSocket ?? null;
  } catch {
    return null;
  }
}

/** The WebSocket implementation the Node entry uses (null: none found; install `ws`). */
export const NodeWebSocket: WebSocketConstructor | null = await findWebSocket();

function withNodeDefaults(options: ClientOptions): ClientOptions {
  if (options.WebSocket) return options;
  // `ws` takes headers; the global WebSocket of Node 22+ does not.
  const needsWs = options.tokenTransport === 'header';
  if (!NodeWebSocket) {
    throw new Error("no WebSocket implementation: this Node has no global WebSocket; install the 'ws' package");
  }
  if (needsWs && NodeWebSocket === (globalThis as { WebSocket?: unknown }).WebSocket) {
    throw new Error("tokenTransport 'header' needs the 'ws' package: pass options.WebSocket");
  }
  return { ...options, WebSocket: NodeWebSocket };
}

/** PossyncClient with Node defaults (WebSocket from `ws` where Node has none). */
export class PossyncClient extends BaseClient {
  constructor(options: ClientOptions) {
    super(withNodeDefaults(options));
  }
}

/** Creates a client with Node defaults (see ClientOptions). */
export function createClient(options: ClientOptions): PossyncClient {
  return new PossyncClient(options);
}
