"""Authentication and tenant isolation: device tokens on every REST endpoint and WebSocket.

Restaurant A holds data; every way of reaching it without the right token is tried (no token, a
tampered, expired, wrongly signed or 'alg: none' token, a valid token of restaurant B, a token of
another device of A) and must get the documented status while A's data is neither read nor written.
Tokens are signed here with Python's hmac, independently of the server's own JWT code.
"""

import asyncio
import base64
import json
import os
import subprocess
import time
import unittest

import websockets

from harness import (SERVER_BIN, WAIT, LegacyDevice, ServerTestCase, async_test, b64url,
                     data_change, is_change, make_jwt, q)

MARKER = "secret-recipe-of-A"  # appears in A's data; must never show up in a refused answer


def tampered(token, **changes):
    """The token with its payload edited and the original signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"


class AuthTestCase(ServerTestCase):

    async def seed_restaurant_a(self, server):
        """A with one order written by device A/d1; returns A's log."""
        dev = await server.connect("A", "d1")
        msg = data_change("orders", "o-1", "created", change_id="seed-1", note=MARKER)
        await dev.send(msg)
        ack = await dev.wait_ack("seed-1")
        self.assertEqual(ack["status"], "applied", ack)
        await dev.close()
        return server.all_changes("A")

    def bad_tokens(self, server):
        """name -> (token or None, expected status, expected code) for restaurant A, device d1."""
        now = int(time.time())
        good = server.token("A", "d1")
        wrong_key = make_jwt(os.urandom(32), {"restaurant_id": "A", "device_id": "d1",
                                              "role": "manager", "exp": now + 600})
        alg_none = make_jwt(b"", {"restaurant_id": "A", "device_id": "d1", "role": "manager",
                                  "exp": now + 600}, alg="none").rsplit(".", 1)[0] + "."
        return {
            "no token": (None, 401, "unauthorized"),
            "garbage": ("not-a-jwt", 401, "token_invalid"),
            "tampered": (tampered(server.token("B", "d1"), restaurant_id="A"), 401,
                         "token_invalid"),
            "tampered role": (tampered(server.token("A", "d1", role="kds"), role="admin"), 401,
                              "token_invalid"),
            "expired": (server.token("A", "d1", ttl=-5), 401, "token_expired"),
            "wrong key": (wrong_key, 401, "token_invalid"),
            "unknown kid": (make_jwt(server.keys["k1"], json.loads(base64.urlsafe_b64decode(
                good.split(".")[1] + "==")), kid="k9"), 401, "token_invalid"),
            "alg none": (alg_none, 401, "token_invalid"),
            "other restaurant": (server.token("B", "d1"), 403, "forbidden"),
        }


class RestIsolationTest(AuthTestCase):

    @async_test()
    async def test_every_rest_endpoint_refuses_every_bad_token(self):
        server = self.start_server()
        log_before = await self.seed_restaurant_a(server)
        body = {"restaurant_id": "A", "device_id": "d1",
                "changes": [data_change("orders", "o-evil", "created", change_id="evil-1")]}
        endpoints = [
            ("GET", "/api/restaurants/A/status", None),
            ("GET", "/api/restaurants/A/data", None),
            ("GET", "/api/restaurants/A/changes?since=0", None),
            ("POST", "/api/sync", body),
        ]
        for name, (token, status, code) in self.bad_tokens(server).items():
            for method, path, payload in endpoints:
                with self.subTest(token=name, path=path):
                    got, headers, res = await server.ahttp(method, path, payload, token=token)
                    self.assertEqual((got, res["code"]), (status, code), res)
                    self.assertNotIn(MARKER, json.dumps(res))
                    if status == 401:
                        self.assertTrue(headers["www-authenticate"].startswith("Bearer"))
        # Another device of A may read A, but not write as d1.
        other_device = server.token("A", "d2")
        for method, path, payload in endpoints[:3]:
            got, _, res = await server.ahttp(method, path, payload, token=other_device)
            self.assertEqual(got, 200, (path, res))
        got, _, res = await server.ahttp("POST", "/api/sync", body, token=other_device)
        self.assertEqual((got, res["code"]), (403, "forbidden"), res)
        # A body naming another restaurant than the token is refused whole.
        b_body = dict(body, restaurant_id="B")
        got, _, res = await server.ahttp("POST", "/api/sync", b_body,
                                         token=server.token("A", "d1"))
        self.assertEqual((got, res["code"]), (403, "forbidden"), res)
        # Nothing was written to A or B.
        self.assertEqual(server.all_changes("A"), log_before)
        got, _, res = await server.ahttp("GET", "/api/restaurants/B/changes")
        self.assertEqual(got, 404, res)
        # The right token works on every endpoint.
        own = server.token("A", "d1")
        for method, path, payload in endpoints:
            got, _, res = await server.ahttp(method, path, payload, token=own)
            self.assertEqual(got, 200, (path, res))
        self.assertEqual(len(server.all_changes("A")), len(log_before) + 1)

    @async_test()
    async def test_admin_surface_needs_an_admin_token_and_health_reveals_no_tenant(self):
        server = self.start_server()
        await self.seed_restaurant_a(server)
        dev = await server.connect("A", "d1")
        await dev.sync_point()
        device_token = server.token("A", "d1", role="manager")
        admin_paths = [("GET", "/metrics"), ("GET", "/api/admin/restaurants"),
                       ("POST", "/api/admin/restaurants/A/disconnect")]
        for method, path in admin_paths:
            with self.subTest(path=path):
                got, _, res = await server.ahttp(method, path, token=None)
                self.assertEqual((got, res["code"]), (401, "unauthorized"))
                got, _, res = await server.ahttp(method, path, token=device_token)
                self.assertEqual((got, res["code"]), (403, "forbidden"))
        # Health is public and names no restaurant.
        got, _, health = await server.ahttp("GET", "/api/health", token=None)
        self.assertEqual(got, 200)
        self.assertNotIn('"A"', json.dumps(health))
        self.assertEqual(health["totalConnections"], 1)
        # The admin sees every restaurant's connections and can disconnect a device.
        got, _, res = await server.ahttp("GET", "/api/admin/restaurants")
        self.assertEqual(got, 200, res)
        self.assertEqual([(r["restaurant_id"], r["connections"], r["devices"])
                          for r in res["restaurants"]], [("A", 1, 1)])
        got, _, res = await server.ahttp("POST", "/api/admin/restaurants/A/disconnect?device_id=d1")
        self.assertEqual((got, res["disconnected"]), (200, 1), res)
        await dev.wait_closed()
        self.assertEqual((dev.close_code, dev.close_reason), (4002, "disconnected by an operator"))


