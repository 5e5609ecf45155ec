"""Runs one possync-bench command with --json for the bench-smoke tests and checks what the exit
code cannot: that the server CPU fields of fanout and ramp (server_cpu_cores,
server_cpu_us_per_change; per node with --nodes, per step in a ramp) are there and sane (numbers,
not negative, at most the machine's hardware threads plus a margin). Nothing about timing.

    smoke_check.py POSSYNC-BENCH ARG...      (exit code: possync-bench's, or 1 when a check fails)
"""

import json
import os
import subprocess
import sys

# A clock-tick sample at either end of a short window can add a tick (10 ms) to the CPU of each
# process: allow a little more than the machine has.
MAX_CORES = (os.cpu_count() or 1) * 1.25 + 0.5


def check_cpu(where, obj, nodes, errors):
    def number(key, value):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            errors.append(f"{where}: {key} is {value!r}, not a number")
            return None
        if value < 0:
            errors.append(f"{where}: {key} is negative ({value})")
        return value

    for key in ("server_cpu_cores", "server_cpu_us_per_change"):
        if key not in obj:
            errors.append(f"{where}: no {key}")
    cores = number("server_cpu_cores", obj.get("server_cpu_cores"))
    number("server_cpu_us_per_change", obj.get("server_cpu_us_per_change"))
    if cores is not None and cores > MAX_CORES:
        errors.append(f"{where}: server_cpu_cores {cores} > {MAX_CORES} "
                      "(hardware threads + margin)")
    if nodes > 1 and "server_cpu_window_s" in obj:  # a fanout result (ramp steps keep the totals)
        for key in ("server_cpu_cores_per_node", "server_cpu_us_per_change_per_node"):
            per_node = obj.get(key)
            if not isinstance(per_node, list) or len(per_node) != nodes:
                errors.append(f"{where}: {key} is {per_node!r}, not {nodes} values")
                continue
            for i, v in enumerate(per_node):
                number(f"{key}[{i}]", v)
        per_node = obj.get("server_cpu_cores_per_node")
        if cores is not None and isinstance(per_node, list) and all(
                isinstance(v, (int, float)) for v in per_node):
            if abs(sum(per_node) - cores) > 1e-6 * max(1.0, cores):
                errors.append(f"{where}: the nodes' cores {per_node} do not add up to {cores}")


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[1:] + ["--json"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    sys.stdout.write(p.stdout)
    if p.returncode != 0:
        return p.returncode
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    if not lines:
        print("smoke_check: possync-bench printed no JSON", file=sys.stderr)
        return 1
    out = json.loads(lines[-1])
    scenario, res = out.get("scenario"), out.get("result") or {}
    nodes = int((out.get("config") or {}).get("nodes") or 1)
    errors = []
    if scenario == "fanout":
        check_cpu("fanout", res, nodes, errors)
    elif scenario == "ramp":
        steps = res.get("steps") or []
        if not steps:
            errors.append("ramp: no steps")
        for i, step in enumerate(steps):
            check_cpu(f"ramp step {i + 1}", step, nodes, errors)
    for e in errors:
        print(f"smoke_check: {e}", file=sys.stderr)
    if not errors and scenario in ("fanout", "ramp"):
        print(f"smoke_check: {scenario}: server CPU fields present and sane", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
