"""A device that has just connected receives the change another device sends a moment later.

The promise (docs/scaling.md, "What a device may assume"): once the server has answered a
WebSocket upgrade with 101, that connection receives every change of its restaurant committed
afterwards, on whichever node it was committed, exactly once, in seq order, without `since`.
Each round uses a fresh restaurant: device `a` connects, device `b` connects (on another node in
the cluster case), and as soon as both are open `a` sends one change; `b` must receive it.

The two-node case needs POSSYNC_TEST_PG_URL (scripts/pg-test-cluster start); fails without it.
"""

import asyncio
import os
import unittest

from harness import WAIT, ServerTestCase, async_test, data_change, is_change
from pgcluster import Database

ROUNDS = 200


class ConnectThenSendTest(ServerTestCase):

    async def rounds(self, node_a, node_b, prefix):
        missed = []
        for i in range(ROUNDS):
            restaurant = f"{prefix}-{i}"
            a = await node_a.connect(restaurant, "a")
            b = await node_b.connect(restaurant, "b")
            change = data_change("orders", f"o-{i}", change_id=f"{prefix}-c{i}", n=i)
            await a.send(change)
            try:
                got = await b.wait_for(is_change, timeout=3, what="the change sent after open")
                self.assertEqual(got["change_id"], change["change_id"])
                self.assertEqual(got["seq"], 1)
            except (AssertionError, asyncio.TimeoutError, TimeoutError):
                missed.append(restaurant)
            await a.close()
            await b.close()
        self.assertEqual(missed, [], f"{len(missed)} of {ROUNDS} restaurants missed the change")

    @async_test(timeout=240)
    async def test_one_node_sqlite(self):
        server = self.start_server(store="sqlite")
        await self.rounds(server, server, "one")

    @async_test(timeout=240)
    async def test_two_nodes_on_postgresql(self):
        if not os.environ.get("POSSYNC_TEST_PG_URL"):
            self.fail("POSSYNC_TEST_PG_URL is not set (scripts/pg-test-cluster start)")
        db = Database()
        self.addCleanup(db.drop)
        first = self.start_server(store=db.url)
        second = self.start_server(store=db.url, key_file=first.key_file)
        for node in (first, second):
            status, _, body = await node.ahttp("GET", "/api/ready")
            self.assertEqual(status, 200, body)
        await self.rounds(first, second, "two")


if __name__ == "__main__":
    unittest.main()
