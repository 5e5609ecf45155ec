"""Catch-up: a device that was away receives what it missed, then live changes, with no gap and
no duplicate across the hand-over, while other devices keep writing."""

import asyncio
import unittest

from harness import ServerTestCase, async_test, data_change, is_change


class CatchupTest(ServerTestCase):

    async def open_writers(self, server, names):
        return {n: await server.connect("R", n) for n in names}

    @staticmethod
    def make_changes(device, start, n):
        return [data_change("orders", f"{device}-o{(start + i) % 7}", "updated",
                            change_id=f"{device}-c{start + i}", n=start + i, by=device)
                for i in range(n)]

    async def run_scenario(self, server, via_register):
        writers = await self.open_writers(server, ["W1", "W2", "W3"])
        seq_of = {}  # change_id -> seq, from the writers' and D's acks

        def record(acks):
            for a in acks:
                self.assertEqual(a["status"], "applied", a)
                seq_of[a["change_id"]] = a["seq"]

        # Phase 1: everyone online.
        D = await server.connect("R", "D")
        counters = {n: 0 for n in list(writers) + ["D"]}

        async def write(name, client, n, window):
            changes = self.make_changes(name, counters[name], n)
            counters[name] += n
            record(await client.stream(changes, window))

        await asyncio.gather(*(write(n, c, 10, 4) for n, c in writers.items()),
                             write("D", D, 3, 3))
        await D.wait_count(is_change, 30, what="phase-1 changes")
        seen = {m["seq"] for m in D.changes()} | {a["seq"] for a in D.acks()}
        self.assertEqual(seen, set(range(1, 34)))
        last_seen = max(seen)
        await D.close()

        # Phase 2: D is away; three writers write concurrently; D comes back in the middle.
        # D misses a few hundred changes; its catch-up (small pages, paced by a small send
        # queue) then runs for many turns while the writers keep committing.
        phase2 = 400
        tasks = [asyncio.create_task(write(n, c, phase2, 4)) for n, c in writers.items()]
        await writers["W1"].wait_until(lambda: len(writers["W1"].ack_index) >= 10 + 150,
                                       what="W1 phase-2 progress")
        if via_register:
            D = await server.connect("R", "D")
            await D.send({"type": "register", "device_id": "D", "restaurant_id": "R",
                          "user_id": None, "timestamp": "2024-05-01T12:00:00.000",
                          "since": last_seen})
        else:
            D = await server.connect("R", "D", since=last_seen)
        # D writes too while it catches up.
        d_task = asyncio.create_task(write("D", D, 5, 1))
        await asyncio.gather(*tasks, d_task)

        # Phase 3: more live writes once D has caught up, then a sentinel.
        caught = await D.wait_type("caught_up")
        await asyncio.gather(*(write(n, c, 5, 5) for n, c in writers.items()))
        await write("W1", writers["W1"], 1, 1)
        total = 33 + 3 * phase2 + 5 + 3 * 5 + 1
        self.assertEqual(sorted(seq_of.values()), list(range(1, total + 1)))
        _, _, st = server.http("GET", "/api/restaurants/R/status")
        self.assertEqual(st["seq"], total)

        final_id = f"W1-c{counters['W1'] - 1}"
        await D.wait_for(lambda m: is_change(m) and m["change_id"] == final_id,
                         what="the sentinel")
        await D.sync_point()

        msgs = D.messages
        caught_idx = [i for i, m in enumerate(msgs) if m.get("type") == "caught_up"]
        self.assertEqual(len(caught_idx), 1, [m for m in msgs if m.get("type") == "caught_up"])
        self.assertFalse([m for m in msgs if m.get("type") in ("error", "reset_required")])
        N = caught["seq"]
        pre = [m for m in msgs[: caught_idx[0]] if is_change(m)]
        post = [m for m in msgs[caught_idx[0] + 1:] if is_change(m)]
        own_acks = {a["seq"] for a in D.acks()}
        self.assertEqual(len(own_acks), 5)
        received = [m["seq"] for m in pre + post]
        self.assertEqual(len(received), len(set(received)), f"duplicates in {received}")
        # Every change is the one its seq says (content check against the writers' acks).
        by_seq = {s: c for c, s in seq_of.items()}
        for m in pre + post:
            self.assertEqual(m["change_id"], by_seq[m["seq"]], m)
            self.assertEqual(m["type"], "order_update")
            self.assertEqual(m["order_id"], f"{m['data']['by']}-o{m['data']['n'] % 7}")

        # Before caught_up: exactly since+1..N (D's own changes of that range included).
        if via_register:
            # A live change published between the upgrade and the server reading `register` is
            # sent before the catch-up starts (docs/protocol.md, "since in register"); the set of
            # seqs before caught_up is still exactly since+1..N.
            self.assertEqual(sorted(m["seq"] for m in pre), list(range(last_seen + 1, N + 1)))
        else:
            self.assertEqual([m["seq"] for m in pre], list(range(last_seen + 1, N + 1)))
        # After caught_up: strictly increasing, newer than N, D's own changes not echoed; with
        # D's own acks the seqs are exactly N+1..total.
        post_seqs = [m["seq"] for m in post]
        self.assertEqual(post_seqs, sorted(post_seqs))
        self.assertTrue(all(s > N for s in post_seqs), (N, post_seqs))
        self.assertFalse(set(post_seqs) & own_acks, "own changes echoed live")
        self.assertTrue(all(m["device_id"] != "D" for m in post))
        self.assertEqual(sorted(set(post_seqs) | {s for s in own_acks if s > N}),
                         list(range(N + 1, total + 1)))
        self.assertGreaterEqual(len(post), 15)  # phase 3 was live

        for c in list(writers.values()) + [D]:
            await c.close()

    @async_test()
    async def test_since_in_query_concurrent_writers(self):
        # A small catch-up page makes the hand-over happen between pages, many times.
        server = self.start_server(
            extra_args=["--catchup-page", "7", "--max-outbound-bytes", "16384"])
        await self.run_scenario(server, via_register=False)

    @async_test()
    async def test_since_in_register_concurrent_writers(self):
        server = self.start_server(
            extra_args=["--catchup-page", "5", "--max-outbound-bytes", "16384"])
        await self.run_scenario(server, via_register=True)

    @async_test()
    async def test_flapping_reader_sees_every_seq_once_on_every_connection(self):
        """A read-only device reconnects again and again with since = the last seq it saw while
        three devices keep writing: on every connection the seqs it receives are exactly
        since+1, since+2, ... (catch-up, caught_up, then live), whatever the timing."""
        server = self.start_server(
            extra_args=["--catchup-page", "3", "--max-outbound-bytes", "8192"])
        writers = await self.open_writers(server, ["W1", "W2", "W3"])
        stop = asyncio.Event()

        async def keep_writing(name, client):
            i = 0
            while not stop.is_set():
                await client.stream(self.make_changes(name, i, 10), window=5)
                i += 10

        tasks = [asyncio.create_task(keep_writing(n, c)) for n, c in writers.items()]
        await writers["W1"].wait_until(lambda: len(writers["W1"].ack_index) >= 30)
        since = 0
        for round_ in range(30):
            use_register = round_ % 3 == 2
            if use_register:
                D = await server.connect("R", "D")
                await D.send({"type": "register", "since": since})
            else:
                D = await server.connect("R", "D", since=since)
            await D.wait_type("caught_up")
            # some live traffic after the hand-over, then leave
            n_before = len(D.changes())
            await D.wait_until(lambda: len(D.changes()) >= n_before + 10, what="live changes")
            await D.close()
            seqs = [m["seq"] for m in D.changes()]
            if use_register:
                # live changes that arrived before `register` was read come first
                self.assertEqual(sorted(seqs), list(range(since + 1, since + len(seqs) + 1)),
                                 f"round {round_}")
                self.assertEqual(len(D.of_type("caught_up")), 1)
            else:
                self.assertEqual(seqs, list(range(since + 1, since + len(seqs) + 1)),
                                 f"round {round_}: since={since}")
            caught_at = [i for i, m in enumerate(D.messages) if m.get("type") == "caught_up"]
            self.assertEqual(len(caught_at), 1)
            N = D.messages[caught_at[0]]["seq"]
            self.assertTrue(all(m["seq"] > N for m in D.messages[caught_at[0] + 1:]
                                if is_change(m)), f"round {round_}")
            since = max(seqs)
        stop.set()
        await asyncio.gather(*tasks)
        for c in writers.values():
            await c.close()

    @async_test()
    async def test_register_since_as_first_message_has_no_gap_when_room_is_new(self):
        """D is the restaurant's only device. While it is away, changes 6..10 are POSTed. It
        reconnects without `since` in the URL and sends `register` with since=5 as its very first
        message; a change (11) committed between the upgrade and the server reading that register
        reaches D live first. D must still receive 6..10: `since` promises every change after it.
        """
        server = self.start_server(store="memory")

        async def post(i):
            status, _, body = await server.ahttp("POST", "/api/sync", {
                "restaurant_id": "R", "device_id": "P",
                "changes": [data_change("orders", f"o{i}", "created", change_id=f"p{i}", i=i)]})
            self.assertEqual((status, body["results"][0]["status"]), (200, "applied"), body)
            return body["results"][0]["seq"]

        D = await server.connect("R", "D")
        for i in range(1, 6):
            await post(i)
        await D.wait_count(is_change, 5)
        last_seen = max(m["seq"] for m in D.changes())
        self.assertEqual(last_seen, 5)
        await D.close()
        await server.wait_devices("R", [])  # the room goes away with its last device

        for i in range(6, 11):
            await post(i)
        D = await server.connect("R", "D")
        # A change lands after the upgrade, before D's first message is read by the server.
        self.assertEqual(await post(11), 11)
        await D.send({"type": "register", "device_id": "D", "restaurant_id": "R",
                      "since": last_seen})
        await D.wait_type("registered")
        caught = await D.wait_type("caught_up")
        self.assertEqual(caught["seq"], 11)
        self.assertFalse(D.of_type("reset_required"))
        got = sorted(m["seq"] for m in D.changes())
        self.assertEqual(got, list(range(6, 12)),
                         "changes committed while D was away are missing after register+since")
        await D.close()

    @async_test()
    async def test_since_zero_and_since_head(self):
        server = self.start_server(store="memory")
        status, _, body = await server.ahttp("POST", "/api/sync", {
            "restaurant_id": "R", "device_id": "P",
            "changes": [data_change("tables", f"t{i}", "occupied", change_id=f"p{i}", i=i)
                        for i in range(12)]})
        self.assertEqual(status, 200, body)
        full = await server.connect("R", "D1", since=0)
        await full.wait_type("caught_up")
        self.assertEqual([m["seq"] for m in full.changes()], list(range(1, 13)))
        self.assertEqual([m["table_id"] for m in full.changes()], [f"t{i}" for i in range(12)])
        self.assertEqual(full.messages[-1], {"type": "caught_up", "seq": 12})
        head = await server.connect("R", "D2", since=12)
        await head.wait_type("caught_up")
        self.assertEqual(head.messages, [{"type": "caught_up", "seq": 12}])
        # Both are live now.
        status, _, body = await server.ahttp("POST", "/api/sync", {
            "restaurant_id": "R", "device_id": "P",
            "changes": [data_change("tables", "t99", "cleaning", change_id="p99")]})
        for c in (full, head):
            m = await c.wait_for(lambda m: is_change(m) and m["seq"] == 13)
            self.assertEqual(m["table_id"], "t99")
            await c.sync_point()
            self.assertEqual(len(c.changes()), 13 if c is full else 1)
            await c.close()

    @async_test()
    async def test_rest_changes_paging(self):
        server = self.start_server(store="memory")
        changes = [data_change("menu_items", f"m{i % 5}", "updated", change_id=f"x{i}", i=i)
                   for i in range(53)]
        status, _, body = await server.ahttp("POST", "/api/sync", {
            "restaurant_id": "R", "device_id": "P", "user_id": "u1", "changes": changes})
        self.assertEqual(status, 200, body)
        self.assertEqual([r["seq"] for r in body["results"]], list(range(1, 54)))

        pages, since = [], 0
        while True:
            status, _, page = server.http("GET", f"/api/restaurants/R/changes?since={since}"
                                                 "&limit=10")
            self.assertEqual(status, 200, page)
            self.assertEqual(page["restaurant_id"], "R")
            self.assertEqual(page["seq"], 53)
            pages.append(page)
            if not page["has_more"]:
                break
            since = page["changes"][-1]["seq"]
        self.assertEqual([len(p["changes"]) for p in pages], [10, 10, 10, 10, 10, 3])
        entries = [e for p in pages for e in p["changes"]]
        self.assertEqual([e["seq"] for e in entries], list(range(1, 54)))
        self.assertEqual([e["change_id"] for e in entries], [f"x{i}" for i in range(53)])
        e = entries[7]
        self.assertEqual((e["type"], e["data_type"], e["action"], e["device_id"], e["user_id"]),
                         ("data_change", "menu_items", "updated", "P", "u1"))
        self.assertEqual(e["data"], {"id": "m2", "i": 7})
        self.assertRegex(e["timestamp"], r"Z$")

        status, _, page = server.http("GET", "/api/restaurants/R/changes?since=50&limit=10")
        self.assertEqual(([c["seq"] for c in page["changes"]], page["has_more"]),
                         ([51, 52, 53], False))
        status, _, page = server.http("GET", "/api/restaurants/R/changes?since=53")
        self.assertEqual((status, page["changes"], page["has_more"]), (200, [], False))
        status, _, page = server.http("GET", "/api/restaurants/R/changes")  # since=0, limit 100
        self.assertEqual((status, len(page["changes"]), page["has_more"]), (200, 53, False))
        status, _, page = server.http("GET", "/api/restaurants/R/changes?since=0&limit=1000")
        self.assertEqual(len(page["changes"]), 53)
        for bad in ("limit=0", "limit=1001", "limit=x", "since=-1", "since=abc", "since="):
            status, _, err = server.http("GET", f"/api/restaurants/R/changes?{bad}")
            self.assertEqual(status, 400, bad)
            self.assertEqual(err["status"], "error")
            self.assertEqual(err["code"], "invalid_field", bad)

    @async_test()
    async def test_reset_required_when_history_pruned_or_since_ahead(self):
        server = self.start_server(extra_args=["--retain-changes", "10"])
        writer = await server.connect("R", "W")
        acks = await writer.stream(
            [data_change("inventory", f"i{i % 3}", "stock_changed", change_id=f"s{i}",
                         current_stock=i) for i in range(100)], window=20)
        self.assertEqual([a["seq"] for a in acks], list(range(1, 101)))

        old = await server.connect("R", "D1", since=1)
        reset = await old.wait_type("reset_required")
        self.assertEqual(reset["seq"], 100)
        self.assertIsInstance(reset["message"], str)
        caught = await old.wait_type("caught_up")
        self.assertEqual(caught["seq"], 100)
        self.assertEqual(old.changes(), [])  # nothing partial is replayed

        ahead = await server.connect("R", "D2", since=500)
        reset = await ahead.wait_type("reset_required")
        self.assertEqual(reset["seq"], 100)
        await ahead.wait_type("caught_up")
        self.assertEqual(ahead.changes(), [])

        via_register = await server.connect("R", "D3")
        await via_register.send({"type": "register", "since": 0})
        reset = await via_register.wait_type("reset_required")
        self.assertEqual(reset["seq"], 100)

        # "keep at least 10": the last 10 changes are still there for a device 10 behind.
        recent = await server.connect("R", "D4", since=90)
        await recent.wait_type("caught_up")
        self.assertEqual([m["seq"] for m in recent.changes()], list(range(91, 101)))
        self.assertEqual(recent.of_type("reset_required"), [])

        for since in (1, 89, 101, 1000):
            status, _, body = server.http("GET", f"/api/restaurants/R/changes?since={since}")
            self.assertEqual(status, 410, (since, body))
            self.assertEqual(body["code"], "reset_required")
            self.assertEqual(body["status"], "error")
            self.assertEqual(body["seq"], 100)
        status, _, body = server.http("GET", "/api/restaurants/R/changes?since=90")
        self.assertEqual(status, 200)
        self.assertEqual([c["seq"] for c in body["changes"]], list(range(91, 101)))

        # After a reset the devices are live and receive new changes.
        await writer.stream([data_change("inventory", "i0", "stock_changed", change_id="new",
                                         current_stock=-1)])
        for c in (old, ahead, via_register, recent):
            m = await c.wait_for(lambda m: is_change(m) and m["seq"] == 101)
            self.assertEqual(m["change_id"], "new")
            expected = list(range(91, 102)) if c is recent else [101]
            self.assertEqual([m["seq"] for m in c.changes()], expected)
        # The snapshot a reset device reloads holds the latest state.
        _, _, snap = server.http("GET", "/api/restaurants/R/data")
        stock = {r["id"]: r["current_stock"] for r in snap["data"]["inventory"]}
        self.assertEqual(stock, {"i0": -1, "i1": 97, "i2": 98})
        for c in (writer, old, ahead, via_register, recent):
            await c.close()


if __name__ == "__main__":
    unittest.main()
