"""Running under systemd: deploy/possync.service and the server's sd_notify notices.

- `systemd-analyze verify` accepts the unit (with ExecStart pointing at the binary under test,
  since verify requires it to exist), and `systemd-analyze security --offline` rates its
  exposure at most 2.0 (fails if the hardening is weakened).
- Under a fake NOTIFY_SOCKET (an AF_UNIX datagram socket here, as systemd's): READY=1 arrives
  only once the server answers (GET /api/ready is asked the moment it arrives and must answer
  200), RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on SIGTERM, nothing else; a server that
  cannot start never says READY=1.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import unittest
import http.client

from harness import SERVER_BIN, WAIT, ServerTestCase

HERE = os.path.dirname(os.path.abspath(__file__))
UNIT = os.path.normpath(os.path.join(HERE, "..", "..", "deploy", "possync.service"))


class UnitFileTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="possync-unit-")
        self.addCleanup(shutil.rmtree, self.dir)
        with open(UNIT) as f:
            text = f.read()
        self.assertEqual(len(re.findall(r"^ExecStart=/usr/local/bin/possync-server$", text,
                                        re.M)), 1)
        self.unit = os.path.join(self.dir, "possync.service")
        with open(self.unit, "w") as f:
            f.write(re.sub(r"^ExecStart=\S+", f"ExecStart={os.path.abspath(SERVER_BIN)}", text,
                           flags=re.M))
        self.text = text

    def analyze(self, *args):
        return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True,
                              timeout=60)

    def test_verify_passes(self):
        res = self.analyze("verify", self.unit)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertNotIn("possync.service", res.stdout + res.stderr)  # no warning about it

    def test_exposure_is_low(self):
        res = self.analyze("security", "--offline=true", "--threshold=20", self.unit)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)

    def test_notify_reload_and_state_directory(self):
        settings = {}
        for line in self.text.splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.startswith("#"):
                settings.setdefault(key, []).append(value)
        self.assertEqual(settings["Type"], ["notify"])
        self.assertEqual(settings["ExecReload"], ["/bin/kill -HUP $MAINPID"])
        self.assertEqual(settings["Restart"], ["on-failure"])
        self.assertEqual(settings["StateDirectory"], ["possync"])
        self.assertEqual(settings["CapabilityBoundingSet"], [""])
        self.assertIn("POSSYNC_STORE=sqlite:/var/lib/possync/possync.db", settings["Environment"])


class NotifySocket:
    """A datagram socket standing in for systemd's; records each notice as a dict of its
    KEY=VALUE lines, and calls `on_ready(notice)` on the receiving thread when READY=1 comes."""

    def __init__(self, directory, on_ready=None):
        self.path = os.path.join(directory, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.on_ready = on_ready
        self.notices = []
        self.cond = threading.Condition()
        self.done = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done:
            try:
                self._record(self.sock.recv(4096))
            except socket.timeout:
                continue

    def _record(self, data):
        notice = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
        if notice.get("READY") == "1" and self.on_ready:
            self.on_ready(notice)
        with self.cond:
            self.notices.append(notice)
            self.cond.notify_all()

    def wait_count(self, n):
        with self.cond:
            self.cond.wait_for(lambda: len(self.notices) >= n, WAIT)
            return list(self.notices)

    def close(self):
        """Stops the thread, then records whatever is still queued."""
        if self.done:
            return
        self.done = True
        self.thread.join()
        self.sock.setblocking(False)
        while True:
            try:
                self._record(self.sock.recv(4096))
            except BlockingIOError:
                break
        self.sock.close()


class NotifyTest(ServerTestCase):

    def test_ready_reloading_stopping(self):
        directory = tempfile.mkdtemp(prefix="possync-notify-")
        self.addCleanup(shutil.rmtree, directory)
        ready_answers = []

        def ask_ready(notice):
            # The moment READY=1 arrives, the server must already answer.
            port = int(re.fullmatch(r"serving on 127\.0\.0\.1:(\d+)", notice["STATUS"])[1])
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
            try:
                conn.request("GET", "/api/ready")
                ready_answers.append(conn.getresponse().status)
            finally:
                conn.close()

        notify = NotifySocket(directory, ask_ready)
        self.addCleanup(notify.close)
        server = self.start_server(env={"NOTIFY_SOCKET": notify.path})
        self.assertEqual(notify.wait_count(1)[0]["READY"], "1")
        self.assertEqual(ready_answers, [200])

        server.proc.send_signal(signal.SIGHUP)
        notices = notify.wait_count(3)
        self.assertEqual(notices[1]["RELOADING"], "1")
        self.assertRegex(notices[1]["MONOTONIC_USEC"], r"^\d+$")
        self.assertEqual(notices[2]["READY"], "1")
        self.assertEqual(ready_answers, [200, 200])

        server.stop()
        notices = notify.wait_count(4)
        self.assertEqual(notices[3]["STOPPING"], "1")
        self.assertEqual([sorted(n) for n in notices],
                         [["READY", "STATUS"], ["MONOTONIC_USEC", "RELOADING"],
                          ["READY", "STATUS"], ["STATUS", "STOPPING"]])

    def test_no_ready_when_the_server_cannot_start(self):
        directory = tempfile.mkdtemp(prefix="possync-notify-")
        self.addCleanup(shutil.rmtree, directory)
        notify = NotifySocket(directory)
        self.addCleanup(notify.close)
        blocker = os.path.join(directory, "not-a-directory")
        open(blocker, "w").close()
        res = subprocess.run(
            [SERVER_BIN, "--host", "127.0.0.1", "--port", "0", "--auth", "off",
             "--store", f"sqlite:{blocker}/db.sqlite"],
            env=dict(os.environ, NOTIFY_SOCKET=notify.path), capture_output=True, text=True,
            timeout=WAIT)
        self.assertNotEqual(res.returncode, 0, res.stdout)
        self.assertIn("cannot open the store", res.stdout + res.stderr)
        notify.close()  # everything that was sent is recorded
        self.assertEqual(notify.notices, [])


if __name__ == "__main__":
    unittest.main()
