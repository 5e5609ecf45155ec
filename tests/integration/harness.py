"""Test harness for possync's integration and end-to-end tests.

Starts the real possync-server binary on a loopback port and talks to it with clients that were
not written in this project: Python's http.client and the `websockets` library (asyncio API), plus a
hand-rolled raw-socket WebSocket client for the cases a well-behaved library cannot express (a
client that never reads, never answers pings).

Everything here waits on conditions (a message arrived, an ack arrived, a count was reached) with
generous timeouts; nothing asserts on how fast the server is.

Only the standard library and Debian's python3-websockets (10.4) are used.
"""

import asyncio
import base64
import datetime
import functools
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER_BIN = os.environ.get("POSSYNC_SERVER") or os.path.normpath(
    os.path.join(HERE, "..", "..", "build", "debug", "possync-server"))

# Generous limits: the suite runs on small CI machines, under sanitizers, in debug builds.
WAIT = float(os.environ.get("POSSYNC_TEST_WAIT", "30"))  # default wait for a condition
START_WAIT = 30.0  # for the server to answer /api/health
STOP_WAIT = 30.0  # for the server to exit after SIGTERM

DATA_TYPES = {
    # data_type: (typed update, id field)
    "orders": ("order_update", "order_id"),
    "menu_items": ("menu_update", "item_id"),
    "inventory": ("inventory_update", "item_id"),
    "tables": ("table_update", "table_id"),
    "users": ("user_update", "user_id"),
    "printers": ("printer_update", "printer_id"),
}
TYPED_TO_DATA_TYPE = {typed: dt for dt, (typed, _) in DATA_TYPES.items()}
CHANGE_MESSAGE_TYPES = set(TYPED_TO_DATA_TYPE) | {"data_change"}


