"""The restaurant rules (docs/protocol.md, "Restaurant rules") against the real server, over
WebSocket and REST: stock adjustments and the alerts the server commits (received by every
device, the sender included, as today's app expects them), order lines from two devices, the order
life cycle (invalid_transition, order_closed, a manager's exemption), one party per table
(table_occupied), a kitchen ticket printed once (duplicate with the original seq, reprint),
malformed rule data, a custom --rules-file and an invalid one. A rejection carries `current` and
does not block the changes after it.

The same rules across two nodes on PostgreSQL: test_rules_multinode.py.
"""

import asyncio
import json
import os
import subprocess
import tempfile

from harness import SERVER_BIN, ServerTestCase, async_test, data_change, is_change


def typed(msg_type, id_field, record_id, action, change_id, **data):
    return {"type": msg_type, id_field: record_id, "action": action, "data": data,
            "change_id": change_id}


def adjust(change_id, delta, item="soup", **extra):
    return typed("inventory_update", "item_id", item, "adjust", change_id, delta=delta, **extra)


def order(change_id, record_id, action="updated", **data):
    return typed("order_update", "order_id", record_id, action, change_id, **data)


def line(action, change_id, record_id="o1", **data):
    return typed("order_update", "order_id", record_id, action, change_id, **data)


def table(change_id, action="occupied", record_id="t1", **data):
    return typed("table_update", "table_id", record_id, action, change_id, **data)


def print_job(change_id, ticket, action="print_job", printer="kitchen", **data):
    return typed("printer_update", "printer_id", printer, action, change_id, ticket_id=ticket,
                 **data)


def rejected(ack, code):
    return (ack["status"], ack["seq"], ack["error"]["code"]) == ("rejected", None, code)


