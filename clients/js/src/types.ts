/** JSON values as they travel in possync messages. */
export type JsonPrimitive = string | number | boolean | null;
export type JsonValue = JsonPrimitive | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

/** The six data types of a restaurant (docs/protocol.md, section 2). */
export const DATA_TYPES = ['orders', 'menu_items', 'inventory', 'tables', 'users', 'printers'] as const;
export type DataType = (typeof DATA_TYPES)[number];

/** Typed update message type and the name of its record id field, per data type. */
export const TYPED_UPDATES: Readonly<Record<DataType, { type: string; idField: string }>> = {
  orders: { type: 'order_update', idField: 'order_id' },
  menu_items: { type: 'menu_update', idField: 'item_id' },
  inventory: { type: 'inventory_update', idField: 'item_id' },
  tables: { type: 'table_update', idField: 'table_id' },
  users: { type: 'user_update', idField: 'user_id' },
  printers: { type: 'printer_update', idField: 'printer_id' },
};

/** Actions that delete the record; every other action merges (docs/protocol.md, section 6). */
export const DELETING_ACTIONS: ReadonlySet<string> = new Set(['deleted', 'removed', 'item_removed']);

export function isDataType(value: unknown): value is DataType {
  return typeof value === 'string' && (DATA_TYPES as readonly string[]).includes(value);
}

export function isDeletion(action: string): boolean {
  return DELETING_ACTIONS.has(action);
}

/**
 * A stored record as the server keeps it: the merged fields plus the server fields `id` (the
 * record id), `version` (seq of the last change that touched it) and `updated_at` (commit time).
 */
export interface PosRecord extends JsonObject {
  id: string;
  version: number;
  updated_at: string;
}

/** One committed change of the restaurant's log, as forwarded live, in catch-up or by REST. */
export interface LogEntry {
  seq: number;
  changeId: string;
  dataType: DataType;
  recordId: string;
  action: string;
  /** The merge patch the change carried. */
  data: JsonObject;
  /** The device that made the change. */
  deviceId: string;
  /** The author's user, when known (never for `users` changes forwarded live). */
  userId: string | null;
  /** Commit time (ISO-8601 UTC): becomes the record's `updated_at`. */
  timestamp: string;
}

/** A restaurant snapshot: every live record of every type, reflecting the log up to `seq`. */
export interface Snapshot {
  seq: number;
  data: Record<DataType, PosRecord[]>;
}

/** Connection states reported by the `state` event. */
export type ConnectionState = 'connecting' | 'catching_up' | 'live' | 'offline';

/** Why a record changed in the local state. */
export type ChangeSource =
  /** a change made by another device */
  | 'remote'
  /** a change made by this device (through this client or another connection of the device) */
  | 'own'
  /** the state was (re)loaded from a snapshot: initial load or after `reset_required` */
  | 'snapshot';

/** Payload of the `change` event: one record changed in the local state. */
export interface ChangeEvent {
  dataType: DataType;
  recordId: string;
  /** The change's action; `"snapshot"` for a difference found when a snapshot was loaded. */
  action: string;
  /** The seq of the change (the snapshot's seq for snapshot differences). */
  seq: number;
  /** The record before the change, or null if it did not exist. */
  before: PosRecord | null;
  /** The record after the change, or null if it does not exist (deleted). */
  after: PosRecord | null;
  source: ChangeSource;
  /** The change's id (absent for snapshot differences). */
  changeId?: string;
  deviceId?: string;
  userId?: string | null;
  /** Commit time (absent for snapshot differences). */
  timestamp?: string;
}

/** An error as the server reports it. */
export interface ServerError {
  code: string;
  message: string;
}

/** A change waiting in the outbox (persisted until the server answers it). */
export interface OutboxEntry {
  changeId: string;
  dataType: DataType;
  recordId: string;
  action: string;
  data: JsonObject;
  baseVersion?: number;
  /** When the change was made (ms since epoch, client clock). */
  createdAt: number;
}

/** The final answer for one change of the outbox. */
export type ChangeResult =
  | { status: 'applied' | 'duplicate'; changeId: string; seq: number }
  | {
      status: 'rejected';
      changeId: string;
      seq: null;
      error: ServerError;
      /**
       * For `conflict`: the record as the server stores it now (null if absent). For other
       * rejections: the record in the local state when the rejection arrived (null if absent).
       */
      current: PosRecord | null;
    };

/** Payload of the `conflict` and `rejected` events. */
export interface RejectionEvent {
  change: OutboxEntry;
  error: ServerError;
  /** See ChangeResult.current. */
  current: PosRecord | null;
}

/** Options of `change()`. */
export interface ChangeOptions {
  /** Apply only if the record's `version` equals this (0: only if the record does not exist). */
  baseVersion?: number;
  /** Use this change id instead of a generated one (must be unique in the restaurant). */
  changeId?: string;
}

/** Returned by `change()` at once. */
export interface PendingChange {
  changeId: string;
  /** Settles when the server has answered (never rejects). */
  result: Promise<ChangeResult>;
}

/** Minimal WebSocket surface the client uses (the browser's, Node 22's, or the `ws` package's). */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol?: string;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: any }) => void) | null;
  onclose: ((ev: { code: number; reason: string; wasClean?: boolean }) => void) | null;
  onerror: ((ev: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (
  url: string,
  protocols?: string | string[],
  options?: any,
) => WebSocketLike;

export type FetchLike = (input: string, init?: any) => Promise<{
  status: number;
  ok: boolean;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
}>;