def free_port():
    """A port that was free a moment ago on 127.0.0.1 (the caller retries if it is taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DEFAULT = object()  # "the harness picks": e.g. a token valid for the request


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(secret, claims, kid="k1", alg="HS256"):
    """An HS256 JWT signed here with Python's hmac: an implementation independent of the server's."""
    header = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    signing_input = (b64url(json.dumps(header).encode()) + "." +
                     b64url(json.dumps(claims).encode()))
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def is_change(msg):
    """True for a server->client message carrying a committed change (typed update/data_change)."""
    return isinstance(msg, dict) and msg.get("type") in CHANGE_MESSAGE_TYPES and "seq" in msg


def record_id_of(msg):
    """The record id of a change message as the server renders it."""
    t = msg.get("type")
    if t == "data_change":
        return msg["data"]["id"]
    return msg[DATA_TYPES[TYPED_TO_DATA_TYPE[t]][1]]


# --------------------------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------------------------


class ServerProcess:
    """One possync-server process (and its restarts on the same store).

    store: "sqlite" (a fresh sqlite file in a temporary directory, the default), "memory", or a
    full --store value. extra_args: more command-line options. env: extra environment variables.
    auth: True (the server's default, --auth required, with a key file written here; clients of
    this harness send tokens signed with it) or False (--auth off, the legacy open mode).
    key_file: use this key file instead (nodes of one service share their keys).
    tls: (cert_file, key_file, ca_file): serve HTTPS/WSS; this harness's clients verify the
    server's certificate against ca_file.
    """

    def __init__(self, store="sqlite", extra_args=(), workdir=None, env=None, auth=True,
                 key_file=None, tls=None):
        self.workdir = workdir or tempfile.mkdtemp(prefix="possync-it-")
        self._own_workdir = workdir is None
        self.auth = auth
        self.key_file = key_file or os.path.join(self.workdir, "jwt.keys")
        if auth and not os.path.exists(self.key_file):
            secret = os.urandom(32)
            fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"# written by the test harness\nk1 {b64url(secret)}\n")
        self.tls = tls
        self.ssl_context = None
        if tls:
            self.ssl_context = ssl.create_default_context(cafile=tls[2])
        self.keys = {}
        if auth:
            with open(self.key_file) as f:
                for line in f:
                    if line.strip() and not line.startswith("#"):
                        kid, secret = line.split()
                        self.keys[kid] = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
        if store == "sqlite":
            self.store = "sqlite:" + os.path.join(self.workdir, "db.sqlite")
        else:
            self.store = store
        self.extra_args = [str(a) for a in extra_args]
        self.env = dict(os.environ, **(env or {}))
        self.port = None
        self.proc = None
        self.log_paths = []
        self.exit_codes = []
        self._reaped = True  # the current process's exit was expected (stop/kill) or it never ran

    # ---- lifecycle ----

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, port=None):
        """Starts the server and waits until GET /api/health answers 200."""
        assert not self.running, "server already running"
        if not os.access(SERVER_BIN, os.X_OK):
            raise RuntimeError(f"server binary not found: {SERVER_BIN} (set POSSYNC_SERVER)")
        wanted = port
        last_log = ""
        for attempt in range(8):
            p = wanted if (wanted is not None and attempt < 4) else free_port()
            log_path = os.path.join(self.workdir, f"server-{len(self.log_paths)}.log")
            self.log_paths.append(log_path)
            args = [SERVER_BIN, "--host", "127.0.0.1", "--port", str(p), "--store", self.store]
            args += ["--jwt-secret-file", self.key_file] if self.auth else ["--auth", "off"]
            if self.tls:
                args += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
            args += self.extra_args
            with open(log_path, "wb") as log:
                self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, env=self.env)
            self.port = p
            self._reaped = False
            if self._wait_healthy():
                return self
            code = self.proc.poll()
            last_log = self.log_text(log_path)
            self._reaped = True
            if code is None:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f"server did not answer /api/health in {START_WAIT}s:\n"
                                   f"{last_log[-4000:]}")
            self.exit_codes.append(code)
            if "cannot bind" not in last_log and "Address already in use" not in last_log:
                raise RuntimeError(f"server exited with {code} at start:\n{last_log[-4000:]}")
            time.sleep(0.2)  # port taken: try again (a new port after a few tries)
        raise RuntimeError(f"server could not bind a port:\n{last_log[-4000:]}")

    def _wait_healthy(self):
        deadline = time.monotonic() + START_WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                status, _, body = self.http("GET", "/api/health", timeout=2)
                if status == 200 and body.get("status") == "ok":
                    return True
            except (OSError, http.client.HTTPException, ValueError):
                pass
            time.sleep(0.05)
        return False

    def terminate(self, timeout=STOP_WAIT, send_signal=True):
        """Sends SIGTERM and returns the exit code (kills after `timeout` and fails)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            if send_signal:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"server did not exit within {timeout}s of SIGTERM:\n"
                                     f"{self.log_tail()}")
        code = self.proc.returncode
        self.exit_codes.append(code)
        self._reaped = True
        return code

    async def aterminate(self, timeout=STOP_WAIT):
        """SIGTERM without blocking the event loop (clients must answer the close handshake)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.terminate, timeout, False)

    def stop(self, timeout=STOP_WAIT):
        """Graceful stop via SIGTERM; asserts exit code 0."""
        code = self.terminate(timeout)
        if code != 0:
            raise AssertionError(f"server exited with {code} after SIGTERM:\n{self.log_tail()}")

    def kill(self):
        """kill -9: no chance to flush or close anything."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.exit_codes.append(self.proc.returncode)
        self._reaped = True
        return self.proc.returncode

    def restart(self):
        """Stops (gracefully) if running, then starts again on the same store (same port if free)."""
        if self.running:
            self.stop()
        return self.start(port=self.port)

    def cleanup(self):
        """For addCleanup: a server still running must stop gracefully with exit code 0, and
        one that is gone must have been stopped or killed by the test (not crashed)."""
        if self.running:
            self.stop()
        elif not self._reaped:
            self._reaped = True
            raise AssertionError(f"server exited by itself with code {self.proc.returncode}:\n"
                                 f"{self.log_tail()}")

    def remove_workdir(self):
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ---- logs ----

    @staticmethod
    def log_text(path):
        try:
            with open(path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines=60):
        out = []
        for p in self.log_paths:
            text = self.log_text(p).splitlines()
            out.append(f"--- {p} (last {lines} lines) ---")
            out.extend(text[-lines:])
        return "\n".join(out)

    # ---- tokens ----

    def token(self, restaurant, device, role="manager", ttl=3600, kid="k1", **claims):
        """A device token signed with this server's key `kid` (extra claims override)."""
        now = int(time.time())
        payload = {"restaurant_id": restaurant, "device_id": device, "role": role, "iat": now,
                   "exp": now + ttl, "jti": b64url(os.urandom(12))}
        payload.update(claims)
        return make_jwt(self.keys[kid], payload, kid=kid)

    def admin_token(self):
        return self.token("*", "harness-admin", role="admin")

    def _token_for(self, token, restaurant, device):
        """The token a client sends: DEFAULT picks one valid for (restaurant, device) when auth
        is on; None sends none."""
        if token is DEFAULT:
            return self.token(restaurant, device) if self.auth else None
        return token

    # ---- HTTP ----

    def http(self, method, path, body=None, headers=None, timeout=WAIT, token=DEFAULT):
        """One HTTP request on a fresh connection.

        body: a dict/list (sent as JSON), str/bytes (sent as is) or None.
        token: DEFAULT sends an admin token when auth is on (tests of the device tokens pass
        their own); None sends none.
        Returns (status, headers as a dict with lower-case names, parsed JSON body or None).
        """
        if self.ssl_context:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=self.ssl_context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            hdrs = dict(headers or {})
            if token is DEFAULT:
                token = self.admin_token() if self.auth else None
            if token is not None and "Authorization" not in hdrs:
                hdrs["Authorization"] = "Bearer " + token
            if isinstance(body, (dict, list)):
                payload = json.dumps(body).encode()
                hdrs.setdefault("Content-Type", "application/json")
            elif isinstance(body, str):
                payload = body.encode()
                hdrs.setdefault("Content-Type", "application/json")
            else:
                payload = body
            conn.request(method, path, body=payload, headers=hdrs)
            res = conn.getresponse()
            raw = res.read()
            res_headers = {k.lower(): v for k, v in res.getheaders()}
            parsed = json.loads(raw) if raw else None
            return res.status, res_headers, parsed
        finally:
            conn.close()

    def metrics(self, timeout=WAIT):
        """GET /metrics (with the admin token when auth is on): the Prometheus text."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers = {"Authorization": "Bearer " + self.admin_token()} if self.auth else {}
            conn.request("GET", "/metrics", headers=headers)
            res = conn.getresponse()
            body = res.read().decode()
            if res.status != 200:
                raise AssertionError(f"GET /metrics answered {res.status}: {body}")
            return body
        finally:
            conn.close()

    async def ametrics(self):
        return await asyncio.to_thread(self.metrics)

    async def ahttp(self, method, path, body=None, headers=None, timeout=WAIT, token=DEFAULT):
        """http() in a thread, so WebSocket readers keep running meanwhile."""
        return await asyncio.to_thread(self.http, method, path, body, headers, timeout, token)

    async def connected_devices(self, restaurant):
        """Device ids listed by GET /api/restaurants/R/status ([] for an unknown restaurant)."""
        status, _, body = await self.ahttp("GET", f"/api/restaurants/{q(restaurant)}/status")
        if status == 404:
            return []
        assert status == 200, (status, body)
        return sorted(d["device_id"] for d in body["connected_devices"])

    async def wait_devices(self, restaurant, expected, timeout=WAIT):
        """Polls status until exactly `expected` devices are listed (a connection joins its
        restaurant just after its handshake completes, and leaves just after it closes)."""
        deadline = time.monotonic() + timeout
        while True:
            got = await self.connected_devices(restaurant)
            if got == sorted(expected):
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"devices of {restaurant}: {got}, expected {sorted(expected)}")
            await asyncio.sleep(0.02)

    def all_changes(self, restaurant, since=0, limit=1000):
        """Every change of GET /api/restaurants/R/changes from `since`, following has_more."""
        out = []
        while True:
            status, _, body = self.http(
                "GET", f"/api/restaurants/{q(restaurant)}/changes?since={since}&limit={limit}")
            if status != 200:
                raise AssertionError(f"GET changes since={since}: {status} {body}")
            out.extend(body["changes"])
            if not body["has_more"]:
                return out
            since = body["changes"][-1]["seq"]

    # ---- WebSocket ----

    def ws_url(self, restaurant, device, since=None, path="/ws", user_id=None, extra=None,
               token=DEFAULT):
        """The URL a device connects to; `token` goes in the `token` query parameter."""
        params = {"device_id": device, "restaurant_id": restaurant}
        token = self._token_for(token, restaurant, device)
        if token is not None:
            params["token"] = token
        if user_id is not None:
            params["user_id"] = user_id
        if since is not None:
            params["since"] = str(since)
        if extra:
            params.update(extra)
        scheme = "wss" if self.ssl_context else "ws"
        return f"{scheme}://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(params)}"

    async def connect(self, restaurant, device, since=None, path="/ws", user_id=None,
                      token=DEFAULT, extra=None, **kwargs):
        """Opens a websockets connection and returns a WsClient reading it in the background.
        `extra`: more query parameters (e.g. {"observe": "1"})."""
        ws = await websockets.connect(
            self.ws_url(restaurant, device, since, path, user_id, extra, token=token),
            max_queue=None, open_timeout=WAIT, close_timeout=5,
            **({"ssl": self.ssl_context} if self.ssl_context else {}), **kwargs)
        return WsClient(ws, f"{restaurant}/{device}")


    def raw_ws(self, restaurant, device, token=DEFAULT, **kwargs):
        """A RawWebSocket to this server (blocking: call it in a thread from async tests)."""
        return RawWebSocket(self.port, restaurant, device,
                            token=self._token_for(token, restaurant, device), **kwargs)


def q(s):
    return urllib.parse.quote(s, safe="")


# --------------------------------------------------------------------------------------------
# WebSocket clients
# --------------------------------------------------------------------------------------------


class WsClient:
    """A websockets connection with a background reader that records every message in order.

    Reading continuously keeps the connection from looking like a slow consumer; tests inspect
    `messages` and wait on conditions with wait_until()/wait_for().
    """

    def __init__(self, ws, name=""):
        self.ws = ws
        self.name = name
        self.messages = []
        self.ack_index = {}  # change_id -> first ack
        self.change_count = 0  # messages carrying a committed change
        self.types_seen = set()
        self.closed = False
        self.close_code = None
        self.close_reason = None
        self._cond = asyncio.Condition()
        self._task = asyncio.get_running_loop().create_task(self._reader())

    async def _reader(self):
        try:
            async for raw in self.ws:
                msg = json.loads(raw) if isinstance(raw, str) else {"__binary__": raw}
                self.messages.append(msg)
                self.types_seen.add(msg.get("type"))
                if msg.get("type") == "ack":
                    self.ack_index.setdefault(msg.get("change_id"), msg)
                elif is_change(msg):
                    self.change_count += 1
                async with self._cond:
                    self._cond.notify_all()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed = True
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason
            async with self._cond:
                self._cond.notify_all()

    async def send(self, msg):
        await self.ws.send(msg if isinstance(msg, (str, bytes)) else json.dumps(msg))

    async def wait_until(self, check, timeout=WAIT, what="condition"):
        """Waits until check() is true (re-evaluated on every message and on close)."""
        try:
            async with self._cond:
                await asyncio.wait_for(self._cond.wait_for(check), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"{self.name}: timed out after {timeout}s waiting for {what}; closed={self.closed} "
                f"code={self.close_code}; {len(self.messages)} messages, the last ones: "
                f"{[short(m) for m in self.messages[-5:]]}") from None

    async def wait_for(self, pred, start=0, timeout=WAIT, what=None):
        """Waits for the first message at index >= start satisfying pred; returns it."""
        found = []
        pos = [start]  # each check looks only at messages it has not seen

        def check():
            msgs = self.messages
            for i in range(pos[0], len(msgs)):
                if pred(msgs[i]):
                    found.append(msgs[i])
                    return True
            pos[0] = max(pos[0], len(msgs))
            return False

        await self.wait_until(check, timeout, what or getattr(pred, "__name__", "message"))
        return found[0]

    async def wait_type(self, type_, start=0, timeout=WAIT):
        return await self.wait_for(lambda m: m.get("type") == type_, start, timeout,
                                   what=f"a '{type_}' message")

    async def wait_count(self, pred, n, timeout=WAIT, what="messages"):
        """Waits until n messages satisfy pred; returns all that do."""
        state = {"pos": 0, "count": 0}

        def check():
            msgs = self.messages
            for i in range(state["pos"], len(msgs)):
                if pred(msgs[i]):
                    state["count"] += 1
            state["pos"] = len(msgs)
            return state["count"] >= n

        await self.wait_until(check, timeout, f"{n} {what}")
        return [m for m in self.messages if pred(m)]

    async def wait_progressing(self, check, stall=WAIT, what="condition"):
        """Like wait_until(), for bulk transfers: fails only when no message arrived for `stall`
        seconds (or the connection closed) before check() became true."""
        while True:
            seen = len(self.messages)
            await self.wait_until(lambda: check() or len(self.messages) > seen or self.closed,
                                  stall, f"{what} (no progress)")
            if check():
                return
            if self.closed:
                raise AssertionError(f"{self.name}: closed ({self.close_code}) waiting for {what}")

    async def wait_closed(self, timeout=WAIT):
        await self.wait_until(lambda: self.closed, timeout, "the connection to close")
        return self.close_code

    async def collect_until_quiet(self, quiet=0.5, timeout=WAIT, start=0):
        """Returns the messages from index `start` once none arrived for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        last = len(self.messages)
        while time.monotonic() < deadline and not self.closed:
            await asyncio.sleep(quiet)
            if len(self.messages) == last:
                break
            last = len(self.messages)
        return self.messages[start:]

    def of_type(self, type_):
        return [m for m in self.messages if m.get("type") == type_]

    def changes(self):
        return [m for m in self.messages if is_change(m)]

    def acks(self):
        return [m for m in self.messages if m.get("type") == "ack"]

    def ack_for(self, change_id):
        return self.ack_index.get(change_id)

    async def wait_ack(self, change_id, timeout=WAIT):
        """The ack for change_id; ConnectionError if the connection closes before it arrives."""
        await self.wait_until(lambda: change_id in self.ack_index or self.closed, timeout,
                              f"ack for {change_id}")
        if change_id not in self.ack_index:
            raise ConnectionError(f"{self.name}: closed ({self.close_code}) before the ack for "
                                  f"{change_id}")
        return self.ack_index[change_id]

    async def stream(self, changes, window=16):
        """Sends change messages (dicts with a change_id) keeping at most `window` of them
        unacknowledged; waits for every ack and returns them in order."""
        for i, change in enumerate(changes):
            if i >= window:
                await self.wait_ack(changes[i - window]["change_id"])
            await self.send(change)
        return [await self.wait_ack(change["change_id"]) for change in changes]

    async def request(self, msg, reply_pred, timeout=WAIT):
        """Sends msg and waits for the first later message satisfying reply_pred."""
        start = len(self.messages)
        await self.send(msg)
        return await self.wait_for(reply_pred, start, timeout)

    async def sync_point(self, timeout=WAIT):
        """Heartbeat round trip: every message the server queued before it has arrived."""
        return await self.request({"type": "heartbeat", "timestamp": local_timestamp()},
                                  lambda m: m.get("type") == "heartbeat_response", timeout)

    async def close(self):
        await self.ws.close()
        await asyncio.wait_for(self._task, WAIT)


