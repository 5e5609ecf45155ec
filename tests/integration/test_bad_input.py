"""Malformed and hostile input over WebSocket and REST: clear errors, nothing malformed stored,
connections that stay usable, limits enforced where data enters."""

import asyncio
import json
import socket
import unittest

import websockets

from harness import WAIT, ServerTestCase, async_test, data_change, is_change


def valid_order(rid="o-1", change_id=None, **fields):
    return data_change("orders", rid, "updated", change_id=change_id, status="open", **fields)


class WebSocketBadInputTest(ServerTestCase):

    # (description, message as sent, expected error code)
    CASES = [
        ("invalid JSON", "{not json", "invalid_json"),
        ("truncated JSON", '{"type":"heartbeat"', "invalid_json"),
        ("JSON array", "[1, 2]", "invalid_message"),
        ("JSON string", '"order_update"', "invalid_message"),
        ("JSON number", "42", "invalid_message"),
        ("JSON null", "null", "invalid_message"),
        ("too deeply nested", "[" * 40 + "]" * 40, "invalid_json"),
        ("missing type", {"data_type": "orders", "action": "updated", "data": {"id": "x"}},
         "missing_field"),
        ("type not a string", {"type": 7, "data": {"id": "x"}}, "invalid_field"),
        ("unknown type", {"type": "order_deleted", "data": {"id": "x"}}, "unknown_type"),
        ("data_change without data_type",
         {"type": "data_change", "action": "updated", "data": {"id": "x"}}, "missing_field"),
        ("data_change without action",
         {"type": "data_change", "data_type": "orders", "data": {"id": "x"}}, "missing_field"),
        ("data_change without data",
         {"type": "data_change", "data_type": "orders", "action": "updated"}, "missing_field"),
        ("data_change without data.id",
         {"type": "data_change", "data_type": "orders", "action": "updated",
          "data": {"status": "x"}}, "missing_field"),
        ("data not an object",
         {"type": "data_change", "data_type": "orders", "action": "updated", "data": "x"},
         "invalid_field"),
        ("data.id a float",
         {"type": "data_change", "data_type": "orders", "action": "updated",
          "data": {"id": 1.5}}, "invalid_field"),
        ("data.id an object",
         {"type": "data_change", "data_type": "orders", "action": "updated",
          "data": {"id": {"a": 1}}}, "invalid_field"),
        ("data.id empty",
         {"type": "data_change", "data_type": "orders", "action": "updated",
          "data": {"id": ""}}, "invalid_field"),
        ("action a number",
         {"type": "data_change", "data_type": "orders", "action": 3, "data": {"id": "x"}},
         "invalid_field"),
        ("data_type a number",
         {"type": "data_change", "data_type": 1, "action": "updated", "data": {"id": "x"}},
         "invalid_field"),
        ("unknown data_type",
         {"type": "data_change", "data_type": "cars", "action": "updated", "data": {"id": "x"}},
         "unknown_data_type"),
        ("order_update without order_id",
         {"type": "order_update", "action": "created", "data": {"status": "x"}},
         "missing_field"),
        ("order_update with a list order_id",
         {"type": "order_update", "order_id": ["a"], "action": "created", "data": {}},
         "invalid_field"),
        ("menu_update without data",
         {"type": "menu_update", "item_id": "m", "action": "updated"}, "missing_field"),
        ("change_id a number",
         {"type": "data_change", "data_type": "orders", "action": "updated",
          "data": {"id": "x"}, "change_id": 17}, "invalid_field"),
        ("negative base_version",
         {"type": "data_change", "data_type": "orders", "action": "updated",
          "data": {"id": "x"}, "base_version": -1}, "invalid_field"),
        ("string base_version",
         {"type": "data_change", "data_type": "orders", "action": "updated",
          "data": {"id": "x"}, "base_version": "3"}, "invalid_field"),
        ("record id over 128 bytes",
         {"type": "data_change", "data_type": "orders", "action": "updated",
          "data": {"id": "x" * 129}}, "invalid_field"),
        ("multi-byte record id over 128 bytes",
         {"type": "data_change", "data_type": "orders", "action": "updated",
          "data": {"id": "\u00e9" * 65}}, "invalid_field"),
        ("typed record id over 128 bytes",
         {"type": "table_update", "table_id": "t" * 200, "action": "occupied", "data": {}},
         "invalid_field"),
        ("newline in record id",
         {"type": "data_change", "data_type": "orders", "action": "updated",
          "data": {"id": "a\nb"}}, "invalid_field"),
        ("NUL in record id",
         {"type": "data_change", "data_type": "orders", "action": "updated",
          "data": {"id": "a\u0000b"}}, "invalid_field"),
        ("DEL in record id",
         {"type": "order_update", "order_id": "a\u007fb", "action": "created", "data": {}},
         "invalid_field"),
        ("C1 control in record id",
         {"type": "order_update", "order_id": "a\u0085b", "action": "created", "data": {}},
         "invalid_field"),
        ("control char in action",
         {"type": "data_change", "data_type": "orders", "action": "up\tdated",
          "data": {"id": "x"}}, "invalid_field"),
        ("action over 64 bytes",
         {"type": "data_change", "data_type": "orders", "action": "a" * 65,
          "data": {"id": "x"}}, "invalid_field"),
        ("control char in change_id",
         {"type": "data_change", "data_type": "orders", "action": "updated",
          "data": {"id": "x"}, "change_id": "bad\u0001id"}, "invalid_field"),
        ("change_id over 512 bytes",
         {"type": "data_change", "data_type": "orders", "action": "updated",
          "data": {"id": "x"}, "change_id": "c" * 513}, "invalid_field"),
        ("register with a numeric user_id", {"type": "register", "user_id": 5}, "invalid_field"),
        ("register with a string since", {"type": "register", "since": "10"}, "invalid_field"),
        ("register with a negative since", {"type": "register", "since": -3}, "invalid_field"),
        ("register with an overlong user_id", {"type": "register", "user_id": "u" * 129},
         "invalid_field"),
        ("user_changed without user_id", {"type": "user_changed"}, "missing_field"),
        ("user_changed with a control char",
         {"type": "user_changed", "user_id": "a\u001bb"}, "invalid_field"),
    ]

    @async_test()
    async def test_each_bad_message_gets_an_error_and_the_connection_stays_usable(self):
        server = self.start_server(store="memory")
        c = await server.connect("R", "bad")
        watcher = await server.connect("R", "watcher")
        for desc, msg, code in self.CASES:
            with self.subTest(desc):
                start = len(c.messages)
                await c.send(msg)
                err = await c.wait_type("error", start)
                self.assertEqual(err["code"], code, f"{desc}: {err}")
                self.assertIsInstance(err["message"], str)
                self.assertTrue(err["message"])
                if isinstance(msg, dict) and isinstance(msg.get("change_id"), str):
                    self.assertEqual(err.get("change_id"), msg["change_id"])
                self.assertFalse(c.closed)
                # Exactly one reply, no ack: nothing was submitted.
                await c.sync_point()
                self.assertEqual([m["type"] for m in c.messages[start:]],
                                 ["error", "heartbeat_response"], desc)
        # The error carries the offending change's id so the client can match it.
        start = len(c.messages)
        await c.send({"type": "data_change", "data_type": "planes", "action": "updated",
                      "data": {"id": "x"}, "change_id": "my-change-1"})
        err = await c.wait_type("error", start)
        self.assertEqual((err["code"], err["change_id"]), ("unknown_data_type", "my-change-1"))

        # Binary frames are not part of the protocol.
        start = len(c.messages)
        await c.send(b'{"type":"heartbeat"}')
        err = await c.wait_type("error", start)
        self.assertEqual(err["code"], "invalid_message")

        # Still usable: a valid change is the first (and only) thing in the log.
        ack = await c.request(valid_order("o-1", "good-1"),
                              lambda m: m.get("type") == "ack")
        self.assertEqual((ack["change_id"], ack["status"], ack["seq"]), ("good-1", "applied", 1))
        # Edge values that are valid: a 128-byte id, an integer id, base_version 0 on a new record.
        ok = [
            data_change("orders", "y" * 128, "updated", change_id="good-2"),
            data_change("orders", 42, "updated", change_id="good-3"),
            {**data_change("orders", "new-rec", "created", change_id="good-4"),
             "base_version": 0},
            {"type": "order_update", "order_id": 77, "action": "created", "data": {"a": 1},
             "change_id": "good-5"},
        ]
        acks = await c.stream(ok)
        self.assertEqual([(a["status"], a["seq"]) for a in acks],
                         [("applied", 2), ("applied", 3), ("applied", 4), ("applied", 5)])
        got = await watcher.wait_count(is_change, 5)
        self.assertEqual([m["order_id"] for m in got], ["o-1", "y" * 128, "42", "new-rec", "77"])
        await watcher.sync_point()
        self.assertEqual(len(watcher.changes()), 5)
        self.assertEqual(watcher.of_type("error"), [])
        log = server.all_changes("R")
        self.assertEqual([e["change_id"] for e in log], ["good-1", "good-2", "good-3", "good-4",
                                                         "good-5"])
        await c.close()
        await watcher.close()

    @async_test()
    async def test_frame_over_limit_closes_1009(self):
        server = self.start_server(store="memory", extra_args=["--max-frame-bytes", "4096"])
        c = await server.connect("R", "big")
        other = await server.connect("R", "other")
        # Just under the limit is fine.
        msg = valid_order("o-1", "fits", pad="p" * 3800)
        self.assertLess(len(json.dumps(msg)), 4096)
        ack = await c.request(msg, lambda m: m.get("type") == "ack")
        self.assertEqual(ack["status"], "applied")
        over = valid_order("o-2", "too-big", pad="p" * 5000)
        await c.send(over)
        self.assertEqual(await c.wait_closed(), 1009)
        self.assertEqual(c.close_reason, "message too big")
        self.assertIsNone(c.ack_for("too-big"))
        # The server is fine, the other device too; the big change was not stored.
        await other.sync_point()
        self.assertEqual([m["change_id"] for m in other.changes()], ["fits"])
        self.assertEqual([e["change_id"] for e in server.all_changes("R")], ["fits"])
        await other.close()

    @async_test(timeout=120)
    async def test_every_oversized_message_gets_1009(self):
        # The server closes with 1009 while most of a 2 MiB frame is still arriving; it must go
        # on reading until the client's close (RFC 6455 7.1.1), or the unread bytes turn the
        # close into a reset (1006 at the client).
        server = self.start_server(store="memory")
        big = "x" * (2 * 1024 * 1024)
        codes = []
        for i in range(50):
            ws = await websockets.connect(server.ws_url("R", f"big-{i}"), max_size=None,
                                          open_timeout=WAIT, close_timeout=5)
            try:
                await ws.send(big)
                await asyncio.wait_for(ws.wait_closed(), WAIT)
            except websockets.ConnectionClosed:
                pass
            codes.append(ws.close_code)
        self.assertEqual(codes, [1009] * 50)
        # Still serving.
        c = await server.connect("R", "after")
        ack = await c.request(valid_order("o-9", "after-big"), lambda m: m.get("type") == "ack")
        self.assertEqual(ack["status"], "applied")
        await c.close()

    @async_test()
    async def test_base_version_conflict(self):
        server = self.start_server(store="memory")
        c = await server.connect("R", "A")
        other = await server.connect("R", "B")
        a1 = await c.request(data_change("menu_items", "m-1", "created", change_id="v1",
                                         name="Tea", price=2),
                             lambda m: m.get("type") == "ack")
        self.assertEqual((a1["status"], a1["seq"]), ("applied", 1))
        a2 = await c.request({**data_change("menu_items", "m-1", "updated", change_id="v2",
                                            price=3), "base_version": 1},
                             lambda m: m.get("type") == "ack")
        self.assertEqual((a2["status"], a2["seq"]), ("applied", 2))

        stale = {**data_change("menu_items", "m-1", "updated", change_id="stale", price=99),
                 "base_version": 1}
        ack = await c.request(stale, lambda m: m.get("type") == "ack")
        self.assertEqual(ack["change_id"], "stale")
        self.assertEqual(ack["status"], "rejected")
        self.assertIsNone(ack["seq"])
        self.assertEqual(ack["error"]["code"], "conflict")
        self.assertIsInstance(ack["error"]["message"], str)
        cur = ack["current"]
        self.assertEqual((cur["id"], cur["name"], cur["price"], cur["version"]),
                         ("m-1", "Tea", 3, 2))
        # The duplicate check comes first: resending an applied change is a duplicate, whatever
        # its base_version says now.
        ack = await c.request({**data_change("menu_items", "m-1", "updated", change_id="v2",
                                             price=3), "base_version": 1},
                              lambda m: m.get("type") == "ack" and m["change_id"] == "v2")
        self.assertEqual((ack["status"], ack["seq"]), ("duplicate", 2))
        # A record that does not exist has version 0.
        ack = await c.request({**data_change("menu_items", "m-9", "updated", change_id="ghost",
                                             price=1), "base_version": 4},
                              lambda m: m.get("type") == "ack")
        self.assertEqual((ack["status"], ack["error"]["code"], ack["current"]),
                         ("rejected", "conflict", None))
        # Same over REST, in a batch with valid changes around it.
        status, _, body = await server.ahttp("POST", "/api/sync", {
            "restaurant_id": "R", "device_id": "A", "changes": [
                {**data_change("menu_items", "m-1", "updated", change_id="r1", price=4),
                 "base_version": 2},
                {**data_change("menu_items", "m-1", "updated", change_id="r2", price=5),
                 "base_version": 2},
                data_change("menu_items", "m-2", "created", change_id="r3", name="Coffee"),
            ]})
        self.assertEqual(status, 200, body)
        res = body["results"]
        self.assertEqual([(r["change_id"], r["status"], r["seq"]) for r in res],
                         [("r1", "applied", 3), ("r2", "rejected", None), ("r3", "applied", 4)])
        self.assertEqual(res[1]["error"]["code"], "conflict")
        self.assertEqual(res[1]["current"]["version"], 3)
        self.assertEqual(body["synced_changes"], 2)
        # Later changes still apply; the rejected ones left no trace.
        ack = await c.request(data_change("menu_items", "m-1", "updated", change_id="v5",
                                          price=6), lambda m: m.get("type") == "ack")
        self.assertEqual((ack["status"], ack["seq"]), ("applied", 5))
        log = server.all_changes("R")
        self.assertEqual([e["change_id"] for e in log], ["v1", "v2", "r1", "r3", "v5"])
        _, _, snap = server.http("GET", "/api/restaurants/R/data")
        menu = {r["id"]: r for r in snap["data"]["menu_items"]}
        self.assertEqual((menu["m-1"]["price"], menu["m-1"]["version"]), (6, 5))
        self.assertNotIn("m-9", menu)
        got = await other.wait_count(is_change, 5)
        self.assertEqual([m["change_id"] for m in got], ["v1", "v2", "r1", "r3", "v5"])
        await c.close()
        await other.close()


