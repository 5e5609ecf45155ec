"""Two possync nodes on one PostgreSQL database behind HAProxy, configured by deploy/haproxy.cfg.

Devices connect through HAProxy (no sticky sessions); a change from one reaches the other; the
node of one device is killed with -9 and the device reconnects through HAProxy with `since`, sends
again what was not acknowledged, and both devices end with every change once, in order.

Needs POSSYNC_TEST_PG_URL (scripts/pg-test-cluster start); fails without it.
"""

import asyncio
import os
import subprocess
import time

import websockets

from harness import WAIT, ServerProcess, ServerTestCase, async_test, data_change, free_port, is_change
from pgcluster import Database

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.normpath(os.path.join(HERE, "..", "..", "deploy", "haproxy.cfg"))
HAPROXY = os.environ.get("POSSYNC_HAPROXY", "/usr/sbin/haproxy")


class HaproxyTest(ServerTestCase):

    def start_haproxy(self, nodes):
        port = free_port()
        env = dict(os.environ, POSSYNC_LB_BIND=f"127.0.0.1:{port}",
                   POSSYNC_NODE1=f"127.0.0.1:{nodes[0].port}",
                   POSSYNC_NODE2=f"127.0.0.1:{nodes[1].port}")
        check = subprocess.run([HAPROXY, "-c", "-f", CONFIG], env=env, capture_output=True,
                               text=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        proc = subprocess.Popen([HAPROXY, "-db", "-f", CONFIG], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def stop():
            proc.terminate()
            proc.wait(10)

        self.addCleanup(stop)
        # The load balancer, reached through the harness's client API (never started as a server).
        lb = ServerProcess(store="memory", key_file=nodes[0].key_file)
        self.addCleanup(lb.remove_workdir)
        lb.port = port
        deadline = time.monotonic() + WAIT
        while True:
            try:
                if lb.http("GET", "/api/ready", timeout=2)[0] == 200:
                    return lb
            except OSError:
                pass
            self.assertIsNone(proc.poll(), "haproxy exited")
            self.assertLess(time.monotonic(), deadline, "haproxy did not become ready")
            time.sleep(0.1)

    @async_test(timeout=200)
    async def test_devices_through_haproxy_survive_the_loss_of_a_node(self):
        db = Database()
        self.addCleanup(db.drop)
        first = self.start_server(store=db.url)
        nodes = [first, self.start_server(store=db.url, key_file=first.key_file)]
        lb = self.start_haproxy(nodes)

        a = await lb.connect("R", "A")
        await a.sync_point()
        a_node = 0 if await nodes[0].connected_devices("R") == ["A"] else 1
        self.assertEqual(await nodes[a_node].connected_devices("R"), ["A"])
        # leastconn sends B to the other node once HAProxy's checks see it up.
        for _ in range(50):
            b = await lb.connect("R", "B")
            await b.sync_point()
            if await nodes[1 - a_node].connected_devices("R") == ["B"]:
                break
            await b.close()
            await asyncio.sleep(0.2)
        self.assertEqual(await nodes[1 - a_node].connected_devices("R"), ["B"])

        changes = [data_change("orders", f"o{i % 3}", change_id=f"A-{i}", n=i) for i in range(60)]
        acked = {}
        first = changes[:30]
        for ack in await a.stream(first):
            acked[ack["change_id"]] = ack
        await b.wait_count(is_change, 30, what="A's first 30 changes")

        # A's node dies; A reconnects through HAProxy, which sends it to the other node.
        nodes[a_node].kill()
        await a.wait_closed()
        deadline = time.monotonic() + WAIT
        while True:
            try:
                a2 = await lb.connect("R", "A", since=30)
                await a2.sync_point()
                break
            except (OSError, websockets.InvalidStatusCode, websockets.InvalidHandshake,
                    asyncio.TimeoutError, AssertionError):
                self.assertLess(time.monotonic(), deadline, "could not reconnect through haproxy")
                await asyncio.sleep(0.2)
        self.assertEqual(await nodes[1 - a_node].connected_devices("R"), ["A", "B"])
        for ack in await a2.stream(changes[30:]):
            acked[ack["change_id"]] = ack
        self.assertEqual([acked[c["change_id"]]["seq"] for c in changes], list(range(1, 61)))
        got = await b.wait_count(is_change, 60, what="all of A's changes")
        self.assertEqual([m["seq"] for m in got], list(range(1, 61)))
        await asyncio.sleep(0.3)
        self.assertEqual(len(b.changes()), 60)
        await a2.close()
        await b.close()


if __name__ == "__main__":
    import unittest
    unittest.main()
