"""The twin rule at its edges (docs/protocol.md, section 5): what is and is not the data_change
twin of a typed update, and how a held-back user_update is resolved."""

import asyncio
import unittest

from harness import LegacyDevice, ServerTestCase, async_test, is_change, record_id_of

WINDOW_MS = 400


class TwinRuleTest(ServerTestCase):

    async def setup_devices(self):
        server = self.start_server(store="memory",
                                   extra_args=["--twin-window-ms", str(WINDOW_MS)])
        A = LegacyDevice(server, "R", "A", user_id="staff-a")
        B = LegacyDevice(server, "R", "B", user_id="staff-b")
        await A.open()
        await B.open()
        return server, A, B

    async def acks_after(self, dev, start_count, n):
        acks = await dev.client.wait_count(lambda m: m.get("type") == "ack", start_count + n,
                                           what="acks")
        return acks[start_count:start_count + n]

    @async_test()
    async def test_what_is_not_a_twin(self):
        server, A, B = await self.setup_devices()

        # 1. A heartbeat in between does not matter: still a twin.
        c = A.make_change("orders", "o-1", "created", {"status": "open"})
        await A.client.send(c.typed)
        await A.heartbeat()
        await A.client.send(c.twin)
        acks = await self.acks_after(A, 0, 2)
        self.assertEqual([(a["status"], a["seq"]) for a in acks], [("applied", 1), ("duplicate", 1)])

        # 2. Not directly after its typed update: typed X, typed Y, twin X, twin Y -> 4 changes.
        x = A.make_change("orders", "o-2", "created", {"status": "open"})
        y = A.make_change("orders", "o-3", "created", {"status": "open"})
        for msg in (x.typed, y.typed, x.twin, y.twin):
            await A.client.send(msg)
        acks = await self.acks_after(A, 2, 4)
        self.assertEqual([(a["status"], a["seq"]) for a in acks],
                         [("applied", 2), ("applied", 3), ("applied", 4), ("applied", 5)])

        # 3. Different content (a field differs): not a twin.
        d = A.make_change("tables", "t-1", "occupied", {"guests": 2})
        d.twin["data"]["guests"] = 3
        await A.client.send(d.typed)
        await A.client.send(d.twin)
        acks = await self.acks_after(A, 6, 2)
        self.assertEqual([a["status"] for a in acks], ["applied", "applied"])

        # 4. A typed update that carries its own change_id is a change of its own.
        e = A.make_change("tables", "t-2", "occupied", {"guests": 1})
        await A.client.send({**e.typed, "change_id": "typed-with-id"})
        await A.client.send(e.twin)
        acks = await self.acks_after(A, 8, 2)
        self.assertEqual([(a["change_id"], a["status"]) for a in acks],
                         [("typed-with-id", "applied"), (e.change_id, "applied")])

        # 5. The twin arrives after the window: applied as its own change.
        f = A.make_change("printers", "p-1", "configured", {"ip": "10.0.0.1"})
        await A.client.send(f.typed)
        await self.acks_after(A, 10, 1)
        await asyncio.sleep(3 * WINDOW_MS / 1000)
        await A.client.send(f.twin)
        acks = await self.acks_after(A, 10, 2)
        self.assertEqual([a["status"] for a in acks], ["applied", "applied"])

        # 6. The typed update was rejected (conflict): its twin is applied on its own.
        g = A.make_change("orders", "o-1", "updated", {"status": "paid"})
        await A.client.send({**g.typed, "base_version": 99})
        await A.client.send(g.twin)
        acks = await self.acks_after(A, 12, 2)
        self.assertEqual([(a["status"], a.get("error", {}).get("code")) for a in acks],
                         [("rejected", "conflict"), ("applied", None)])
        self.assertEqual(acks[1]["change_id"], g.change_id)

        # B received exactly the applied changes, once each, in seq order.
        applied = [a for a in A.client.acks() if a["status"] == "applied"]
        got = await B.client.wait_count(is_change, len(applied))
        await B.heartbeat()
        self.assertEqual([m["seq"] for m in B.client.changes()], [a["seq"] for a in applied])
        self.assertEqual([m["seq"] for m in B.client.changes()], list(range(1, 13)))
        self.assertEqual([record_id_of(m) for m in got],
                         ["o-1", "o-2", "o-3", "o-2", "o-3", "t-1", "t-1", "t-2", "t-2", "p-1",
                          "p-1", "o-1"])
        # The POST of every data_change: duplicates of what was applied, nothing new.
        A.pending = [ch.twin for ch in (c, x, y, d, e, f, g)]
        status, _, body = await A.post_pending()
        self.assertEqual(status, 200)
        self.assertEqual([r["status"] for r in body["results"]], ["duplicate"] * 7)
        self.assertEqual(len(server.all_changes("R")), 12)
        await A.close()
        await B.close()

    @async_test()
    async def test_held_back_user_update_resolution(self):
        server, A, B = await self.setup_devices()
        # 1. No twin within the window: committed with `user_id` (the sender's) as record id,
        #    acked under a server-assigned id.
        lone = A.make_change("users", "u-1", "updated", {"role": "chef"})
        self.assertEqual(lone.typed["user_id"], "staff-a")
        await A.client.send(lone.typed)
        ack = (await self.acks_after(A, 0, 1))[0]
        self.assertEqual(ack["status"], "applied")
        self.assertTrue(ack["change_id"].startswith("srv-"))
        m = await B.client.wait_for(is_change)
        self.assertEqual((m["type"], m["user_id"], m["data"]), ("user_update", "staff-a",
                                                                 {"role": "chef"}))

        # 2. Another change arrives first: the held message is committed before it.
        held = A.make_change("users", "u-2", "updated", {"role": "host"})
        other = A.make_change("tables", "t-1", "occupied", {"guests": 4})
        await A.client.send(held.typed)
        await A.client.send(other.typed)
        await A.client.send(other.twin)
        acks = await self.acks_after(A, 1, 3)
        self.assertEqual([(a["status"], a["seq"]) for a in acks],
                         [("applied", 2), ("applied", 3), ("duplicate", 3)])

        # 3. No user at all (null user_id) and no twin: an error, nothing stored.
        nobody = LegacyDevice(server, "R", "N", user_id=None)
        await nobody.open()
        n = nobody.make_change("users", "u-3", "deleted", {})
        await nobody.client.send(n.typed)
        err = await nobody.client.wait_type("error")
        self.assertEqual(err["code"], "missing_field")
        self.assertIn("user_update", err["message"])
        self.assertEqual(nobody.client.acks(), [])

        # 4. The connection closes while a user_update is held: it is committed, not lost.
        closing = A.make_change("users", "u-4", "role_changed", {"role": "owner"})
        await A.client.send(closing.typed)
        await A.close()
        m = await B.client.wait_for(lambda m: is_change(m) and m["seq"] == 4)
        self.assertEqual((m["user_id"], m["action"]), ("staff-a", "role_changed"))

        log = server.all_changes("R")
        self.assertEqual([(e["data_type"], e["data"]["id"]) for e in log],
                         [("users", "staff-a"), ("users", "staff-a"), ("tables", "t-1"),
                          ("users", "staff-a")])
        await B.heartbeat()
        self.assertEqual(len(B.client.changes()), 4)
        await nobody.close()
        await B.close()


if __name__ == "__main__":
    unittest.main()
