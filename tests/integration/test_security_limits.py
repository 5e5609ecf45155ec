"""Security limits: rate limits and connection caps under a flood, the role permission table,
and hashing of user secrets (pin / password / passcode).

1. A device flooding its WebSocket far over --device-message-rate gets `rate_limited` errors and,
   if it keeps on, close code 4029, while another restaurant's devices keep syncing; every change
   acknowledged to the flooder is in its log exactly once and nothing refused is. REST requests
   over --ip-request-rate and new connections over --ip-connect-rate get 429 + Retry-After; the
   WebSocket caps per restaurant and per address answer 429 too_many_connections and free their
   slot when a connection closes.
2. The permission table: what pos, kds, manager and admin tokens may change, over the WebSocket
   and POST /api/sync; a custom --permissions-file; an invalid one stops the server at start.
3. Secrets of user records are Argon2id-hashed before they are stored, logged or forwarded: the
   plaintext is nowhere (store file bytes, logs, other devices, REST), a hash is kept as it is, and
   the legacy user_update + data_change pair still counts once.

Everything waits on conditions with generous timeouts; nothing asserts on how fast the server is.
"""

import asyncio
import http.client
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import websockets

from harness import (SERVER_BIN, WAIT, LegacyDevice, ServerTestCase, async_test, data_change,
                     is_change, q, record_id_of)

ARGON2ID = re.compile(r"^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$")
ROLES = ("pos", "kds", "manager", "admin")


# --------------------------------------------------------------------------------------------
# Local helpers (things harness.py does not offer)
# --------------------------------------------------------------------------------------------


def http_text(server, method, path, token=None, headers=None, timeout=WAIT):
    """One request on a fresh connection; returns (status, lower-case headers, body text).
    (harness.http parses every body as JSON; /metrics is Prometheus text.)"""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = "Bearer " + token
        conn.request(method, path, headers=hdrs)
        res = conn.getresponse()
        if res.status == 101:
            return res.status, {k.lower(): v for k, v in res.getheaders()}, ""
        body = res.read().decode("utf-8", "replace")
        return res.status, {k.lower(): v for k, v in res.getheaders()}, body
    finally:
        conn.close()


