"""scripts/run and scripts/test: what each one builds and runs.

Each script runs from a copy of the repository's scripts/ in a temporary directory, with stand-ins
on PATH (cmake, ctest, git, clang-format), in scripts/ (install-deps, pg-test-cluster, fuzz) and
for clients/js/run-tests that only record how they were called, so nothing is installed or built for real."""

import os
import shutil
import stat
import subprocess
import tempfile
import unittest

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

RECORDER = """#!/bin/sh
printf '%s' "$(basename "$0")" >> "$CALLS"
for a in "$@"; do printf ' %s' "$a" >> "$CALLS"; done
printf '\\n' >> "$CALLS"
"""


class ScriptsTest(unittest.TestCase):

    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="possync-scripts-")
        self.addCleanup(shutil.rmtree, self.root)
        os.makedirs(os.path.join(self.root, "scripts"))
        os.makedirs(os.path.join(self.root, "bin"))
        os.makedirs(os.path.join(self.root, "build", "release"))
        os.makedirs(os.path.join(self.root, "clients", "js"))
        self.calls = os.path.join(self.root, "calls")
        for name in ("run", "test"):
            shutil.copy(os.path.join(REPO, "scripts", name), os.path.join(self.root, "scripts"))
        for path in ("scripts/install-deps", "scripts/fuzz", "bin/cmake", "bin/ctest",
                     "bin/git", "bin/clang-format", "build/release/possync-server",
                     "clients/js/run-tests"):
            self.write_executable(path, RECORDER)

    def write_executable(self, path, text):
        full = os.path.join(self.root, path)
        with open(full, "w") as f:
            f.write(text)
        os.chmod(full, os.stat(full).st_mode | stat.S_IXUSR)

    def run_script(self, name, *args, env=None):
        env = dict(os.environ, PATH=os.path.join(self.root, "bin") + os.pathsep +
                   os.environ["PATH"], CALLS=self.calls, **(env or {}))
        res = subprocess.run([os.path.join(self.root, "scripts", name), *args], env=env,
                             capture_output=True, text=True, timeout=60, cwd=self.root)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        with open(self.calls) as f:
            return f.read().splitlines()

    def test_run_builds_only_the_server_and_passes_arguments_on(self):
        calls = self.run_script("run", "--port", "8080", "--store", "memory")
        self.assertEqual(calls, [
            "install-deps",
            "cmake --preset release",
            "cmake --build --preset release --target possync-server",
            "possync-server --port 8080 --store memory",
        ])

    def test_test_builds_and_tests_everything_in_both_presets_then_the_tsan_part(self):
        calls = self.run_script("test", env={"POSSYNC_TEST_PG_URL": "postgresql://x@h:1/db"})
        builds = [c for c in calls if c.startswith(("cmake", "ctest", "run-tests"))]
        self.assertEqual(builds, [
            "cmake --preset release",
            "cmake --build --preset release",
            "ctest --preset release --timeout 600",
            "cmake --preset asan",
            "cmake --build --preset asan",
            "ctest --preset asan --timeout 600",
            # The JavaScript SDK's, admin console's and example's tests, against the release build.
            "run-tests",
            # The tsan presets build only what their tests need and select the tests labelled tsan.
            "cmake --preset tsan",
            "cmake --build --preset tsan",
            "ctest --preset tsan --timeout 600",
        ])
        self.assertIn("fuzz 20", calls)


if __name__ == "__main__":
    unittest.main()