class WebSocketIsolationTest(AuthTestCase):

    @async_test()
    async def test_upgrade_refuses_every_bad_token(self):
        server = self.start_server()
        log_before = await self.seed_restaurant_a(server)
        cases = dict(self.bad_tokens(server))
        cases["other device"] = (server.token("A", "d2"), 403, "forbidden")
        for name, (token, status, _) in cases.items():
            with self.subTest(token=name):
                with self.assertRaises(websockets.InvalidStatusCode) as cm:
                    ws = await websockets.connect(server.ws_url("A", "d1", since=0, token=token),
                                                  open_timeout=WAIT)
                    await ws.close()
                self.assertEqual(cm.exception.status_code, status)
        self.assertEqual(server.all_changes("A"), log_before)
        self.assertEqual(await server.connected_devices("A"), [])

    @async_test()
    async def test_messages_naming_another_restaurant_stay_in_the_tokens_restaurant(self):
        server = self.start_server()
        log_before = await self.seed_restaurant_a(server)
        a_device = await server.connect("A", "d9")
        b = await server.connect("B", "d1")
        for msg in [
            {"type": "register", "restaurant_id": "A", "device_id": "d1", "since": 0},
            {"type": "heartbeat", "restaurant_id": "A", "device_id": "d1"},
            {"type": "user_changed", "restaurant_id": "A", "user_id": "u-x"},
            {"type": "order_update", "restaurant_id": "A", "device_id": "d1", "order_id": "o-1",
             "action": "updated", "data": {"status": "void"}, "change_id": "x-1"},
            dict(data_change("orders", "o-1", "deleted", change_id="x-2"), restaurant_id="A"),
            {"type": "auth", "token": server.token("A", "d1")},
        ]:
            await b.send(msg)
        await b.wait_ack("x-2")
        reply = await b.wait_type("error")
        self.assertEqual(reply["code"], "forbidden")  # the `auth` message for A
        registered = b.of_type("registered")[0]
        self.assertEqual(registered["restaurant_id"], "B")
        # B's changes went to B; A's log and A's devices saw nothing of it.
        self.assertEqual(server.all_changes("A"), log_before)
        self.assertEqual(len(server.all_changes("B")), 2)
        await a_device.sync_point()
        self.assertFalse([m for m in a_device.messages if is_change(m)])
        # Of A's data, B received nothing (its catch-up `since` was for B's own log).
        self.assertNotIn(MARKER, json.dumps(b.messages))

    @async_test()
    async def test_token_in_header_or_subprotocol(self):
        server = self.start_server()
        token = server.token("A", "d1")
        url = server.ws_url("A", "d1", token=None)
        ws = await websockets.connect(url, extra_headers={"Authorization": f"Bearer {token}"},
                                      open_timeout=WAIT)
        await ws.send(json.dumps({"type": "heartbeat"}))
        self.assertEqual(json.loads(await ws.recv())["type"], "heartbeat_response")
        await ws.close()
        # As browsers do it: offered subprotocols, the server picks "possync".
        ws = await websockets.connect(url, subprotocols=["possync", "bearer." + token],
                                      open_timeout=WAIT)
        self.assertEqual(ws.subprotocol, "possync")
        await ws.close()
        # The ids may come from the token alone.
        bare = f"ws://127.0.0.1:{server.port}/ws?token={token}"
        ws = await websockets.connect(bare, open_timeout=WAIT)
        await ws.send(json.dumps({"type": "register"}))
        reg = json.loads(await ws.recv())
        self.assertEqual((reg["restaurant_id"], reg["device_id"]), ("A", "d1"))
        await ws.close()

    @async_test()
    async def test_expiring_token_closes_the_socket_unless_refreshed(self):
        server = self.start_server()
        short = await server.connect("A", "short", token=server.token("A", "short", ttl=2))
        refreshed = await server.connect("A", "long", token=server.token("A", "long", ttl=2))
        ok = await refreshed.request({"type": "auth", "token": server.token("A", "long")},
                                     lambda m: m.get("type") in ("auth_ok", "error"))
        self.assertEqual(ok["type"], "auth_ok", ok)
        await short.wait_closed()
        self.assertEqual((short.close_code, short.close_reason), (4001, "token expired"))
        self.assertEqual(short.of_type("error")[-1]["code"], "token_expired")
        # Well past the first expiry, the refreshed one still works.
        await asyncio.sleep(1.0)
        await refreshed.sync_point()
        self.assertFalse(refreshed.closed)
        # A refresh for another device is refused and changes nothing.
        bad = await refreshed.request({"type": "auth", "token": server.token("A", "other")},
                                      lambda m: m.get("type") == "error")
        self.assertEqual(bad["code"], "forbidden")
        await refreshed.close()


