"""A class on the local cloud against one lab: wall time of `gdlab class run` over
--accounts member accounts x --regions, next to one `gdlab run`, in one warm local cloud.

    .venv/bin/python benchmarks/class_local.py [--accounts 3] [--regions us-east-1,eu-west-1]
                                               [--max-parallel 8] [--runs 3] [--admin]

--admin also times the class with a GuardDuty administrator (one more member account, not a
target: --admin-account), which sets up every lab before any is triggered.

Each command is a fresh process, as a user would type it; medians over --runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GDLAB = str(Path(sys.executable).with_name("gdlab"))


def timed(args: list[str], env: dict[str, str]) -> tuple[float, dict]:
    started = time.perf_counter()
    proc = subprocess.run([GDLAB, *args, "--json"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return wall, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=3)
    parser.add_argument("--regions", default="us-east-1,eu-west-1")
    parser.add_argument("--max-parallel", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--admin", action="store_true")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="gdlab-bench-class-")
    env = {**os.environ, "GDLAB_HOME": home, "GDLAB_LOCAL_PORT": "4612"}
    subprocess.run([GDLAB, "local", "start"], env=env, check=True, capture_output=True)
    try:
        made = subprocess.run([GDLAB, "local", "org", "create", "--accounts",
                               str(args.accounts + args.admin), "--json"],
                              env=env, check=True, capture_output=True, text=True)
        created = [a["Id"] for a in json.loads(made.stdout)["created"]]
        students = ",".join(created[:args.accounts])
        admin = ["--admin-account", created[-1]] if args.admin else []
        one, whole, administered = [], [], []
        for i in range(args.runs):
            one.append(timed(["run"], env)[0])
            wall, report = timed(["class", "run", f"bench-{i}", "--accounts", students, "--regions",
                                  args.regions, "--max-parallel", str(args.max_parallel)], env)
            whole.append(wall)
            targets = len(report["targets"])
            if args.admin:
                wall, report = timed(["class", "run", f"admin-{i}", "--accounts", students,
                                      "--regions", args.regions, "--max-parallel",
                                      str(args.max_parallel), *admin], env)
                administered.append(wall)
        print(f"one lab (gdlab run): median {statistics.median(one):.1f} s "
              f"(min {min(one):.1f}, max {max(one):.1f})")
        print(f"class of {targets} labs ({args.accounts} accounts x "
              f"{len(args.regions.split(','))} regions, --max-parallel {args.max_parallel}): "
              f"median {statistics.median(whole):.1f} s (min {min(whole):.1f}, "
              f"max {max(whole):.1f})")
        if administered:
            print(f"the same class with a GuardDuty administrator (--admin-account): median "
                  f"{statistics.median(administered):.1f} s (min {min(administered):.1f}, "
                  f"max {max(administered):.1f})")
    finally:
        subprocess.run([GDLAB, "local", "stop"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
