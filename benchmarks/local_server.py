"""The background local cloud: time from `gdlab local start` to answering requests, and the
idle server's memory.

    .venv/bin/python benchmarks/local_server.py [--runs 5]
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
import urllib.request
from pathlib import Path

GDLAB = str(Path(sys.executable).with_name("gdlab"))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def answers_aws(endpoint: str, home: str) -> None:
    """A signed STS call: proves moto itself (not only gdlab's status route) is serving."""
    from gdlab.local.credentials import load
    from gdlab.local.warmup import sign

    body = b"Action=GetCallerIdentity&Version=2011-06-15"
    headers = sign(load(Path(home)), "sts", "us-east-1", "POST", endpoint + "/",
                   {"Content-Type": "application/x-www-form-urlencoded"}, body)
    request = urllib.request.Request(endpoint + "/", data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    starts, first_calls, memory = [], [], []
    for _ in range(args.runs):
        home = tempfile.mkdtemp(prefix="gdlab-bench-")
        env = {**os.environ, "GDLAB_HOME": home, "GDLAB_LOCAL_PORT": "4612"}
        started = time.perf_counter()
        subprocess.run([GDLAB, "local", "start"], env=env, check=True, capture_output=True)
        starts.append(time.perf_counter() - started)
        try:
            status = json.loads(subprocess.run([GDLAB, "local", "status", "--json"], env=env,
                                               check=True, capture_output=True, text=True).stdout)
            answers_aws(status["endpoint"], home)
            first_calls.append(time.perf_counter() - started)
            time.sleep(8)  # idle: its warm-up done (a few seconds after start)
            memory.append(rss_mb(status["pid"]))
        finally:
            subprocess.run([GDLAB, "local", "stop"], env=env, capture_output=True)
    print(f"gdlab local start returns: median {statistics.median(starts):.2f}s")
    print(f"start until an AWS API call is answered: median {statistics.median(first_calls):.2f}s")
    print(f"idle server RSS: median {statistics.median(memory):.0f} MB")


if __name__ == "__main__":
    main()
