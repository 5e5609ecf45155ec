"""Smoke test of bench/run-suite (ctest label bench-smoke): a quick run of the whole suite into a
temporary report must succeed, contain every section and the hand-written notes, and draw the chart.
Nothing about timing is checked. POSSYNC_SERVER and POSSYNC_BENCH name the binaries (set by ctest).
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
RUN_SUITE = os.path.join(HERE, "run-suite")
NOTES = os.path.join(HERE, "benchmarks-notes.md")
SECTIONS = ["# possync benchmarks", "## Machine", "## Against the targets of issue 4", "## Results",
            "### Ramp steps", "### Steady-state memory", "## Chart", "## Commands", "## Every run"]


class RunSuiteQuick(unittest.TestCase):
    def test_quick_run_writes_report_and_chart(self):
        with tempfile.TemporaryDirectory(prefix="run-suite-smoke-") as tmp:
            out = os.path.join(tmp, "report.md")
            p = subprocess.run(
                [sys.executable, RUN_SUITE, "--quick", "--no-build", "--out", out,
                 "--server-bin", os.environ["POSSYNC_SERVER"],
                 "--bench-bin", os.environ["POSSYNC_BENCH"]],
                capture_output=True, text=True, timeout=110)
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(out, encoding="utf-8") as f:
                text = f.read()
            for section in SECTIONS:
                self.assertIn("\n" + section, "\n" + text, section)
            self.assertIn("**Quick run**", text)
            with open(NOTES, encoding="utf-8") as f:
                self.assertIn(f.read().strip(), text, "the notes are included verbatim")
            self.assertIn("](report-latency.png)", text)
            with open(os.path.join(tmp, "report-latency.png"), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
            with open(os.path.join(tmp, "report-results.json"), encoding="utf-8") as f:
                data = json.load(f)
            self.assertTrue(data["quick"])
            self.assertEqual(sorted({r["scenario"] for r in data["runs"]}),
                             sorted(data["scenarios"]))
            self.assertTrue(all(r["exit_code"] == 0 for r in data["runs"]))


if __name__ == "__main__":
    unittest.main(verbosity=2)
