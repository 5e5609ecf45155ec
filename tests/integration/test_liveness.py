"""Liveness: with --idle-timeout, a peer that neither sends nor answers pings is dropped, while a
well-behaved client library (which answers pings by itself) stays connected indefinitely."""

import asyncio
import socket
import time
import unittest

from harness import ServerTestCase, async_test, is_change

IDLE = 2


class LivenessTest(ServerTestCase):

    @async_test()
    async def test_silent_peer_is_dropped_and_pinging_client_stays(self):
        server = self.start_server(store="memory", extra_args=["--idle-timeout", str(IDLE)])
        # A websockets client answers pings automatically (its own keepalive pings are off
        # so that only the server's pings keep it alive).
        alive = await server.connect("R", "alive", ping_interval=None)
        mute = await asyncio.to_thread(server.raw_ws, "R", "mute")
        await server.wait_devices("R", ["alive", "mute"])

        # The mute peer: pings arrive (the server probes at half the idle timeout), nothing is
        # answered, and the server drops the connection.
        started = time.monotonic()
        msgs, code, how, pings = await asyncio.to_thread(mute.read_until_end, 30)
        waited = time.monotonic() - started
        mute.close()
        self.assertGreaterEqual(pings, 1, "the server never pinged the silent peer")
        self.assertEqual(how, "eof")  # dropped without a close frame (docs/protocol.md, 8)
        self.assertEqual(msgs, [])
        self.assertLess(waited, 30)
        await server.wait_devices("R", ["alive"])

        # The library client stayed silent at the application level for well over the idle
        # timeout and is still connected and usable.
        await asyncio.sleep(max(0, 3 * IDLE - (time.monotonic() - started)))
        self.assertFalse(alive.closed, f"closed with {alive.close_code}")
        hb = await alive.sync_point()
        self.assertEqual(hb["device_id"], "alive")
        ack = await alive.request(
            {"type": "data_change", "data_type": "tables", "action": "occupied",
             "data": {"id": "t-1"}, "change_id": "still-here"},
            lambda m: m.get("type") == "ack")
        self.assertEqual((ack["status"], ack["seq"]), ("applied", 1))
        self.assertEqual(await server.connected_devices("R"), ["alive"])
        await alive.close()

    @async_test()
    async def test_client_that_keeps_sending_but_ignores_pings_stays(self):
        """Any traffic from the peer counts as a sign of life: a client sending heartbeats (as
        today's app does) is not dropped even if it never answers pings."""
        server = self.start_server(store="memory", extra_args=["--idle-timeout", str(IDLE)])
        raw = await asyncio.to_thread(server.raw_ws, "R", "chatty")
        watcher = await server.connect("R", "watcher")
        deadline = time.monotonic() + 3 * IDLE
        replies = 0
        while time.monotonic() < deadline:
            await asyncio.to_thread(raw.send_text, {"type": "heartbeat"})
            while True:
                frame = await asyncio.to_thread(raw.read_frame, 10)
                self.assertIsNotNone(frame, "the server closed a connection that was sending")
                opcode, payload = frame
                if opcode == 0x1:
                    self.assertIn(b"heartbeat_response", payload)
                    replies += 1
                    break
                self.assertIn(opcode, (0x9,), "only pings are expected besides replies")
            await asyncio.sleep(IDLE / 4)
        self.assertGreaterEqual(replies, 4)
        await asyncio.to_thread(raw.send_text, {"type": "data_change", "data_type": "tables",
                                                "action": "occupied", "data": {"id": "t-9"},
                                                "change_id": "raw-1"})
        m = await watcher.wait_for(is_change)
        self.assertEqual(m["change_id"], "raw-1")
        raw.close()
        await watcher.close()


class HttpTimeoutTest(ServerTestCase):

    def test_silent_http_connection_is_closed(self):
        """--http-timeout: a connection that never completes its request is closed."""
        server = self.start_server(store="memory", extra_args=["--http-timeout", "1"])
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            s.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")  # never finished
            self.assertEqual(s.recv(4096), b"")  # EOF, well before the 30 s socket timeout
        # A keep-alive connection idle after a complete request is closed too.
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            s.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:100])
        self.assertEqual(server.http("GET", "/api/health")[0], 200)


if __name__ == "__main__":
    unittest.main()