class RulesOverWebSocketTest(ServerTestCase):

    async def devices(self, server, restaurant, roles):
        clients = {}
        for device, role in roles.items():
            clients[device] = await server.connect(restaurant, device,
                                                   token=server.token(restaurant, device, role))
        for c in clients.values():
            await c.sync_point()
        return clients

    @async_test()
    async def test_stock_adjustments_and_the_alerts_every_device_receives(self):
        server = self.start_server()
        d = await self.devices(server, "R", {"pos-1": "pos", "pos-2": "pos", "kds-1": "kds"})
        pos1, pos2, kds = d["pos-1"], d["pos-2"], d["kds-1"]
        ack = await pos1.request(
            typed("inventory_update", "item_id", "soup", "item_added", "s0", name="Soup",
                  current_stock=6, min_stock=4),
            lambda m: m.get("type") == "ack")
        self.assertEqual(ack["status"], "applied")
        acks = await pos1.stream([adjust("a1", -1), adjust("a2", -1, reason="sale"),
                                  adjust("a3", -1)])
        self.assertEqual([a["seq"] for a in acks], [2, 3, 5])  # 4: the server's alert
        # Every device gets the alert, the sender too: today's app's low_stock_alert.
        for c in (pos1, pos2, kds):
            alert = await c.wait_for(lambda m: is_change(m) and m["action"] == "low_stock_alert")
            self.assertEqual(alert["type"], "inventory_update")
            self.assertEqual(alert["item_id"], "soup")
            self.assertEqual(alert["seq"], 4)
            self.assertEqual(alert["change_id"], "a2:low_stock_alert")
            self.assertEqual(alert["device_id"], "")
            self.assertIsNone(alert["user_id"])
            self.assertEqual(alert["data"], {"name": "Soup", "current_stock": 4, "min_stock": 4})
        # The other devices get the adjustments, with the stock they resulted in.
        got = await pos2.wait_count(lambda m: is_change(m) and m["action"] == "adjust", 3)
        self.assertEqual([(m["data"]["delta"], m["data"]["current_stock"]) for m in got],
                         [(-1, 5), (-1, 4), (-1, 3)])
        self.assertEqual(got[1]["data"]["reason"], "sale")
        # Below zero: a negative_stock alert; a resend of the same change id counts once.
        acks = await pos2.stream([adjust("a4", -5), adjust("a5", 0.5)])
        self.assertEqual([(a["status"], a["seq"]) for a in acks], [("applied", 6), ("applied", 8)])
        again = await pos2.request(adjust("a4", -5), lambda m: m.get("type") == "ack")
        self.assertEqual((again["status"], again["seq"]), ("duplicate", 6))
        neg = await pos1.wait_for(lambda m: is_change(m) and m["action"] == "negative_stock")
        self.assertEqual((neg["seq"], neg["data"]["current_stock"]), (7, -2))
        status, _, snap = await server.ahttp("GET", "/api/restaurants/R/data")
        self.assertEqual(status, 200)
        self.assertEqual(snap["data"]["inventory"][0]["current_stock"], -1.5)
        # Malformed: an error naming the field; kds may not adjust stock.
        err = await pos1.request(adjust("bad", "2"), lambda m: m.get("type") == "error")
        self.assertEqual((err["code"], err["change_id"]), ("invalid_field", "bad"))
        self.assertIn("data.delta", err["message"])
        err = await kds.request(adjust("k1", -1), lambda m: m.get("type") == "error")
        self.assertEqual(err["code"], "forbidden")
        for c in d.values():
            await c.close()

    @async_test()
    async def test_order_lines_and_the_life_cycle(self):
        server = self.start_server()
        d = await self.devices(server, "R", {"pos-1": "pos", "pos-2": "pos", "mgr": "manager",
                                             "kds-1": "kds"})
        pos1, pos2, mgr, kds = d["pos-1"], d["pos-2"], d["mgr"], d["kds-1"]
        await pos1.stream([order("c1", "o1", "created", status="pending", total_amount=9)])
        # Two devices edit different lines of one order at once: both land.
        a = pos1.stream([line("line_added", "l1", line={"line_id": "a", "item": "soup"}),
                         line("line_updated", "l3", line={"line_id": "a", "qty": 2})])
        b = pos2.stream([line("line_added", "l2", line={"line_id": "b", "item": "tea"})])
        for acks in (await a, await b):
            self.assertTrue(all(x["status"] == "applied" for x in acks), acks)
        ack = (await pos2.stream([line("line_updated", "l4", line={"line_id": "zz", "qty": 1})]))[0]
        self.assertTrue(rejected(ack, "line_not_found"), ack)
        self.assertEqual(ack["current"]["id"], "o1")
        self.assertEqual(sorted(x["line_id"] for x in ack["current"]["items"]), ["a", "b"])
        await pos2.stream([line("line_removed", "l5", line_id="b")])
        status, _, snap = await server.ahttp("GET", "/api/restaurants/R/data")
        (o1,) = snap["data"]["orders"]
        self.assertEqual(o1["items"], [{"line_id": "a", "item": "soup", "qty": 2}])

        # The life cycle: the kitchen moves it on and one step back; a step the table does not
        # allow is refused with the current record, and the next change still goes through.
        acks = await kds.stream([order("k1", "o1", "status_changed", status="preparing"),
                                 order("k2", "o1", "status_changed", status="confirmed"),
                                 order("k3", "o1", "status_changed", status="served"),
                                 order("k4", "o1", "status_changed", status="ready"),
                                 order("k5", "o1", "status_changed", status="completed")])
        self.assertEqual([x["status"] for x in acks],
                         ["applied", "applied", "applied", "rejected", "applied"])
        self.assertTrue(rejected(acks[3], "invalid_transition"), acks[3])
        self.assertEqual(acks[3]["current"]["status"], "served")
        self.assertIn("'served' to 'ready'", acks[3]["error"]["message"])
        # Closed: read-only for pos; a refund is a manager's.
        acks = await pos1.stream([order("p1", "o1", note="x"),
                                  line("line_added", "p2", line={"line_id": "c"}),
                                  order("p3", "o1", status="refunded")])
        self.assertTrue(rejected(acks[0], "order_closed"), acks[0])
        self.assertEqual(acks[0]["current"]["status"], "completed")
        self.assertTrue(rejected(acks[1], "order_closed"), acks[1])
        self.assertTrue(rejected(acks[2], "invalid_transition"), acks[2])
        acks = await mgr.stream([order("m1", "o1", note="comped"),
                                 order("m2", "o1", status="refunded")])
        self.assertEqual([x["status"] for x in acks], ["applied", "applied"])
        # The rejected changes reached nobody: pos-2 saw only what was applied.
        await pos2.sync_point()
        seen = [m["change_id"] for m in pos2.changes()]
        for cid in ("k4", "p1", "p2", "p3", "l4"):
            self.assertNotIn(cid, seen)
        self.assertIn("m2", seen)
        for c in d.values():
            await c.close()

    @async_test()
    async def test_one_party_per_table_and_one_print_per_ticket(self):
        server = self.start_server()
        d = await self.devices(server, "R", {"pos-1": "pos", "pos-2": "pos", "printer": "kds"})
        pos1, pos2, printer = d["pos-1"], d["pos-2"], d["printer"]
        await pos1.stream([order("c1", "o1", "created", status="pending"),
                           order("c2", "o2", "created", status="pending"),
                           table("t1", status="occupied", order_id="o1")])
        ack = (await pos2.stream([table("t2", status="occupied", order_id="o2")]))[0]
        self.assertTrue(rejected(ack, "table_occupied"), ack)
        self.assertEqual((ack["current"]["id"], ack["current"]["order_id"]), ("t1", "o1"))
        # Re-seating the same party is fine; once its order is paid the table is free.
        acks = await pos1.stream([table("t3", status="occupied", order_id="o1", guests=3),
                                  order("c3", "o1", "completed", status="completed")])
        self.assertEqual([x["status"] for x in acks], ["applied", "applied"])
        ack = (await pos2.stream([table("t4", status="occupied", order_id="o2")]))[0]
        self.assertEqual(ack["status"], "applied")

        # A ticket sent by two devices (and resent) prints once; a reprint always prints.
        first = (await pos1.stream([print_job("j1", "T-9", lines=["soup"])]))[0]
        self.assertEqual(first["status"], "applied")
        acks = await pos2.stream([print_job("j2", "T-9", lines=["soup"]),
                                  print_job("j2", "T-9", lines=["soup"])])
        self.assertEqual([(x["status"], x["seq"]) for x in acks],
                         [("duplicate", first["seq"])] * 2)
        ack = await printer.request(print_job("r1", "T-9", "reprint"),
                                    lambda m: m.get("type") == "ack")
        self.assertEqual(ack["status"], "applied")
        await pos1.sync_point()
        jobs = await pos1.wait_count(lambda m: is_change(m) and m["type"] == "printer_update", 1)
        self.assertEqual([(m["action"], m["change_id"]) for m in jobs], [("reprint", "r1")])
        await printer.sync_point()
        got = [(m["action"], m["data"]["ticket_id"]) for m in printer.changes()
               if m["type"] == "printer_update"]
        self.assertEqual(got, [("print_job", "T-9")])  # its own reprint is not sent back
        status, _, snap = await server.ahttp("GET", "/api/restaurants/R/data")
        (kitchen,) = snap["data"]["printers"]
        self.assertEqual((kitchen["print_jobs"], kitchen["reprints"]), (1, 1))
        # kds may reprint but not print.
        err = await printer.request(print_job("k1", "T-10"), lambda m: m.get("type") == "error")
        self.assertEqual(err["code"], "forbidden")
        for c in d.values():
            await c.close()

    @async_test()
    async def test_with_auth_off_devices_count_as_admin(self):
        server = self.start_server(auth=False)
        c = await server.connect("R", "legacy-1")
        acks = await c.stream([order("c1", "o1", "completed", status="completed"),
                               order("c2", "o1", note="fixed afterwards"),
                               order("c3", "o1", status="pending")])
        self.assertEqual([x["status"] for x in acks], ["applied", "applied", "rejected"])
        self.assertEqual(acks[2]["error"]["code"], "invalid_transition")
        await c.close()


