"""Starting the binary: options, environment variables, refusing a port or a store in use."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import tempfile
import unittest

from harness import SERVER_BIN, ServerTestCase, async_test, b64url, data_change


def run_binary(*args, env=None, timeout=30, cwd=None):
    """Runs the binary in `cwd` (a fresh temporary directory by default: the server creates its
    default key file under ./data there)."""
    with tempfile.TemporaryDirectory() as tmp:
        return subprocess.run([SERVER_BIN, *args], capture_output=True, text=True,
                              timeout=timeout, env=dict(os.environ, **(env or {})),
                              stdin=subprocess.DEVNULL, cwd=cwd or tmp)


class StartupTest(ServerTestCase):

    def test_help_and_invalid_options(self):
        res = run_binary("--help")
        self.assertEqual(res.returncode, 0)
        for option in ("--port", "--store", "--max-frame-bytes", "--max-outbound-bytes",
                       "--idle-timeout", "--retain-changes", "--twin-window-ms"):
            self.assertIn(option, res.stdout)
        for args, named in ((["--max-frame-bytes", "10"], "--max-frame-bytes"),
                            (["--idle-timeout", "0"], "--idle-timeout"),
                            (["--port", "abc"], "--port"),
                            (["--log-level", "loud"], "--log-level"),
                            (["--no-such-option"], "--no-such-option")):
            with self.subTest(args):
                res = run_binary(*args, "--store", "memory")
                self.assertNotEqual(res.returncode, 0)
                self.assertIn(named, res.stdout + res.stderr)
        res = run_binary("--store", "bogus:x", "--port", "0")
        self.assertEqual(res.returncode, 1)
        self.assertIn("unsupported store", res.stdout + res.stderr)
        res = run_binary("--host", "not-an-address", "--store", "memory", "--port", "0")
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("--host", res.stdout + res.stderr)

    def test_signing_keys_are_created_private_and_checked(self):
        with tempfile.TemporaryDirectory() as tmp:
            # A bad store still fails, but the default key file was created first, mode 0600.
            res = run_binary("--store", "bogus:x", "--port", "0", cwd=tmp)
            self.assertEqual(res.returncode, 1)
            key_file = os.path.join(tmp, "data", "jwt.keys")
            self.assertEqual(os.stat(key_file).st_mode & 0o777, 0o600)
            self.assertIn("created a key file", res.stdout + res.stderr)
            self.assertIn("path=./data/jwt.keys", res.stdout + res.stderr)
            os.chmod(key_file, 0o644)
            res = run_binary("--store", "memory", "--port", "0", cwd=tmp)
            self.assertEqual(res.returncode, 2)
            self.assertIn("chmod 600", res.stdout + res.stderr)
            with open(os.path.join(tmp, "bad.keys"), "w") as f:
                f.write("k1 short\n")
            os.chmod(os.path.join(tmp, "bad.keys"), 0o600)
            res = run_binary("--store", "memory", "--port", "0", "--jwt-secret-file", "bad.keys",
                             cwd=tmp)
            self.assertEqual(res.returncode, 2)
            self.assertIn("bad.keys line 1", res.stdout + res.stderr)
            # The keys may come from the environment instead (POSSYNC_JWT_KEYS).
            res = run_binary("--store", "bogus:x", "--port", "0", "--jwt-secret-file", "none",
                             env={"POSSYNC_JWT_KEYS": "k9 " + "A" * 43}, cwd=tmp)
            self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
            self.assertFalse(os.path.exists(os.path.join(tmp, "none")))

    def test_token_issue_takes_the_key_file_before_or_after_the_subcommand(self):
        secret = os.urandom(32)

        def verified_claims(token):
            """The claims of `token` after checking its HS256 signature with `secret` here."""
            head, payload, signature = token.split(".")
            expected = hmac.new(secret, f"{head}.{payload}".encode(), hashlib.sha256).digest()
            self.assertEqual(b64url(expected), signature)
            header = json.loads(base64.urlsafe_b64decode(head + "=="))
            self.assertEqual(header["kid"], "k7")
            return json.loads(base64.urlsafe_b64decode(payload + "=="))

        issue = ["token", "issue", "--restaurant", "r1", "--device", "d1", "--role", "pos",
                 "--ttl", "1h"]
        with tempfile.TemporaryDirectory() as tmp:
            key_file = os.path.join(tmp, "keys")
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"k7 {b64url(secret)}\n")
            orders = {
                "before": ["--jwt-secret-file", key_file, *issue],
                "after": [*issue, "--jwt-secret-file", key_file],
                "between": ["token", "--jwt-secret-file", key_file, *issue[1:]],
                "inside": [*issue[:4], "--jwt-secret-file=" + key_file, *issue[4:]],
            }
            for name, args in orders.items():
                with self.subTest(name):
                    res = run_binary(*args, cwd=tmp)
                    self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
                    claims = verified_claims(res.stdout.strip())
                    self.assertEqual((claims["restaurant_id"], claims["device_id"],
                                      claims["role"]), ("r1", "d1", "pos"))
                    self.assertEqual(claims["exp"] - claims["iat"], 3600)
            # The given file was used: no default ./data/jwt.keys was created beside it.
            self.assertFalse(os.path.exists(os.path.join(tmp, "data")))
            # POSSYNC_JWT_KEYS still takes the place of the file, whatever the order.
            for args in (issue, [*issue, "--jwt-secret-file", "none"]):
                res = run_binary(*args, env={"POSSYNC_JWT_KEYS": f"k7 {b64url(secret)}"},
                                 cwd=tmp)
                self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
                verified_claims(res.stdout.strip())
            self.assertFalse(os.path.exists(os.path.join(tmp, "none")))
            # An option nobody knows is still refused after the subcommand.
            res = run_binary(*issue, "--no-such-option", "x", cwd=tmp)
            self.assertNotEqual(res.returncode, 0)
            self.assertEqual(res.stdout, "")

    def test_store_and_port_in_use_are_refused(self):
        first = self.start_server()  # sqlite
        # The same sqlite file: refused (two writers would break seq order), exit 1.
        with tempfile.TemporaryDirectory() as tmp:
            res = run_binary("--host", "127.0.0.1", "--port", "0", "--store", first.store)
            self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
            self.assertIn("in use by another possync-server process", res.stdout + res.stderr)
            # The same port: refused, exit 1.
            res = run_binary("--host", "127.0.0.1", "--port", str(first.port), "--store",
                             "sqlite:" + os.path.join(tmp, "other.db"))
            self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
            self.assertIn("cannot bind", res.stdout + res.stderr)
        self.assertEqual(first.http("GET", "/api/health")[0], 200)
        # Once the first server is gone, the store opens again (the lock died with it).
        first.kill()
        first.start()
        self.assertEqual(first.http("GET", "/api/health")[0], 200)

    @async_test()
    async def test_options_from_environment_and_command_line_wins(self):
        server = self.start_server(store="memory",
                                   env={"POSSYNC_MAX_FRAME_BYTES": "2048",
                                        "POSSYNC_MAX_BODY_BYTES": "1024"},
                                   extra_args=["--max-body-bytes", "65536"])
        c = await server.connect("R", "A")
        msg = data_change("orders", "o", "updated", change_id="c1", pad="x" * 2500)
        # --max-body-bytes from the command line beats the environment: a 3 KB POST is fine.
        status, _, body = await server.ahttp("POST", "/api/sync", {
            "restaurant_id": "R", "device_id": "P", "changes": [msg]})
        self.assertEqual((status, body["results"][0]["status"]), (200, "applied"))
        # POSSYNC_MAX_FRAME_BYTES=2048: the same change over the WebSocket is too big.
        self.assertGreater(len(json.dumps(msg)), 2048)
        await c.send(msg)
        self.assertEqual(await c.wait_closed(), 1009)


if __name__ == "__main__":
    unittest.main()
