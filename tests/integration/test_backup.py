"""possync-server backup, restore and verify against the real binary (docs/operations.md).

Four devices write over WebSocket without pause while `backup` copies the store; the copy
verifies, restores into a new store, and a server started on it has every change acknowledged
before the backup began and serves catch-up (`since`) from it. `restore` and `verify` refuse a
store a server holds; `verify` finds a store damaged underneath (a record edited, a seq gone).
"""

import asyncio
import os
import sqlite3
import subprocess
import unittest

import websockets

from harness import SERVER_BIN, ServerProcess, ServerTestCase, async_test, data_change, is_change

DEVICES = ["D1", "D2", "D3", "D4"]


def store_command(*args):
    """Runs `possync-server ARGS...`; returns (exit code, stdout, stderr)."""
    proc = subprocess.run([SERVER_BIN, *args], capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


async def astore_command(*args):
    """store_command() without stopping the event loop (the devices go on writing meanwhile)."""
    proc = await asyncio.create_subprocess_exec(SERVER_BIN, *args, stdout=subprocess.PIPE,
                                                stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode, out.decode(), err.decode()


class BackupRestoreVerifyTest(ServerTestCase):

    async def write_until(self, client, device, stop, window=8):
        """Streams changes (each device its own records) until `stop` is set."""
        i = 0
        try:
            while not stop.is_set():
                if i >= window:
                    await client.wait_ack(f"{device}-{i - window}")
                await client.send(data_change("orders", f"{device}-o{i % 5}",
                                              change_id=f"{device}-{i}", n=i, note="x" * 40))
                i += 1
            for j in range(max(0, i - window), i):
                await client.wait_ack(f"{device}-{j}")
        except (ConnectionError, websockets.ConnectionClosed) as e:
            raise AssertionError(f"{device} lost its connection while writing: {e}") from e

    @staticmethod
    def applied(clients):
        return {cid: ack["seq"] for c in clients.values() for cid, ack in c.ack_index.items()
                if ack["status"] == "applied"}

    @async_test(timeout=170)
    async def test_backup_while_writing_restores_verifies_and_serves_catch_up(self):
        server = self.start_server()
        db_path = server.store[len("sqlite:"):]
        backup = os.path.join(server.workdir, "backup.db")
        clients = {d: await server.connect("R", d) for d in DEVICES}
        stop = asyncio.Event()
        writers = [asyncio.create_task(self.write_until(clients[d], d, stop)) for d in DEVICES]

        first = clients["D1"]
        await first.wait_until(lambda: len(self.applied(clients)) >= 200, what="200 acks")
        acked_before = self.applied(clients)
        code, out, err = await astore_command("backup", "--store", server.store, "--to", backup)
        self.assertEqual(code, 0, err)
        self.assertIn("written to " + backup, out)
        acked_after = len(self.applied(clients))
        # The devices kept writing while the copy was taken, and go on after it.
        await first.wait_until(lambda: len(self.applied(clients)) >= acked_after + 100,
                               what="100 more acks")
        stop.set()
        await asyncio.gather(*writers)
        all_acked = self.applied(clients)
        self.assertTrue(all(a["status"] == "applied" for c in clients.values()
                            for a in c.ack_index.values()))

        # While the server runs: no restore into its store, no verify of it.
        code, _, err = await astore_command("restore", "--store", server.store, "--from", backup)
        self.assertNotEqual(code, 0)
        self.assertIn("stop the server", err)
        code, _, err = await astore_command("verify", "--store", server.store)
        self.assertEqual(code, 2, err)
        self.assertIn("in use", err)

        code, out, err = await astore_command("verify", "--file", backup)
        self.assertEqual(code, 0, out + err)
        self.assertIn("consistent", out)

        restored_dir = os.path.join(server.workdir, "restored")
        restored_store = "sqlite:" + os.path.join(restored_dir, "db.sqlite")
        code, out, err = await astore_command("restore", "--store", restored_store,
                                              "--from", backup)
        self.assertEqual(code, 0, err)
        self.assertIn("restored", out)
        code, out, err = await astore_command("verify", "--store", restored_store)
        self.assertEqual(code, 0, out + err)

        for c in clients.values():
            await c.close()
        server.stop()
        code, out, err = await astore_command("verify", "--store", server.store)
        self.assertEqual(code, 0, out + err)

        restored = ServerProcess(store=restored_store, workdir=restored_dir,
                                 key_file=server.key_file)
        self._servers.append(restored)
        self.addCleanup(restored.cleanup)
        restored.start()
        log = await asyncio.to_thread(restored.all_changes, "R")
        seqs = [e["seq"] for e in log]
        self.assertEqual(seqs, list(range(1, len(log) + 1)))
        in_log = {e["change_id"]: e["seq"] for e in log}
        for cid, seq in acked_before.items():
            self.assertEqual(in_log.get(cid), seq, f"{cid}, acknowledged before the backup")
        # The backup is the store as of one commit: a prefix of what the server went on to ack.
        self.assertLess(len(log), len(all_acked))
        for cid, seq in in_log.items():
            self.assertEqual(all_acked.get(cid), seq, cid)

        # Catch-up from the restored store: exactly since+1..N, then caught_up.
        since = len(log) // 2
        reader = await restored.connect("R", "reader", since=since)
        caught = await reader.wait_type("caught_up")
        self.assertEqual(caught["seq"], len(log))
        self.assertEqual([m["seq"] for m in reader.changes()], list(range(since + 1, len(log) + 1)))
        self.assertEqual([m["change_id"] for m in reader.changes()],
                         [e["change_id"] for e in log[since:]])
        # And it goes on from the restored head.
        writer = await restored.connect("R", "D1")
        ack = await writer.request(data_change("orders", "new", change_id="after-restore"),
                                   lambda m: m.get("type") == "ack")
        self.assertEqual((ack["status"], ack["seq"]), ("applied", len(log) + 1))
        await reader.wait_for(lambda m: is_change(m) and m["change_id"] == "after-restore")
        await reader.close()
        await writer.close()

    @async_test(timeout=120)
    async def test_verify_finds_a_store_damaged_underneath(self):
        server = self.start_server()
        db_path = server.store[len("sqlite:"):]
        client = await server.connect("R", "D1")
        await client.stream([data_change("orders", f"o{i % 3}", change_id=f"c{i}", n=i)
                             for i in range(12)])
        await client.close()
        server.stop()
        code, out, err = store_command("verify", "--store", server.store)
        self.assertEqual(code, 0, out + err)

        with sqlite3.connect(db_path) as db:
            db.execute("UPDATE records SET body = json_set(body, '$.n', 999) "
                       "WHERE record_id = 'o1'")
        code, out, err = store_command("verify", "--store", server.store)
        self.assertEqual(code, 1, out + err)
        self.assertIn("record orders/o1 differs from a replay of the log", err)
        with sqlite3.connect(db_path) as db:
            db.execute("UPDATE records SET body = json_set(body, '$.n', 10) "
                       "WHERE record_id = 'o1'")
        code, out, err = store_command("verify", "--store", server.store)
        self.assertEqual(code, 0, out + err)

        with sqlite3.connect(db_path) as db:
            db.execute("DELETE FROM log WHERE restaurant = 'R' AND seq = 7")
        code, out, err = store_command("verify", "--store", server.store)
        self.assertEqual(code, 1, out + err)
        self.assertIn("seq 7 is missing from the log", err)

    def test_other_stores_are_refused_with_directions(self):
        code, _, err = store_command("backup", "--store", "postgresql://possync@127.0.0.1:1/x",
                                     "--to", "/nonexistent/backup.db")
        self.assertEqual(code, 2)
        self.assertIn("pg_dump", err)
        self.assertIn("docs/operations.md", err)
        code, _, err = store_command("verify", "--store", "memory")
        self.assertEqual(code, 2)
        self.assertIn("SQLite", err)
        code, _, err = store_command("restore", "--store", "sqlite:/nonexistent/x.db")
        self.assertNotEqual(code, 0)  # --from is required
        self.assertIn("--from", err)


if __name__ == "__main__":
    unittest.main()