class RulesOverRestTest(ServerTestCase):

    @async_test()
    async def test_each_rule_code_in_post_sync_results(self):
        server = self.start_server()
        pos = server.token("R", "pos-1", "pos")

        async def post(changes, token=pos):
            status, _, res = await server.ahttp(
                "POST", "/api/sync", {"restaurant_id": "R", "device_id": "pos-1",
                                      "changes": changes}, token=token)
            self.assertEqual(status, 200, res)
            return res["results"]

        res = await post([
            data_change("orders", "o1", "created", change_id="c1", status="served"),
            data_change("orders", "o2", "created", change_id="c2", status="pending"),
            data_change("tables", "t1", "occupied", change_id="c3", status="occupied",
                        order_id="o1"),
            data_change("inventory", "i1", "item_added", change_id="c4", current_stock=2,
                        min_stock=1),
        ])
        self.assertEqual([r["status"] for r in res], ["applied"] * 4)
        res = await post([
            data_change("orders", "o1", "status_changed", change_id="r1", status="pending"),
            data_change("orders", "o1", "line_updated", change_id="r2",
                        line={"line_id": "nope"}),
            data_change("tables", "t1", "occupied", change_id="r3", order_id="o2"),
            data_change("orders", "o1", "completed", change_id="r4", status="completed"),
            data_change("orders", "o1", "updated", change_id="r5", note="late"),
            data_change("printers", "p1", "print_job", change_id="r6", ticket_id="T1"),
            data_change("printers", "p1", "print_job", change_id="r7", ticket_id="T1"),
            data_change("inventory", "i1", "adjust", change_id="r8", delta=-3),
            data_change("inventory", "i1", "adjust", change_id="r9"),
        ])
        codes = [(r["status"], r.get("error", {}).get("code")) for r in res]
        self.assertEqual(codes, [
            ("rejected", "invalid_transition"), ("rejected", "line_not_found"),
            ("rejected", "table_occupied"), ("applied", None), ("rejected", "order_closed"),
            ("applied", None), ("duplicate", None), ("applied", None),
            ("rejected", "missing_field")])
        for r in res[:3] + res[4:5]:
            self.assertIn("current", r)
        self.assertEqual(res[0]["current"]["status"], "served")
        self.assertEqual(res[2]["current"]["order_id"], "o1")
        self.assertEqual(res[4]["current"]["status"], "completed")
        self.assertNotIn("current", res[8])
        self.assertEqual(res[6]["seq"], res[5]["seq"])
        # The adjustment took two alerts along (below the minimum, below zero): seqs in between.
        log = server.all_changes("R")
        self.assertEqual([e["action"] for e in log[-3:]],
                         ["adjust", "low_stock_alert", "negative_stock"])
        self.assertEqual([e["device_id"] for e in log[-3:]], ["pos-1", "", ""])
        self.assertEqual(log[-3]["seq"], res[7]["seq"])
        # The order was freed by completing it: the table takes the other party now.
        res = await post([data_change("tables", "t1", "occupied", change_id="r10",
                                      order_id="o2")])
        self.assertEqual(res[0]["status"], "applied")
        # A manager may change the closed order.
        res = await post([data_change("orders", "o1", "updated", change_id="m1", note="ok")],
                         token=server.token("R", "pos-1", "manager"))
        self.assertEqual(res[0]["status"], "applied")
        # `verify` replays this log (adjustments, alerts, a manager's change of a closed order, a
        # print job) and finds the same records.
        self.assertEqual(await server.aterminate(), 0)
        proc = await asyncio.create_subprocess_exec(
            SERVER_BIN, "verify", "--store", server.store, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        self.assertEqual(proc.returncode, 0, out.decode() + err.decode())


class RulesFileTest(ServerTestCase):

    @async_test()
    async def test_a_custom_rules_file_sets_the_life_cycle(self):
        workdir = tempfile.mkdtemp(prefix="possync-it-")
        path = os.path.join(workdir, "rules.json")
        with open(path, "w") as f:
            json.dump({"orders": {"closed": ["paid"],
                                  "transitions": {"open": ["paid"], "paid": []}}}, f)
        server = self.start_server(workdir=workdir, extra_args=["--rules-file", path])
        c = await server.connect("R", "pos-1", token=server.token("R", "pos-1", "pos"))
        acks = await c.stream([order("c1", "o1", "created", status="open"),
                               order("c2", "o1", status="paid"),
                               order("c3", "o1", status="open"),
                               order("c4", "o1", note="x"),
                               # The default life cycle no longer applies.
                               order("c5", "o2", status="completed"),
                               order("c6", "o2", status="pending")])
        self.assertEqual([(x["status"], x.get("error", {}).get("code")) for x in acks],
                         [("applied", None), ("applied", None), ("rejected", "invalid_transition"),
                          ("rejected", "order_closed"), ("applied", None), ("applied", None)])
        await c.close()

    def test_an_invalid_rules_file_stops_the_server(self):
        with tempfile.TemporaryDirectory() as tmp:
            cases = {
                "not-json.json": ("{", "not valid JSON"),
                "bad-target.json": (json.dumps({"orders": {"transitions": {"a": ["b"]}}}),
                                    "orders.transitions.a[0]"),
                "bad-role.json": (json.dumps({"orders": {"transitions": {
                    "a": [], "b": [{"to": "a", "roles": ["chef"]}]}}}), "chef"),
                "no-such-file.json": (None, "cannot read"),
            }
            for name, (content, named) in cases.items():
                with self.subTest(name):
                    if content is not None:
                        with open(os.path.join(tmp, name), "w") as f:
                            f.write(content)
                    res = subprocess.run([SERVER_BIN, "--store", "memory", "--port", "0",
                                          "--auth", "off", "--rules-file", name],
                                         capture_output=True, text=True, timeout=20,
                                         stdin=subprocess.DEVNULL, cwd=tmp)
                    out = res.stdout + res.stderr
                    self.assertEqual(res.returncode, 2, out)
                    self.assertIn(name, out)
                    self.assertIn(named, out)
