"""--auth mixed on two nodes sharing one PostgreSQL database: an enrolment made through one node
admits the device on the other, and removing it there closes the device's tokenless connection on
the other node; a device with a token beside it is untouched.

Needs POSSYNC_TEST_PG_URL (scripts/pg-test-cluster start); fails without it.
"""

import asyncio
import time

import websockets

from harness import WAIT, ServerTestCase, async_test, data_change, is_change
from pgcluster import Database


class LegacyMultiNodeTest(ServerTestCase):

    async def connect_when_admitted(self, node, restaurant, device):
        """Connects without a token, retrying while the node refuses with 401 (the enrolment
        reaches it through the store's feed, after the other node answered)."""
        deadline = time.monotonic() + WAIT
        while True:
            try:
                return await node.connect(restaurant, device, token=None)
            except websockets.InvalidStatusCode as e:
                self.assertEqual(e.status_code, 401)
                self.assertLess(time.monotonic(), deadline, "never admitted")
                await asyncio.sleep(0.05)

    @async_test(timeout=120)
    async def test_enrolment_and_removal_on_one_node_take_effect_on_the_other(self):
        db = Database()
        self.addCleanup(db.drop)
        a = self.start_server(store=db.url, extra_args=["--auth", "mixed"])
        b = self.start_server(store=db.url, key_file=a.key_file, extra_args=["--auth", "mixed"])
        path = "/api/admin/restaurants/R/legacy-devices/"

        status, _, res = await a.ahttp("PUT", path + "till-1", {"networks": ["127.0.0.0/8"]})
        self.assertEqual(status, 201, res)
        status, _, res = await a.ahttp("PUT", path + "far", {"networks": ["10.0.0.0/8"]})
        self.assertEqual(status, 201, res)
        # The enrolment is in the shared store: node B lists it at once.
        status, _, res = await b.ahttp("GET", "/api/admin/restaurants/R/legacy-devices")
        self.assertEqual([d["device_id"] for d in res["legacy_devices"]], ["far", "till-1"])

        till = await self.connect_when_admitted(b, "R", "till-1")
        manager = await a.connect("R", "mgr-1")  # a token device on the other node
        for c in (till, manager):
            await c.sync_point()
        await till.send(data_change("orders", "o-1", "created", change_id="t-1", status="open"))
        self.assertEqual((await till.wait_ack("t-1"))["status"], "applied")
        got = await manager.wait_for(is_change, what="the change from node B")
        self.assertEqual(got["change_id"], "t-1")
        status, _, res = await b.ahttp("POST", "/api/sync", token=None, body={
            "restaurant_id": "R", "device_id": "till-1", "changes": []})
        self.assertEqual(status, 200, res)
        # Outside its networks, and unknown, on either node.
        for node in (a, b):
            for device in ("far", "stranger"):
                status, _, res = await node.ahttp("POST", "/api/sync", token=None, body={
                    "restaurant_id": "R", "device_id": device, "changes": []})
                self.assertEqual((status, res["code"]), (401, "unauthorized"), res)

        # Removed through node A: node B closes the live connection and refuses the device.
        status, _, res = await a.ahttp("DELETE", path + "till-1")
        self.assertEqual((status, res["disconnected"]), (200, 0), res)  # none on node A
        self.assertEqual(await till.wait_closed(), 4002)
        status, _, res = await b.ahttp("POST", "/api/sync", token=None, body={
            "restaurant_id": "R", "device_id": "till-1", "changes": []})
        self.assertEqual(status, 401, res)
        with self.assertRaises(websockets.InvalidStatusCode) as refused:
            await websockets.connect(b.ws_url("R", "till-1", token=None), open_timeout=WAIT)
        self.assertEqual(refused.exception.status_code, 401)
        await manager.sync_point()
        await manager.close()