class UpgradeValidationTest(ServerTestCase):

    @async_test()
    async def test_upgrade_errors(self):
        server = self.start_server(store="memory")
        base = f"ws://127.0.0.1:{server.port}"
        admin = server.admin_token()  # authentication passes; the ids are what is wrong
        cases = [
            ("/ws?device_id=d1", 400),  # no restaurant_id
            ("/ws?restaurant_id=r1", 400),  # no device_id
            ("/ws?restaurant_id=&device_id=d1", 400),
            ("/?restaurant_id=r1&device_id=" + "d" * 129, 400),
            ("/ws?restaurant_id=r%0A1&device_id=d1", 400),
            ("/ws?restaurant_id=r1&device_id=d1&since=abc", 400),
            ("/ws?restaurant_id=r1&device_id=d1&since=-1", 400),
            ("/socket?restaurant_id=r1&device_id=d1", 404),
            ("/ws/extra?restaurant_id=r1&device_id=d1", 404),
            ("/api/health?restaurant_id=r1&device_id=d1", 404),
        ]
        for path, expected in cases:
            with self.subTest(path):
                with self.assertRaises(websockets.InvalidStatusCode) as cm:
                    ws = await websockets.connect(base + path + "&token=" + admin,
                                                  open_timeout=WAIT)
                    await ws.close()
                self.assertEqual(cm.exception.status_code, expected, path)
        # Raw, to see the JSON error body.
        status, body = raw_upgrade(server.port, "/ws?device_id=d1&token=" + admin)
        self.assertEqual(status, 400)
        self.assertEqual(body["code"], "missing_field")
        self.assertIn("restaurant_id", body["message"])
        status, body = raw_upgrade(server.port, "/other?device_id=d1&restaurant_id=r1")
        self.assertEqual((status, body["code"]), (404, "not_found"))
        # Both documented paths work, and the old clients' "/" too.
        for path in ("/", "/ws"):
            c = await server.connect("r1", "d-" + path.strip("/"), path=path)
            await c.sync_point()
            await c.close()
        _, _, health = server.http("GET", "/api/health")
        self.assertEqual(health["totalConnections"], 0)


