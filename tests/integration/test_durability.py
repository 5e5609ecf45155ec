"""Durability with the sqlite store: nothing acknowledged is ever lost, nothing is applied twice.

kill -9 in the middle of a stream of changes, restart on the same file, and check the log against
every ack the devices received; then resend everything and check deduplication.
"""

import asyncio
import unittest

import websockets

from harness import ServerTestCase, async_test, data_change, is_change


def planned_changes(device, n):
    # Each device owns its records, so the final state is known: the last change per record.
    return [data_change("orders", f"{device}-r{i % 4}", "updated", change_id=f"{device}-{i}",
                        n=i, device=device, note="x" * 64)
            for i in range(n)]


class DurabilityTest(ServerTestCase):

    async def stream_until_closed(self, client, changes, sent, window=8):
        """Streams changes; stops quietly when the connection goes away. Appends what was sent."""
        try:
            for i, change in enumerate(changes):
                if i >= window:
                    await client.wait_ack(changes[i - window]["change_id"])
                await client.send(change)
                sent.append(change)
            for change in changes[-window:]:
                await client.wait_ack(change["change_id"])
        except (ConnectionError, websockets.ConnectionClosed):
            pass

    def check_log_against_acks(self, log, acks_by_device, sent_by_device):
        """Returns {change_id: seq} after checking the log's invariants."""
        seqs = [e["seq"] for e in log]
        self.assertEqual(seqs, list(range(1, len(log) + 1)), "seqs must be 1..N without gaps")
        ids = [e["change_id"] for e in log]
        self.assertEqual(len(ids), len(set(ids)), "a change_id appears twice in the log")
        in_log = {e["change_id"]: e for e in log}
        for device, acks in acks_by_device.items():
            sent = {c["change_id"]: c for c in sent_by_device[device]}
            for cid, ack in acks.items():
                self.assertEqual(ack["status"], "applied", ack)
                self.assertIn(cid, in_log, f"acknowledged change {cid} was lost")
                self.assertEqual(in_log[cid]["seq"], ack["seq"], cid)
                self.assertEqual(in_log[cid]["data"], sent[cid]["data"])
                self.assertEqual(in_log[cid]["device_id"], device)
            # One connection's changes are committed in the order they were sent: a prefix.
            committed = [c["change_id"] for c in sent_by_device[device]
                         if c["change_id"] in in_log]
            self.assertEqual(committed,
                             [c["change_id"] for c in sent_by_device[device][:len(committed)]])
        for e in log:
            self.assertIn(e["device_id"], sent_by_device)
        return {cid: e["seq"] for cid, e in in_log.items()}

    @async_test(timeout=170)
    async def test_kill9_mid_stream_loses_nothing_acknowledged(self):
        server = self.start_server()  # sqlite
        names = ["D1", "D2", "D3"]
        plans = {n: planned_changes(n, 400) for n in names}
        clients = {n: await server.connect("R", n) for n in names}
        sent = {n: [] for n in names}
        tasks = [asyncio.create_task(self.stream_until_closed(clients[n], plans[n], sent[n]))
                 for n in names]
        # Let a good part of the stream commit, then pull the plug.
        await clients["D1"].wait_until(
            lambda: sum(len(clients[n].ack_index) for n in names) >= 150, what="150 acks")
        self.assertEqual(server.kill(), -9)
        await asyncio.gather(*tasks)
        for n in names:
            await clients[n].wait_closed()
        acks = {n: dict(clients[n].ack_index) for n in names}
        total_acked = sum(len(a) for a in acks.values())
        total_sent = sum(len(s) for s in sent.values())
        self.assertGreaterEqual(total_acked, 150)
        self.assertLess(total_acked, 3 * 400, "the kill came too late to be mid-stream")

        server.start(port=server.port)
        log = server.all_changes("R")
        self.check_log_against_acks(log, acks, sent)
        self.assertGreaterEqual(len(log), total_acked)
        self.assertLessEqual(len(log), total_sent)

        # The devices resend everything they sent (acked or not), as they would after reconnect.
        clients = {n: await server.connect("R", n) for n in names}
        resend_acks = {}
        for n in names:
            got = await clients[n].stream(sent[n], window=16)
            for change, ack in zip(sent[n], got):
                resend_acks[change["change_id"]] = ack
                if change["change_id"] in acks[n]:
                    self.assertEqual((ack["status"], ack["seq"]),
                                     ("duplicate", acks[n][change["change_id"]]["seq"]), ack)
                else:
                    self.assertIn(ack["status"], ("applied", "duplicate"), ack)
        log2 = server.all_changes("R")
        seq_of = self.check_log_against_acks(
            log2, {n: {c["change_id"]: resend_acks[c["change_id"]] for c in sent[n]
                       if resend_acks[c["change_id"]]["status"] == "applied"} for n in names},
            sent)
        self.assertEqual(set(seq_of), {c["change_id"] for n in names for c in sent[n]})
        for n in names:
            for c in sent[n]:
                self.assertEqual(seq_of[c["change_id"]], resend_acks[c["change_id"]]["seq"])

        # State: each record holds its last change; it survives with no device connected.
        expected = {}
        for n in names:
            for c in sent[n]:
                expected[c["data"]["id"]] = c["data"]
        for c in clients.values():
            await c.close()
        await self.wait_no_connections(server)
        snap = self.snapshot(server)
        self.assertEqual(snap["seq"], len(log2))
        self.assertEqual({r["id"]: strip(r) for r in snap["data"]["orders"]}, expected)
        versions = {r["id"]: r["version"] for r in snap["data"]["orders"]}
        for rid, version in versions.items():
            last = [c for n in names for c in sent[n] if c["data"]["id"] == rid][-1]
            self.assertEqual(version, seq_of[last["change_id"]])

        # ... and a graceful restart.
        server.stop()
        server.start(port=server.port)
        self.assertEqual(self.snapshot(server)["data"], snap["data"])
        self.assertEqual(server.all_changes("R"), log2)

    @async_test(timeout=120)
    async def test_sigterm_closes_with_1001_exits_0_and_keeps_acked_changes(self):
        server = self.start_server()  # sqlite
        names = ["D1", "D2", "D3"]
        clients = {n: await server.connect("R", n) for n in names}
        idle = await server.connect("R2", "idle")  # another restaurant, only listening
        plans = {n: planned_changes(n, 300) for n in names}
        # Some changes fully acknowledged first.
        first = {n: await clients[n].stream(plans[n][:20]) for n in names}
        self.assertTrue(all(a["status"] == "applied" for n in names for a in first[n]))
        sent = {n: list(plans[n][:20]) for n in names}
        tasks = [asyncio.create_task(
            self.stream_until_closed(clients[n], plans[n][20:], sent[n])) for n in names]
        await clients["D1"].wait_until(
            lambda: sum(len(clients[n].ack_index) for n in names) >= 100, what="100 acks")

        code = await server.aterminate()
        self.assertEqual(code, 0, server.log_tail())
        await asyncio.gather(*tasks)
        for c in list(clients.values()) + [idle]:
            self.assertEqual(await c.wait_closed(), 1001, c.name)
            self.assertEqual(c.close_reason, "server shutting down")
        all_acks = {n: dict(clients[n].ack_index) for n in names}
        # Changes that reached the server after the signal are refused, never silently dropped.
        for n in names:
            for ack in all_acks[n].values():
                if ack["status"] != "applied":
                    self.assertEqual((ack["status"], ack["error"]["code"]),
                                     ("rejected", "shutting_down"), ack)
        acks = {n: {c: a for c, a in all_acks[n].items() if a["status"] == "applied"}
                for n in names}

        server.start(port=server.port)
        log = server.all_changes("R")
        self.check_log_against_acks(log, acks, sent)
        # Every change committed before the close got its ack before the 1001 close frame.
        self.assertEqual({e["change_id"] for e in log},
                         {c for n in names for c in acks[n]})
        # A device reconnecting with since gets everything after it.
        D = await server.connect("R", "D1", since=0)
        caught = await D.wait_type("caught_up")
        self.assertEqual(caught["seq"], len(log))
        self.assertEqual([m["change_id"] for m in D.changes()], [e["change_id"] for e in log])
        await D.close()

    @async_test()
    async def test_values_and_ids_round_trip_exactly_across_restart(self):
        """Money values, big integers, Unicode and ids with spaces or slashes come back exactly
        as sent: forwarded live, in /changes, in /data, and after a restart."""
        server = self.start_server()  # sqlite
        values = {"total_amount": 25.50, "tip": 0.1, "tax": 0.30000000000000004, "tiny": 5e-324,
                  "huge": 1.7976931348623157e308, "neg_zero": -0.0, "whole": 100.0,
                  "big": 12345678901234567890, "small": -9223372036854775808,
                  "note": "caf\u00e9 \U0001F600 \u2028 \"quoted\" \\ back",
                  "items": [1, {"x": None, "y": [True, False]}], "flag": False}
        # Back as JSON.stringify prints them: JSON has no -0 (0) and no 100.0 (100).
        expected = dict(values, neg_zero=0, whole=100)
        rid = "order 7/\u00fc"
        writer = await server.connect("rest \u00e9/1", "pos device \u00e9")
        reader = await server.connect("rest \u00e9/1", "reader")
        ack = await writer.request(
            data_change("orders", rid, "created", change_id="exact-1", **values),
            lambda m: m.get("type") == "ack")
        self.assertEqual(ack["status"], "applied")
        m = await reader.wait_for(is_change)
        self.assertEqual((m["order_id"], m["device_id"]), (rid, "pos device \u00e9"))
        self.assertEqual(m["data"], {"id": rid, **expected})

        def check(srv):
            status, _, snap = srv.http("GET", "/api/restaurants/rest%20%C3%A9%2F1/data")
            self.assertEqual(status, 200, snap)
            (record,) = snap["data"]["orders"]
            self.assertEqual({k: record[k] for k in values}, expected)
            for k, v in expected.items():  # 0 == -0.0 == 0.0 in Python: compare the kind too
                if isinstance(v, (int, float)):
                    self.assertEqual(repr(record[k]), repr(v), k)
            (entry,) = srv.all_changes("rest \u00e9/1")
            self.assertEqual(entry["data"], {"id": rid, **expected})

        check(server)
        await writer.close()
        await reader.close()
        server.stop()
        server.start(port=server.port)
        check(server)

    async def wait_no_connections(self, server):
        for _ in range(400):
            _, _, health = await server.ahttp("GET", "/api/health")
            if health["totalConnections"] == 0:
                return
            await asyncio.sleep(0.05)
        self.fail(f"connections still open: {health}")

    def snapshot(self, server):
        status, _, snap = server.http("GET", "/api/restaurants/R/data")
        self.assertEqual(status, 200, snap)
        return snap


def strip(record):
    return {k: v for k, v in record.items() if k not in ("version", "updated_at")}


if __name__ == "__main__":
    unittest.main()
