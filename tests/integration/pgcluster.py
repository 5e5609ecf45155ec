"""PostgreSQL for the multi-node tests: databases on the server of POSSYNC_TEST_PG_URL, and
throwaway servers of their own (scripts/pg-test-cluster) for tests that stop and start PostgreSQL.

Uses the `psql` client (Debian postgresql-client) and only the standard library.
"""

import os
import subprocess
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
CLUSTER_SCRIPT = os.path.normpath(os.path.join(HERE, "..", "..", "scripts", "pg-test-cluster"))


def base_url():
    """The test server's URL; raises (the test fails, never skips) when it is not set."""
    url = os.environ.get("POSSYNC_TEST_PG_URL")
    if not url:
        raise AssertionError("POSSYNC_TEST_PG_URL is not set (scripts/pg-test-cluster start sets it)")
    return url


def url_with_database(url, database):
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + database))


def psql(url, sql):
    out = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-Atqc", sql],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise AssertionError(f"psql failed: {sql}: {out.stderr}")
    return out.stdout.strip()


class Database:
    """A fresh database on a PostgreSQL server; drop() removes it (and its connections)."""

    def __init__(self, server_url=None):
        self.server_url = server_url or base_url()
        self.name = "possync_it_" + uuid.uuid4().hex[:12]
        psql(self.server_url, f"CREATE DATABASE {self.name}")
        self.url = url_with_database(self.server_url, self.name)

    def drop(self):
        psql(self.server_url, f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


class Cluster:
    """A throwaway PostgreSQL server of its own (scripts/pg-test-cluster), for tests that stop,
    start or restart it."""

    def __init__(self):
        out = subprocess.run([CLUSTER_SCRIPT, "start"], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise AssertionError(f"pg-test-cluster start failed: {out.stderr}")
        env = {}
        for line in out.stdout.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = value.strip("'")
        self.dir = env["POSSYNC_PG_CLUSTER_DIR"]
        self.url = env["POSSYNC_TEST_PG_URL"]

    def _run(self, command):
        out = subprocess.run([CLUSTER_SCRIPT, command, self.dir], capture_output=True, text=True,
                             timeout=120)
        if out.returncode != 0:
            raise AssertionError(f"pg-test-cluster {command} failed: {out.stderr}")

    def pause(self):
        self._run("pause")

    def resume(self):
        self._run("resume")

    def restart(self):
        self._run("restart")

    def stop(self):
        self._run("stop")
