"""How fast `gdlab --help` and `gdlab --version` answer (they must not import boto3 or moto).

    .venv/bin/python benchmarks/cli_startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

GDLAB = str(Path(sys.executable).with_name("gdlab"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    for argv in (["--version"], ["--help"]):
        subprocess.run([GDLAB, *argv], capture_output=True, check=True)  # warm the disk cache
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            subprocess.run([GDLAB, *argv], capture_output=True, check=True)
            times.append(time.perf_counter() - started)
        print(f"gdlab {' '.join(argv)}: median {statistics.median(times) * 1000:.0f} ms "
              f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}) over {args.runs} runs")
    modules = subprocess.run(
        [sys.executable, "-c", "import sys, gdlab.cli; print(sorted(m for m in sys.modules "
         "if m.split('.')[0] in ('boto3', 'botocore', 'moto')))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    print(f"boto3/botocore/moto modules imported by the CLI at start: {modules}")


if __name__ == "__main__":
    main()