def raw_upgrade(port, target):
    """An upgrade request by hand; returns (status, parsed JSON body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
        s.sendall((f"GET {target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        return read_http_response(s)


def read_http_response(s):
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
        if b"\r\n\r\n" in data:
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(body) >= length:
                break
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, (json.loads(body) if body else None)


class RestBadInputTest(ServerTestCase):

    @async_test()
    async def test_sync_body_errors(self):
        server = self.start_server(store="memory", extra_args=["--max-changes-per-request", "5"])
        cases = [
            ("{oops", "invalid_json"),
            ("", "invalid_json"),
            ("[]", "invalid_message"),
            ({"restaurant_id": "R", "device_id": "A"}, "missing_field"),
            ({"restaurant_id": "R", "device_id": "A", "changes": None}, "missing_field"),
            ({"restaurant_id": "R", "device_id": "A", "changes": "x"}, "invalid_field"),
            ({"restaurant_id": "R", "device_id": "A", "changes": {"0": {}}}, "invalid_field"),
            ({"device_id": "A", "changes": []}, "missing_field"),
            ({"restaurant_id": "R", "changes": []}, "missing_field"),
            ({"restaurant_id": 5, "device_id": "A", "changes": []}, "invalid_field"),
            ({"restaurant_id": "R", "device_id": ["A"], "changes": []}, "invalid_field"),
            ({"restaurant_id": "R\u0000", "device_id": "A", "changes": []}, "invalid_field"),
            ({"restaurant_id": "R" * 129, "device_id": "A", "changes": []}, "invalid_field"),
        ]
        for body, code in cases:
            with self.subTest(body=body):
                status, headers, res = server.http("POST", "/api/sync", body)
                self.assertEqual(status, 400, res)
                self.assertEqual(headers["content-type"], "application/json")
                self.assertEqual(res["status"], "error")
                self.assertEqual(res["code"], code, res)
                self.assertTrue(res["message"])
        status, _, res = server.http("POST", "/api/sync", {
            "restaurant_id": "R", "device_id": "A",
            "changes": [valid_order(f"o{i}", f"c{i}") for i in range(6)]})
        self.assertEqual((status, res["code"]), (413, "payload_too_large"))
        # Nothing of the above created the restaurant.
        status, _, res = server.http("GET", "/api/restaurants/R/data")
        self.assertEqual((status, res["message"]), (404, "Restaurant not found"))
        # An empty batch is fine.
        status, _, res = server.http("POST", "/api/sync",
                                     {"restaurant_id": "R", "device_id": "A", "changes": []})
        self.assertEqual((status, res["status"], res["synced_changes"], res["results"]),
                         (200, "success", 0, []))

    @async_test()
    async def test_body_over_limit_is_413(self):
        server = self.start_server(store="memory", extra_args=["--max-body-bytes", "2048"])
        # Headers announce a body over the limit: the answer comes before any body is sent.
        with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as s:
            s.sendall(b"POST /api/sync HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 5000\r\n\r\n")
            status, body = read_http_response(s)
        self.assertEqual(status, 413)
        self.assertEqual(body["code"], "payload_too_large")
        # Under the limit works.
        small = {"restaurant_id": "R", "device_id": "A", "changes": [valid_order("o", "c1")]}
        status, _, res = server.http("POST", "/api/sync", small)
        self.assertEqual((status, res["results"][0]["status"]), (200, "applied"))
        # A real client sending a body over the limit.
        big = {"restaurant_id": "R", "device_id": "A",
               "changes": [valid_order("o", "c2", pad="z" * 3000)]}
        try:
            status, _, res = server.http("POST", "/api/sync", big)
            self.assertEqual((status, res["code"]), (413, "payload_too_large"))
        except ConnectionError:
            pass  # the server may close before the client finished sending: also a refusal
        self.assertEqual([e["change_id"] for e in server.all_changes("R")], ["c1"])

    @async_test()
    async def test_routes_methods_and_unknown_restaurants(self):
        server = self.start_server(store="memory")
        for path in ("/", "/api", "/api/nope", "/api/restaurants/R", "/api/restaurants/R/bogus",
                     "/api/restaurants/R/data/extra", "/api/health/x"):
            with self.subTest(path):
                status, headers, res = server.http("GET", path)
                self.assertEqual(status, 404, path)
                self.assertEqual(headers["content-type"], "application/json")
                self.assertEqual((res["status"], res["code"]), ("error", "not_found"))
        for method, path, allow in (("GET", "/api/sync", "POST"), ("PUT", "/api/sync", "POST"),
                                    ("POST", "/api/health", "GET, HEAD"),
                                    ("DELETE", "/api/health", "GET, HEAD"),
                                    ("POST", "/api/restaurants/R/data", "GET, HEAD"),
                                    ("POST", "/api/restaurants/R/status", "GET, HEAD"),
                                    ("PUT", "/api/restaurants/R/changes", "GET, HEAD")):
            with self.subTest(method=method, path=path):
                status, headers, res = server.http(method, path, body=b"" if method != "GET"
                                                   else None)
                self.assertEqual(status, 405)
                self.assertEqual(headers["allow"], allow)
                self.assertEqual(res["code"], "method_not_allowed")
        for what in ("data", "status", "changes"):
            status, _, res = server.http("GET", f"/api/restaurants/nowhere/{what}")
            self.assertEqual(status, 404, what)
            self.assertEqual(res, {**res, "status": "error", "code": "not_found",
                                   "message": "Restaurant not found"})
        status, _, res = server.http("GET", "/api/restaurants/" + "r" * 129 + "/data")
        self.assertEqual((status, res["code"]), (400, "invalid_field"))
        status, _, res = server.http("GET", "/api/restaurants/r%0A1/data")
        self.assertEqual((status, res["code"]), (400, "invalid_field"))
        # CORS preflight.
        status, headers, res = server.http("OPTIONS", "/api/sync",
                                           headers={"Origin": "http://pos.local"})
        self.assertEqual(status, 204)
        self.assertEqual(headers["access-control-allow-origin"], "*")
        self.assertIn("POST", headers["access-control-allow-methods"])
        self.assertIsNone(res)
        # A restaurant with a connected device exists even before its first change.
        c = await server.connect("fresh", "d1")
        await c.sync_point()
        status, _, res = await server.ahttp("GET", "/api/restaurants/fresh/status")
        self.assertEqual((status, res["device_count"], res["seq"]), (200, 1, 0))
        status, _, res = await server.ahttp("GET", "/api/restaurants/fresh/data")
        self.assertEqual((status, res["seq"], res["data"]["orders"]), (200, 0, []))
        await c.close()

    @async_test()
    async def test_mixed_batch_applies_valid_rejects_invalid(self):
        server = self.start_server(store="memory")
        watcher = await server.connect("R", "W")
        changes = [
            valid_order("o-1", "ok-1"),
            {"type": "data_change", "data_type": "orders", "action": "updated",
             "data": {"status": "no id"}, "change_id": "bad-no-id"},
            "not an object",
            {"type": "data_change", "data_type": "boats", "action": "updated",
             "data": {"id": "b"}, "change_id": "bad-type"},
            {"type": "order_update", "order_id": "o-2", "action": "created",
             "data": {"status": "open"}, "change_id": "ok-2"},  # typed updates work in POST too
            {"data_type": "tables", "action": "occupied", "data": {"id": "t-1"},
             "change_id": "ok-3"},  # no "type": a data_change
            {"type": "data_change", "data_type": "orders", "action": "updated",
             "data": {"id": "z" * 129}, "change_id": "bad-long"},
            {"type": "data_change", "data_type": "orders", "action": 5,
             "data": {"id": "o-3"}, "change_id": "bad-action"},
            {"type": "heartbeat", "data": {"id": "h"}},
            valid_order("o-1", "ok-1"),  # the same change twice in one batch
            # a typed user_update naming no user (null user_id, no data.id): no twin will come
            {"type": "user_update", "user_id": None, "action": "created",
             "data": {"name": "Ann"}, "change_id": "bad-user"},
        ]
        status, _, body = await server.ahttp("POST", "/api/sync", {
            "restaurant_id": "R", "device_id": "P", "changes": changes})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["status"], "success")
        res = body["results"]
        self.assertEqual(len(res), len(changes))
        self.assertEqual([r["status"] for r in res],
                         ["applied", "rejected", "rejected", "rejected", "applied", "applied",
                          "rejected", "rejected", "rejected", "duplicate", "rejected"])
        self.assertEqual([r["seq"] for r in res],
                         [1, None, None, None, 2, 3, None, None, None, 1, None])
        self.assertEqual([r["error"]["code"] for r in res if r["status"] == "rejected"],
                         ["missing_field", "invalid_message", "unknown_data_type",
                          "invalid_field", "invalid_field", "unknown_type", "missing_field"])
        self.assertEqual(res[-1]["change_id"], "bad-user")
        self.assertEqual([r["change_id"] for r in res[:2]], ["ok-1", "bad-no-id"])
        self.assertEqual(body["synced_changes"], 4)
        log = server.all_changes("R")
        self.assertEqual([e["change_id"] for e in log], ["ok-1", "ok-2", "ok-3"])
        got = await watcher.wait_count(is_change, 3)
        self.assertEqual([m["type"] for m in got], ["order_update", "order_update", "table_update"])
        await watcher.sync_point()
        self.assertEqual(len(watcher.changes()), 3)
        _, _, snap = server.http("GET", "/api/restaurants/R/data")
        self.assertEqual(sorted(r["id"] for r in snap["data"]["orders"]), ["o-1", "o-2"])
        await watcher.close()


if __name__ == "__main__":
    unittest.main()
