export { PossyncClient, createClient } from './client.js';
export type {
  ClientEvents,
  ClientOptions,
  StateChangeEvent,
  SyncError,
  TokenSource,
  TokenTransport,
} from './client.js';
export { LocalState } from './state.js';
export { Outbox } from './outbox.js';
export type { OutboxHooks } from './outbox.js';
export { MemoryStorage, WebStorage } from './storage.js';
export type { OutboxStorage } from './storage.js';
export { mergePatch, jsonEqual, cloneJson } from './json.js';
export { backoffDelay } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
export { decodeTokenClaims } from './jwt.js';
export { decodeServerMessage, encodeChange, entryFromChangeMessage, snapshotFromResponse } from './protocol.js';
export type { ServerMessage } from './protocol.js';
export type { TokenClaims } from './jwt.js';
export { DATA_TYPES, TYPED_UPDATES, isDataType, isDeletion } from './types.js';
export type {
  ChangeEvent,
  ChangeOptions,
  ChangeResult,
  ChangeSource,
  ConnectionState,
  DataType,
  FetchLike,
  JsonObject,
  JsonPrimitive,
  JsonValue,
  LogEntry,
  OutboxEntry,
  PendingChange,
  PosRecord,
  RejectionEvent,
  ServerError,
  Snapshot,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js';
