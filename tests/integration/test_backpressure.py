"""Back-pressure: when the server carries as much unfinished work as it may (--max-queued-changes),
it stops reading devices' sockets and answers POST /api/sync with 503 `overloaded`; once the work
drains it reads on, and nothing sent meanwhile is lost, refused or applied twice.

The store is stalled deterministically: the test holds SQLite's write lock from another
connection (the server's writer waits on it, up to its 5 s busy timeout), so changes pile up in
the commit pipeline until the gate closes; the lock is released as soon as that was observed.
"""

import asyncio
import sqlite3
import time
import unittest

from harness import WAIT, ServerTestCase, async_test, data_change, is_change, metric_sample

LIMIT = 20
SENT = 200


class BackpressureTest(ServerTestCase):

    @async_test(timeout=120)
    async def test_overload_pauses_reading_then_everything_lands_once(self):
        server = self.start_server(
            store="sqlite", extra_args=["--max-queued-changes", str(LIMIT),
                                        "--device-message-rate", "0"])
        writer = await server.connect("R", "writer")
        reader = await server.connect("R", "reader")
        await writer.stream([data_change("orders", "o0", "created", change_id="warm", n=0)])
        await reader.wait_count(is_change, 1)
        before = metric_sample(await server.ametrics(), "possync_ws_messages_received_total")

        lock = sqlite3.connect(server.store.removeprefix("sqlite:"), timeout=30,
                               isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            changes = [data_change("orders", f"o{i % 7}", "updated", change_id=f"c{i}", n=i)
                       for i in range(SENT)]
            sending = asyncio.get_running_loop().create_task(self.send_all(writer, changes))
            for _ in range(1000):
                text = await server.ametrics()
                if metric_sample(text, "possync_backpressure_closings_total") >= 1:
                    break
                await asyncio.sleep(0.005)
            else:
                self.fail("the gate never closed:\n" + text)
            # At most one message per connection is read after the gate closed.
            queued = metric_sample(text, "possync_queued_changes")
            self.assertGreaterEqual(queued, LIMIT)
            self.assertLessEqual(queued, LIMIT + 2)
            read = metric_sample(text, "possync_ws_messages_received_total") - before
            self.assertLessEqual(read, LIMIT + 2)
            status, headers, body = await server.ahttp(
                "POST", "/api/sync",
                {"restaurant_id": "R", "device_id": "rest",
                 "changes": [data_change("orders", "o-rest", "created", change_id="rest-1")]})
            self.assertEqual(status, 503, body)
            self.assertEqual(body["code"], "overloaded")
            self.assertIn("retry-after", headers)
            # The server still answers what needs no new work.
            status, _, _ = await server.ahttp("GET", "/api/health")
            self.assertEqual(status, 200)
        finally:
            lock.execute("ROLLBACK")
            lock.close()

        await sending
        acks = [await writer.wait_ack(c["change_id"]) for c in changes]
        self.assertEqual([(a["status"], a["seq"]) for a in acks],
                         [("applied", i + 2) for i in range(SENT)])
        await reader.wait_count(is_change, SENT + 1)
        await reader.sync_point()
        got = [m for m in reader.messages if is_change(m)]
        self.assertEqual([m["change_id"] for m in got], ["warm"] + [c["change_id"] for c in changes])
        self.assertEqual([m["seq"] for m in got], list(range(1, SENT + 2)))

        # Drained: the gate is open again, REST takes changes, the counts are back to zero.
        status, _, body = await server.ahttp(
            "POST", "/api/sync",
            {"restaurant_id": "R", "device_id": "rest",
             "changes": [data_change("orders", "o-rest", "created", change_id="rest-1")]})
        self.assertEqual(status, 200, body)
        # The answer may go out a moment before the writer thread counts its batch done and the
        # loops give back the deliveries' charges.
        deadline = time.monotonic() + WAIT
        while True:
            text = await server.ametrics()
            drained = (metric_sample(text, "possync_queued_changes") == 0
                       and metric_sample(text, "possync_fanout_backlog_bytes") == 0)
            if drained or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        self.assertEqual(metric_sample(text, "possync_queued_changes"), 0)
        self.assertEqual(metric_sample(text, "possync_fanout_backlog_bytes"), 0)
        self.assertEqual(metric_sample(text, 'possync_errors_total{code="overloaded"}'), 1)
        for c in (writer, reader):
            self.assertFalse(c.closed)
            await c.close()

    @staticmethod
    async def send_all(device, changes):
        for c in changes:
            await device.send(c)


if __name__ == "__main__":
    unittest.main()