def short(msg, limit=300):
    text = json.dumps(msg) if not isinstance(msg, bytes) else repr(msg)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


async def recv_until_quiet(ws, quiet=0.5, timeout=WAIT):
    """For a bare websockets connection: receives messages until none arrives for `quiet` s."""
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            raw = await asyncio.wait_for(ws.recv(), quiet)
        except asyncio.TimeoutError:
            return out
        except websockets.ConnectionClosed:
            return out
        out.append(json.loads(raw) if isinstance(raw, str) else raw)
    return out


def metric_sample(text, name):
    """The value of one sample line `name value` of a /metrics text (name may carry labels)."""
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
    if m is None:
        raise AssertionError(f"no sample {name} in:\n{text}")
    return float(m.group(1))


def data_change(data_type, record_id, action="updated", change_id=None, **fields):
    """A data_change message as new clients send it (client-chosen change_id)."""
    msg = {"type": "data_change", "data_type": data_type, "action": action,
           "data": {"id": record_id, **fields}}
    if change_id is not None:
        msg["change_id"] = change_id
    return msg


def local_timestamp():
    """What Dart's DateTime.now().toIso8601String() gives: local time, microseconds, no zone."""
    return datetime.datetime.now().isoformat(timespec="microseconds")


class LegacyChange:
    """One local change of today's app: the typed update, its data_change twin, their ids."""

    def __init__(self, typed, twin):
        self.typed = typed
        self.twin = twin
        self.change_id = twin["change_id"]
        self.data_type = twin["data_type"]
        self.record_id = twin["data"]["id"]
        self.action = twin["action"]