def upgrade_attempt(server, restaurant, device, token, headers=None):
    """A WebSocket upgrade request made with http.client, so a refusal's JSON body can be read.
    Returns (status, headers, parsed body or None). Only for upgrades expected to be refused."""
    path = f"/ws?restaurant_id={q(restaurant)}&device_id={q(device)}&token={q(token)}"
    status, headers, body = http_text(server, "GET", path, headers={
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", **(headers or {})})
    return status, headers, (json.loads(body) if body else None)


def metric(text, name):
    """The value of one sample (`name` includes labels) in Prometheus text, or None."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


async def metrics_text(server):
    status, _, text = await asyncio.to_thread(http_text, server, "GET", "/metrics",
                                              server.admin_token())
    assert status == 200, (status, text)
    return text


def errors_with_code(client, code):
    return [m for m in client.messages if m.get("type") == "error" and m.get("code") == code]


async def wait_answered(client, change_ids, what="answers"):
    """Waits until every change id got an ack or an error naming it; returns {id: message}."""
    ids = set(change_ids)

    def answers():
        out = {}
        for m in client.messages:
            cid = m.get("change_id")
            if m.get("type") in ("ack", "error") and cid in ids and cid not in out:
                out[cid] = m
        return out

    await client.wait_until(lambda: len(answers()) == len(ids), what=what)
    return answers()


def store_bytes(server):
    """The SQLite store's bytes: the main file, its WAL and shared-memory files."""
    assert server.store.startswith("sqlite:"), server.store
    path = server.store[len("sqlite:"):]
    out = {}
    for p in (path, path + "-wal", path + "-shm", path + "-journal"):
        if os.path.exists(p):
            with open(p, "rb") as f:
                out[p] = f.read()
    assert path in out, f"no store file at {path}"
    return out


def log_bytes(server):
    out = b""
    for p in server.log_paths:
        with open(p, "rb") as f:
            out += f.read()
    return out


def run_binary(*args, cwd, timeout=20):
    """The server binary run directly in `cwd` (it may create ./data/jwt.keys there)."""
    return subprocess.run([SERVER_BIN, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, cwd=cwd)


# --------------------------------------------------------------------------------------------
# 1. Rate limits and connection caps
# --------------------------------------------------------------------------------------------


class FloodTest(ServerTestCase):

    @async_test(timeout=120)
    async def test_flooding_device_is_limited_then_closed_others_keep_working(self):
        server = self.start_server(extra_args=["--device-message-rate", "20",
                                               "--device-message-burst", "40"])
        flooder = await server.connect("F", "f1")
        g1 = await server.connect("G", "g1")
        g2 = await server.connect("G", "g2")
        await server.wait_devices("G", ["g1", "g2"])

        # Phase 1: 80 changes at once. The burst (40) is admitted, the rest refused with
        # `rate_limited` (fewer than 50 in a row: no close). Every message gets exactly one answer.
        phase1 = [data_change("orders", f"fo-{i}", "created", change_id=f"p1-{i}", n=i)
                  for i in range(80)]
        for msg in phase1:
            await flooder.send(msg)

        def phase1_answers():
            return (len([a for a in flooder.acks() if a["change_id"].startswith("p1-")]) +
                    len(errors_with_code(flooder, "rate_limited")))

        await flooder.wait_until(lambda: phase1_answers() >= 80, what="80 answers")
        await flooder.collect_until_quiet(0.3)
        acked1 = {a["change_id"] for a in flooder.acks()}
        refused1 = len(errors_with_code(flooder, "rate_limited"))
        self.assertEqual(len(acked1) + refused1, 80, "one answer per message")
        self.assertGreaterEqual(refused1, 1, "80 messages at once over a burst of 40")
        self.assertGreaterEqual(len(acked1), 40, "the burst is admitted")
        self.assertEqual({a["status"] for a in flooder.acks()}, {"applied"})
        self.assertFalse(flooder.closed)
        refused_ids = {e["change_id"] for e in errors_with_code(flooder, "rate_limited")}
        self.assertEqual(len(refused_ids), refused1, "each refusal names its change")
        self.assertFalse(refused_ids & acked1)
        log1 = server.all_changes("F")
        self.assertEqual(sorted(c["change_id"] for c in log1), sorted(acked1),
                         "exactly the acknowledged changes are stored")

        # Let the bucket refill a little, then phase 2: the flooder persists -> close 4029, while
        # restaurant G's devices keep syncing.
        await asyncio.sleep(1.0)
        errors_before = len(flooder.messages)
        sent2 = []

        async def flood():
            for i in range(4000):
                msg = data_change("orders", f"fo2-{i}", "created", change_id=f"p2-{i}", n=i)
                try:
                    await flooder.send(msg)
                except websockets.ConnectionClosed:
                    break
                sent2.append(msg["change_id"])
                if flooder.closed:
                    break
                if i % 20 == 0:
                    await asyncio.sleep(0)
            return await flooder.wait_closed()

        g_ids = [f"g-{i}" for i in range(25)]

        async def g_work():
            acks = []
            for i, cid in enumerate(g_ids):
                await g1.send(data_change("tables", f"t-{i}", "occupied", change_id=cid,
                                          status="occupied"))
                await asyncio.sleep(0.04)
            for cid in g_ids:
                acks.append(await g1.wait_ack(cid))
            return acks

        close_code, g_acks = await asyncio.gather(flood(), g_work())
        self.assertEqual(close_code, 4029, flooder.close_reason)
        self.assertEqual(flooder.close_reason, "rate limit exceeded")
        refused2 = len(errors_with_code(flooder, "rate_limited")) - refused1
        self.assertGreaterEqual(refused2, 1, "a rate_limited error came before the close")
        self.assertTrue(any(m.get("code") == "rate_limited"
                            for m in flooder.messages[errors_before:]))

        # G was not affected: all acked as applied, all delivered once to g2, all in G's log.
        self.assertEqual([a["status"] for a in g_acks], ["applied"] * len(g_ids))
        self.assertFalse(g1.of_type("error"), g1.of_type("error"))
        await g2.wait_count(lambda m: is_change(m) and m.get("data_type", "tables") == "tables",
                            len(g_ids), what="G's changes")
        await g2.sync_point()
        got = sorted(record_id_of(m) for m in g2.changes())
        self.assertEqual(got, sorted(f"t-{i}" for i in range(25)))
        self.assertEqual(sorted(c["change_id"] for c in server.all_changes("G")), sorted(g_ids))
        self.assertFalse(g1.closed or g2.closed)

        # The flooder's log: each acknowledged change exactly once; nothing it did not send;
        # no more changes than were not refused.
        log = server.all_changes("F")
        ids = [c["change_id"] for c in log]
        self.assertEqual(len(ids), len(set(ids)), "a change stored twice")
        acked = {a["change_id"] for a in flooder.acks()}
        self.assertLessEqual(acked, set(ids), "an acknowledged change is missing")
        stored2 = [i for i in ids if i.startswith("p2-")]
        self.assertLessEqual(set(stored2), set(sent2))
        self.assertLessEqual(len(stored2) + refused2, len(sent2),
                             "a refused change was stored")
        self.assertEqual(sorted(i for i in ids if i.startswith("p1-")), sorted(acked1))
        # Data of each stored change is the one sent (n matches the change id).
        for c in log:
            self.assertEqual(c["data"]["n"], int(c["change_id"].split("-")[1]), c)

        # Metrics count the refusals.
        text = await metrics_text(server)
        limited = metric(text, "possync_rate_limited_total")
        errors = metric(text, 'possync_errors_total{code="rate_limited"}')
        self.assertIsNotNone(limited, text)
        self.assertIsNotNone(errors, text)
        self.assertGreaterEqual(limited, refused1 + refused2 + 1)  # +1: the one that closed
        self.assertGreaterEqual(errors, refused1 + refused2)

        # A new connection of the same device starts with a fresh budget.
        again = await server.connect("F", "f1")
        await again.send(data_change("orders", "after", "created", change_id="after-1"))
        self.assertEqual((await again.wait_ack("after-1"))["status"], "applied")
        for c in (again, g1, g2):
            await c.close()

    @async_test(timeout=90)
    async def test_byte_budget_refuses_then_admits_even_the_largest_message(self):
        # A byte burst below the largest frame: the largest frame must still get through
        # (the budget is at least --max-frame-bytes), but not two of them at once.
        server = self.start_server(extra_args=["--max-frame-bytes", "4096",
                                               "--device-byte-rate", "2000",
                                               "--device-byte-burst", "1000"])
        dev = await server.connect("B", "b1")
        big = [data_change("orders", f"big-{i}", "created", change_id=f"big-{i}",
                           note="x" * 3500) for i in range(2)]
        self.assertLess(len(json.dumps(big[0])), 4096)
        await dev.send(big[0])
        await dev.send(big[1])
        self.assertEqual((await dev.wait_ack("big-0"))["status"], "applied")
        err = await dev.wait_type("error")
        self.assertEqual(err["code"], "rate_limited", err)
        self.assertIsNone(dev.ack_for("big-1"))
        # Sent again until the budget has refilled: then it is accepted.
        deadline = time.monotonic() + WAIT
        while dev.ack_for("big-1") is None:
            self.assertLess(time.monotonic(), deadline, "never admitted")
            start = len(dev.messages)
            await dev.send(big[1])
            await dev.wait_for(lambda m: m.get("type") in ("ack", "error"), start)
            if dev.ack_for("big-1") is None:
                await asyncio.sleep(0.3)
        self.assertEqual(dev.ack_for("big-1")["status"], "applied")
        self.assertEqual(sorted(c["change_id"] for c in server.all_changes("B")),
                         ["big-0", "big-1"])
        self.assertFalse(dev.closed)
        await dev.close()

    @async_test(timeout=90)
    async def test_legacy_twin_refused_by_the_rate_limit_still_counts_once(self):
        """Today's app sends a typed update and at once its data_change twin, and later POSTs
        the twin (its pending list). If the limit admits the typed update but refuses the twin,
        the POSTed twin is still the same change: `duplicate` of the typed update's seq, and the
        other devices receive the change once."""
        server = self.start_server(extra_args=["--device-message-rate", "0.5",
                                               "--device-message-burst", "1"])
        a = LegacyDevice(server, "R", "A", user_id="staff-a")
        b = LegacyDevice(server, "R", "B", user_id="staff-b")
        await a.open(register=False)  # no register: every message counts against the budget
        await b.open(register=False)
        await server.wait_devices("R", ["A", "B"])
        change = await a.broadcast("orders", "o-1", "created", {"status": "open"})
        typed_ack = await a.client.wait_type("ack")
        self.assertEqual(typed_ack["status"], "applied", typed_ack)
        # Over the budget the twin still gets through (twins cost nothing); a server that
        # refused it instead must still end with the outcome below.
        await a.client.wait_until(lambda: errors_with_code(a.client, "rate_limited") or
                                  a.client.ack_for(change.change_id), what="the twin's answer")
        await b.client.wait_for(is_change, what="the change")
        status, _, res = await a.post_pending()
        self.assertEqual(status, 200, res)
        await b.client.sync_point()  # B's first message: within its own budget
        log = server.all_changes("R")
        result = res["results"][0]
        await a.close()
        await b.close()
        self.assertEqual((result["change_id"], result["status"], result["seq"]),
                         (change.change_id, "duplicate", typed_ack["seq"]))
        self.assertEqual(len(log), 1, log)
        self.assertEqual(len(b.client.changes()), 1, b.client.changes())

    @async_test(timeout=90)
    async def test_legacy_user_update_whose_twin_is_refused_leaves_the_senders_record_alone(self):
        """A typed user_update names the *sender's* user in `user_id`; only its twin names the
        edited user. If the limit refuses the twin, the edit must still not land on the
        sender's own user record (role, PIN)."""
        server = self.start_server(extra_args=["--device-message-rate", "0.5",
                                               "--device-message-burst", "1",
                                               "--twin-window-ms", "500"])
        a = LegacyDevice(server, "R", "A", user_id="staff-1")
        b = LegacyDevice(server, "R", "B", user_id="staff-2")
        await a.open(register=False)
        await b.open(register=False)
        await server.wait_devices("R", ["A", "B"])
        change = await a.broadcast("users", "user-42", "role_changed",
                                   {"role": "server", "pin": PIN})
        await a.client.wait_until(lambda: errors_with_code(a.client, "rate_limited") or
                                  a.client.ack_for(change.change_id), what="the twin's answer")
        status, _, res = await a.post_pending()  # the app's 10 s POST of its pending list
        self.assertEqual(status, 200, res)
        self.assertIn(res["results"][0]["status"], ("applied", "duplicate"), res)
        await b.client.wait_for(lambda m: is_change(m) and record_id_of(m) == "user-42",
                                what="user-42's change")
        # Well past the twin window: a typed update still held back would have been committed.
        await asyncio.sleep(2.0)
        await b.client.sync_point()
        status, _, snap = await server.ahttp("GET", "/api/restaurants/R/data")
        users = {u["id"]: u for u in snap["data"]["users"]}
        await a.close()
        await b.close()
        self.assertEqual(users["user-42"]["role"], "server")
        self.assertEqual(sorted(users), ["user-42"])
        self.assertEqual([record_id_of(m) for m in b.client.changes()], ["user-42"])


class RestLimitTest(ServerTestCase):

    @async_test(timeout=90)
    async def test_request_rate_answers_429_with_retry_after_then_recovers(self):
        # 0.5 request/s: Retry-After must round up to 2 s, or the retry would be refused again.
        server = self.start_server(extra_args=["--ip-request-rate", "0.5",
                                               "--ip-request-burst", "3"])
        answers = []
        for i in range(8):
            # Without --trust-forwarded-for, a client cannot pick its address with this header.
            answers.append(await asyncio.to_thread(http_text, server, "GET", "/api/health",
                                                   headers={"X-Forwarded-For": f"10.9.0.{i}"}))
        statuses = [s for s, _, _ in answers]
        self.assertIn(429, statuses)
        self.assertTrue(set(statuses) <= {200, 429}, statuses)
        for status, headers, body in answers:
            if status != 429:
                continue
            res = json.loads(body)
            self.assertEqual((res["status"], res["code"]), ("error", "rate_limited"), res)
            self.assertRegex(headers.get("retry-after", ""), r"^[1-9][0-9]*$", headers)
            self.assertEqual(headers.get("content-type"), "application/json")
        retry_after = int([h for s, h, _ in answers if s == 429][-1]["retry-after"])
        self.assertGreaterEqual(retry_after, 2, "one token every 2 s")
        await asyncio.sleep(retry_after)
        status, _, body = await asyncio.to_thread(http_text, server, "GET", "/api/health")
        self.assertEqual(status, 200, body)
        # Counted: the rate-limited total and the error code.
        await asyncio.sleep(retry_after + 0.5)
        text = await metrics_text(server)
        self.assertGreaterEqual(metric(text, "possync_rate_limited_total") or 0,
                                statuses.count(429))
        self.assertGreaterEqual(metric(text, 'possync_errors_total{code="rate_limited"}') or 0,
                                statuses.count(429))

    @async_test(timeout=90)
    async def test_connect_rate_answers_429_on_the_first_request(self):
        server = self.start_server(extra_args=["--ip-connect-rate", "1",
                                               "--ip-connect-burst", "3"])
        answers = []
        for _ in range(8):  # each on a new TCP connection
            answers.append(await asyncio.to_thread(http_text, server, "GET", "/api/health"))
        statuses = [s for s, _, _ in answers]
        self.assertIn(429, statuses)
        self.assertTrue(set(statuses) <= {200, 429}, statuses)
        for status, headers, body in answers:
            if status != 429:
                continue
            res = json.loads(body)
            self.assertEqual(res["code"], "rate_limited", res)
            self.assertRegex(headers.get("retry-after", ""), r"^[1-9][0-9]*$", headers)
            self.assertEqual(headers.get("connection", "").lower(), "close", headers)
        # A WebSocket upgrade on a refused new connection is refused the same way (a token
        # may have been refilled meanwhile: a few tries).
        for _ in range(5):
            status, headers, res = await asyncio.to_thread(upgrade_attempt, server, "R", "d1",
                                                           server.token("R", "d1"))
            if status == 429:
                break
        self.assertEqual((status, res and res["code"]), (429, "rate_limited"), res)
        retry_after = int(headers["retry-after"])
        await asyncio.sleep(retry_after)
        dev = await server.connect("R", "d1")
        await dev.sync_point()
        await dev.close()

    @async_test(timeout=120)
    async def test_connection_caps_per_restaurant_and_per_address(self):
        server = self.start_server(extra_args=["--max-connections-per-restaurant", "2",
                                               "--max-connections-per-ip", "3"])
        r1 = await server.connect("R", "d1")
        r2 = await server.connect("R", "d2")
        await server.wait_devices("R", ["d1", "d2"])
        # Third of R: refused with 429, by the websockets library and with the JSON body.
        with self.assertRaises(websockets.InvalidStatusCode) as cm:
            ws = await websockets.connect(server.ws_url("R", "d3"), open_timeout=WAIT)
            await ws.close()
        self.assertEqual(cm.exception.status_code, 429)
        status, headers, res = await asyncio.to_thread(upgrade_attempt, server, "R", "d3",
                                                       server.token("R", "d3"))
        self.assertEqual((status, res["code"]), (429, "too_many_connections"), res)
        self.assertIn("restaurant", res["message"])
        self.assertRegex(headers.get("retry-after", ""), r"^[1-9][0-9]*$", headers)
        # Another restaurant still connects (3rd from this address: the refusals held no slot).
        s1 = await server.connect("S", "e1")
        await s1.sync_point()
        # Fourth from this address: refused by the per-address cap (a forged X-Forwarded-For
        # does not count without --trust-forwarded-for).
        status, _, res = await asyncio.to_thread(upgrade_attempt, server, "S", "e2",
                                                 server.token("S", "e2"),
                                                 {"X-Forwarded-For": "10.9.9.9"})
        self.assertEqual((status, res["code"]), (429, "too_many_connections"), res)
        self.assertIn("address", res["message"])
        self.assertEqual(await server.connected_devices("R"), ["d1", "d2"])
        self.assertEqual(await server.connected_devices("S"), ["e1"])
        # Closing S's connection frees an address slot: S/e2 connects (R is still full).
        await s1.close()
        s2 = await self.connect_eventually(server, "S", "e2")
        status, _, res = await asyncio.to_thread(upgrade_attempt, server, "R", "d3",
                                                 server.token("R", "d3"))
        self.assertEqual((status, res["code"]), (429, "too_many_connections"), res)
        # Closing one of R's frees a restaurant slot: R/d3 connects.
        await r1.close()
        r3 = await self.connect_eventually(server, "R", "d3")
        await r3.send(data_change("orders", "o-1", "created", change_id="c-1"))
        self.assertEqual((await r3.wait_ack("c-1"))["status"], "applied")
        await r2.wait_for(is_change, what="r3's change")
        text = await metrics_text(server)
        self.assertGreaterEqual(metric(text, 'possync_errors_total{code="too_many_connections"}')
                                or 0, 4)
        for c in (r2, r3, s2):
            await c.close()

    async def connect_eventually(self, server, restaurant, device):
        """A slot is given back just after the close completes: retry refusals for a while."""
        deadline = time.monotonic() + WAIT
        while True:
            try:
                c = await server.connect(restaurant, device)
                await c.sync_point()
                return c
            except websockets.InvalidStatusCode as e:
                if e.status_code != 429 or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)


# --------------------------------------------------------------------------------------------
# 2. The permission table
# --------------------------------------------------------------------------------------------

ALL = set(ROLES)
WRITERS = {"pos", "manager", "admin"}
MANAGERS = {"manager", "admin"}

# (name, data_type, action, data, roles allowed by the default table)
DEFAULT_CASES = [
    ("user-create", "users", "created", {"name": "Ann", "role": "server"}, MANAGERS),
    ("user-role", "users", "role_changed", {"role": "manager"}, MANAGERS),
    ("menu-price", "menu_items", "updated", {"price": 9.5}, MANAGERS),
    ("menu-new-priced", "menu_items", "created", {"name": "Soup", "price": 4.0}, MANAGERS),
    ("menu-nested-price", "menu_items", "updated",
     {"options": [{"name": "large", "price": 1.5}]}, MANAGERS),
    ("menu-plain", "menu_items", "created", {"name": "Soup", "available": True}, WRITERS),
    ("menu-availability", "menu_items", "availability_changed", {"available": False}, WRITERS),
    ("order-create", "orders", "created", {"status": "open", "table_id": "t-1"}, WRITERS),
    ("order-status", "orders", "status_changed", {"status": "ready"}, ALL),
    ("order-update-status", "orders", "updated", {"status": "served"}, ALL),
    ("order-update-total", "orders", "updated", {"status": "paid", "total": 12.5}, WRITERS),
    ("order-complete", "orders", "completed", {"status": "completed"}, WRITERS),
    ("order-delete", "orders", "deleted", {}, WRITERS),
    ("table", "tables", "occupied", {"status": "occupied"}, WRITERS),
    ("table-update", "tables", "updated", {"status": "cleaning"}, WRITERS),
    ("inventory", "inventory", "stock_changed", {"current_stock": 4}, WRITERS),
    ("printer", "printers", "configured", {"ip": "10.0.0.9"}, WRITERS),
]


class PermissionTest(ServerTestCase):

    def role_token(self, server, role, restaurant, device):
        if role == "admin":
            return server.admin_token()
        return server.token(restaurant, device, role=role)

    async def check_table(self, server, restaurant, cases, via):
        """Every role tries every case over `via` ("ws" or "rest"); returns the change ids that
        were applied. Asserts each answer: applied if allowed, `forbidden` otherwise."""
        observer = await server.connect(restaurant, "observer")
        applied = set()
        for role in ROLES:
            device = f"{via}-{role}"
            token = self.role_token(server, role, restaurant, device)
            msgs = []
            for name, data_type, action, data, allowed in cases:
                cid = f"{via}-{role}-{name}"
                msgs.append((cid, role in allowed, data_change(
                    data_type, f"{role}-{name}", action, change_id=cid, **data)))
            if via == "ws":
                dev = await server.connect(restaurant, device, token=token)
                for _, _, m in msgs:
                    await dev.send(m)
                answers = await wait_answered(dev, [cid for cid, _, _ in msgs])
                for cid, ok, m in msgs:
                    a = answers[cid]
                    with self.subTest(via=via, role=role, change=cid):
                        if ok:
                            self.assertEqual((a["type"], a.get("status")), ("ack", "applied"), a)
                            applied.add(cid)
                        else:
                            self.assertEqual((a["type"], a.get("code")), ("error", "forbidden"), a)
                            self.assertIn(role, a["message"])
                await dev.close()
            else:
                body = {"restaurant_id": restaurant, "device_id": device,
                        "changes": [m for _, _, m in msgs]}
                status, _, res = await server.ahttp("POST", "/api/sync", body, token=token)
                self.assertEqual(status, 200, res)
                self.assertEqual(len(res["results"]), len(msgs))
                for (cid, ok, _), r in zip(msgs, res["results"]):
                    with self.subTest(via=via, role=role, change=cid):
                        self.assertEqual(r["change_id"], cid)
                        if ok:
                            self.assertEqual(r["status"], "applied", r)
                            applied.add(cid)
                        else:
                            self.assertEqual((r["status"], r["error"]["code"]),
                                             ("rejected", "forbidden"), r)
                self.assertEqual(res["synced_changes"], sum(ok for _, ok, _ in msgs))
        # Nothing refused was stored or forwarded.
        log = server.all_changes(restaurant)
        self.assertEqual(sorted(c["change_id"] for c in log), sorted(applied))
        await observer.sync_point()
        await observer.wait_count(is_change, len(applied), what="applied changes")
        await observer.sync_point()
        expected_records = sorted(cid.split("-", 1)[1] for cid in applied)
        self.assertEqual(sorted(record_id_of(m) for m in observer.changes()), expected_records)
        await observer.close()
        return applied

    @async_test(timeout=120)
    async def test_default_table_over_websocket_and_rest(self):
        server = self.start_server()
        await self.check_table(server, "RW", DEFAULT_CASES, "ws")
        await self.check_table(server, "RR", DEFAULT_CASES, "rest")
        # Refused changes left no record behind.
        for restaurant in ("RW", "RR"):
            status, _, snap = await server.ahttp("GET", f"/api/restaurants/{restaurant}/data")
            self.assertEqual(status, 200)
            self.assertEqual(sorted(u["id"] for u in snap["data"]["users"]),
                             ["admin-user-create", "admin-user-role", "manager-user-create",
                              "manager-user-role"])
            prices = {m["id"]: m.get("price") for m in snap["data"]["menu_items"]}
            self.assertNotIn("pos-menu-price", prices)
            self.assertNotIn("kds-menu-price", prices)
            self.assertEqual(prices["manager-menu-price"], 9.5)
            self.assertNotIn("kds-order-create", {o["id"] for o in snap["data"]["orders"]})
        # Today's app's typed updates (no change_id) are checked the same way.
        pos = LegacyDevice(server, "RW", "ws-pos")
        pos.client = await server.connect("RW", "ws-pos",
                                          token=server.token("RW", "ws-pos", role="pos"))
        await pos.register()
        before = len(server.all_changes("RW"))
        change = pos.make_change("users", "u-typed", "created", {"name": "Eve"})
        await pos.client.send(change.typed)
        await pos.client.send(change.twin)
        err = await pos.client.wait_type("error")
        self.assertEqual(err["code"], "forbidden", err)
        priced = pos.make_change("menu_items", "m-typed", "updated", {"price": 1.0})
        await pos.client.send(priced.typed)
        ok = pos.make_change("tables", "t-typed", "occupied", {"status": "occupied"})
        await pos.client.send(ok.typed)
        await pos.client.send(ok.twin)
        self.assertEqual((await pos.client.wait_ack(ok.change_id))["status"], "duplicate")
        await pos.client.sync_point()
        # the typed user_update, its twin, the priced menu_update
        self.assertEqual(len(errors_with_code(pos.client, "forbidden")), 3, pos.client.messages)
        log = server.all_changes("RW")
        self.assertEqual(len(log), before + 1, log[before:])
        self.assertEqual(log[-1]["data"]["id"], "t-typed")
        await pos.close()

    @async_test(timeout=120)
    async def test_custom_permissions_file_changes_the_rules(self):
        workdir = tempfile.mkdtemp(prefix="possync-perm-")
        self.addCleanup(shutil.rmtree, workdir, True)
        path = os.path.join(workdir, "permissions.json")
        everything = {dt: {} for dt in ("orders", "menu_items", "inventory", "tables", "users",
                                        "printers")}
        table = {
            "pos": {"orders": {}},  # pos loses tables, menu_items, ...
            "kds": {"orders": {"actions": ["updated", "status_changed"],
                               "fields": ["status", "id", "updated_at", "version"]},
                    "tables": {"actions": ["updated", "cleaning"]}},  # kds gains tables
            "manager": dict(everything, users={"deny_fields": ["role"]}),
            "admin": everything,
        }
        with open(path, "w") as f:
            json.dump(table, f)
        server = self.start_server(workdir=workdir, extra_args=["--permissions-file", path])
        cases = [
            ("table-update", "tables", "updated", {"status": "cleaning"},
             {"kds", "manager", "admin"}),
            ("table-cleaning", "tables", "cleaning", {"status": "cleaning"},
             {"kds", "manager", "admin"}),
            ("table-occupied", "tables", "occupied", {"status": "occupied"}, MANAGERS),
            ("menu-plain", "menu_items", "created", {"name": "Soup"}, MANAGERS),
            ("order-create", "orders", "created", {"status": "open"}, WRITERS),
            ("order-status", "orders", "status_changed", {"status": "ready"}, ALL),
            ("user-name", "users", "updated", {"name": "Ann"}, MANAGERS),
            ("user-role", "users", "role_changed", {"role": "owner"}, {"admin"}),
            ("user-nested-role", "users", "updated", {"profile": {"role": "owner"}}, {"admin"}),
        ]
        await self.check_table(server, "RW", cases, "ws")
        await self.check_table(server, "RR", cases, "rest")

    def test_invalid_permissions_file_stops_the_server(self):
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                               "permissions.default.json")) as f:
            default = json.load(f)
        missing_role = {k: v for k, v in default.items() if k != "kds"}
        bad_action = json.loads(json.dumps(default))
        bad_action["kds"]["orders"]["actions"] = ["updated", 7]
        cases = {
            "not-json.json": ("{ this is not json", None),
            "unknown-role.json": (json.dumps(dict(default, chef={"orders": {}})), "chef"),
            "missing-role.json": (json.dumps(missing_role), "kds"),
            "unknown-type.json": (json.dumps(dict(default, pos={"coupons": {}})), "coupons"),
            "unknown-member.json": (json.dumps(dict(default, pos={"orders": {"allow": ["x"]}})),
                                    "allow"),
            "bad-action.json": (json.dumps(bad_action), "kds.orders.actions[1]"),
            "empty-list.json": (json.dumps(dict(default, pos={"orders": {"fields": []}})),
                                "fields"),
        }
        with tempfile.TemporaryDirectory() as tmp:
            # The default file itself is accepted (sanity: the checks below are about content).
            good = os.path.join(tmp, "good.json")
            with open(good, "w") as f:
                json.dump(default, f)
            res = run_binary("--store", "bogus:x", "--port", "0", "--permissions-file", good,
                             cwd=tmp)
            self.assertEqual(res.returncode, 1, res.stdout + res.stderr)  # failed at the store
            self.assertIn("unsupported store", res.stdout + res.stderr)
            for name, (content, named) in cases.items():
                with self.subTest(name):
                    with open(os.path.join(tmp, name), "w") as f:
                        f.write(content)
                    res = run_binary("--store", "memory", "--port", "0", "--permissions-file",
                                     name, cwd=tmp)
                    out = res.stdout + res.stderr
                    self.assertEqual(res.returncode, 2, out)
                    self.assertIn(name, out)
                    if named:
                        self.assertIn(named, out)
            with self.subTest("missing file"):
                res = run_binary("--store", "memory", "--port", "0", "--permissions-file",
                                 "no-such-file.json", cwd=tmp)
                self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
                self.assertIn("no-such-file.json", res.stdout + res.stderr)


