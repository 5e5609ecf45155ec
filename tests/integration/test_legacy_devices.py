"""--auth mixed on one node (SQLite): devices without a token, admitted only as enrolled legacy
devices from their networks, beside devices with tokens; the admin API that enrols them.

Today's app is replayed as it is (harness.LegacyDevice with no token). The client address is
127.0.0.1 for every connection here; other addresses (IPv4 and IPv6) are given with
X-Forwarded-For on a server started with --trust-forwarded-for.
"""

import asyncio

import websockets

from harness import (WAIT, LegacyDevice, ServerTestCase, async_test, data_change, is_change,
                     metric_sample, q, record_id_of)

ADMIN_PATH = "/api/admin/restaurants/{}/legacy-devices"


def device_path(restaurant, device):
    return ADMIN_PATH.format(q(restaurant)) + "/" + q(device)


class LegacyDevicesTest(ServerTestCase):

    def enrol(self, server, restaurant, device, expect=(200, 201), **body):
        status, _, res = server.http("PUT", device_path(restaurant, device), body)
        self.assertIn(status, expect, res)
        return res

    async def refused_upgrade(self, server, restaurant, device, headers=None):
        with self.assertRaises(websockets.InvalidStatusCode) as caught:
            ws = await websockets.connect(
                server.ws_url(restaurant, device, token=None), open_timeout=WAIT,
                extra_headers=headers or {})
            await ws.close()
        self.assertEqual(caught.exception.status_code, 401)

    def test_admin_api_enrols_lists_and_removes_with_clear_errors(self):
        # The enrolment API works in any mode; --auth required admits no tokenless device.
        server = self.start_server(store="memory")
        res = self.enrol(server, "R", "pos-1", expect=(201,),
                         networks=["192.168.1.0/24", "2001:DB8::/32", "192.168.1.0/24"])
        self.assertEqual(res["networks"], ["192.168.1.0/24", "2001:db8::/32"])
        self.assertEqual((res["role"], res["disconnected"]), ("pos", 0))
        res = self.enrol(server, "R", "pos-1", expect=(200,), networks=["10.0.0.0/8"],
                         role="kds")
        self.assertEqual((res["networks"], res["role"]), (["10.0.0.0/8"], "kds"))
        self.enrol(server, "R", "kds-2", expect=(201,))  # no body fields: pos, anywhere
        status, _, res = server.http("PUT", device_path("R", "empty-body"), None)
        self.assertEqual(status, 201, res)

        status, _, res = server.http("GET", ADMIN_PATH.format("R"))
        self.assertEqual(status, 200, res)
        self.assertEqual([(d["device_id"], d["role"], d["networks"])
                          for d in res["legacy_devices"]],
                         [("empty-body", "pos", []), ("kds-2", "pos", []),
                          ("pos-1", "kds", ["10.0.0.0/8"])])
        status, _, res = server.http("GET", device_path("R", "pos-1"))
        self.assertEqual((status, res["device_id"], res["restaurant_id"]), (200, "pos-1", "R"))
        status, _, res = server.http("GET", ADMIN_PATH.format("other"))
        self.assertEqual((status, res["legacy_devices"]), (200, []))

        bad = [
            ({"networks": ["10.1.2.3/8"]}, "invalid_network", "10.0.0.0/8"),
            ({"networks": ["10.0.0.0/33"]}, "invalid_network", "10.0.0.0/33"),
            ({"networks": ["pos.example.com"]}, "invalid_network", "pos.example.com"),
            ({"networks": [7]}, "invalid_network", "string"),
            ({"networks": "10.0.0.0/8"}, "invalid_field", "array"),
            ({"role": "admin"}, "invalid_role", "admin"),
            ({"role": "chef"}, "invalid_role", "chef"),
            ({"role": 3}, "invalid_role", "string"),
            ({"network": ["10.0.0.0/8"]}, "invalid_field", "network"),
            ({"networks": ["10.0.0.0/8"] * 65}, "invalid_field", "64"),
            ("{not json", "invalid_json", ""),
            ("[]", "invalid_message", ""),
        ]
        for body, code, mentioned in bad:
            with self.subTest(body=body):
                status, _, res = server.http("PUT", device_path("R", "pos-9"), body)
                self.assertEqual((status, res["code"]), (400, code), res)
                self.assertIn(mentioned, res["message"])
        status, _, res = server.http("PUT", device_path("R", "x" * 129), {})
        self.assertEqual((status, res["code"]), (400, "invalid_field"), res)
        status, _, res = server.http("GET", device_path("R", "pos-9"))
        self.assertEqual((status, res["code"]), (404, "not_found"), res)

        # Only an admin may enrol.
        device_token = server.token("R", "pos-1", role="manager")
        status, _, res = server.http("PUT", device_path("R", "pos-7"), {}, token=device_token)
        self.assertEqual((status, res["code"]), (403, "forbidden"))
        status, _, res = server.http("DELETE", device_path("R", "pos-1"), token=None)
        self.assertEqual((status, res["code"]), (401, "unauthorized"))

        # --auth required: an enrolled device without a token is refused like any other.
        status, _, res = server.http("POST", "/api/sync", token=None, body={
            "restaurant_id": "R", "device_id": "kds-2", "changes": []})
        self.assertEqual((status, res["code"]), (401, "unauthorized"), res)

        status, _, res = server.http("DELETE", device_path("R", "pos-1"))
        self.assertEqual(status, 200, res)
        self.assertEqual(res, {"restaurant_id": "R", "device_id": "pos-1", "removed": True,
                               "disconnected": 0})
        status, _, res = server.http("DELETE", device_path("R", "pos-1"))
        self.assertEqual((status, res["code"]), (404, "not_found"), res)

    @async_test(timeout=120)
    async def test_tokenless_devices_in_and_out_of_their_networks_beside_token_devices(self):
        server = self.start_server(extra_args=["--auth", "mixed", "--trust-forwarded-for"])
        self.enrol(server, "R", "till-1", networks=["127.0.0.0/8"])
        self.enrol(server, "R", "till-far", networks=["10.0.0.0/8"])
        self.enrol(server, "R", "tablet-6", networks=["2001:db8::/32"], role="kds")

        # Today's app, unchanged, from its network: WebSocket and REST.
        till = LegacyDevice(server, "R", "till-1", user_id="staff-1", token=None)
        registered = await till.open()
        self.assertEqual(registered["type"], "registered")
        manager = await server.connect("R", "mgr-1")  # a device with a token beside it
        await manager.sync_point()
        await till.broadcast("orders", "o-1", "created", {"status": "open"})
        got = await manager.wait_for(is_change, what="the tokenless device's change")
        self.assertEqual((record_id_of(got), got["device_id"]), ("o-1", "till-1"))
        status, _, res = await till.post_pending()
        self.assertEqual(status, 200, res)
        self.assertEqual([r["status"] for r in res["results"]], ["duplicate"])
        # Its role (pos) applies: it may not write users.
        status, _, res = await server.ahttp("POST", "/api/sync", token=None, body={
            "restaurant_id": "R", "device_id": "till-1",
            "changes": [data_change("users", "u-1", "created", change_id="u-1", name="x")]})
        self.assertEqual(res["results"][0]["error"]["code"], "forbidden", res)
        # And it is bound to its own restaurant and device.
        status, _, res = await server.ahttp("GET", "/api/restaurants/R/data?device_id=till-1",
                                            token=None)
        self.assertEqual(status, 200, res)
        status, _, res = await server.ahttp("GET", "/api/restaurants/R/data", token=None)
        self.assertEqual((status, res["code"]), (401, "unauthorized"), res)
        status, _, res = await server.ahttp("GET", "/api/restaurants/R2/data?device_id=till-1",
                                            token=None)
        self.assertEqual((status, res["code"]), (401, "unauthorized"), res)
        status, _, res = await server.ahttp("GET", "/metrics", token=None)
        self.assertEqual(status, 401)

        # The status shows which connections came without a token.
        status, _, res = await server.ahttp("GET", "/api/restaurants/R/status")
        legacy = {d["device_id"]: d["legacy"] for d in res["connected_devices"]}
        self.assertEqual(legacy, {"till-1": True, "mgr-1": False})

        # Outside its networks, or not enrolled: 401 on both surfaces.
        refused_before = await server.ametrics()
        await self.refused_upgrade(server, "R", "till-far")
        await self.refused_upgrade(server, "R", "stranger")
        await self.refused_upgrade(server, "R", "till-1", {"X-Forwarded-For": "192.0.2.1"})
        for device in ("till-far", "stranger"):
            status, headers, res = await server.ahttp("POST", "/api/sync", token=None, body={
                "restaurant_id": "R", "device_id": device, "changes": []})
            self.assertEqual((status, res["code"]), (401, "unauthorized"), res)
            self.assertIn("www-authenticate", headers)

        # IPv6 networks, the address from X-Forwarded-For.
        v6 = {"X-Forwarded-For": "198.51.100.1, 2001:db8::6"}  # the last hop counts
        status, _, res = await server.ahttp("POST", "/api/sync", token=None, headers=v6, body={
            "restaurant_id": "R", "device_id": "tablet-6",
            "changes": [data_change("orders", "o-1", "status_changed", change_id="k-1",
                                    status="ready")]})
        self.assertEqual(status, 200, res)
        self.assertEqual(res["results"][0]["status"], "applied", res)
        status, _, res = await server.ahttp(
            "POST", "/api/sync", token=None, headers={"X-Forwarded-For": "2001:db9::6"},
            body={"restaurant_id": "R", "device_id": "tablet-6", "changes": []})
        self.assertEqual(status, 401, res)

        # Counted by reason; logged once for the address.
        text = await server.ametrics()
        for reason, more in (("network", 4), ("not_enrolled", 2)):
            name = f'possync_legacy_refused_total{{reason="{reason}"}}'
            self.assertEqual(metric_sample(text, name) - metric_sample(refused_before, name),
                             more, reason)
        self.assertGreaterEqual(metric_sample(text, "possync_legacy_admitted_total"), 4)
        log = server.log_text(server.log_paths[-1])
        self.assertEqual(log.count("refused a request without a token from 127.0.0.1:"), 1, log)

        # A device with a token still works as always, also under an enrolled device's id.
        with_token = await server.connect("R", "till-far")
        await with_token.sync_point()
        for c in (manager, with_token):
            await c.close()
        await till.close()

    @async_test(timeout=120)
    async def test_removal_closes_the_devices_tokenless_connections_at_once(self):
        server = self.start_server(extra_args=["--auth", "mixed"])
        self.enrol(server, "R", "till-1")
        self.enrol(server, "R", "till-2")
        tokenless = await server.connect("R", "till-1", token=None)
        same_device_with_token = await server.connect("R", "till-1")
        neighbour = await server.connect("R", "till-2", token=None)
        for c in (tokenless, same_device_with_token, neighbour):
            await c.sync_point()

        status, _, res = await server.ahttp("DELETE", device_path("R", "till-1"))
        self.assertEqual((status, res["disconnected"]), (200, 1), res)
        self.assertEqual(await tokenless.wait_closed(), 4002)
        self.assertIn("legacy", tokenless.close_reason)
        await same_device_with_token.sync_point()
        await neighbour.sync_point()
        await self.refused_upgrade(server, "R", "till-1")
        status, _, res = await server.ahttp("POST", "/api/sync", token=None, body={
            "restaurant_id": "R", "device_id": "till-1", "changes": []})
        self.assertEqual(status, 401, res)

        # Narrowing a device's networks closes what is now outside them, nothing else.
        res = self.enrol(server, "R", "till-2", networks=["10.0.0.0/8"])
        self.assertEqual(res["disconnected"], 1)
        self.assertEqual(await neighbour.wait_closed(), 4002)
        await same_device_with_token.sync_point()
        await same_device_with_token.close()
