"""A full disk and a store made read-only underneath a running server (SQLite store).

While the store cannot be written, commits fail: WebSocket changes are acked `rejected` with the
retryable `store_unavailable` (never `applied`), POST /api/sync answers 503, /api/ready answers 503
and /api/health 200; the process stays up and its connections open. Once the disk has room again
(or the file is writable again) it commits again without a restart, and what it committed before,
and every change it acked, is intact (`possync-server verify`).

How the disk fills: the store lives on a size-limited tmpfs mounted for the test, filled with a
file to its last byte. Where the test may not mount (no CAP_SYS_ADMIN), the server's file-size
limit (RLIMIT_FSIZE, set with prlimit on the running process) stands in: its files cannot grow
(EFBIG), the same refusal to grow that a full disk gives. How the store becomes read-only: the
immutable attribute (chattr +i) on the database and its WAL, which even root cannot write through
(a chmod would not stop root, nor a file descriptor already open).
"""

import asyncio
import errno
import os
import resource
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import (SERVER_BIN, WAIT, ServerProcess, ServerTestCase, async_test, data_change,
                     is_change)


def run(*args):
    return subprocess.run(list(args), capture_output=True, text=True)


class DiskFullTest(ServerTestCase):

    def make_store_dir(self):
        """A directory for the store on a 24 MiB tmpfs, or None if this machine cannot mount."""
        mountpoint = tempfile.mkdtemp(prefix="possync-full-")
        self.addCleanup(shutil.rmtree, mountpoint, True)
        if run("mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs",
               mountpoint).returncode != 0:
            return None
        self.addCleanup(run, "umount", "-l", mountpoint)
        return mountpoint

    async def expect_rejections(self, client, prefix, count=3):
        """Sends `count` changes; each must be acked rejected with store_unavailable."""
        for i in range(count):
            cid = f"{prefix}-{i}"
            await client.send(data_change("orders", f"{prefix}-o{i}", change_id=cid, pad="y" * 100))
            ack = await client.wait_ack(cid)
            self.assertEqual(ack["status"], "rejected", ack)
            self.assertIsNone(ack["seq"], ack)
            self.assertEqual(ack["error"]["code"], "store_unavailable", ack)

    async def expect_unavailable(self, server, client):
        """While the store cannot commit: REST 503, ready 503, health 200, connection open."""
        body = {"restaurant_id": "R", "device_id": "D1",
                "changes": [data_change("orders", "rest-o", change_id="rest-1", n=1)]}
        status, headers, res = await server.ahttp(
            "POST", "/api/sync", body, token=server.token("R", "D1"))
        self.assertEqual(status, 503, res)
        self.assertEqual(res["code"], "store_unavailable")
        self.assertEqual(headers.get("retry-after"), "1")
        self.assertEqual(res["results"][0]["status"], "rejected")
        status, _, res = await server.ahttp("GET", "/api/ready")
        self.assertEqual(status, 503, res)
        self.assertEqual(res["code"], "store_unavailable")
        status, _, _ = await server.ahttp("GET", "/api/health")
        self.assertEqual(status, 200)
        await client.sync_point()
        self.assertFalse(client.closed)
        self.assertTrue(server.running)

    async def expect_recovered(self, server, client, rejected_ids):
        """Ready again without a restart; new and previously rejected changes are applied."""
        deadline = time.monotonic() + WAIT
        while (await server.ahttp("GET", "/api/ready"))[0] != 200:
            self.assertLess(time.monotonic(), deadline, "not ready again after the store was")
            await asyncio.sleep(0.1)
        client.ack_index.clear()
        acks = await client.stream([data_change("orders", "again", change_id=cid, n=1)
                                    for cid in rejected_ids + ["after-1", "after-2"]])
        self.assertEqual([a["status"] for a in acks], ["applied"] * len(acks), acks)
        status, _, res = await server.ahttp(
            "POST", "/api/sync", {"restaurant_id": "R", "device_id": "D1",
                                  "changes": [data_change("orders", "rest-o", change_id="rest-1")]},
            token=server.token("R", "D1"))
        self.assertEqual(status, 200, res)

    def check_store(self, server, applied):
        """After a graceful stop: the store verifies and holds every applied change."""
        server.stop()
        proc = run(SERVER_BIN, "verify", "--store", server.store)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        server.start()
        log = {e["change_id"]: e["seq"] for e in server.all_changes("R")}
        for cid, seq in applied.items():
            self.assertEqual(log.get(cid), seq, cid)

    @staticmethod
    def applied(client):
        return {cid: a["seq"] for cid, a in client.ack_index.items() if a["status"] == "applied"}

    @async_test(timeout=150)
    async def test_full_disk_rejects_changes_and_recovers_when_space_is_freed(self):
        store_dir = self.make_store_dir()
        if store_dir is None:
            self.fill_by = "RLIMIT_FSIZE"
            store_dir = tempfile.mkdtemp(prefix="possync-full-")
            self.addCleanup(shutil.rmtree, store_dir, True)
        else:
            self.fill_by = "tmpfs"
        server = self.start_server(store="sqlite:" + os.path.join(store_dir, "db.sqlite"))
        client = await server.connect("R", "D1")
        before = await client.stream([data_change("orders", f"o{i}", change_id=f"before-{i}",
                                                  n=i) for i in range(50)])
        self.assertEqual({a["status"] for a in before}, {"applied"})

        filler = os.path.join(store_dir, "filler")
        if self.fill_by == "tmpfs":
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                for size in (1 << 20, 4096, 1):
                    try:
                        while os.write(fd, b"\0" * size) == size:
                            pass
                    except OSError as e:
                        self.assertEqual(e.errno, errno.ENOSPC)
            finally:
                os.close(fd)
            self.assertEqual(os.statvfs(store_dir).f_bavail, 0)
        else:
            # The soft limit only: raising it again needs no privilege.
            old_limit = resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE)
            limit = max(os.path.getsize(os.path.join(store_dir, n))
                        for n in os.listdir(store_dir))
            resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (limit, old_limit[1]))

        # The WAL may still have room for some commits (they are durable and acked applied);
        # changes of new records make the store grow until it cannot.
        sent = 0
        while True:
            cid = f"fill-{sent}"
            await client.send(data_change("orders", f"big-{sent}", change_id=cid, pad="z" * 8000))
            ack = await client.wait_ack(cid)
            sent += 1
            if ack["status"] == "rejected":
                self.assertEqual(ack["error"]["code"], "store_unavailable", ack)
                self.assertIsNone(ack["seq"])
                break
            self.assertEqual(ack["status"], "applied", ack)
            self.assertLess(sent, 4000, "the store never ran out of room")
        await self.expect_rejections(client, "full")
        await self.expect_unavailable(server, client)
        applied = self.applied(client)

        if self.fill_by == "tmpfs":
            os.remove(filler)
        else:
            resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, old_limit)
        await self.expect_recovered(server, client, [f"full-{i}" for i in range(3)])
        applied.update(self.applied(client))
        await client.close()
        await asyncio.to_thread(self.check_store, server, applied)

    @async_test(timeout=150)
    async def test_store_made_read_only_rejects_changes_and_recovers(self):
        server = self.start_server()
        db_path = server.store[len("sqlite:"):]
        client = await server.connect("R", "D1")
        await client.stream([data_change("orders", f"o{i}", change_id=f"before-{i}", n=i)
                             for i in range(20)])
        files = [db_path, db_path + "-wal"]
        made = run("chattr", "+i", *files)
        if made.returncode != 0:
            self.skipTest(f"chattr +i is not possible here: {made.stderr.strip()}")
        try:
            await self.expect_rejections(client, "ro")
            await self.expect_unavailable(server, client)
        finally:
            self.assertEqual(run("chattr", "-i", *files).returncode, 0)
        applied = self.applied(client)
        await self.expect_recovered(server, client, [f"ro-{i}" for i in range(3)])
        applied.update(self.applied(client))
        await client.close()
        await asyncio.to_thread(self.check_store, server, applied)


if __name__ == "__main__":
    unittest.main()
