"""Smoke test of bench/run-suite (ctest label bench-smoke): a quick run of the whole suite into a
temporary report must succeed, contain every section and the hand-written notes, and draw the chart;
a quick run of the peers part must write the side-by-side section and its chart. Nothing about
timing is checked. POSSYNC_SERVER and POSSYNC_BENCH name the binaries (set by ctest).

Neither test needs Node.js, npm or the network: the whole-suite run hides node and npm (PATH holds
only what run-suite needs), so the peers part must be left out with a message; the peers run uses
a stand-in peers directory whose `start NAME PORT` runs possync-server itself, which exercises
everything run-suite does with a peer (free port, /api/health, --server-pid, stop) but the peer.
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
RUN_SUITE = os.path.join(HERE, "run-suite")
NOTES = os.path.join(HERE, "benchmarks-notes.md")
SECTIONS = ["# possync benchmarks", "## possync beside the Node server it replaces (issue 13)",
            "## Machine", "## Against the targets of issue 4", "## Results", "### Ramp steps",
            "### Steady-state memory", "## Chart", "## Commands", "## Every run"]
PEER_SECTIONS = ["# possync benchmarks", "## possync beside the Node server it replaces (issue 13)",
                 "### Targets of issue 13", "### Ramp steps side by side", "## Machine",
                 "## Commands", "## Every run"]
# A stand-in for ../shared/peers/start: the "peer" is possync-server on its memory store.
FAKE_START = """#!/bin/sh
exec "$POSSYNC_SERVER" --host 127.0.0.1 --port "$2" --store memory --auth off --log-level warn
"""


def write_executable(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def read_report(tmp):
    with open(os.path.join(tmp, "report.md"), encoding="utf-8") as f:
        return f.read()


class RunSuiteQuick(unittest.TestCase):
    def run_suite(self, tmp, args, env):
        p = subprocess.run(
            [sys.executable, RUN_SUITE, "--quick", "--no-build",
             "--out", os.path.join(tmp, "report.md"),
             "--server-bin", os.environ["POSSYNC_SERVER"],
             "--bench-bin", os.environ["POSSYNC_BENCH"]] + args,
            capture_output=True, text=True, timeout=110, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p

    def assert_png(self, path):
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_quick_run_writes_report_and_chart(self):
        with tempfile.TemporaryDirectory(prefix="run-suite-smoke-") as tmp:
            # PATH with only the tools run-suite uses: no node, no npm.
            bin_dir = os.path.join(tmp, "bin")
            os.mkdir(bin_dir)
            for tool in ("gnuplot", "git"):
                found = shutil.which(tool)
                if found:
                    os.symlink(found, os.path.join(bin_dir, tool))
            peers = os.path.join(tmp, "peers")
            os.mkdir(peers)
            write_executable(os.path.join(peers, "start"), FAKE_START)
            env = dict(os.environ, PATH=bin_dir, POSSYNC_PEERS_DIR=peers)
            p = self.run_suite(tmp, [], env)
            self.assertIn("leaving out the peers part", p.stderr)
            text = read_report(tmp)
            for section in SECTIONS:
                self.assertIn("\n" + section, "\n" + text, section)
            self.assertIn("**Quick run**", text)
            self.assertIn("Not measured in this run: node and npm not found on PATH", text)
            with open(NOTES, encoding="utf-8") as f:
                self.assertIn(f.read().strip(), text, "the notes are included verbatim")
            self.assertIn("](report-latency.png)", text)
            self.assert_png(os.path.join(tmp, "report-latency.png"))
            self.assertFalse(os.path.exists(os.path.join(tmp, "report-peers.png")))
            with open(os.path.join(tmp, "report-results.json"), encoding="utf-8") as f:
                data = json.load(f)
            self.assertTrue(data["quick"])
            self.assertFalse([s for s in data["scenarios"] if s.startswith("peers")])
            self.assertEqual(sorted({r["scenario"] for r in data["runs"]}),
                             sorted(data["scenarios"]))
            self.assertTrue(all(r["exit_code"] == 0 for r in data["runs"]))
            fanout = [r for r in data["runs"] if r["scenario"] == "fanout"][0]
            self.assertGreaterEqual(fanout["result"]["result"]["server_cpu_us_per_change"], 0)

    def test_quick_peers_part_with_a_stand_in_peer(self):
        with tempfile.TemporaryDirectory(prefix="run-suite-peers-") as tmp:
            peers = os.path.join(tmp, "peers")
            os.mkdir(peers)
            write_executable(os.path.join(peers, "start"), FAKE_START)
            bin_dir = os.path.join(tmp, "bin")  # node and npm that are there but never run
            os.mkdir(bin_dir)
            for tool in ("node", "npm"):
                write_executable(os.path.join(bin_dir, tool), "#!/bin/sh\nexit 0\n")
            env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""),
                       POSSYNC_PEERS_DIR=peers)
            self.run_suite(tmp, ["--only", "peers"], env)
            text = read_report(tmp)
            for section in PEER_SECTIONS:
                self.assertIn("\n" + section, "\n" + text, section)
            # The side-by-side section opens the report; the standard sections are left out.
            self.assertLess(text.index("## possync beside"), text.index("## Machine"))
            self.assertNotIn("## Against the targets of issue 4", text)
            self.assertIn("| seed-node | seed-bun | possync, SQLite | possync, memory |", text)
            self.assertIn("start seed-node PORT", text)
            self.assertIn("](report-peers.png)", text)
            self.assert_png(os.path.join(tmp, "report-peers.png"))
            with open(os.path.join(tmp, "report-results.json"), encoding="utf-8") as f:
                data = json.load(f)
            self.assertEqual(len(data["scenarios"]), 12)
            self.assertEqual(sorted({r["scenario"] for r in data["runs"]}),
                             sorted(data["scenarios"]))
            for r in data["runs"]:
                self.assertEqual(r["exit_code"], 0, r["scenario"])
                res = r["result"]["result"]
                cpu = [res] if r["result"]["scenario"] == "fanout" else res["steps"]
                for x in cpu:
                    self.assertGreaterEqual(x["server_cpu_cores"], 0, r["scenario"])
                    self.assertGreaterEqual(x["server_cpu_us_per_change"], 0, r["scenario"])
                if r["scenario"].split("/")[1] in ("seed-node", "seed-bun"):
                    self.assertIn("--legacy", r["command"])
                    self.assertGreater(r["peer"]["pid"], 0)
                    self.assertEqual(str(r["result"]["config"]["server-pid"]),
                                     str(r["peer"]["pid"]))
                else:
                    self.assertNotIn("peer", r)


if __name__ == "__main__":
    unittest.main(verbosity=2)
