"""GET /metrics: Prometheus text with the counters a sync server is judged by."""

import http.client
import unittest

from harness import LegacyDevice, ServerTestCase, async_test
from harness import metric_sample as sample


def scrape(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", "/metrics",
                     headers={"Authorization": "Bearer " + server.admin_token()})
        res = conn.getresponse()
        return res.status, res.getheader("Content-Type"), res.read().decode()
    finally:
        conn.close()


class MetricsTest(ServerTestCase):

    @async_test()
    async def test_counters_follow_what_the_server_did(self):
        server = self.start_server()
        pos = LegacyDevice(server, "r-metrics", "pos-1", user_id="u1")
        kds = LegacyDevice(server, "r-metrics", "kds-1")
        await pos.open()
        await kds.open()
        # Three changes, each sent the legacy way (typed update + data_change twin) and POSTed.
        for i in range(3):
            await pos.broadcast("orders", f"o{i}", "created", {"status": "open", "n": i})
        await kds.client.wait_count(lambda m: m.get("type") == "order_update", 3)
        status, _, _ = await pos.post_pending()
        self.assertEqual(status, 200)
        await pos.client.send("{not json")
        await pos.client.wait_type("error")
        self.assertEqual(server.http("GET", "/api/restaurants/r-metrics/nope")[0], 404)

        status, content_type, text = scrape(server)
        self.assertEqual(status, 200)
        self.assertTrue(content_type.startswith("text/plain"), content_type)
        self.assertEqual(sample(text, "possync_connections"), 2)
        self.assertEqual(sample(text, "possync_restaurants_connected"), 1)
        self.assertEqual(sample(text, "possync_changes_committed_total"), 3)
        # Each change came three times: 3 twins over WebSocket + 3 POSTed resends.
        self.assertEqual(sample(text, "possync_duplicates_suppressed_total"), 6)
        self.assertEqual(sample(text, 'possync_errors_total{code="invalid_json"}'), 1)
        self.assertEqual(sample(text, 'possync_errors_total{code="not_found"}'), 1)
        # Every committed change was written to the one other device: 3 fan-out observations.
        self.assertEqual(sample(text, "possync_fanout_latency_seconds_count"), 3)
        self.assertGreaterEqual(sample(text, "possync_commit_duration_seconds_count"), 1)
        self.assertEqual(sample(text, 'possync_commit_batch_size_bucket{le="+Inf"}'),
                         sample(text, "possync_commit_batch_size_count"))
        self.assertGreaterEqual(sample(text, "possync_ws_messages_received_total"), 2 + 6 + 1)
        # No tenant names in the metrics.
        self.assertNotIn("r-metrics", text)

    def test_wrong_method(self):
        server = self.start_server(store="memory")
        status, headers, body = server.http("POST", "/metrics", body={})
        self.assertEqual(status, 405)
        self.assertEqual(body["code"], "method_not_allowed")


if __name__ == "__main__":
    unittest.main()
