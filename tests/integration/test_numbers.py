"""Numbers come back as JavaScript prints them: a device that sends `"total": 25.5` gets 25.5 back
(not 2.55E1) from every path: WebSocket delivery (live and catch-up), REST changes and snapshot,
also after a restart that reads them from the SQLite file. The same double, shortest digits,
exponent only where JSON.stringify uses one; integers beyond 2^53 as sent. The texts are checked
as they arrive, before any JSON parser could hide a difference."""

import asyncio
import http.client
import json
import re
import unittest

import websockets

from harness import WAIT, ServerTestCase, async_test

# (member, the text a device sends, the text it must get back: JSON.stringify(JSON.parse(sent)))
NUMBERS = [
    ("total", "25.5", "25.5"),
    ("exponent_form", "2.55E1", "25.5"),
    ("tenth", "0.1", "0.1"),
    ("price", "1234.56", "1234.56"),
    ("third", "0.3333333333333333", "0.3333333333333333"),
    ("tiny", "1e-7", "1e-7"),
    ("tiny_decimal", "0.0000001", "1e-7"),
    ("micro", "0.000001", "0.000001"),
    ("big", "123456789012345680000", "123456789012345680000"),
    ("huge", "1e21", "1e+21"),
    ("negative_zero", "-0.0", "0"),
    ("five_hundred", "5E2", "500"),
    ("whole", "100.0", "100"),
    ("beyond_2_53", "9007199254740993", "9007199254740993"),
    ("uint64_max", "18446744073709551615", "18446744073709551615"),
    ("int64_min", "-9223372036854775808", "-9223372036854775808"),
    # Boost.JSON 1.81's own parser reads these one unit in the last place off.
    ("off_by_one_ulp", "1238.8249400479617", "1238.8249400479617"),
    ("share", "122118.47236842105", "122118.47236842105"),
    ("largest", "1.7976931348623157e308", "1.7976931348623157e+308"),
    ("smallest", "5e-324", "5e-324"),
]


def data_text(record_id):
    """A change's data as raw JSON text, each number written as in NUMBERS."""
    members = ",".join(f'"{name}":{sent}' for name, sent, _ in NUMBERS)
    return f'{{"id":"{record_id}","status":"open",{members}}}'


class NumbersTest(ServerTestCase):

    def assert_numbers(self, text, where):
        """Every member of NUMBERS appears in `text` with exactly the expected number text."""
        for name, _, expected in NUMBERS:
            found = re.findall(rf'"{name}":(-?[0-9][0-9.eE+-]*)', text)
            self.assertTrue(found, f"{where}: no {name} in {text}")
            for got in found:
                self.assertEqual(got, expected, f"{where}: {name} in {text}")

    def raw_http(self, server, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT)
        try:
            headers = {"Authorization": "Bearer " + server.admin_token(),
                       "Content-Type": "application/json"}
            conn.request(method, path, body=body, headers=headers)
            res = conn.getresponse()
            return res.status, res.read().decode()
        finally:
            conn.close()

    async def next_change_text(self, ws, record_id):
        """The raw text of the next message on `ws` that carries a change of `record_id`."""
        while True:
            text = await asyncio.wait_for(ws.recv(), WAIT)
            msg = json.loads(text)
            if "seq" in msg and msg.get("order_id", msg.get("data", {}).get("id")) == record_id:
                return text

    def test_expected_texts_are_what_javascript_prints(self):
        # The table itself: each expected text reads back as the same double as the sent one.
        for name, sent, expected in NUMBERS:
            if re.fullmatch(r"-?[0-9]+", sent):
                self.assertEqual(int(expected), int(sent), name)
            else:
                self.assertEqual(float(expected), float(sent), name)

    @async_test()
    async def test_rest_round_trip_and_deliveries(self):
        server = self.start_server()
        url = server.ws_url("R", "B")
        async with websockets.connect(url, open_timeout=WAIT) as ws:
            await server.wait_devices("R", ["B"])
            body = ('{"restaurant_id":"R","device_id":"A","changes":[{"type":"data_change",'
                    '"data_type":"orders","action":"created","change_id":"c-1","data":' +
                    data_text("o-1") + "}]}")
            status, text = await asyncio.to_thread(self.raw_http, server, "POST", "/api/sync", body)
            self.assertEqual(status, 200, text)
            self.assertEqual(json.loads(text)["results"][0]["status"], "applied", text)
            self.assert_numbers(await self.next_change_text(ws, "o-1"), "live WebSocket delivery")

        for restart in (False, True):
            if restart:
                server.restart()  # the records and the log are read back from the SQLite file
            status, text = self.raw_http(server, "GET", "/api/restaurants/R/changes")
            self.assertEqual(status, 200, text)
            self.assert_numbers(text, f"GET changes (restart={restart})")
            status, text = self.raw_http(server, "GET", "/api/restaurants/R/data")
            self.assertEqual(status, 200, text)
            self.assert_numbers(text, f"GET data (restart={restart})")
        async with websockets.connect(server.ws_url("R", "C", since=0), open_timeout=WAIT) as ws:
            self.assert_numbers(await self.next_change_text(ws, "o-1"), "catch-up delivery")

    @async_test()
    async def test_websocket_change_delivered_to_other_device(self):
        server = self.start_server()
        async with websockets.connect(server.ws_url("R", "A"), open_timeout=WAIT) as a, \
                websockets.connect(server.ws_url("R", "B"), open_timeout=WAIT) as b:
            await server.wait_devices("R", ["A", "B"])
            await a.send('{"type":"order_update","order_id":"o-2","action":"updated",'
                         '"change_id":"c-2","data":' + data_text("o-2") + "}")
            self.assert_numbers(await self.next_change_text(b, "o-2"), "WebSocket delivery")
        status, text = self.raw_http(server, "GET", "/api/restaurants/R/data")
        self.assertEqual(status, 200, text)
        self.assert_numbers(text, "GET data")


if __name__ == "__main__":
    unittest.main()
