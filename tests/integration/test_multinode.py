"""Several possync-server processes (nodes) on one PostgreSQL database (docs/scaling.md).

A change committed on one node reaches the devices of every node, in seq order, once; concurrent
writers on different nodes get gapless seqs and one change id is applied once; devices of a node
killed with -9 move to another node and end with every acknowledged change exactly once; a
PostgreSQL outage rejects changes with a retryable error while it lasts, keeps connections up,
and service resumes by itself, also right after a pg_ctl restart.

Needs POSSYNC_TEST_PG_URL (scripts/pg-test-cluster start); fails without it.
"""

import asyncio
import time

import websockets

from harness import WAIT, ServerTestCase, async_test, data_change, is_change
from pgcluster import Cluster, Database


def plan(device, n, prefix=None):
    prefix = prefix or device
    return [data_change("orders", f"{device}-o{i % 5}", change_id=f"{prefix}-{i}", n=i,
                        device=device) for i in range(n)]


def covered_prefix(seqs):
    """The largest s such that every seq 1..s is in `seqs`."""
    s = 0
    while s + 1 in seqs:
        s += 1
    return s


class MultiNodeTest(ServerTestCase):

    def database(self, server_url=None):
        db = Database(server_url)
        self.addCleanup(db.drop)
        return db

    def start_nodes(self, db, n):
        """n nodes on one database, sharing their token keys like one service does."""
        first = self.start_server(store=db.url)
        return [first] + [self.start_server(store=db.url, key_file=first.key_file)
                          for _ in range(n - 1)]

    def check_log(self, log):
        """The log's seqs are 1..N and each change id appears once; returns {change_id: seq}."""
        self.assertEqual([e["seq"] for e in log], list(range(1, len(log) + 1)),
                         "seqs must be 1..N without gaps")
        ids = [e["change_id"] for e in log]
        self.assertEqual(len(ids), len(set(ids)), "a change id is in the log twice")
        return {e["change_id"]: e["seq"] for e in log}

    @async_test(timeout=150)
    async def test_change_on_one_node_reaches_devices_on_the_others_in_seq_order(self):
        db = self.database()
        nodes = self.start_nodes(db, 3)
        clients = [await node.connect("R", f"D{i}") for i, node in enumerate(nodes)]
        for c in clients:
            await c.sync_point()
        for node in nodes:
            status, _, body = await node.ahttp("GET", "/api/ready")
            self.assertEqual(status, 200, body)

        sent = plan("D0", 40)
        acks = await clients[0].stream(sent)
        self.assertEqual([a["seq"] for a in acks], list(range(1, 41)))
        for c in clients[1:]:
            got = await c.wait_count(is_change, 40, what="changes from node 0")
            self.assertEqual([m["seq"] for m in got], list(range(1, 41)), c.name)
            self.assertEqual([m["change_id"] for m in got], [m["change_id"] for m in sent])

        # The other way round, and a restaurant the other nodes have no devices for.
        other = await nodes[1].connect("OTHER", "X")
        await other.stream(plan("X", 5))
        more = plan("D2", 10)
        acks = await clients[2].stream(more)
        self.assertEqual([a["seq"] for a in acks], list(range(41, 51)))
        for c in clients[:2]:
            got = await c.wait_count(is_change, 50 if c is not clients[0] else 10,
                                     what="changes from node 2")
        for c in clients:
            await c.sync_point()
        await asyncio.sleep(0.5)  # anything sent twice would have arrived by now
        self.assertEqual([m["seq"] for m in clients[0].changes()], list(range(41, 51)))
        self.assertEqual([m["seq"] for m in clients[1].changes()], list(range(1, 51)))
        self.assertEqual([m["seq"] for m in clients[2].changes()], list(range(1, 41)))
        for c in clients + [other]:
            await c.close()

    @async_test(timeout=200)
    async def test_concurrent_writers_on_different_nodes_get_gapless_seqs_and_dedupe(self):
        db = self.database()
        nodes = self.start_nodes(db, 3)
        names = ["D0", "D1", "D2"]
        clients = {n: await nodes[i].connect("R", n) for i, n in enumerate(names)}
        for c in clients.values():
            await c.sync_point()
        # Own changes, and shared ones every device sends (as a resend through another node would).
        plans = {}
        for n in names:
            own = plan(n, 60)
            shared = [data_change("orders", f"shared-{k}", change_id=f"shared-{k}", k=k)
                      for k in range(20)]
            plans[n] = own[:20] + [x for pair in zip(shared, own[20:40]) for x in pair] + own[40:]
        results = await asyncio.gather(*(clients[n].stream(plans[n], window=8) for n in names))
        acks = {n: {a["change_id"]: a for a in r} for n, r in zip(names, results)}

        total = 3 * 60 + 20
        log = nodes[1].all_changes("R")
        seq_of = self.check_log(log)
        self.assertEqual(len(log), total)
        for k in range(20):
            statuses = sorted(acks[n][f"shared-{k}"]["status"] for n in names)
            self.assertEqual(statuses, ["applied", "duplicate", "duplicate"], k)
        for n in names:
            for cid, ack in acks[n].items():
                self.assertIn(ack["status"], ("applied", "duplicate"), ack)
                self.assertEqual(ack["seq"], seq_of[cid], ack)

        # Every device sees every seq once: its own applied changes as acks, the rest as changes
        # (in seq order).
        for n in names:
            own = {a["seq"] for a in acks[n].values() if a["status"] == "applied"}
            got = await clients[n].wait_count(is_change, total - len(own), what="changes")
            seqs = [m["seq"] for m in got]
            self.assertEqual(seqs, sorted(seqs), f"{n}: out of order")
            self.assertEqual(len(seqs), len(set(seqs)), f"{n}: a change arrived twice")
            self.assertEqual(set(seqs) | own, set(range(1, total + 1)), n)
            self.assertFalse(set(seqs) & own, n)
        await asyncio.sleep(0.5)
        for n in names:
            self.assertEqual(len(clients[n].changes()),
                             total - sum(a["status"] == "applied" for a in acks[n].values()))
            await clients[n].close()

    @async_test(timeout=280)
    async def test_kill9_one_node_devices_move_to_another_and_miss_nothing(self):
        db = self.database()
        nodes = self.start_nodes(db, 3)
        names = {f"N{i}D{k}": i for i in range(3) for k in range(2)}
        plans = {n: plan(n, 80) for n in names}
        sent = {n: [] for n in names}
        acked = {n: {} for n in names}  # change_id -> ack, over every connection
        received = {n: [] for n in names}  # per connection: the seqs of the changes it received
        conns = {}

        async def open_on(name, node, since=None):
            client = await node.connect("R", name, since=since)
            conns[name] = client
            received[name].append(client)
            return client

        async def write(name, changes, window=8):
            client = conns[name]
            try:
                for i, change in enumerate(changes):
                    if i >= window:
                        ack = await client.wait_ack(changes[i - window]["change_id"])
                        acked[name][ack["change_id"]] = ack
                    await client.send(change)
                    if change not in sent[name]:
                        sent[name].append(change)
                for change in changes[-window:]:
                    ack = await client.wait_ack(change["change_id"])
                    acked[name][ack["change_id"]] = ack
            except (ConnectionError, websockets.ConnectionClosed):
                pass
            for change_id, ack in client.ack_index.items():
                acked[name].setdefault(change_id, ack)

        for n, i in names.items():
            await open_on(n, nodes[i])
        for c in list(conns.values()):
            await c.sync_point()
        tasks = {n: asyncio.create_task(write(n, plans[n])) for n in names}
        await conns["N1D0"].wait_until(
            lambda: sum(len(c.ack_index) for c in conns.values()) >= 120, what="120 acks")
        self.assertEqual(nodes[0].kill(), -9)
        await asyncio.gather(*tasks.values())

        # The devices of node 0 reconnect to node 1 or 2 with `since` and send again what was not
        # acknowledged, then the rest of their plan.
        moved = [n for n, i in names.items() if i == 0]
        for k, n in enumerate(moved):
            await received[n][-1].wait_closed()
            seen = {m["seq"] for c in received[n] for m in c.changes()}
            seen |= {a["seq"] for a in acked[n].values() if a.get("seq")}
            await open_on(n, nodes[1 + k % 2], since=covered_prefix(seen))
        await asyncio.gather(*(write(n, [c for c in plans[n] if c["change_id"] not in acked[n]])
                               for n in moved))

        log = nodes[2].all_changes("R")
        seq_of = self.check_log(log)
        for n in names:
            self.assertEqual({c["change_id"] for c in plans[n]} - set(acked[n]), set(),
                             f"{n}: changes never acknowledged")
            for cid, ack in acked[n].items():
                self.assertIn(ack["status"], ("applied", "duplicate"), ack)
                self.assertEqual(seq_of[cid], ack["seq"], f"acknowledged change {cid} lost")
        self.assertEqual(len(log), sum(len(p) for p in plans.values()))

        # Every device ends with every seq, each connection in order and without repeats.
        total = len(log)
        for n in names:
            own = {a["seq"] for a in acked[n].values()}

            def complete(n=n, own=own):
                seen = {m["seq"] for c in received[n] for m in c.changes()}
                return (seen | own) >= set(range(1, total + 1))

            await received[n][-1].wait_until(complete, what=f"{n} to have every seq")
            for c in received[n]:
                seqs = [m["seq"] for m in c.changes()]
                self.assertEqual(seqs, sorted(set(seqs)), f"{c.name}: out of order or repeated")
        for n in names:
            await conns[n].close()

    @async_test(timeout=200)
    async def test_postgres_restart_rejects_changes_keeps_connections_and_resumes(self):
        cluster = Cluster()
        self.addCleanup(cluster.stop)
        db = Database(cluster.url)
        nodes = self.start_nodes(db, 2)
        a = await nodes[0].connect("R", "A")
        b = await nodes[1].connect("R", "B")
        await a.sync_point()
        await b.sync_point()
        ack = await a.stream([data_change("orders", "o1", change_id="c1", n=1)])
        self.assertEqual((ack[0]["status"], ack[0]["seq"]), ("applied", 1))
        await b.wait_count(is_change, 1)

        await asyncio.to_thread(cluster.pause)
        for node in nodes:
            status, _, body = await node.ahttp("GET", "/api/ready")
            self.assertEqual(status, 503, body)
            self.assertEqual(body["code"], "store_unavailable")
            self.assertTrue(body["message"])
            status, _, _ = await node.ahttp("GET", "/api/health")
            self.assertEqual(status, 200)
        for client, cid in ((a, "c2"), (b, "c3")):
            await client.send(data_change("orders", "o1", change_id=cid, n=cid))
            ack = await client.wait_ack(cid)
            self.assertEqual(ack["status"], "rejected", ack)
            self.assertIsNone(ack["seq"])
            self.assertEqual(ack["error"]["code"], "store_unavailable", ack)
        await a.sync_point()
        await b.sync_point()
        self.assertFalse(a.closed or b.closed)

        await asyncio.to_thread(cluster.resume)
        for node in nodes:
            deadline = time.monotonic() + WAIT
            while (await node.ahttp("GET", "/api/ready"))[0] != 200:
                self.assertLess(time.monotonic(), deadline, "not ready after PostgreSQL returned")
                await asyncio.sleep(0.1)
        # The rejected changes were not stored: sent again, they are applied now, and reach the
        # device on the other node (whose feed reconnected by itself).
        def ack_of(cid):
            return lambda m: m.get("type") == "ack" and m.get("change_id") == cid

        ack_a = await a.request(data_change("orders", "o1", change_id="c2", n="c2"), ack_of("c2"))
        ack_b = await b.request(data_change("orders", "o1", change_id="c3", n="c3"), ack_of("c3"))
        self.assertEqual((ack_a["status"], ack_b["status"]), ("applied", "applied"))
        self.assertEqual(sorted([ack_a["seq"], ack_b["seq"]]), [2, 3])
        await b.wait_count(is_change, 2, what="c2 on node 1")
        await a.wait_count(is_change, 1, what="c3 on node 0")
        self.assertEqual([m["change_id"] for m in b.changes()], ["c1", "c2"])
        self.assertEqual([m["change_id"] for m in a.changes()], ["c3"])
        self.assertEqual([e["change_id"] for e in nodes[0].all_changes("R")], ["c1", "c2", "c3"])
        self.assertFalse(a.closed or b.closed)

        # pg_ctl restart: every connection of the nodes is dropped while they are idle. The next
        # commit reconnects by itself and succeeds, and the other node's feed comes back.
        await asyncio.to_thread(cluster.restart)
        ack = await a.request(data_change("orders", "o1", change_id="c4", n="c4"), ack_of("c4"))
        self.assertEqual((ack["status"], ack["seq"]), ("applied", 4), ack)
        await b.wait_count(is_change, 3, what="c4 on node 1 after the restart")
        self.assertEqual([m["change_id"] for m in b.changes()], ["c1", "c2", "c4"])
        self.assertFalse(a.closed or b.closed)
        await a.close()
        await b.close()


if __name__ == "__main__":
    import unittest
    unittest.main()
