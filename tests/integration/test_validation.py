"""Validation of a change's action and `data` (docs/protocol.md, "Validation of changes"): each
violation is rejected with its own code over WebSocket (an `error`, the connection survives) and in
POST /api/sync (a `rejected` result), and nothing of a rejected change is stored."""

import json
import unittest

from harness import ServerTestCase, async_test, data_change, is_change

# A placeholder replaced by a raw JSON number the json module cannot write (it writes inf as
# `Infinity`, which is not JSON).
HUGE = "@@HUGE@@"


def nested(levels):
    """A value `levels` objects deep: {"n":{"n":...{"n":1}}}."""
    v = 1
    for _ in range(levels):
        v = {"n": v}
    return v


def fields(count):
    return {f"f{i}": i for i in range(count)}


def encode(msg):
    """JSON text of msg, with HUGE replaced by a literal beyond the double range."""
    return json.dumps(msg).replace(json.dumps(HUGE), "1e999")


# (description, change as sent, expected error code); each has a change_id "bad-<n>".
def bad_changes():
    cases = [
        ("unknown action for the type",
         data_change("tables", "t-1", "completed"), "unknown_action"),
        ("made-up action",
         {"type": "order_update", "order_id": "o-1", "action": "exploded", "data": {}},
         "unknown_action"),
        ("data not an object", {"type": "order_update", "order_id": "o-1", "action": "updated",
                                "data": [1, 2]}, "invalid_field"),
        ("data 17 levels deep", data_change("orders", "o-1", deep=nested(16)), "data_too_deep"),
        ("257 fields", data_change("orders", "o-1", **fields(256)), "too_many_fields"),
        ("257 fields nested",
         data_change("orders", "o-1", items=[{}, fields(257)]), "too_many_fields"),
        ("string over 64 KiB", data_change("orders", "o-1", note="x" * 65537), "string_too_long"),
        ("field name over 64 KiB",
         data_change("orders", "o-1", meta={"k" * 65537: 1}), "string_too_long"),
        ("number beyond the double range",
         data_change("orders", "o-1", total_amount=HUGE), "invalid_number"),
        ("huge number nested in an array",
         {"type": "inventory_update", "item_id": "i-1", "action": "stock_changed",
          "data": {"history": [1, {"stock": HUGE}]}}, "invalid_number"),
    ]
    out = []
    for n, (desc, msg, code) in enumerate(cases):
        out.append((desc, {**msg, "change_id": f"bad-{n}"}, code))
    return out


# Changes at the limits, all of which are accepted.
def edge_changes():
    return [
        data_change("orders", "o-1", "created", change_id="ok-deep", deep=nested(15)),
        data_change("orders", "o-2", "upsert", change_id="ok-fields", **fields(255)),
        data_change("orders", "o-3", "completed", change_id="ok-string", note="x" * 65536),
        data_change("tables", "t-1", "upsert", change_id="ok-upsert"),
        data_change("printers", "p-1", "assignment_changed", change_id="ok-printer",
                    total=1e308),
    ]


