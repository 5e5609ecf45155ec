"""TLS end to end: HTTPS and WSS on one port with a certificate made here by the openssl CLI,
verified by Python's ssl module and the `websockets` client; certificate reload on SIGHUP without
dropping open connections."""

import asyncio
import os
import signal
import ssl
import subprocess
import tempfile
import unittest

import websockets

from harness import WAIT, ServerTestCase, async_test, data_change, is_change


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(dir_, name):
    """A self-signed CA: (ca.pem, ca.key) in dir_."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}-ca.key", "-out", f"{name}-ca.pem", "-days", "2",
            "-subj", f"/CN=possync test CA {name}", cwd=dir_)
    return os.path.join(dir_, f"{name}-ca.pem"), os.path.join(dir_, f"{name}-ca.key")


def make_server_cert(dir_, ca_name, name):
    """A certificate for 127.0.0.1 and localhost signed by CA `ca_name`: (cert.pem, key.pem)."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", "/CN=localhost", cwd=dir_)
    with open(os.path.join(dir_, f"{name}.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca_name}-ca.pem", "-CAkey",
            f"{ca_name}-ca.key", "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
            "-extfile", f"{name}.ext", cwd=dir_)
    return os.path.join(dir_, f"{name}.pem"), os.path.join(dir_, f"{name}.key")


class TlsTest(ServerTestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="possync-tls-")
        self.ca_a, _ = make_ca(self.dir, "a")
        self.ca_b, _ = make_ca(self.dir, "b")
        cert, key = make_server_cert(self.dir, "a", "server-a")
        # The files the server is configured with; replaced in place for the reload.
        self.cert = os.path.join(self.dir, "live.pem")
        self.key = os.path.join(self.dir, "live.key")
        self.install(cert, key)

    def install(self, cert, key):
        for src, dst in ((cert, self.cert), (key, self.key)):
            with open(src, "rb") as f, open(dst + ".tmp", "wb") as g:
                g.write(f.read())
            os.replace(dst + ".tmp", dst)

    @async_test()
    async def test_https_and_wss_verified_by_real_clients(self):
        server = self.start_server(tls=(self.cert, self.key, self.ca_a))
        status, _, health = server.http("GET", "/api/health")
        self.assertEqual((status, health["status"]), (200, "ok"))
        a = await server.connect("R", "A")
        b = await server.connect("R", "B")
        await a.send(data_change("orders", "o-1", "created", change_id="c1", status="open"))
        self.assertEqual((await a.wait_ack("c1"))["status"], "applied")
        change = await b.wait_for(is_change)
        self.assertEqual(change["order_id"], "o-1")
        # A client that trusts another CA refuses the server's certificate.
        with self.assertRaises(ssl.SSLCertVerificationError):
            await websockets.connect(server.ws_url("R", "C"), open_timeout=WAIT,
                                     ssl=ssl.create_default_context(cafile=self.ca_b))
        # Plain WebSocket and HTTP on the TLS port get nowhere, and the server keeps serving.
        plain = server.ws_url("R", "D").replace("wss://", "ws://")
        with self.assertRaises((websockets.InvalidMessage, websockets.InvalidHandshake,
                                ConnectionError, OSError, asyncio.TimeoutError)):
            await websockets.connect(plain, open_timeout=5)
        # TLS 1.1 is refused (only 1.2 and 1.3 are offered).
        old = ssl.create_default_context(cafile=self.ca_a)
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            await websockets.connect(server.ws_url("R", "E"), open_timeout=WAIT, ssl=old)
        await b.sync_point()
        await a.close()
        await b.close()

    @async_test()
    async def test_sighup_reloads_the_certificate_without_dropping_connections(self):
        server = self.start_server(tls=(self.cert, self.key, self.ca_a))
        a = await server.connect("R", "A")
        b = await server.connect("R", "B")
        # A broken pair: the reload is refused and the current certificate stays.
        with open(self.cert, "w") as f:
            f.write("not a certificate\n")
        server.proc.send_signal(signal.SIGHUP)
        # The signal is handled asynchronously: wait for the refusal before restoring the file.
        for _ in range(200):
            if "keeping the current TLS certificate" in server.log_tail(100):
                break
            await asyncio.sleep(0.05)
        else:
            self.fail("the broken certificate was never refused")
        await a.sync_point()
        with open(os.path.join(self.dir, "server-a.pem"), "rb") as f, open(self.cert, "wb") as g:
            g.write(f.read())
        status, _, _ = await server.ahttp("GET", "/api/health")
        self.assertEqual(status, 200)
        # A certificate from CA b: after SIGHUP new connections get it, open ones carry on.
        cert_b, key_b = make_server_cert(self.dir, "b", "server-b")
        self.install(cert_b, key_b)
        server.proc.send_signal(signal.SIGHUP)
        trust_b = ssl.create_default_context(cafile=self.ca_b)
        for _ in range(100):
            try:
                ws = await websockets.connect(server.ws_url("R", "C"), open_timeout=WAIT,
                                              ssl=trust_b)
                break
            except ssl.SSLCertVerificationError:
                await asyncio.sleep(0.05)  # the signal has not been handled yet
        else:
            self.fail("the new certificate was never served")
        await ws.close()
        # The connections opened before the reload still work both ways.
        await a.send(data_change("orders", "o-2", "created", change_id="c2"))
        self.assertEqual((await a.wait_ack("c2"))["status"], "applied")
        await b.wait_for(is_change)
        self.assertFalse(a.closed or b.closed)
        log = server.log_tail(100)
        self.assertIn("keeping the current TLS certificate", log)
        self.assertIn("TLS certificate reloaded", log)
        await a.close()
        await b.close()


if __name__ == "__main__":
    unittest.main()
