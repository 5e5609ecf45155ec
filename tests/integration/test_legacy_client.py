"""Today's app, unchanged, against possync: the exact legacy message sequences.

Every local change of the app reaches the server three times (typed update, data_change twin,
POST /api/sync resend); each other device must see it once, as the typed update it understands.
"""

import asyncio
import re
import unittest

from harness import (DATA_TYPES, LegacyDevice, ServerTestCase, async_test, is_change,
                     record_id_of)

ISO_UTC_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class LegacyClientTest(ServerTestCase):

    def assert_iso(self, value):
        self.assertIsInstance(value, str)
        self.assertRegex(value, ISO_UTC_MS)

    def check_sender_acks(self, device, changes):
        """Each legacy change gives two acks, in order: the typed update `applied` (server change
        id), then its twin `duplicate` with the same seq. Returns {twin change_id: seq}."""
        acks = device.client.acks()
        self.assertEqual(len(acks), 2 * len(changes), f"acks of {device.device}: {acks}")
        seqs = {}
        for i, change in enumerate(changes):
            typed_ack, twin_ack = acks[2 * i], acks[2 * i + 1]
            self.assertEqual(typed_ack["status"], "applied", typed_ack)
            self.assertIsInstance(typed_ack["seq"], int)
            self.assertTrue(typed_ack["change_id"].startswith("srv-"), typed_ack)
            self.assertEqual(twin_ack["change_id"], change.change_id)
            self.assertEqual(twin_ack["status"], "duplicate", twin_ack)
            self.assertEqual(twin_ack["seq"], typed_ack["seq"])
            change.seq = typed_ack["seq"]
            change.server_change_id = typed_ack["change_id"]
            seqs[change.change_id] = typed_ack["seq"]
        return seqs

    @async_test()
    async def test_three_devices_each_change_exactly_once_as_typed_update(self):
        server = self.start_server()
        users = {"A": "staff-a", "B": "staff-b", "C": None}
        devices = {d: LegacyDevice(server, "R1", d, user_id=u) for d, u in users.items()}
        for dev in devices.values():
            reg = await dev.open()
            self.assertEqual(reg["seq"], 0)
        A, B, C = devices["A"], devices["B"], devices["C"]

        plan = [
            (A, "orders", "o-1", "created",
             {"order_number": "1001", "status": "open", "type": "dine_in", "total_amount": 10.5,
              "items_count": 2, "updated_at": "2024-05-01T12:00:00.000"}),
            (B, "menu_items", "m-1", "updated",
             {"name": "Soup", "price": 4.25, "category_id": "c-1", "is_available": True}),
            (C, "inventory", "i-1", "stock_changed",
             {"name": "Flour", "current_stock": 7, "min_stock": 2, "category": "dry"}),
            (A, "orders", "o-1", "status_changed",
             {"status": "preparing", "updated_at": "2024-05-01T12:01:00.000"}),
            (B, "tables", "t-5", "occupied", {"status": "occupied", "guests": 4}),
            (C, "printers", "p-1", "configured", {"name": "Kitchen", "ip": "10.0.0.9"}),
            (A, "orders", "o-1", "completed", {"status": "completed"}),
        ]
        sent = {d: [] for d in devices}
        for dev, data_type, rid, action, data in plan:
            change = await dev.broadcast(data_type, rid, action, data)
            sent[dev.device].append(change)
            # The sender's acks show where the change landed before the next one is made.
            await dev.client.wait_count(lambda m: m.get("type") == "ack",
                                        2 * len(sent[dev.device]), what="acks")
        ack_seqs = {}
        for name, dev in devices.items():
            ack_seqs.update(self.check_sender_acks(dev, sent[name]))
        all_changes = [c for name in devices for c in sent[name]]
        self.assertEqual(sorted(c.seq for c in all_changes), list(range(1, len(plan) + 1)))

        # The app's periodic POST of the pending list: every change is already known.
        for name, dev in devices.items():
            pending = list(dev.pending)
            status, headers, body = await dev.post_pending()
            self.assertEqual(status, 200, body)
            self.assertEqual(headers["content-type"], "application/json")
            self.assertEqual(body["status"], "success")
            self.assertEqual(body["synced_changes"], len(pending))
            self.assert_iso(body["timestamp"])
            self.assertEqual(
                [(r["change_id"], r["status"], r["seq"]) for r in body["results"]],
                [(p["change_id"], "duplicate", ack_seqs[p["change_id"]]) for p in pending])
            update = await dev.client.wait_type("sync_update")
            self.assertEqual(update["restaurant_id"], "R1")
            self.assertEqual(update["changes"], body["results"])
            self.assertEqual(dev.pending, [])

        # A sentinel from each device: once every device has every other device's sentinel, all
        # earlier deliveries have arrived (each connection gets changes in seq order).
        sentinels = {}
        for name, dev in devices.items():
            sentinels[name] = await dev.broadcast("tables", f"sentinel-{name}", "available",
                                                  {"status": "available"})
        for name, dev in devices.items():
            for other in devices:
                if other != name:
                    await dev.client.wait_for(
                        lambda m, o=other: is_change(m) and m.get("table_id") == f"sentinel-{o}",
                        what=f"sentinel of {other}")

        for name, dev in devices.items():
            received = [m for m in dev.client.changes()
                        if not str(m.get("table_id", "")).startswith("sentinel-")]
            expected = [c for other in devices if other != name for c in sent[other]]
            expected.sort(key=lambda c: c.seq)
            # exactly once each, in seq order, nothing of its own
            self.assertEqual([m["seq"] for m in received], [c.seq for c in expected],
                             f"{name} received {received}")
            for m, c in zip(received, expected):
                typed_type, id_field = DATA_TYPES[c.data_type]
                self.assertEqual(m["type"], typed_type, m)  # the typed update, not data_change
                self.assertEqual(m[id_field], c.record_id)
                self.assertEqual(m["action"], c.action)
                self.assertEqual(m["data"], c.typed["data"])
                self.assertEqual(m["data_type"], c.data_type)
                self.assertEqual(m["change_id"], c.server_change_id)
                self.assertEqual(m["device_id"], c.typed["device_id"])
                self.assertEqual(m["restaurant_id"], "R1")
                self.assertEqual(m["user_id"], users[c.typed["device_id"]])  # null: no user
                self.assert_iso(m["timestamp"])
            self.assertFalse([m for m in dev.client.messages if m.get("type") == "data_change"])
            self.assertFalse([m for m in dev.client.messages if m.get("type") == "error"])
            # exactly one sync_update: the answer to its own POST
            self.assertEqual(len(dev.client.of_type("sync_update")), 1)

        # The log holds each change once: 7 + 3 sentinels, seqs 1..10.
        log = server.all_changes("R1")
        self.assertEqual([e["seq"] for e in log], list(range(1, len(plan) + 4)))
        self.assertEqual(len({e["change_id"] for e in log}), len(log))

        # The merged state: o-1 went created -> status_changed -> completed.
        status, _, snap = server.http("GET", "/api/restaurants/R1/data")
        self.assertEqual(status, 200)
        self.assertEqual(snap["restaurant_id"], "R1")
        self.assertEqual(set(snap["data"]), set(DATA_TYPES))
        self.assertEqual(snap["seq"], len(plan) + 3)
        orders = snap["data"]["orders"]
        self.assertEqual(len(orders), 1)
        o = orders[0]
        last_order_seq = max(c.seq for c in sent["A"] if c.record_id == "o-1")
        self.assertEqual(o["id"], "o-1")
        self.assertEqual(o["order_number"], "1001")
        self.assertEqual(o["items_count"], 2)
        self.assertEqual(o["total_amount"], 10.5)
        self.assertEqual(o["status"], "completed")
        self.assertEqual(o["version"], last_order_seq)
        self.assert_iso(o["updated_at"])  # the server's commit time
        menu = snap["data"]["menu_items"]
        self.assertEqual([(r["id"], r["name"], r["price"], r["is_available"]) for r in menu],
                         [("m-1", "Soup", 4.25, True)])
        inv = snap["data"]["inventory"]
        self.assertEqual([(r["id"], r["current_stock"]) for r in inv], [("i-1", 7)])
        self.assertEqual(sorted(r["id"] for r in snap["data"]["tables"]),
                         ["sentinel-A", "sentinel-B", "sentinel-C", "t-5"])
        self.assertEqual([r["id"] for r in snap["data"]["printers"]], ["p-1"])
        self.assertEqual(snap["data"]["users"], [])

        for dev in devices.values():
            await dev.close()

    @async_test()
    async def test_every_action_of_the_app_changes_state(self):
        """Every action the app uses changes the stored state (the old server ignored all but
        created/updated/deleted): a JSON Merge Patch, or a deletion for deleted / removed /
        item_removed; a later change recreates a deleted record from scratch."""
        server = self.start_server()
        A = LegacyDevice(server, "R1", "A", user_id="staff-a")
        B = LegacyDevice(server, "R1", "B", user_id="staff-b")
        await A.open()
        await B.open()
        script = [
            ("orders", "o-1", "created", {"order_number": "7", "status": "open", "note": "window",
                                          "items": [1, 2], "meta": {"a": 1, "b": 2}}),
            ("orders", "o-1", "updated", {"items": [3], "meta": {"b": None, "c": 3}}),
            ("orders", "o-1", "status_changed", {"status": "preparing", "note": None}),
            ("orders", "o-1", "completed", {"status": "completed"}),
            ("menu_items", "m-1", "created", {"name": "Soup", "price": 4, "is_available": True}),
            ("menu_items", "m-1", "availability_changed", {"is_available": False}),
            ("menu_items", "m-1", "deleted", {}),
            ("menu_items", "m-2", "created", {"name": "Tea", "price": 2}),
            ("menu_items", "m-2", "deleted", {}),
            ("menu_items", "m-2", "updated", {"price": 3}),  # recreated from scratch
            ("menu_items", "m-3", "deleted", {}),  # never existed: nothing to delete
            ("inventory", "i-1", "item_added", {"name": "Flour", "current_stock": 10}),
            ("inventory", "i-1", "stock_changed", {"current_stock": 2}),
            ("inventory", "i-1", "low_stock_alert", {"alert": True}),
            ("inventory", "i-2", "item_added", {"name": "Salt"}),
            ("inventory", "i-2", "item_removed", {}),
            ("tables", "t-1", "occupied", {"status": "occupied", "guests": 2}),
            ("tables", "t-1", "cleaning", {"status": "cleaning", "guests": None}),
            ("tables", "t-1", "reserved", {"status": "reserved"}),
            ("tables", "t-1", "available", {"status": "available"}),
            ("users", "u-1", "created", {"name": "Ann", "role": "server"}),
            ("users", "u-1", "role_changed", {"role": "manager"}),
            ("users", "u-2", "created", {"name": "Bob"}),
            ("users", "u-2", "deleted", {}),
            ("printers", "p-1", "added", {"name": "Kitchen"}),
            ("printers", "p-1", "configured", {"ip": "10.0.0.5"}),
            ("printers", "p-1", "assignment_changed", {"station": "grill"}),
            ("printers", "p-2", "added", {"name": "Bar"}),
            ("printers", "p-2", "removed", {}),
        ]
        model = {dt: {} for dt in DATA_TYPES}
        last_seq = {}
        for i, (data_type, rid, action, data) in enumerate(script):
            if data_type == "users":
                data = {"id": rid, **data}  # the user's id in data: see the user_update test
            await A.broadcast(data_type, rid, action, data)
            acks = await A.client.wait_count(lambda m: m.get("type") == "ack", 2 * (i + 1),
                                             what="acks")
            self.assertEqual([a["status"] for a in acks[-2:]], ["applied", "duplicate"])
            self.assertEqual(acks[-1]["seq"], i + 1)
            records = model[data_type]
            if action in ("deleted", "removed", "item_removed"):
                records.pop(rid, None)
            else:
                records[rid] = merge_patch(records.get(rid, {}), data)
                last_seq[(data_type, rid)] = i + 1

        got = await B.client.wait_count(is_change, len(script))
        self.assertEqual([(m["type"], record_id_of(m), m["action"]) for m in got],
                         [(DATA_TYPES[dt][0], rid, action) for dt, rid, action, _ in script])
        _, _, snap = server.http("GET", "/api/restaurants/R1/data")
        self.assertEqual(snap["seq"], len(script))
        for data_type, records in model.items():
            stored = {r["id"]: r for r in snap["data"][data_type]}
            self.assertEqual(set(stored), set(records), data_type)
            for rid, expected in records.items():
                r = dict(stored[rid])
                self.assertEqual(r.pop("version"), last_seq[(data_type, rid)], rid)
                self.assert_iso(r.pop("updated_at"))
                self.assertEqual(r, {**expected, "id": rid}, rid)
        self.assertEqual(model["orders"]["o-1"], {"order_number": "7", "status": "completed",
                                                 "items": [3], "meta": {"a": 1, "c": 3}})
        self.assertEqual(model["menu_items"], {"m-2": {"price": 3}})
        # Deletions stay in the log.
        log = server.all_changes("R1")
        self.assertEqual([(e["data_type"], e["data"]["id"], e["action"]) for e in log],
                         [(dt, rid, action) for dt, rid, action, _ in script])
        await A.close()
        await B.close()

    @async_test()
    async def test_register_heartbeat_user_changed_and_status(self):
        server = self.start_server()
        A = LegacyDevice(server, "R1", "A", user_id="staff-1")
        B = LegacyDevice(server, "R1", "B", user_id=None)
        reg = await A.open()
        self.assertEqual(reg["type"], "registered")
        self.assertEqual(reg["device_id"], "A")
        self.assertEqual(reg["restaurant_id"], "R1")
        self.assertEqual(reg["seq"], 0)
        self.assert_iso(reg["timestamp"])
        await B.open()

        hb = await A.heartbeat()
        self.assertEqual(hb["device_id"], "A")
        self.assert_iso(hb["timestamp"])

        status, _, health = server.http("GET", "/api/health")
        self.assertEqual(status, 200)
        self.assertEqual(health["status"], "ok")
        self.assertEqual(health["connectedRestaurants"], 1)
        self.assertEqual(health["totalConnections"], 2)
        self.assert_iso(health["timestamp"])

        status, _, st = server.http("GET", "/api/restaurants/R1/status")
        self.assertEqual(status, 200, st)
        self.assertEqual(st["restaurant_id"], "R1")
        self.assertEqual(st["device_count"], 2)
        devs = {d["device_id"]: d for d in st["connected_devices"]}
        self.assertEqual(set(devs), {"A", "B"})
        self.assertEqual(devs["A"]["user_id"], "staff-1")
        self.assertIsNone(devs["B"]["user_id"])
        for d in devs.values():
            self.assert_iso(d["connected_at"])
            self.assert_iso(d["last_seen"])
            self.assertGreaterEqual(d["last_seen"], d["connected_at"])

        # user_changed (after a staff login) is accepted silently and updates the status.
        start = len(A.client.messages)
        await A.user_changed("staff-2")
        await A.heartbeat()
        self.assertEqual([m["type"] for m in A.client.messages[start:]], ["heartbeat_response"])
        status, _, st = server.http("GET", "/api/restaurants/R1/status")
        devs = {d["device_id"]: d for d in st["connected_devices"]}
        self.assertEqual(devs["A"]["user_id"], "staff-2")

        # Changes now carry the new user; `registered` reports the restaurant's head seq.
        await A.broadcast("orders", "o-1", "created", {"status": "open"})
        await A.broadcast("orders", "o-2", "created", {"status": "open"})
        msgs = await B.client.wait_count(is_change, 2)
        self.assertEqual([m["user_id"] for m in msgs], ["staff-2", "staff-2"])
        reg = await B.register()
        self.assertEqual(reg["seq"], 2)
        status, _, st = server.http("GET", "/api/restaurants/R1/status")
        self.assertEqual(st["seq"], 2)

        # A device that leaves disappears from status; the restaurant's data stays.
        await A.close()
        await server.wait_devices("R1", ["B"])
        _, _, st = server.http("GET", "/api/restaurants/R1/status")
        self.assertEqual((st["device_count"], st["connected_devices"][0]["device_id"]), (1, "B"))
        await B.close()
        status, _, snap = server.http("GET", "/api/restaurants/R1/data")
        self.assertEqual(status, 200)
        self.assertEqual(sorted(r["id"] for r in snap["data"]["orders"]), ["o-1", "o-2"])

    @async_test()
    async def test_user_update_record_id_comes_from_twin(self):
        """user_update: `user_id` carries the sender's user id (the app's map literal overwrites
        the record id), data has no id; the data_change twin has data.id = the real user id."""
        server = self.start_server()
        A = LegacyDevice(server, "R1", "A", user_id="staff-1")
        N = LegacyDevice(server, "R1", "N", user_id=None)  # nobody logged in: user_id is null
        B = LegacyDevice(server, "R1", "B", user_id="staff-9")
        for d in (A, N, B):
            await d.open()

        c1 = await A.broadcast("users", "user-42", "created", {"name": "Ann", "role": "server"})
        self.assertEqual(c1.typed["user_id"], "staff-1")
        self.assertNotIn("id", c1.typed["data"])
        c2 = await N.broadcast("users", "user-77", "role_changed", {"role": "manager"})
        self.assertIsNone(c2.typed["user_id"])
        # A later change from each sender: any typed update still held back would be flushed
        # (and applied) before it, so the sentinel proves nothing else is coming.
        s1 = await A.broadcast("tables", "t-1", "occupied", {"status": "occupied"})
        await N.broadcast("tables", "t-2", "occupied", {"status": "occupied"})

        for dev, change in ((A, c1), (N, c2)):
            await dev.client.wait_count(lambda m: m.get("type") == "ack", 3, what="acks")
            acks = dev.client.acks()
            # one ack for the user change (its twin's change id, applied), two for the sentinel
            self.assertEqual(len(acks), 3, acks)
            self.assertEqual(acks[0]["change_id"], change.change_id)
            self.assertEqual(acks[0]["status"], "applied")
            change.seq = acks[0]["seq"]
            self.assertEqual([a["status"] for a in acks[1:]], ["applied", "duplicate"])
            self.assertFalse(dev.client.of_type("error"))

        await B.client.wait_for(lambda m: is_change(m) and m.get("table_id") == "t-1")
        await B.client.wait_for(lambda m: is_change(m) and m.get("table_id") == "t-2")
        user_msgs = [m for m in B.client.changes() if m["type"] == "user_update"]
        self.assertEqual(len(user_msgs), 2, B.client.changes())
        by_id = {m["user_id"]: m for m in user_msgs}
        self.assertEqual(set(by_id), {"user-42", "user-77"})
        self.assertEqual(by_id["user-42"]["data"]["name"], "Ann")
        self.assertEqual(by_id["user-42"]["device_id"], "A")
        self.assertEqual(by_id["user-42"]["action"], "created")
        self.assertEqual(by_id["user-42"]["seq"], c1.seq)
        self.assertEqual(by_id["user-77"]["action"], "role_changed")
        self.assertEqual(by_id["user-77"]["seq"], c2.seq)
        # A received N's user change once, too.
        await A.client.wait_for(lambda m: is_change(m) and m.get("table_id") == "t-2")
        self.assertEqual([m["user_id"] for m in A.client.changes() if m["type"] == "user_update"],
                         ["user-77"])

        # The POST resend is a duplicate of the same seq.
        status, _, body = await A.post_pending()
        self.assertEqual(status, 200)
        self.assertEqual([(r["change_id"], r["status"]) for r in body["results"]],
                         [(c1.change_id, "duplicate"), (s1.change_id, "duplicate")])
        self.assertEqual(body["results"][0]["seq"], c1.seq)

        log = server.all_changes("R1")
        self.assertEqual(len(log), 4, log)
        user_log = [e for e in log if e["data_type"] == "users"]
        self.assertEqual(sorted(e["data"]["id"] for e in user_log), ["user-42", "user-77"])
        status, _, snap = server.http("GET", "/api/restaurants/R1/data")
        users = {u["id"]: u for u in snap["data"]["users"]}
        self.assertEqual(set(users), {"user-42", "user-77"})  # no record for staff-1
        self.assertEqual(users["user-42"]["role"], "server")
        self.assertEqual(users["user-77"]["role"], "manager")
        for d in (A, N, B):
            await d.close()

    @async_test()
    async def test_device_without_websocket_syncs_by_post_and_resend_is_deduplicated(self):
        """The app queues every change; with no WebSocket the typed update and twin are never
        sent, and the 10 s POST carries them. A POST whose answer was lost is sent again."""
        server = self.start_server()
        offline = LegacyDevice(server, "R1", "A", user_id="staff-a")  # never opens its socket
        B = LegacyDevice(server, "R1", "B", user_id="staff-b")
        await B.open()
        made = [offline.make_change("orders", "o-1", "created", {"status": "open"}),
                offline.make_change("inventory", "i-1", "stock_changed", {"current_stock": 3}),
                offline.make_change("orders", "o-1", "completed", {"status": "completed"})]
        offline.pending = [c.twin for c in made]
        body = offline.sync_body()
        status, _, first = await offline.post_pending()
        self.assertEqual(status, 200, first)
        self.assertEqual([(r["change_id"], r["status"], r["seq"]) for r in first["results"]],
                         [(c.change_id, "applied", i + 1) for i, c in enumerate(made)])
        self.assertEqual(first["synced_changes"], 3)
        # The same batch again (the app re-queues it when it did not see the 200).
        status, _, again = await server.ahttp("POST", "/api/sync", body)
        self.assertEqual(status, 200)
        self.assertEqual([(r["change_id"], r["status"], r["seq"]) for r in again["results"]],
                         [(c.change_id, "duplicate", i + 1) for i, c in enumerate(made)])
        # B got each change once, as typed updates carrying the client's change ids.
        await B.broadcast("tables", "t-1", "occupied", {"status": "occupied"})
        await B.client.wait_count(lambda m: m.get("type") == "ack", 2, what="acks")
        await B.heartbeat()
        got = B.client.changes()
        self.assertEqual([(m["type"], m["seq"], m["change_id"]) for m in got],
                         [("order_update", 1, made[0].change_id),
                          ("inventory_update", 2, made[1].change_id),
                          ("order_update", 3, made[2].change_id)])
        self.assertEqual(got[2]["data"], {"id": "o-1", "status": "completed"})
        self.assertEqual({m["device_id"] for m in got}, {"A"})
        self.assertEqual([c["seq"] for c in server.all_changes("R1")], [1, 2, 3, 4])
        await B.close()

    @async_test()
    async def test_many_devices_many_restaurants(self):
        """Forty devices in four restaurants all write at once: each device receives exactly the
        other devices' changes of its own restaurant, once, in seq order."""
        server = self.start_server()
        restaurants = [f"rest-{r}" for r in range(4)]
        devices = {(r, d): LegacyDevice(server, r, f"pos-{d}", user_id=f"u{d}")
                   for r in restaurants for d in range(10)}
        await asyncio.gather(*(dev.open() for dev in devices.values()))

        async def work(dev):
            for k in range(3):
                await dev.broadcast("orders", f"{dev.device}-o{k}", "created", {"k": k})
            await dev.client.wait_count(lambda m: m.get("type") == "ack", 6, what="acks")

        await asyncio.gather(*(work(dev) for dev in devices.values()))
        for r in restaurants:
            log = server.all_changes(r)
            self.assertEqual([e["seq"] for e in log], list(range(1, 31)))
            by_seq = {e["seq"]: e for e in log}
            for d in range(10):
                dev = devices[(r, d)]
                got = await dev.client.wait_count(is_change, 27, what="changes")
                await dev.heartbeat()
                got = dev.client.changes()
                seqs = [m["seq"] for m in got]
                self.assertEqual(seqs, sorted(set(seqs)), f"{r}/{dev.device}")
                self.assertEqual(len(seqs), 27)
                self.assertTrue(all(m["restaurant_id"] == r and m["device_id"] != dev.device
                                    for m in got))
                self.assertEqual({by_seq[s]["device_id"] for s in seqs},
                                 {f"pos-{x}" for x in range(10)} - {dev.device})
        await asyncio.gather(*(dev.close() for dev in devices.values()))

    @async_test()
    async def test_tenant_isolation(self):
        server = self.start_server()
        A = LegacyDevice(server, "R", "A", user_id="ua")
        B = LegacyDevice(server, "R", "B", user_id="ub")
        X = LegacyDevice(server, "R2", "X", user_id="ux")
        Y = LegacyDevice(server, "R2", "Y", user_id="uy")
        for d in (A, B, X, Y):
            await d.open()

        await A.broadcast("orders", "o-1", "created", {"status": "open"})
        await A.broadcast("menu_items", "m-1", "updated", {"price": 3})
        # Ids in a message body never redirect it: the connection's restaurant and device rule.
        await A.client.send({"type": "data_change", "data_type": "orders", "action": "updated",
                             "data": {"id": "o-2", "status": "hijack"}, "restaurant_id": "R2",
                             "device_id": "Y", "change_id": "redirect-ws"})
        await A.client.send({"type": "order_update", "order_id": "o-3", "action": "created",
                             "data": {"status": "hijack"}, "restaurant_id": "R2",
                             "device_id": "Y", "change_id": "redirect-ws-typed"})
        self.assertEqual((await A.client.wait_ack("redirect-ws"))["status"], "applied")
        self.assertEqual((await A.client.wait_ack("redirect-ws-typed"))["status"], "applied")
        status, _, body = await server.ahttp("POST", "/api/sync", {
            "restaurant_id": "R", "device_id": "A",
            "changes": [{"type": "data_change", "data_type": "orders", "action": "updated",
                         "data": {"id": "o-4", "status": "hijack"}, "restaurant_id": "R2",
                         "device_id": "X", "change_id": "redirect-rest"}]})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["results"][0]["status"], "applied")
        msgs = await B.client.wait_count(is_change, 5)
        self.assertEqual([record_id_of(m) for m in msgs], ["o-1", "m-1", "o-2", "o-3", "o-4"])
        self.assertTrue(all(m["device_id"] == "A" and m["restaurant_id"] == "R" for m in msgs))

        # R2's marker: once X has it, anything R would have leaked to R2 was delivered already.
        await Y.broadcast("tables", "r2-marker", "available", {"status": "available"})
        await X.client.wait_for(lambda m: is_change(m) and m.get("table_id") == "r2-marker")
        self.assertEqual([record_id_of(m) for m in X.client.changes()], ["r2-marker"])
        self.assertEqual(Y.client.changes(), [])
        self.assertEqual([m["restaurant_id"] for m in X.client.changes()], ["R2"])
        # A never gets its own changes back, whatever device_id the body claimed.
        await A.heartbeat()
        self.assertEqual(A.client.changes(), [])

        # Change ids are per restaurant: R2 may use one that R already used.
        status, _, body = await server.ahttp("POST", "/api/sync", {
            "restaurant_id": "R2", "device_id": "X",
            "changes": [{"type": "data_change", "data_type": "orders", "action": "created",
                         "data": {"id": "r2-order"}, "change_id": "redirect-ws"}]})
        self.assertEqual((body["results"][0]["status"], body["results"][0]["seq"]),
                         ("applied", 2))
        await Y.client.wait_for(lambda m: is_change(m) and m["change_id"] == "redirect-ws")
        await B.heartbeat()
        self.assertEqual(len(B.client.changes()), 5)

        r_log = server.all_changes("R")
        self.assertEqual([record_id_of_log(e) for e in r_log], ["o-1", "m-1", "o-2", "o-3", "o-4"])
        self.assertEqual({e["device_id"] for e in r_log}, {"A"})
        r2_log = server.all_changes("R2")
        self.assertEqual([record_id_of_log(e) for e in r2_log], ["r2-marker", "r2-order"])
        _, _, r2 = server.http("GET", "/api/restaurants/R2/data")
        self.assertEqual([o["id"] for o in r2["data"]["orders"]], ["r2-order"])
        _, _, st = server.http("GET", "/api/restaurants/R2/status")
        self.assertEqual(sorted(d["device_id"] for d in st["connected_devices"]), ["X", "Y"])
        for d in (A, B, X, Y):
            await d.close()

    @async_test()
    async def test_seed_readme_post_example(self):
        server = self.start_server()
        # The README's WebSocket URL (user_id in the query) on the old base path "/".
        poster = await server.connect("restaurant_123", "pos_device_001", path="/")
        other = await server.connect("restaurant_123", "pos_device_002", path="/",
                                     user_id="user_456")
        readme_body = {
            "restaurant_id": "restaurant_123",
            "device_id": "pos_device_001",
            "changes": [{
                "type": "data_change",
                "data_type": "orders",
                "action": "updated",
                "data": {"id": "order_456", "status": "completed", "total_amount": 25.50},
            }],
        }
        status, headers, body = await server.ahttp("POST", "/api/sync", readme_body)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["access-control-allow-origin"], "*")
        self.assertEqual(body["status"], "success")
        self.assertEqual(body["synced_changes"], 1)
        self.assertEqual(len(body["results"]), 1)
        result = body["results"][0]
        self.assertEqual((result["status"], result["seq"]), ("applied", 1))

        m = await other.wait_for(is_change)
        self.assertEqual(m["type"], "order_update")
        self.assertEqual(m["order_id"], "order_456")
        self.assertEqual(m["action"], "updated")
        self.assertEqual(m["data"], {"id": "order_456", "status": "completed",
                                     "total_amount": 25.5})
        self.assertEqual(m["device_id"], "pos_device_001")
        self.assertEqual(m["restaurant_id"], "restaurant_123")
        self.assertEqual(m["seq"], 1)
        self.assertEqual(m["change_id"], result["change_id"])

        update = await poster.wait_type("sync_update")
        self.assertEqual(update["restaurant_id"], "restaurant_123")
        self.assertEqual(update["changes"], body["results"])
        await poster.sync_point()
        self.assertEqual(poster.changes(), [])  # its own change is not echoed as an update
        await other.sync_point()
        self.assertEqual(other.of_type("sync_update"), [])
        self.assertEqual(len(other.changes()), 1)

        status, _, snap = server.http("GET", "/api/restaurants/restaurant_123/data")
        self.assertEqual(status, 200)
        (order,) = snap["data"]["orders"]
        self.assertEqual((order["id"], order["status"], order["total_amount"], order["version"]),
                         ("order_456", "completed", 25.5, 1))
        self.assert_iso(order["updated_at"])
        (entry,) = server.all_changes("restaurant_123")
        self.assertEqual((entry["device_id"], entry["user_id"], entry["change_id"]),
                         ("pos_device_001", None, result["change_id"]))
        _, _, st = server.http("GET", "/api/restaurants/restaurant_123/status")
        devs = {d["device_id"]: d["user_id"] for d in st["connected_devices"]}
        self.assertEqual(devs, {"pos_device_001": None, "pos_device_002": "user_456"})
        await poster.close()
        await other.close()


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def record_id_of_log(entry):
    return entry["data"]["id"]


if __name__ == "__main__":
    unittest.main()
