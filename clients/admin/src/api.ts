// The admin REST surface of possync (docs/protocol.md, "Admin"), called with the operator's token.

/** A refused or failed request, with the server's error code when it sent one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface RestaurantRow {
  restaurant_id: string;
  connections: number;
  devices: number;
  observers: number;
  seq: number | null;
  last_change_at: string | null;
}

export interface RestaurantsAnswer {
  restaurants: RestaurantRow[];
  total_connections: number;
  node: string;
  timestamp: string;
}

export interface ConnectionRow {
  device_id: string;
  role: string | null;
  user_id: string | null;
  observer: boolean;
  /** Admitted without a token as an enrolled legacy device (`--auth mixed`). */
  legacy: boolean;
  node: string;
  address: string;
  connected_at: string;
  last_seen: string;
}

export interface DevicesAnswer {
  restaurant_id: string;
  seq: number;
  node: string;
  connections: ConnectionRow[];
}

export interface LogChange {
  seq: number;
  change_id: string;
  data_type: string;
  action: string;
  data: { id: string; [key: string]: unknown };
  device_id: string;
  timestamp: string;
}

export class AdminApi {
  constructor(
    private readonly base: string,
    private readonly token: string,
  ) {}

  private async call(method: string, path: string, accept = 'application/json'): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        method,
        headers: { Authorization: `Bearer ${this.token}`, Accept: accept },
        cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError(0, 'unreachable', `the server cannot be reached (${e instanceof Error ? e.message : String(e)})`);
    }
    if (res.ok) return res;
    let code = 'http_' + res.status;
    let message = res.statusText || `HTTP ${res.status}`;
    try {
      const body = (await res.json()) as { code?: unknown; message?: unknown };
      if (typeof body.code === 'string') code = body.code;
      if (typeof body.message === 'string') message = body.message;
    } catch {
      // not JSON
    }
    throw new ApiError(res.status, code, message);
  }

  private async json<T>(method: string, path: string): Promise<T> {
    return (await (await this.call(method, path)).json()) as T;
  }

  restaurants(): Promise<RestaurantsAnswer> {
    return this.json('GET', '/api/admin/restaurants');
  }

  devices(restaurant: string): Promise<DevicesAnswer> {
    return this.json('GET', `/api/admin/restaurants/${encodeURIComponent(restaurant)}/devices`);
  }

  disconnect(restaurant: string, device: string): Promise<{ disconnected: number }> {
    return this.json(
      'POST',
      `/api/admin/restaurants/${encodeURIComponent(restaurant)}/disconnect?device_id=${encodeURIComponent(device)}`,
    );
  }

  /** The log after `since` (at most `limit` entries). */
  async changes(restaurant: string, since: number, limit: number): Promise<LogChange[]> {
    const body = await this.json<{ changes: LogChange[] }>(
      'GET',
      `/api/restaurants/${encodeURIComponent(restaurant)}/changes?since=${since}&limit=${limit}`,
    );
    return body.changes;
  }

  async metrics(): Promise<string> {
    return (await this.call('GET', '/metrics', 'text/plain')).text();
  }
}
