"""Stock as deltas across two nodes on one PostgreSQL database (docs/protocol.md, "Restaurant
rules"; docs/scaling.md): five devices, spread over both nodes, each send 1,000 adjustments of one
item with random deltas, resend some at once, and every 250 drop their connection mid-stream,
reconnect to the other node and resend what may not have been committed, and finally POST a part
of their changes once more. The final stock is the exact sum of the deltas, every adjustment is
in the log once, there is exactly one alert per crossing (the log replayed in seq order says where
the crossings are), right after its adjustment, and a device on each node receives every alert
once, in seq order.

POSSYNC_RULES_ADJUSTMENTS sets the adjustments per device (default 1000).
Needs POSSYNC_TEST_PG_URL (scripts/pg-test-cluster start); fails without it.
"""

import asyncio
import os
import random

from harness import ServerTestCase, async_test, is_change
from pgcluster import Database

ADJUSTMENTS = int(os.environ.get("POSSYNC_RULES_ADJUSTMENTS", "1000"))
DEVICES = 5
CHUNK = 250  # adjustments between reconnects
WINDOW = 16  # unacknowledged changes a device keeps in flight
START, MINIMUM = 12, 10
DELTAS = [-3, -2, -1.5, -1, -0.5, 0.5, 1, 1.5, 2, 3]  # sums of halves are exact


def adjust(change_id, delta):
    return {"type": "inventory_update", "item_id": "soup", "action": "adjust",
            "data": {"delta": delta, "reason": "sale" if delta < 0 else "delivery"},
            "change_id": change_id}


class RulesAcrossNodesTest(ServerTestCase):

    @async_test(timeout=280)
    async def test_adjustments_from_five_devices_on_two_nodes_add_up(self):
        db = Database()
        self.addCleanup(db.drop)
        first = self.start_server(store=db.url)
        nodes = [first, self.start_server(store=db.url, key_file=first.key_file)]

        async def connect(node, device):
            return await node.connect("R", device, token=node.token("R", device, "pos"))

        watchers = [await connect(node, f"watch-{i}") for i, node in enumerate(nodes)]
        for w in watchers:
            await w.sync_point()
        acks = await watchers[0].stream([{
            "type": "inventory_update", "item_id": "soup", "action": "item_added",
            "data": {"name": "Soup", "current_stock": START, "min_stock": MINIMUM},
            "change_id": "init"}])
        self.assertEqual(acks[0]["status"], "applied")

        rnd = random.Random(16)
        plans = [[(f"d{d}-{k}", rnd.choice(DELTAS)) for k in range(ADJUSTMENTS)]
                 for d in range(DEVICES)]

        async def device(d):
            name = f"pos-{d}"
            at = d % 2
            client = await connect(nodes[at], name)
            plan = plans[d]
            resend_rnd = random.Random(d)
            for start in range(0, len(plan), CHUNK):
                chunk = plan[start:start + CHUNK]
                for j, (cid, delta) in enumerate(chunk):
                    if j >= WINDOW:
                        await client.wait_ack(chunk[j - WINDOW][0])
                    await client.send(adjust(cid, delta))
                    if resend_rnd.random() < 0.1:
                        await client.send(adjust(cid, delta))  # a resend of the same change
                # Away mid-stream: the last ones may or may not be committed.
                await client.close()
                at = 1 - at
                client = await connect(nodes[at], name)
                acks = await client.stream([adjust(cid, delta) for cid, delta in chunk[-WINDOW:]])
                for ack in acks:
                    self.assertIn(ack["status"], ("applied", "duplicate"), ack)
            await client.close()
            # Today's app resends its pending list by POST: everything is a duplicate by now.
            body = {"restaurant_id": "R", "device_id": name, "changes": [
                dict(adjust(cid, delta), type="data_change", data_type="inventory",
                     data={"id": "soup", "delta": delta}) for cid, delta in plan[-100:]]}
            status, _, res = await nodes[1 - at].ahttp(
                "POST", "/api/sync", body, token=nodes[0].token("R", name, "pos"))
            self.assertEqual(status, 200, res)
            self.assertEqual({r["status"] for r in res["results"]}, {"duplicate"})

        await asyncio.gather(*(device(d) for d in range(DEVICES)))

        # The log, in seq order: every adjustment once; replayed, it says where the crossings are.
        log = await asyncio.to_thread(nodes[0].all_changes, "R")
        self.assertEqual([e["seq"] for e in log], list(range(1, len(log) + 1)))
        ids = [e["change_id"] for e in log]
        self.assertEqual(len(ids), len(set(ids)), "a change id is in the log twice")
        adjustments = [e for e in log if e["action"] == "adjust"]
        self.assertEqual(sorted(e["change_id"] for e in adjustments),
                         sorted(cid for plan in plans for cid, _ in plan))
        expected_alerts = []
        stock = START
        for e in log[1:]:
            if e["action"] != "adjust":
                continue
            before, stock = stock, stock + e["data"]["delta"]
            self.assertEqual(e["data"]["current_stock"], stock, e)
            if before > MINIMUM >= stock:
                expected_alerts.append((e["seq"] + 1, "low_stock_alert",
                                        e["change_id"] + ":low_stock_alert"))
            if before >= 0 > stock:
                n = 2 if before > MINIMUM >= stock else 1
                expected_alerts.append((e["seq"] + n, "negative_stock",
                                        e["change_id"] + ":negative_stock"))
        total = START + sum(delta for plan in plans for _, delta in plan)
        self.assertEqual(stock, total)
        alerts = [(e["seq"], e["action"], e["change_id"]) for e in log
                  if e["action"] in ("low_stock_alert", "negative_stock")]
        self.assertEqual(alerts, expected_alerts)
        self.assertGreater(len(alerts), 5, "the deltas should cross the minimum several times")
        for e in log:
            if e["action"] in ("low_stock_alert", "negative_stock"):
                self.assertEqual(e["device_id"], "")
        status, _, snap = await nodes[1].ahttp("GET", "/api/restaurants/R/data")
        self.assertEqual(status, 200)
        self.assertEqual(snap["data"]["inventory"][0]["current_stock"], total)

        # A device on each node got every alert once, in seq order.
        for w in watchers:
            await w.wait_progressing(lambda w=w: w.change_count >= len(log) - 1,
                                     what="every change")
            got = [(m["seq"], m["action"], m["change_id"]) for m in w.changes()
                   if m["action"] in ("low_stock_alert", "negative_stock")]
            self.assertEqual(got, expected_alerts, w.name)
            await w.close()