class RotationAndCliTest(AuthTestCase):

    @async_test()
    async def test_issued_tokens_and_key_rotation(self):
        server = self.start_server()
        # Rotation: a new key on top; tokens of the old key stay valid until the old key goes.
        old_token = server.token("A", "d1")
        new_key = os.urandom(32)
        with open(server.key_file) as f:
            old_lines = f.read()
        with open(server.key_file, "w") as f:
            f.write(f"k2 {b64url(new_key)}\n{old_lines}")
        server.keys["k2"] = new_key
        server.restart()
        # The server's own CLI signs with the first key (k2).
        out = subprocess.run([SERVER_BIN, "--jwt-secret-file", server.key_file, "token", "issue",
                              "--restaurant", "A", "--device", "d1", "--role", "pos",
                              "--ttl", "1h"], capture_output=True, text=True, timeout=WAIT)
        self.assertEqual(out.returncode, 0, out.stderr)
        issued = out.stdout.strip()
        header = json.loads(base64.urlsafe_b64decode(issued.split(".")[0] + "=="))
        self.assertEqual(header["kid"], "k2")
        for token in (issued, old_token):
            dev = await server.connect("A", "d1", token=token)
            await dev.sync_point()
            got, _, res = await server.ahttp("GET", "/api/restaurants/A/status", token=token)
            self.assertEqual(got, 200, res)
            await dev.close()
        # Drop the old key: its tokens stop working.
        with open(server.key_file, "w") as f:
            f.write(f"k2 {b64url(new_key)}\n")
        server.restart()
        got, _, res = await server.ahttp("GET", "/api/restaurants/A/status", token=old_token)
        self.assertEqual((got, res["code"]), (401, "token_invalid"))
        # Bad CLI input is refused with a non-zero exit.
        for args in (["--role", "chef"], ["--role", "pos", "--ttl", "soon"],
                     ["--role", "pos", "--restaurant", "*"]):
            base = ["--restaurant", "A", "--device", "d1"]
            out = subprocess.run([SERVER_BIN, "--jwt-secret-file", server.key_file, "token",
                                  "issue"] + base + args, capture_output=True, text=True,
                                 timeout=WAIT)
            self.assertNotEqual(out.returncode, 0, args)
            self.assertEqual(out.stdout, "")


class AuthOffTest(ServerTestCase):

    @async_test()
    async def test_legacy_open_mode_works_without_tokens_and_warns(self):
        server = self.start_server(auth=False)
        a = LegacyDevice(server, "R", "A")
        b = LegacyDevice(server, "R", "B")
        await a.open()
        await b.open()
        await a.broadcast("orders", "o-1", "created", {"status": "open"})
        status, _, _ = await a.post_pending()
        self.assertEqual(status, 200)
        await b.client.wait_for(is_change, what="the change")
        got, _, res = await server.ahttp("GET", "/api/admin/restaurants", token=None)
        self.assertEqual(got, 200, res)
        await a.close()
        await b.close()
        log = server.log_tail(200)
        self.assertIn("--auth off: any client", log)
        self.assertEqual(log.count("unauthenticated connection restaurant=R"), 2, log)


if __name__ == "__main__":
    unittest.main()
