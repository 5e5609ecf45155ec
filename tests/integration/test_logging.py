"""--log-format text|json, and no token or secret in any log line.

The server runs with auth on and `--log-level debug` (every request and refused login is logged)
while devices use every place a token can travel (Authorization header, `?token=`,
Sec-WebSocket-Protocol, the `auth` message), send bad, expired and foreign tokens, and write
`users` records with PINs and passwords over WebSocket and REST. Every line of the log is then
searched for each token (and its signature alone), each plaintext secret and the signing key. In
the JSON format each line must be one JSON object with time, level and message, and the lines
that name a device carry it as fields.
"""

import json
import re
import unittest

import websockets

from harness import (ServerTestCase, WAIT, async_test, b64url, data_change, make_jwt, q)

PIN = "4711-pin-never-logged"
PASSWORD = "hunter2-password-never-logged"
REST_PIN = "8080-rest-pin-never-logged"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class LogFormatTest(ServerTestCase):

    async def exercise(self, server):
        """Drives every token location and secret through the server; returns what must not be
        logged."""
        pos = server.token("R", "pos-1", role="pos")
        manager = server.token("R", "mgr-1", role="manager")
        refresh = server.token("R", "mgr-1", role="manager", ttl=7200)
        browser = server.token("R", "kds-1", role="kds")
        admin = server.admin_token()
        expired = server.token("R", "pos-1", role="pos", ttl=-60)
        foreign = server.token("OTHER", "pos-9", role="pos")
        forged = make_jwt(b"not the server's key at all, 32+ bytes",
                          {"restaurant_id": "R", "device_id": "pos-1", "role": "pos",
                           "exp": 4102444800})
        secrets = [pos, manager, refresh, browser, admin, expired, foreign, forged,
                   PIN, PASSWORD, REST_PIN]
        secrets += [t.rsplit(".", 1)[1] for t in secrets[:8]]  # signatures alone
        secrets += [b64url(key) for key in server.keys.values()]

        # REST: header, query string, refused tokens, a token where REST does not read one.
        for path, token, headers, status in [
                ("/api/restaurants/R/status", manager, {}, 404),  # nothing committed yet
                (f"/api/restaurants/R/status?token={q(manager)}", None, {}, 404),
                ("/api/restaurants/R/status", expired, {}, 401),
                (f"/api/restaurants/R/data?token={q(forged)}", None, {}, 401),
                ("/api/restaurants/R/changes", foreign, {}, 403),
                ("/api/admin/restaurants", pos, {}, 403),
                ("/api/restaurants/R/status", None,
                 {"Sec-WebSocket-Protocol": f"possync, bearer.{browser}"}, 401),
                ("/api/restaurants/R/status", None, {"Authorization": f"Basic {pos}"}, 401)]:
            got, _, body = await server.ahttp("GET", path, token=token, headers=headers)
            self.assertEqual(got, status, (path, body))

        # WebSocket: query string, subprotocol, refused upgrades, a token refresh.
        device = await server.connect("R", "mgr-1", token=manager)
        kds = await websockets.connect(
            f"ws://127.0.0.1:{server.port}/ws?restaurant_id=R&device_id=kds-1",
            subprotocols=["possync", f"bearer.{browser}"], open_timeout=WAIT)
        self.assertEqual(kds.subprotocol, "possync")
        for token in (expired, forged, foreign, "not-a-jwt"):
            with self.assertRaises(websockets.exceptions.InvalidStatusCode):
                await server.connect("R", "pos-1", token=token)
        await device.send({"type": "auth", "token": forged})
        await device.wait_for(lambda m: m.get("type") == "error", what="refused refresh")
        await device.send({"type": "auth", "token": refresh})
        await device.wait_for(lambda m: m.get("type") == "auth_ok", what="auth_ok")

        # users records with a PIN and a password, over WebSocket and REST.
        await device.send(data_change("users", "u-1", "created", change_id="c-user-1",
                                      name="Ann", pin=PIN, password=PASSWORD))
        self.assertEqual((await device.wait_ack("c-user-1"))["status"], "applied")
        body = {"restaurant_id": "R", "device_id": "mgr-1", "changes": [
            data_change("users", "u-2", "created", change_id="c-user-2", pin=REST_PIN)]}
        got, _, res = await server.ahttp("POST", f"/api/sync?token={q(manager)}", body,
                                         token=None)
        self.assertEqual((got, res["results"][0]["status"]), (200, "applied"), res)
        await kds.close()
        await device.close()
        return secrets

    def lines_of(self, server):
        server.stop()
        with open(server.log_paths[-1], encoding="utf-8") as f:
            lines = f.read().splitlines()
        self.assertGreater(len(lines), 20)
        return lines

    def assert_no_secret(self, lines, secrets):
        for i, line in enumerate(lines):
            for s in secrets:
                self.assertNotIn(s, line, f"a secret in log line {i}: {line}")

    @async_test(timeout=120)
    async def test_json_lines_parse_carry_fields_and_no_secret(self):
        server = self.start_server(extra_args=["--log-level", "debug", "--log-format", "json"])
        secrets = await self.exercise(server)
        lines = self.lines_of(server)
        self.assert_no_secret(lines, secrets)
        records = []
        for line in lines:
            record = json.loads(line)  # every line is one JSON object
            self.assertIsInstance(record, dict, line)
            self.assertRegex(record["time"], ISO_UTC)
            self.assertIn(record["level"], ("trace", "debug", "info", "warning", "error",
                                            "critical"))
            self.assertIsInstance(record["message"], str)
            records.append(record)

        def find(message, **fields):
            return [r for r in records if r["message"] == message and
                    all(r.get(k) == v for k, v in fields.items())]

        connected = find("device connected", restaurant="R", device="mgr-1")
        self.assertEqual(len(connected), 1, records)
        self.assertEqual(connected[0]["remote"], "127.0.0.1")
        self.assertEqual(len(find("device disconnected", restaurant="R", device="kds-1")), 1)
        # Refused logins are debug lines with the code, the path without its query, the address.
        refused = find("http request", status=401)
        self.assertEqual(sorted(r["code"] for r in refused),
                         sorted(["token_expired", "token_invalid", "unauthorized",
                                 "unauthorized", "token_expired", "token_invalid",
                                 "token_invalid"]), refused)
        self.assertTrue(all(r["level"] == "debug" and r["remote"] == "127.0.0.1" and
                            "?" not in r["path"] for r in refused), refused)
        self.assertEqual(len(find("http request", status=403, code="forbidden")), 3)
        self.assertEqual(len(find("token refresh refused", restaurant="R", device="mgr-1",
                                  code="token_invalid")), 1)
        self.assertEqual(find("possync listening")[0]["port"], server.port)
        self.assertEqual(find("shutting down")[0]["signal"], 15)

    @async_test(timeout=120)
    async def test_text_lines_carry_logfmt_fields_and_no_secret(self):
        server = self.start_server(extra_args=["--log-level", "debug"])  # text is the default
        secrets = await self.exercise(server)
        lines = self.lines_of(server)
        self.assert_no_secret(lines, secrets)
        self.assertTrue(any(re.search(r" info device connected restaurant=R device=mgr-1 "
                                      r"remote=127\.0\.0\.1$", line) for line in lines), lines)
        self.assertTrue(any(re.search(r" debug http request method=GET "
                                      r"path=/api/restaurants/R/status status=401 "
                                      r"code=token_expired remote=127\.0\.0\.1$", line)
                            for line in lines), lines)


if __name__ == "__main__":
    unittest.main()
