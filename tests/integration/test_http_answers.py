"""HTTP answers outside the endpoints' own logic (docs/protocol.md section 7, docs/openapi.yaml):

- HEAD is GET without the body: the same status and headers (Content-Length of the body that is
  not sent), on every path; 405 with `Allow` where the path has no GET. The connection stays
  usable after it (a body sent after all would be read as the next response's status line).
- A malformed request target is 400 `bad_request` and the connection is closed, REST or upgrade.
- A token in Sec-WebSocket-Protocol is read on upgrades only, never on REST requests.
- POST /api/sync answering 503 because entries could not be hashed yet says `rate_limited`.
"""

import http.client
import socket
import unittest

from harness import WAIT, ServerTestCase, data_change

USERS = 150  # more users changes with secrets than the hashing queue holds (64)


class HttpAnswersTest(ServerTestCase):

    def request(self, conn, method, path, token=None, headers=None):
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = "Bearer " + token
        conn.request(method, path, headers=hdrs)
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()

    def test_head_is_get_without_body(self):
        server = self.start_server(store="memory")
        admin = server.admin_token()
        pos = server.token("R", "pos-1", role="pos")
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT)
        self.addCleanup(conn.close)
        for path, token in [("/api/health", None), ("/api/ready", None), ("/metrics", admin),
                            ("/api/restaurants/R/status", pos), ("/api/restaurants/R/data", pos),
                            ("/api/restaurants/R/changes", pos), ("/api/admin/restaurants", admin),
                            ("/api/restaurants/R/status", None), ("/metrics", pos),
                            ("/nope", admin), ("/ws", pos)]:
            with self.subTest(path=path, token=bool(token)):
                status, headers, body = self.request(conn, "HEAD", path, token)
                self.assertEqual(body, b"")
                got_status, got_headers, got_body = self.request(conn, "GET", path, token)
                self.assertEqual(status, got_status)
                # Same headers but for what changes between two answers.
                for h in (headers, got_headers):
                    h.pop("date", None)
                if path in ("/metrics", "/api/health", "/api/admin/restaurants") \
                        and got_status == 200:
                    headers.pop("content-length")  # counters and timestamps move
                    got_headers.pop("content-length")
                self.assertEqual(headers, got_headers)
                if "content-length" in got_headers:
                    self.assertEqual(int(got_headers["content-length"]), len(got_body))
        # Where GET is not allowed: 405 with Allow, no body; and a GET-only path's Allow.
        status, headers, body = self.request(conn, "HEAD", "/api/sync", admin)
        self.assertEqual((status, headers["allow"], body), (405, "POST", b""))
        status, headers, body = self.request(conn, "HEAD", "/api/admin/restaurants/R/disconnect",
                                             admin)
        self.assertEqual((status, headers["allow"], body), (405, "POST", b""))
        status, headers, _ = self.request(conn, "POST", "/api/health")
        self.assertEqual((status, headers["allow"]), (405, "GET, HEAD"))
        # The connection still works: nothing stray was left on it.
        self.assertEqual(self.request(conn, "GET", "/api/health")[0], 200)

    def raw(self, server, request):
        """Sends `request` and reads until the server closes: (head, body)."""
        with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
            sock.sendall(request)
            data = b""
            while True:
                chunk = sock.recv(65536)  # a timeout fails the test: the server kept it open
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return head.decode("latin-1"), body

    def test_malformed_target_is_400_and_closes(self):
        server = self.start_server(store="memory")
        token = server.token("R", "pos-1", role="pos")
        upgrade = ("Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
        for target, extra in [("/api/health?x=%zz", ""), ("/api/restaurants/R/status?%", ""),
                              ("/ws?restaurant_id=R&device_id=pos-1&x=%zz", upgrade)]:
            with self.subTest(target=target):
                # keep-alive asked for, and a second request queued behind: neither keeps it open
                request = (f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n"
                           f"Authorization: Bearer {token}\r\n{extra}\r\n"
                           "GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n").encode()
                head, body = self.raw(server, request)
                self.assertTrue(head.startswith("HTTP/1.1 400 "), head)
                self.assertIn("\r\nConnection: close", head)
                self.assertIn(b'"code":"bad_request"', body)
                self.assertNotIn(b"HTTP/1.1 200", body)  # the second request was not answered

    def test_subprotocol_token_only_on_upgrades(self):
        server = self.start_server(store="memory")
        token = server.token("R", "kds-1", role="kds")
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT)
        self.addCleanup(conn.close)
        status, headers, _ = self.request(
            conn, "GET", "/api/restaurants/R/status",
            headers={"Sec-WebSocket-Protocol": f"possync, bearer.{token}"})
        self.assertEqual((status, headers["www-authenticate"]), (401, 'Bearer realm="possync"'))
        self.assertEqual(self.request(conn, "GET", "/api/restaurants/R/status", token)[0], 404)

    def test_sync_503_names_rate_limited(self):
        server = self.start_server(store="memory", extra_args=["--threads", "2"])
        body = {"restaurant_id": "R", "device_id": "mgr-1", "changes": [
            data_change("users", f"u-{i}", "created", change_id=f"u-{i}", pin=f"{1000 + i}")
            for i in range(USERS)]}
        status, headers, res = server.http("POST", "/api/sync", body,
                                           token=server.token("R", "mgr-1"))
        self.assertEqual((status, headers.get("retry-after")), (503, "1"), res)
        self.assertEqual(res["code"], "rate_limited", res)
        statuses = [r["status"] for r in res["results"]]
        refused = [r for r in res["results"] if r["status"] == "rejected"]
        self.assertTrue(refused and len(refused) < USERS, statuses)
        self.assertEqual({r["error"]["code"] for r in refused}, {"rate_limited"})
        self.assertEqual(res["synced_changes"], USERS - len(refused))


if __name__ == "__main__":
    unittest.main()