class LegacyDevice:
    """Replays the exact message sequences of today's AI POS app (cloud_sync_service.dart).

    - connect to BASE?device_id=D&restaurant_id=R (no user_id in the query), then `register`;
    - `heartbeat` on demand (the app sends one every 30 s);
    - a local change = the typed update (no change_id), immediately followed by the data_change
      twin with change_id `<ms>_<device>_<record id>` and data {"id": id, ...same fields}; the
      twin is kept in a pending list that a WebSocket send never clears;
    - post_pending(): POST /api/sync of the whole pending list (cleared on 200, kept otherwise).
    """

    _last_change_ms = {}

    def __init__(self, server, restaurant, device, user_id=None, path="/ws", token=DEFAULT):
        """token: DEFAULT sends a token valid for the device when auth is on; None sends none
        (today's app, as an enrolled legacy device with --auth mixed)."""
        self.server = server
        self.token = token
        self.restaurant = restaurant
        self.device = device
        self.user_id = user_id
        self.path = path
        self.client = None
        self.pending = []
        self.sent = []  # LegacyChange, in order

    async def open(self, register=True):
        self.client = await self.server.connect(self.restaurant, self.device, path=self.path,
                                                token=self.token)
        self.client.name = f"legacy {self.restaurant}/{self.device}"
        if register:
            return await self.register()
        return None

    async def register(self):
        return await self.client.request(
            {"type": "register", "device_id": self.device, "restaurant_id": self.restaurant,
             "user_id": self.user_id, "timestamp": local_timestamp()},
            lambda m: m.get("type") == "registered")

    async def heartbeat(self):
        return await self.client.request(
            {"type": "heartbeat", "device_id": self.device, "restaurant_id": self.restaurant,
             "timestamp": local_timestamp()},
            lambda m: m.get("type") == "heartbeat_response")

    async def user_changed(self, user_id):
        self.user_id = user_id
        await self.client.send({"type": "user_changed", "user_id": user_id,
                                "device_id": self.device, "restaurant_id": self.restaurant,
                                "timestamp": local_timestamp()})

    def _change_id(self, record_id):
        # `${DateTime.now().millisecondsSinceEpoch}_${deviceId}_${data['id']}`; kept strictly
        # increasing per device so two changes within one millisecond stay distinct.
        key = self.device
        ms = max(int(time.time() * 1000), LegacyDevice._last_change_ms.get(key, 0) + 1)
        LegacyDevice._last_change_ms[key] = ms
        return f"{ms}_{self.device}_{record_id}"

    def make_change(self, data_type, record_id, action, data):
        typed_type, id_field = DATA_TYPES[data_type]
        typed = {"type": typed_type, id_field: record_id, "action": action, "data": dict(data),
                 "device_id": self.device, "restaurant_id": self.restaurant,
                 "user_id": self.user_id, "timestamp": local_timestamp()}
        if data_type == "users":
            # The app's map literal has 'user_id' twice; the later one, the sender's, wins.
            typed["user_id"] = self.user_id
        twin_data = {"id": record_id, **data}
        twin = {"type": "data_change", "data_type": data_type, "action": action,
                "data": twin_data, "device_id": self.device, "restaurant_id": self.restaurant,
                "user_id": self.user_id, "timestamp": local_timestamp(),
                "change_id": self._change_id(twin_data["id"])}
        return LegacyChange(typed, twin)

    async def broadcast(self, data_type, record_id, action, data):
        """broadcastXxxUpdate(): typed update, then at once its data_change twin (queued)."""
        change = self.make_change(data_type, record_id, action, data)
        await self.client.send(change.typed)
        self.pending.append(change.twin)
        await self.client.send(change.twin)
        self.sent.append(change)
        return change

    def sync_body(self):
        return {"restaurant_id": self.restaurant, "device_id": self.device,
                "changes": list(self.pending)}

    async def post_pending(self):
        """_syncPendingChanges(): POST the whole pending list; cleared only on HTTP 200."""
        body = self.sync_body()
        status, headers, res = await self.server.ahttp(
            "POST", "/api/sync", body,
            token=self.server._token_for(self.token, self.restaurant, self.device))
        if status == 200:
            del self.pending[: len(body["changes"])]
        return status, headers, res

    async def close(self):
        await self.client.close()


