"""A device that stops reading is disconnected once its send queue is over --max-outbound-bytes;
nobody else is held back, and it recovers everything by reconnecting with since."""

import asyncio
import unittest

from harness import ServerTestCase, async_test, data_change, is_change

MAX_OUTBOUND = 65536
PAD = "s" * 2048
CHUNK = 25
MAX_CHANGES = 4000  # 8 MB: more than loopback kernel buffers (4 MB send buffer at most) + queue


class SlowConsumerTest(ServerTestCase):

    @async_test(timeout=170)
    async def test_slow_consumer_is_disconnected_others_unaffected(self):
        server = self.start_server(
            store="memory", extra_args=["--max-outbound-bytes", str(MAX_OUTBOUND),
                                        "--device-message-rate", "0"])  # the writer floods
        # The slow device: handshake by hand, a tiny receive window, and then it never reads.
        slow = await asyncio.to_thread(server.raw_ws, "R", "slow", rcvbuf=4096)
        writer = await server.connect("R", "writer")
        normal = await server.connect("R", "normal")

        async def slow_connected():
            _, _, st = await server.ahttp("GET", "/api/restaurants/R/status")
            return "slow" in {d["device_id"] for d in st["connected_devices"]}

        acks = []
        n = 0
        await server.wait_devices("R", ["normal", "slow", "writer"])
        # Write until the slow device is out, or until far more than kernel buffers (at most a
        # few MB on loopback) plus its queue were sent; then the server must close it (it gives
        # a stuck connection a few seconds to take its close frame before cutting the socket).
        # The writer waits for the normal device to keep up after each chunk: this test's
        # client reads far slower than the server writes, and it must not become a slow
        # consumer itself.
        while n < MAX_CHANGES and (n % 100 or await slow_connected()):
            batch = [data_change("orders", f"o{(n + i) % 50}", "updated", change_id=f"c{n + i}",
                                 i=n + i, pad=PAD) for i in range(CHUNK)]
            acks += await writer.stream(batch, window=8)
            n += CHUNK
            await normal.wait_progressing(lambda: normal.change_count >= n,
                                          what="changes at the normal device")
        for _ in range(600):
            if not await slow_connected():
                break
            await asyncio.sleep(0.1)
        else:
            self.fail(f"the slow device was still connected after {n} changes of 2 KB")

        # The writer got every ack, in order; the normal device every change, in order, once.
        self.assertEqual([(a["change_id"], a["status"], a["seq"]) for a in acks],
                         [(f"c{i}", "applied", i + 1) for i in range(n)])
        await normal.wait_progressing(lambda: normal.change_count >= n, what=f"{n} changes")
        await normal.sync_point()
        self.assertEqual([m["seq"] for m in normal.changes()], list(range(1, n + 1)))
        self.assertEqual([m["change_id"] for m in normal.changes()], [f"c{i}" for i in range(n)])
        self.assertFalse(normal.closed)
        self.assertFalse(writer.closed)

        # The slow socket: whatever made it into the kernel buffers, in order, then the end
        # (a 1008 close frame if the server could still write it, or EOF).
        msgs, code, how, _ = await asyncio.to_thread(slow.read_until_end)
        slow.close()
        self.assertIn(how, ("close", "eof"))
        if how == "close":
            self.assertEqual(code, 1008)
        got = [m["seq"] for m in msgs if is_change(m)]
        self.assertEqual(got, list(range(1, len(got) + 1)))
        self.assertLess(len(got), n, "the slow device received everything: it was not slow")

        # It reconnects with since=0 and gets everything, then caught_up, then live again.
        back = await server.connect("R", "slow", since=0)
        await back.wait_progressing(lambda: "caught_up" in back.types_seen,
                                    what="the catch-up of everything")
        caught = await back.wait_type("caught_up")
        self.assertEqual(caught["seq"], n)
        self.assertEqual([m["seq"] for m in back.changes()], list(range(1, n + 1)))
        self.assertEqual(back.messages[-1], {"type": "caught_up", "seq": n})
        await writer.stream([data_change("orders", "o-last", "updated", change_id="last")])
        m = await back.wait_for(lambda m: is_change(m) and m["change_id"] == "last")
        self.assertEqual(m["seq"], n + 1)
        self.assertFalse(back.closed)
        for c in (writer, normal, back):
            await c.close()


if __name__ == "__main__":
    unittest.main()
