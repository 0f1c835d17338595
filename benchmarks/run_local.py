"""`gdlab run` on the local cloud, the whole lifecycle including teardown, N times.

Each run is a fresh process, as a user would type it. Reports the wall-clock
median/min/max, the run's own figure (`seconds` in its JSON, from setup to the end of
teardown) and the AWS API calls it made.

    .venv/bin/python benchmarks/run_local.py [--runs 5] [--cold] [--scenario NAME]

Three modes, each reported as a median over --runs:

- warm (default): the background local cloud is started once before the runs (the usual
  case: the first command of the day starts it, later runs find it warm);
- --first: `gdlab local start`, then one run, then stop, each time: the first run after the
  cloud came up (what moto builds lazily on first use is paid here), not counting the start;
- --cold: no cloud before each run, so each run also pays for starting it.
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--cold", action="store_true")
    mode.add_argument("--first", action="store_true")
    parser.add_argument("--scenario", default=None, help="default: gdlab's default scenario")
    args = parser.parse_args()
    scenario = ["--scenario", args.scenario] if args.scenario else []
    home = tempfile.mkdtemp(prefix="gdlab-bench-")
    env = {**os.environ, "GDLAB_HOME": home, "GDLAB_LOCAL_PORT": "4611"}
    if not (args.cold or args.first):
        subprocess.run([GDLAB, "local", "start"], env=env, check=True)
    walls, inner, calls = [], [], []
    try:
        for i in range(args.runs):
            if args.first:
                subprocess.run([GDLAB, "local", "start"], env=env, check=True,
                               capture_output=True)
            started = time.perf_counter()
            proc = subprocess.run([GDLAB, "run", *scenario, "--json"], env=env, capture_output=True,
                                  text=True)
            wall = time.perf_counter() - started
            if proc.returncode != 0:
                sys.exit(f"run {i + 1} failed:\n{proc.stderr[-2000:]}")
            report = json.loads(proc.stdout)
            if args.cold or args.first:
                subprocess.run([GDLAB, "local", "stop"], env=env, capture_output=True)
            walls.append(wall)
            inner.append(report["seconds"])
            calls.append(report["api_calls"])
            print(f"run {i + 1}: {wall:.2f}s wall, {report['seconds']:.2f}s lifecycle, "
                  f"{report['api_calls']} API calls")
    finally:
        subprocess.run([GDLAB, "local", "stop"], env=env, capture_output=True)
    print(f"wall: median {statistics.median(walls):.2f}s (min {min(walls):.2f}, "
          f"max {max(walls):.2f}) over {args.runs} runs")
    print(f"lifecycle (setup..teardown): median {statistics.median(inner):.2f}s")
    print(f"AWS API calls per run: median {statistics.median(calls):.0f}")


if __name__ == "__main__":
    main()