# --------------------------------------------------------------------------------------------
# 3. Secrets of user records
# --------------------------------------------------------------------------------------------

PIN = "PIN-4711-xyz"
PASSWORD = "PASSWORD-hunter2-xyz"
PASSCODE = "PASSCODE-0815-xyz"
NESTED_PASSWORD = "NESTED-Pw-xyz"
LIST_PASSCODE = "LIST-Pc-xyz"
REST_PIN = "REST-PIN-2323-xyz"
REST_PASSWORD = "REST-Password-xyz"
BAD_PIN = "BAD-PIN-object-xyz"
PLAINTEXTS = [PIN, PASSWORD, PASSCODE, NESTED_PASSWORD, LIST_PASSCODE, REST_PIN, REST_PASSWORD,
              BAD_PIN]


class SecretHashingTest(ServerTestCase):

    def assert_hash(self, value, what):
        self.assertIsInstance(value, str, what)
        self.assertRegex(value, ARGON2ID, what)

    def assert_no_plaintext(self, blob, where):
        if isinstance(blob, str):
            blob = blob.encode()
        for secret in PLAINTEXTS:
            self.assertNotIn(secret.encode(), blob, f"plaintext {secret!r} found in {where}")

    @async_test(timeout=150)
    async def test_secrets_are_hashed_everywhere_and_hashes_kept(self):
        server = self.start_server(extra_args=["--log-level", "trace"])
        manager = LegacyDevice(server, "R", "M", user_id="staff-1")  # manager token (default)
        observer = LegacyDevice(server, "R", "O", user_id="staff-2")
        await manager.open()
        await observer.open()
        modern = await server.connect("R", "N")  # data_change client, manager token
        watcher = await server.connect("R", "W", token=server.token("R", "W", role="pos"))

        # (a) Today's app: typed user_update then its data_change twin; counts once.
        legacy = await manager.broadcast("users", "user-1", "created",
                                         {"name": "Ann", "pin": PIN, "password": PASSWORD,
                                          "passcode": PASSCODE})
        ack = await manager.client.wait_ack(legacy.change_id)
        self.assertEqual(ack["status"], "applied", ack)
        # A sentinel after it: anything still held back would have been flushed before it.
        sentinel = await manager.broadcast("tables", "t-1", "occupied", {"status": "occupied"})
        await manager.client.wait_ack(sentinel.change_id)
        await observer.client.wait_for(lambda m: is_change(m) and record_id_of(m) == "t-1",
                                       what="the sentinel")
        user_msgs = [m for m in observer.client.changes() if record_id_of(m) == "user-1"]
        self.assertEqual(len(user_msgs), 1, "the user_update and its twin are one change")
        forwarded = user_msgs[0]["data"]
        for field in ("pin", "password", "passcode"):
            self.assert_hash(forwarded[field], f"forwarded {field}")
        self.assertEqual(forwarded["name"], "Ann")
        self.assertEqual(len({forwarded["pin"], forwarded["password"], forwarded["passcode"]}),
                         3)
        self.assertFalse(manager.client.of_type("error"), manager.client.of_type("error"))

        # (b) data_change with secrets at depth, a numeric PIN, and mixed-case names.
        msg = data_change("users", "user-2", "updated", change_id="n-1", name="Bob",
                          PIN=90817263, credentials={"Password": NESTED_PASSWORD},
                          devices=[{"name": "tablet", "passcode": LIST_PASSCODE}],
                          pin_hint="not a secret")
        await modern.send(msg)
        self.assertEqual((await modern.wait_ack("n-1"))["status"], "applied")

        # (c) POST /api/sync: the legacy pending list again (duplicates), and a new user.
        status, _, res = await manager.post_pending()
        self.assertEqual(status, 200, res)
        self.assertEqual([r["status"] for r in res["results"]], ["duplicate", "duplicate"])
        self.assertEqual(res["results"][0]["seq"], ack["seq"])
        body = {"restaurant_id": "R", "device_id": "M", "changes": [
            data_change("users", "user-3", "created", change_id="rest-1", name="Cy",
                        pin=REST_PIN, password=REST_PASSWORD)]}
        status, _, res = await server.ahttp("POST", "/api/sync", body,
                                            token=server.token("R", "M"))
        self.assertEqual((status, res["results"][0]["status"]), (200, "applied"), res)
        self.assert_no_plaintext(json.dumps(res), "the POST /api/sync answer")

        # (d) A secret that cannot be one (an object) is rejected without echoing it.
        await modern.send(data_change("users", "user-bad", "updated", change_id="n-bad",
                                      pin={"code": BAD_PIN}))
        # So is a hash string the server would not accept as a hash: another Argon2 variant, or
        # an Argon2id cost far over the accepted maximum (every later check would be a DoS).
        salt, digest = "c2FsdHNhbHRzYWx0c2FsdA", "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
        await modern.send(data_change("users", "user-bad", "updated", change_id="n-bad-variant",
                                      pin=f"$argon2i$v=19$m=19456,t=2,p=1${salt}${digest}"))
        await modern.send(data_change("users", "user-bad", "updated", change_id="n-bad-cost",
                                      pin=f"$argon2id$v=19$m=4194304,t=9,p=1${salt}${digest}"))
        answers = await wait_answered(modern, ["n-bad", "n-bad-variant", "n-bad-cost"])
        for cid, bad in answers.items():
            code = bad.get("code") or bad.get("error", {}).get("code")
            self.assertEqual(code, "invalid_field", bad)
            self.assertNotEqual(bad.get("status"), "applied", bad)
        status, _, res = await server.ahttp("POST", "/api/sync", {
            "restaurant_id": "R", "device_id": "M", "changes": [
                data_change("users", "user-bad", "created", change_id="rest-bad",
                            password=[BAD_PIN])]}, token=server.token("R", "M"))
        self.assertEqual(status, 200, res)
        self.assertEqual((res["results"][0]["status"], res["results"][0]["error"]["code"]),
                         ("rejected", "invalid_field"), res)
        self.assert_no_plaintext(json.dumps(res), "a rejection")

        # The stored records.
        status, _, snap = await server.ahttp("GET", "/api/restaurants/R/data")
        self.assertEqual(status, 200)
        users = {u["id"]: u for u in snap["data"]["users"]}
        self.assertEqual(sorted(users), ["user-1", "user-2", "user-3"])
        for field in ("pin", "password", "passcode"):
            self.assertEqual(users["user-1"][field], forwarded[field], "stored = forwarded")
        u2 = users["user-2"]
        self.assert_hash(u2["PIN"], "numeric PIN")
        self.assert_hash(u2["credentials"]["Password"], "nested Password")
        self.assert_hash(u2["devices"][0]["passcode"], "passcode in a list")
        self.assertEqual(u2["pin_hint"], "not a secret")
        self.assertEqual(u2["devices"][0]["name"], "tablet")
        self.assertNotIn("90817263", json.dumps(u2))
        self.assert_hash(users["user-3"]["pin"], "REST pin")
        self.assert_hash(users["user-3"]["password"], "REST password")

        # (e) A value that already is an Argon2id hash is kept unchanged (WebSocket and REST).
        h_pin, h_pw = users["user-1"]["pin"], users["user-1"]["password"]
        await modern.send(data_change("users", "user-4", "created", change_id="n-idem",
                                      pin=h_pin, password=h_pw))
        self.assertEqual((await modern.wait_ack("n-idem"))["status"], "applied")
        await modern.send(data_change("users", "user-1", "updated", change_id="n-resend",
                                      **{k: users["user-1"][k] for k in ("pin", "password",
                                                                         "passcode")}))
        self.assertEqual((await modern.wait_ack("n-resend"))["status"], "applied")
        status, _, res = await server.ahttp("POST", "/api/sync", {
            "restaurant_id": "R", "device_id": "M", "changes": [
                data_change("users", "user-5", "created", change_id="rest-idem", pin=h_pin)]},
            token=server.token("R", "M"))
        self.assertEqual((status, res["results"][0]["status"]), (200, "applied"), res)
        status, _, snap = await server.ahttp("GET", "/api/restaurants/R/data")
        users = {u["id"]: u for u in snap["data"]["users"]}
        self.assertEqual((users["user-4"]["pin"], users["user-4"]["password"]), (h_pin, h_pw))
        self.assertEqual(users["user-5"]["pin"], h_pin)
        for field in ("pin", "password", "passcode"):
            self.assertEqual(users["user-1"][field], forwarded[field], f"re-sent {field}")

        # Every device has seen everything (sync points), then: no plaintext anywhere.
        for c in (observer.client, modern, watcher):  # M posted user-5: not sent back to M
            await c.wait_for(lambda m: is_change(m) and record_id_of(m) == "user-5",
                             what="user-5")
        for c in (manager.client, observer.client, modern, watcher):
            await c.sync_point()
        for name, c in (("manager", manager.client), ("observer", observer.client),
                        ("modern", modern), ("watcher", watcher)):
            self.assert_no_plaintext(json.dumps(c.messages), f"messages received by {name}")
        # The watcher (another device) saw each user change exactly once, with hashes.
        w_users = [m for m in watcher.changes()
                   if m.get("data_type", "users") == "users" and m["type"] in
                   ("user_update", "data_change") and record_id_of(m).startswith("user-")]
        self.assertEqual(sorted(record_id_of(m) for m in w_users),
                         ["user-1", "user-1", "user-2", "user-3", "user-4", "user-5"])
        self.assert_hash(w_users[0]["data"]["pin"], "pin received by another device")
        status, _, text = await asyncio.to_thread(
            http_text, server, "GET", "/api/restaurants/R/data", server.admin_token())
        self.assert_no_plaintext(text, "GET /data")
        changes_text = json.dumps(server.all_changes("R"))
        self.assert_no_plaintext(changes_text, "GET /changes")
        self.assertIn("$argon2id$v=19$", changes_text)
        self.assert_no_plaintext(log_bytes(server), "the server log")
        for path, blob in store_bytes(server).items():
            self.assert_no_plaintext(blob, path)
        self.assertIn(b"$argon2id$v=19$", b"".join(store_bytes(server).values()))

        for c in (manager, observer):
            await c.close()
        await modern.close()
        await watcher.close()
        # After a clean stop (WAL checkpointed into the main file): still no plaintext.
        server.stop()
        for path, blob in store_bytes(server).items():
            self.assert_no_plaintext(blob, path + " after stop")
        self.assert_no_plaintext(log_bytes(server), "the server log after stop")

    @async_test(timeout=150)
    async def test_hashing_backlog_refuses_with_rate_limited_and_keeps_what_it_accepted(self):
        """Argon2id is slow by design and the hashing queue is bounded: a burst of user changes
        with secrets beyond it is refused (`rate_limited`, retryable), never half-applied, and
        every change acknowledged as applied is stored, hashed, exactly once."""
        server = self.start_server()
        dev = await server.connect("R", "M")
        other = await server.connect("G", "g1")
        ids = [f"h-{i}" for i in range(150)]
        for i, cid in enumerate(ids):
            await dev.send(data_change("users", f"u-{i}", "created", change_id=cid,
                                       pin=f"{PIN}-{i}"))
        # Meanwhile a change without secrets of another restaurant is not held up by it.
        await other.send(data_change("orders", "o-1", "created", change_id="g-1", status="open"))
        self.assertEqual((await other.wait_ack("g-1"))["status"], "applied")
        answers = await wait_answered(dev, ids)
        applied = {cid for cid, a in answers.items()
                   if a["type"] == "ack" and a["status"] == "applied"}
        refused = {cid for cid, a in answers.items() if cid not in applied}
        for cid in refused:
            a = answers[cid]
            code = a.get("code") or a.get("error", {}).get("code")
            self.assertEqual(code, "rate_limited", a)
        self.assertTrue(applied, "some were accepted")
        log = server.all_changes("R")
        self.assertEqual(sorted(c["change_id"] for c in log), sorted(applied))
        for c in log:
            self.assert_hash(c["data"]["pin"], c["change_id"])
        # Commit order follows the order of the messages.
        self.assertEqual([c["change_id"] for c in log],
                         [cid for cid in ids if cid in applied])
        # A refused change sent again once the backlog has drained is accepted.
        if refused:
            cid = sorted(refused, key=ids.index)[0]
            i = ids.index(cid)
            await dev.send(data_change("users", f"u-{i}", "created", change_id=cid,
                                       pin=f"{PIN}-{i}"))
            ack = await dev.wait_for(lambda m: m.get("type") == "ack" and
                                     m.get("change_id") == cid and m.get("status") == "applied",
                                     what=f"{cid} applied on retry")
            self.assertEqual(ack["status"], "applied")
        self.assert_no_plaintext(json.dumps(dev.messages), "the device's answers")
        for path, blob in store_bytes(server).items():
            self.assertNotIn(PIN.encode(), blob, path)
        await dev.close()
        await other.close()


if __name__ == "__main__":
    unittest.main()
