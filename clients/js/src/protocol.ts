// Decoding of what the server sends (docs/protocol.md, sections 3 and 7) and encoding of what the
// client sends. No I/O.

import { isPlainObject } from './json.js';
import {
  DATA_TYPES,
  TYPED_UPDATES,
  isDataType,
  type DataType,
  type JsonObject,
  type LogEntry,
  type OutboxEntry,
  type PosRecord,
  type ServerError,
  type Snapshot,
} from './types.js';

const TYPED_TO_DATA_TYPE = new Map<string, DataType>(
  DATA_TYPES.map((t) => [TYPED_UPDATES[t].type, t] as [string, DataType]),
);

export type ServerMessage =
  | { kind: 'change'; entry: LogEntry }
  | { kind: 'caught_up'; seq: number }
  | { kind: 'reset_required'; seq: number; message: string }
  | {
      kind: 'ack';
      changeId: string;
      status: 'applied' | 'duplicate' | 'rejected';
      seq: number | null;
      error?: ServerError;
      current?: PosRecord | null;
    }
  | { kind: 'error'; error: ServerError; changeId?: string }
  | { kind: 'auth_ok'; expiresAt: string }
  | { kind: 'registered'; seq: number }
  | { kind: 'heartbeat_response' }
  | { kind: 'other'; type: string };

function asSeq(v: unknown): number | null {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : null;
}

function asError(v: unknown): ServerError {
  if (isPlainObject(v)) {
    return { code: String(v.code ?? 'unknown'), message: String(v.message ?? '') };
  }
  return { code: 'unknown', message: '' };
}

function recordIdString(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return String(v);
  return null;
}

/**
 * A committed change from a forwarded typed update (live or catch-up) or a `data_change`-shaped
 * entry (REST `GET .../changes`, or a typed form carrying `data_type`). Null if it is not one.
 */
export function entryFromChangeMessage(msg: JsonObject): LogEntry | null {
  const seq = asSeq(msg.seq);
  if (seq === null || seq === 0) return null;
  const type = typeof msg.type === 'string' ? msg.type : 'data_change';
  let dataType: DataType | undefined;
  let recordId: string | null = null;
  if (type === 'data_change') {
    if (!isDataType(msg.data_type) || !isPlainObject(msg.data)) return null;
    dataType = msg.data_type;
    recordId = recordIdString(msg.data.id);
  } else {
    dataType = TYPED_TO_DATA_TYPE.get(type);
    if (!dataType) return null;
    recordId = recordIdString(msg[TYPED_UPDATES[dataType].idField]);
  }
  if (recordId === null || !isPlainObject(msg.data) || typeof msg.action !== 'string') return null;
  return {
    seq,
    changeId: typeof msg.change_id === 'string' ? msg.change_id : '',
    dataType,
    recordId,
    action: msg.action,
    data: msg.data,
    deviceId: typeof msg.device_id === 'string' ? msg.device_id : '',
    // A forwarded user_update carries the record id in user_id, not the author.
    userId: dataType === 'users' && type !== 'data_change' ? null : typeof msg.user_id === 'string' ? msg.user_id : null,
    timestamp: typeof msg.timestamp === 'string' ? msg.timestamp : '',
  };
}

export function decodeServerMessage(text: string): ServerMessage | null {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isPlainObject(msg) || typeof msg.type !== 'string') return null;
  switch (msg.type) {
    case 'caught_up':
      return { kind: 'caught_up', seq: asSeq(msg.seq) ?? 0 };
    case 'reset_required':
      return { kind: 'reset_required', seq: asSeq(msg.seq) ?? 0, message: String(msg.message ?? '') };
    case 'ack': {
      const status = msg.status;
      if (typeof msg.change_id !== 'string') return null;
      if (status !== 'applied' && status !== 'duplicate' && status !== 'rejected') return null;
      const out: ServerMessage = { kind: 'ack', changeId: msg.change_id, status, seq: asSeq(msg.seq) };
      if (status === 'rejected') {
        out.error = asError(msg.error);
        if ('current' in msg) out.current = isPlainObject(msg.current) ? (msg.current as PosRecord) : null;
      }
      return out;
    }
    case 'error': {
      const out: ServerMessage = { kind: 'error', error: asError(msg) };
      if (typeof msg.change_id === 'string') out.changeId = msg.change_id;
      return out;
    }
    case 'auth_ok':
      return { kind: 'auth_ok', expiresAt: String(msg.expires_at ?? '') };
    case 'registered':
      return { kind: 'registered', seq: asSeq(msg.seq) ?? 0 };
    case 'heartbeat_response':
      return { kind: 'heartbeat_response' };
    default: {
      const entry = entryFromChangeMessage(msg);
      if (entry) return { kind: 'change', entry };
      return { kind: 'other', type: msg.type };
    }
  }
}

/** The body of `GET /api/restaurants/:id/data` as a Snapshot. */
export function snapshotFromResponse(body: unknown): Snapshot {
  if (!isPlainObject(body) || !isPlainObject(body.data) || asSeq(body.seq) === null) {
    throw new Error('malformed snapshot response');
  }
  const data = {} as Record<DataType, PosRecord[]>;
  for (const t of DATA_TYPES) {
    const list = body.data[t];
    data[t] = Array.isArray(list) ? (list.filter((r) => isPlainObject(r)) as PosRecord[]) : [];
  }
  return { seq: asSeq(body.seq) as number, data };
}

export function emptySnapshot(): Snapshot {
  const data = {} as Record<DataType, PosRecord[]>;
  for (const t of DATA_TYPES) data[t] = [];
  return { seq: 0, data };
}

/** The `data_change` message for an outbox entry. */
export function encodeChange(entry: OutboxEntry): string {
  const msg: JsonObject = {
    type: 'data_change',
    data_type: entry.dataType,
    action: entry.action,
    data: { ...entry.data, id: entry.recordId },
    change_id: entry.changeId,
  };
  if (entry.baseVersion !== undefined) msg.base_version = entry.baseVersion;
  return JSON.stringify(msg);
}
