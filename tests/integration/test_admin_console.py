"""The operator's surface behind the admin console (docs/admin.md): observer WebSockets
(`?observe=1`), the connections of a restaurant (GET /api/admin/restaurants/:id/devices), the
restaurant list's device counts and last change, and the console's static files at /admin/.

An observer receives every change of the restaurant as it commits (those of a device with its own
device id too) and can write nothing: every change it sends is refused `forbidden` and the log is
unchanged. The page itself is tested in Chromium by clients/js (test/browser/admin-console.ts).
"""

import http.client
import re
import unittest
import urllib.parse

import websockets

from harness import WAIT, ServerTestCase, async_test, data_change, is_change, q

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class ObserverTest(ServerTestCase):

    @async_test()
    async def test_an_observer_sees_every_change_and_cannot_write(self):
        server = self.start_server()
        admin = server.admin_token()
        dev = await server.connect("A", "pos-1", token=server.token("A", "pos-1", role="pos"))
        # An observer with the same device id as the writer: it still gets that device's changes.
        observer = await server.connect("A", "pos-1", since=0, token=admin,
                                        extra={"observe": "1"})
        await observer.wait_type("caught_up")
        ack = await dev.request(data_change("orders", "o-1", "created", change_id="c-1", n=1),
                                lambda m: m.get("type") == "ack")
        self.assertEqual(ack["status"], "applied", ack)
        change = await observer.wait_for(is_change, what="the change")
        self.assertEqual((change["seq"], change["change_id"], change["device_id"]),
                         (ack["seq"], "c-1", "pos-1"))

        # Nothing an observer sends is written: typed, data_change, with or without change_id.
        log_before = server.all_changes("A")
        attempts = [
            data_change("orders", "o-2", "created", change_id="obs-1"),
            {"type": "order_update", "order_id": "o-1", "action": "deleted", "data": {},
             "change_id": "obs-2"},
            {"type": "order_update", "order_id": "o-3", "action": "created", "data": {"x": 1}},
            {"type": "user_update", "user_id": "u-9", "action": "created", "data": {"pin": "1"}},
        ]
        for msg in attempts:
            start = len(observer.messages)
            await observer.send(msg)
            err = await observer.wait_for(lambda m: m.get("type") in ("error", "ack"), start=start)
            self.assertEqual((err["type"], err["code"]), ("error", "forbidden"), err)
            self.assertIn("observer", err["message"])
            if "change_id" in msg:
                self.assertEqual(err["change_id"], msg["change_id"])
        await observer.sync_point()
        self.assertEqual(server.all_changes("A"), log_before)
        self.assertFalse(observer.closed, "the observer stays connected")

        # The observer still receives what devices write afterwards.
        await dev.request(data_change("orders", "o-1", "updated", change_id="c-2", n=2),
                          lambda m: m.get("type") == "ack")
        await observer.wait_count(is_change, 2)
        await dev.close()
        await observer.close()

    @async_test()
    async def test_who_may_observe(self):
        server = self.start_server()
        admin = server.admin_token()
        # A device token observes its own restaurant (read-only); another restaurant's is refused.
        own = await websockets.connect(
            server.ws_url("A", "kds-1", extra={"observe": "1"},
                          token=server.token("A", "kds-1", role="kds")), open_timeout=WAIT)
        await own.close()
        for token, restaurant, status in [(server.token("B", "kds-1", role="kds"), "A", 403),
                                          (None, "A", 401)]:
            with self.assertRaises(websockets.InvalidStatusCode) as cm:
                ws = await websockets.connect(
                    server.ws_url(restaurant, "kds-1", extra={"observe": "1"}, token=token),
                    open_timeout=WAIT)
                await ws.close()
            self.assertEqual(cm.exception.status_code, status)
        # A bad value is a 400 with a clear message.
        status, _, body = await server.ahttp("GET", "/ws?restaurant_id=A&device_id=x&observe=yes",
                                             headers={"Connection": "Upgrade",
                                                      "Upgrade": "websocket",
                                                      "Sec-WebSocket-Version": "13",
                                                      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
                                             token=admin)
        self.assertEqual((status, body["code"]), (400, "invalid_field"), body)
        self.assertIn("observe", body["message"])
        # An admin observer without a device_id is named after its token's device.
        url = f"ws://127.0.0.1:{server.port}/ws?restaurant_id=A&observe=true&token={q(admin)}"
        ws = await websockets.connect(url, open_timeout=WAIT)
        status, _, body = await server.ahttp("GET", "/api/admin/restaurants/A/devices")
        self.assertEqual(status, 200, body)
        self.assertEqual([(c["device_id"], c["observer"], c["role"]) for c in body["connections"]],
                         [("harness-admin", True, "admin")])
        await ws.close()


class AdminEndpointsTest(ServerTestCase):

    @async_test()
    async def test_connections_of_a_restaurant_and_the_restaurant_list(self):
        server = self.start_server()
        dev = await server.connect("A", "pos-1", user_id="u-anna",
                                   token=server.token("A", "pos-1", role="pos"))
        for i in (1, 2):
            await dev.request(data_change("orders", f"o-{i}", "created", change_id=f"c-{i}"),
                              lambda m: m.get("type") == "ack")
        observer = await server.connect("A", "ops", token=server.admin_token(),
                                        extra={"observe": "1"})

        status, _, body = await server.ahttp("GET", "/api/admin/restaurants/A/devices")
        self.assertEqual(status, 200, body)
        self.assertEqual((body["restaurant_id"], body["seq"]), ("A", 2))
        self.assertRegex(body["node"], r".+:%d$" % server.port)
        rows = {c["device_id"]: c for c in body["connections"]}
        self.assertEqual(set(rows), {"pos-1", "ops"})
        pos = rows["pos-1"]
        self.assertEqual((pos["role"], pos["user_id"], pos["observer"], pos["legacy"], pos["node"],
                          pos["address"]),
                         ("pos", "u-anna", False, False, body["node"], "127.0.0.1"))
        self.assertRegex(pos["connected_at"], ISO)
        self.assertRegex(pos["last_seen"], ISO)
        self.assertTrue(rows["ops"]["observer"])
        # The restaurant's own status lists its devices, not the operator watching.
        status, _, own = await server.ahttp("GET", "/api/restaurants/A/status")
        self.assertEqual([d["device_id"] for d in own["connected_devices"]], ["pos-1"])

        status, _, body = await server.ahttp("GET", "/api/admin/restaurants")
        self.assertEqual(status, 200, body)
        log = server.all_changes("A")
        self.assertEqual(body["restaurants"], [{
            "restaurant_id": "A", "connections": 2, "devices": 1, "observers": 1, "seq": 2,
            "last_change_at": log[-1]["timestamp"]}])
        self.assertEqual(body["node"], rows["pos-1"]["node"])

        # Refusals: unknown restaurant, bad id, no admin token.
        status, _, body = await server.ahttp("GET", "/api/admin/restaurants/nope/devices")
        self.assertEqual((status, body["code"]), (404, "not_found"))
        status, _, body = await server.ahttp("GET", "/api/admin/restaurants/a%01b/devices")
        self.assertEqual((status, body["code"]), (400, "invalid_field"))
        status, _, body = await server.ahttp("GET", "/api/admin/restaurants/A/devices",
                                             token=server.token("A", "pos-1", role="manager"))
        self.assertEqual((status, body["code"]), (403, "forbidden"))
        status, _, body = await server.ahttp("POST", "/api/admin/restaurants/A/devices")
        self.assertEqual((status, body["code"]), (405, "method_not_allowed"))
        await observer.close()
        await dev.close()

    @async_test()
    async def test_a_legacy_device_is_shown_as_one(self):
        # --auth mixed: a tokenless device admitted by its enrolment shows its enrolment's role and
        # the address it was admitted from, beside a device with a token.
        server = self.start_server(extra_args=["--auth", "mixed"])
        status, _, body = await server.ahttp(
            "PUT", "/api/admin/restaurants/A/legacy-devices/till-1",
            body={"networks": ["127.0.0.0/8"], "role": "kds"})
        self.assertEqual(status, 201, body)
        till = await server.connect("A", "till-1", token=None)
        dev = await server.connect("A", "pos-1", token=server.token("A", "pos-1", role="pos"))
        await till.sync_point()
        status, _, body = await server.ahttp("GET", "/api/admin/restaurants/A/devices")
        self.assertEqual(status, 200, body)
        rows = {c["device_id"]: (c["legacy"], c["role"], c["address"], c["observer"])
                for c in body["connections"]}
        self.assertEqual(rows, {"till-1": (True, "kds", "127.0.0.1", False),
                                "pos-1": (False, "pos", "127.0.0.1", False)})
        await till.close()
        await dev.close()


class ConsoleFilesTest(ServerTestCase):

    def test_the_console_is_served_from_the_binary(self):
        server = self.start_server()
        status, headers, _ = server.http("GET", "/admin", token=None)
        # Relative, so that it also holds behind a proxy serving the server under a prefix.
        self.assertEqual((status, headers["location"]), (301, "admin/"))
        self.assertEqual(urllib.parse.urljoin("http://h/admin", headers["location"]),
                         "http://h/admin/")
        status, headers, html = self.raw_get(server, "/admin/")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/html; charset=utf-8")
        self.assertIn("default-src 'none'", headers["content-security-policy"])
        self.assertIn("frame-ancestors 'none'", headers["content-security-policy"])
        self.assertEqual(headers["x-content-type-options"], "nosniff")
        # Everything the page refers to is served, and nothing from elsewhere.
        refs = re.findall(r'(?:src|href)="([^"]+)"', html.decode())
        self.assertEqual(sorted(refs), ["admin.css", "app.js", "data:,"])
        for ref, kind in (("app.js", "text/javascript"), ("admin.css", "text/css")):
            status, h, body = self.raw_get(server, "/admin/" + ref)
            self.assertEqual(status, 200)
            self.assertTrue(h["content-type"].startswith(kind), h)
            self.assertGreater(len(body), 1000)
            # No address of another site (the SVG namespace is a name, not a download).
            hosts = set(re.findall(rb"(?:https?|wss?)://([a-z0-9-]+(?:\.[a-z0-9-]+)+)", body))
            self.assertEqual(hosts - {b"www.w3.org"}, set(), ref)
        status, h, body = self.raw_get(server, "/admin/", {"If-None-Match": headers["etag"]})
        self.assertEqual((status, body), (304, b""))
        status, _, body = server.http("GET", "/admin/nope.js", token=None)
        self.assertEqual((status, body["code"]), (404, "not_found"))
        status, headers, body = server.http("POST", "/admin/", token=None)
        self.assertEqual((status, body["code"], headers["allow"]),
                         (405, "method_not_allowed", "GET, HEAD"))
        status, _, body = server.http("GET", "/admin/x/app.js", token=None)
        self.assertEqual((status, body["code"]), (404, "not_found"))
        # HEAD: the GET's headers, no body.
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT)
        try:
            conn.request("HEAD", "/admin/app.js")
            res = conn.getresponse()
            self.assertEqual((res.status, res.read()), (200, b""))
            self.assertEqual(res.getheader("etag"), self.raw_get(server, "/admin/app.js")[1]["etag"])
        finally:
            conn.close()

    @staticmethod
    def raw_get(server, path, headers=None):
        """GET without a token, the body as bytes."""
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT)
        try:
            conn.request("GET", path, headers=headers or {})
            res = conn.getresponse()
            return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
        finally:
            conn.close()


if __name__ == "__main__":
    unittest.main()