# --------------------------------------------------------------------------------------------
# A raw-socket WebSocket client (handshake and framing by hand)
# --------------------------------------------------------------------------------------------

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class RawWebSocket:
    """A minimal RFC 6455 client over a plain socket: it does only what the test tells it to.

    It never answers pings and never reads unless asked; `rcvbuf` shrinks the socket's receive
    buffer (set before connect, so the TCP window stays small).
    """

    def __init__(self, port, restaurant, device, path="/ws", since=None, rcvbuf=None,
                 timeout=WAIT, token=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        params = {"device_id": device, "restaurant_id": restaurant}
        if since is not None:
            params["since"] = str(since)
        if token is not None:
            params["token"] = token
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {path}?{urllib.parse.urlencode(params)} HTTP/1.1\r\n"
                   f"Host: 127.0.0.1:{port}\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"connection closed during handshake: {head!r}")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        if self.status != 101:
            raise ConnectionError(f"handshake failed: {lines[0]}")
        expected = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        if self.headers.get("sec-websocket-accept") != expected:
            raise ConnectionError("bad Sec-WebSocket-Accept")
        self.eof = False

    @staticmethod
    def encode_frame(opcode, payload, fin=True):
        """One masked client frame (`fin` False: a fragment that more frames continue)."""
        mask = os.urandom(4)
        n = len(payload)
        first = (0x80 if fin else 0) | opcode
        if n < 126:
            header = struct.pack("!BB", first, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", first, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", first, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return header + mask + masked

    def send_frame(self, opcode, payload, fin=True):
        self.sock.sendall(self.encode_frame(opcode, payload, fin))

    def send_text(self, obj):
        text = obj if isinstance(obj, str) else json.dumps(obj)
        self.send_frame(0x1, text.encode())

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("raw websocket read timed out")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(1 << 16)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
                return False
            self.buf += chunk
        return True

    def read_frame(self, timeout=WAIT):
        """Returns (opcode, payload), or None at EOF. Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        if not self._fill(2, deadline):
            return None
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            if not self._fill(4, deadline):
                return None
            n = struct.unpack("!H", self.buf[2:4])[0]
            pos = 4
        elif n == 127:
            if not self._fill(10, deadline):
                return None
            n = struct.unpack("!Q", self.buf[2:10])[0]
            pos = 10
        if b1 & 0x80:
            raise ValueError("server frames must not be masked")
        if not self._fill(pos + n, deadline):
            return None
        payload = bytes(self.buf[pos:pos + n])
        self.buf = self.buf[pos + n:]
        return b0 & 0x0F, payload

    def read_until_end(self, timeout=WAIT):
        """Reads frames until a close frame or EOF.

        Returns (text messages parsed as JSON, close code or None, 'close'|'eof', ping count).
        """
        deadline = time.monotonic() + timeout
        messages, pings = [], 0
        while True:
            frame = self.read_frame(max(0.01, deadline - time.monotonic()))
            if frame is None:
                return messages, None, "eof", pings
            opcode, payload = frame
            if opcode == 0x1:
                messages.append(json.loads(payload))
            elif opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                return messages, code, "close", pings
            elif opcode == 0x9:
                pings += 1

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------------------------
# unittest glue
# --------------------------------------------------------------------------------------------


def async_test(timeout=150):
    """Runs an `async def test_...` in a fresh event loop, with an overall timeout."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(self, *args, **kwargs):
            async def main():
                return await asyncio.wait_for(fn(self, *args, **kwargs), timeout)

            return asyncio.run(main())

        return wrapper

    return decorate


class ServerTestCase(unittest.TestCase):
    """Each test starts its own server(s) with start_server(); on failure their logs are printed.

    A server still running at the end of the test must stop gracefully (SIGTERM -> exit 0).
    """

    maxDiff = 4000

    def start_server(self, store="sqlite", extra_args=(), **kwargs):
        server = ServerProcess(store=store, extra_args=extra_args, **kwargs)
        self._servers.append(server)
        self.addCleanup(server.cleanup)
        return server.start()

    def run(self, result=None):
        self._servers = []
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        try:
            return super().run(result)
        finally:
            failed = len(result.failures) + len(result.errors) > before
            for s in self._servers:
                if s.running:  # a test left it running and cleanup failed: do not leak it
                    s.proc.kill()
                    s.proc.wait()
                if failed or os.environ.get("POSSYNC_KEEP_LOGS"):
                    sys.stderr.write(f"\n{s.log_tail(80)}\n(workdir {s.workdir})\n")
                else:
                    s.remove_workdir()
