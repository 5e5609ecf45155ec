"""Delivery order on the memory store: a restaurant's commits made on its own loop (its WebSocket
devices) and on another loop (REST requests, handed out to the loops in turn) at the same time
reach a watching device once each, in seq order, with no gap.

The memory store commits on the loop a change arrives on and hands the deliveries to the
restaurant's loop; a hand-over from the loop itself joins its end-of-turn work
(transport/io_loops.h). A commit from another loop must not overtake an earlier one there.
"""

import asyncio
import unittest

from harness import ServerTestCase, async_test, data_change, is_change

WS_WRITERS = 2
WS_CHANGES = 300  # per WebSocket writer
REST_WRITERS = 4
REST_BATCHES = 30  # per REST writer
REST_BATCH = 4


class DeliveryOrderTest(ServerTestCase):

    @async_test(timeout=180)
    async def test_ws_and_rest_commits_arrive_in_seq_order(self):
        server = self.start_server(store="memory", extra_args=["--threads", "2"])
        watcher = await server.connect("R", "watch")
        writers = [await server.connect("R", f"ws-{w}") for w in range(WS_WRITERS)]

        async def stream(w, client):
            changes = [data_change("orders", f"o{i % 11}", "updated", change_id=f"ws-{w}-{i}",
                                   n=i) for i in range(WS_CHANGES)]
            acks = await client.stream(changes, 8)
            self.assertTrue(all(a["status"] == "applied" for a in acks), acks[:3])
            return acks

        async def post_batches(p):
            device = f"rest-{p}"
            for b in range(REST_BATCHES):
                body = {"restaurant_id": "R", "device_id": device,
                        "changes": [data_change("tables", f"t{(b + k) % 5}", "updated",
                                                change_id=f"{device}-{b}-{k}", n=b)
                                    for k in range(REST_BATCH)]}
                status, _, res = await server.ahttp("POST", "/api/sync", body,
                                                    token=server.token("R", device))
                self.assertEqual(status, 200, res)

        results = await asyncio.gather(*(stream(w, c) for w, c in enumerate(writers)),
                                       *(post_batches(p) for p in range(REST_WRITERS)))
        acks = [a for r in results[:WS_WRITERS] for a in r]
        total = WS_WRITERS * WS_CHANGES + REST_WRITERS * REST_BATCHES * REST_BATCH

        # The watcher got every change once, in seq order, and nothing else.
        await watcher.wait_count(is_change, total, timeout=60, what="deliveries")
        await watcher.collect_until_quiet(quiet=0.5)
        seqs = [m["seq"] for m in watcher.changes()]
        self.assertEqual(seqs, list(range(1, total + 1)))
        by_id = {m["change_id"]: m["seq"] for m in watcher.changes()}
        self.assertEqual(len(by_id), total)
        for a in acks:
            self.assertEqual(by_id[a["change_id"]], a["seq"])


if __name__ == "__main__":
    unittest.main()