class ValidationTest(ServerTestCase):

    @async_test()
    async def test_websocket_violations_get_specific_errors_and_the_connection_survives(self):
        server = self.start_server()
        c = await server.connect("R", "d1")
        watcher = await server.connect("R", "watcher")
        for desc, msg, code in bad_changes():
            with self.subTest(desc):
                start = len(c.messages)
                await c.send(encode(msg))
                err = await c.wait_type("error", start)
                self.assertEqual(err["code"], code, f"{desc}: {err}")
                self.assertEqual(err.get("change_id"), msg["change_id"])
                self.assertTrue(err["message"])
                self.assertFalse(c.closed)
                await c.sync_point()
                self.assertEqual([m["type"] for m in c.messages[start:]],
                                 ["error", "heartbeat_response"], desc)
                # The same connection still commits a valid change.
                ack = await c.request(
                    data_change("orders", "o-good", "updated", change_id=f"good-{desc}",
                                status="open"),
                    lambda m: m.get("type") == "ack")
                self.assertEqual(ack["status"], "applied", ack)

        # Messages name the offending field.
        start = len(c.messages)
        await c.send(encode({**data_change("orders", "o-1", items=[{}, {"x": HUGE}]),
                             "change_id": "named"}))
        err = await c.wait_type("error", start)
        self.assertEqual(err["code"], "invalid_number")
        self.assertIn("data.items[1].x", err["message"])

        acks = await c.stream(edge_changes())
        self.assertEqual([a["status"] for a in acks], ["applied"] * len(acks))

        # Only the valid changes were stored and forwarded.
        expected = [f"good-{desc}" for desc, _, _ in bad_changes()] + \
            [m["change_id"] for m in edge_changes()]
        log = server.all_changes("R")
        self.assertEqual([e["change_id"] for e in log], expected)
        got = await watcher.wait_count(is_change, len(expected))
        self.assertEqual([m["change_id"] for m in got], expected)
        await watcher.sync_point()
        self.assertEqual(len(watcher.changes()), len(expected))
        # The edge values come back intact.
        by_id = {e["change_id"]: e for e in log}
        self.assertEqual(by_id["ok-deep"]["data"]["deep"], nested(15))
        self.assertEqual(len(by_id["ok-string"]["data"]["note"]), 65536)
        await c.close()
        await watcher.close()

    @async_test()
    async def test_post_sync_rejects_each_violation_in_its_result(self):
        server = self.start_server()
        bad = bad_changes()
        edge = edge_changes()
        # Valid and invalid entries interleaved.
        changes = []
        for i, (_, msg, _) in enumerate(bad):
            changes.append(msg)
            if i < len(edge):
                changes.append(edge[i])
        body = encode({"restaurant_id": "R", "device_id": "P", "changes": changes})
        status, _, res = await server.ahttp("POST", "/api/sync", body)
        self.assertEqual(status, 200, res)
        self.assertEqual(res["status"], "success")
        self.assertEqual(res["synced_changes"], len(edge))
        results = {r["change_id"]: r for r in res["results"]}
        self.assertEqual(len(res["results"]), len(changes))
        for desc, msg, code in bad:
            with self.subTest(desc):
                r = results[msg["change_id"]]
                self.assertEqual((r["status"], r["seq"], r["error"]["code"]),
                                 ("rejected", None, code), r)
                self.assertTrue(r["error"]["message"])
        self.assertEqual([results[m["change_id"]]["status"] for m in edge],
                         ["applied"] * len(edge))
        # Nothing of the rejected entries is stored.
        log = server.all_changes("R")
        self.assertEqual([e["change_id"] for e in log], [m["change_id"] for m in edge])
        status, _, snap = await server.ahttp("GET", "/api/restaurants/R/data")
        self.assertEqual(status, 200)
        self.assertEqual(sorted(r["id"] for r in snap["data"]["orders"]), ["o-1", "o-2", "o-3"])
        self.assertEqual([r["id"] for r in snap["data"]["tables"]], ["t-1"])
        self.assertEqual([r["id"] for r in snap["data"]["inventory"]], [])

    @async_test()
    async def test_every_action_of_todays_app_and_upsert_are_accepted(self):
        server = self.start_server(store="memory")
        c = await server.connect("R", "d1")
        actions = {
            "orders": ["created", "updated", "status_changed", "completed"],
            "menu_items": ["created", "updated", "deleted", "availability_changed"],
            "inventory": ["stock_changed", "item_added", "item_removed", "low_stock_alert"],
            "tables": ["occupied", "available", "reserved", "cleaning"],
            "users": ["created", "updated", "deleted", "role_changed"],
            "printers": ["added", "removed", "configured", "assignment_changed", "status_changed"],
        }
        changes = []
        for data_type, names in actions.items():
            for action in names + ["upsert"]:
                changes.append(data_change(data_type, f"{data_type}-1", action,
                                           change_id=f"{data_type}-{action}"))
        acks = await c.stream(changes)
        self.assertEqual([(a["change_id"], a["status"]) for a in acks],
                         [(m["change_id"], "applied") for m in changes])
        await c.close()


if __name__ == "__main__":
    unittest.main()
