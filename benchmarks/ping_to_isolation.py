"""Time from SSM SendCommand accepted to the forensic group on every ENI, on the local cloud.

GuardDuty publishes a finding to EventBridge once (repeats only raise its Count), so every
trial is a fresh lab with the real responder: `gdlab setup` on a background local cloud (in a
fresh GDLAB_HOME), then the trigger's ping through SSM SendCommand, timed from the moment the
call returns (accepted; the local cloud simulates the ping inside the call) and from the moment
it is sent, until DescribeNetworkInterfaces shows only the forensic group on every ENI of the
compromised instance, then `gdlab teardown`. Prints each trial and the medians.

    .venv/bin/python benchmarks/ping_to_isolation.py [--trials 10]
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

import boto3

GDLAB = str(Path(sys.executable).with_name("gdlab"))
POLL = 0.01


def gdlab(home: str, *args: str, check: bool = True) -> str:
    env = {**os.environ, "GDLAB_HOME": home}
    done = subprocess.run([GDLAB, *args], env=env, capture_output=True, text=True)
    if done.returncode and not check:
        # Leftovers of one lab do not change the next one's timing: note them, go on.
        print(f"  (gdlab {' '.join(args)} failed: {done.stderr.strip()[-200:]})", flush=True)
    elif done.returncode:
        sys.exit(f"gdlab {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def resources(home: str) -> dict[str, dict]:
    lab = (Path(home) / "current").read_text().strip()
    state = json.loads((Path(home) / "labs" / f"{lab}.json").read_text())
    return {r["key"]: r for r in state["resources"]}


def isolated(ec2, instance: str, forensic: str) -> bool:
    enis = ec2.describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance]}])["NetworkInterfaces"]
    return bool(enis) and all([g["GroupId"] for g in e["Groups"]] == [forensic] for e in enis)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="gdlab-bench-")
    gdlab(home, "local", "start")
    endpoint = json.loads((Path(home) / "local" / "server.json").read_text())["endpoint"]

    from gdlab.local.credentials import load

    keys = load(Path(home)).boto3_kwargs()  # the local cloud's own, made at its start

    def client(service: str):
        return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", **keys)

    ec2, ssm = client("ec2"), client("ssm")
    times, totals = [], []
    try:
        for trial in range(1, args.trials + 1):
            gdlab(home, "setup", "--lab", f"bench-{trial}")
            found = resources(home)
            instance = found["instance-compromised"]["id"]
            forensic = found["sg-forensic"]["id"]
            eip = found["eip"]["attrs"]["public_ip"]
            assert not isolated(ec2, instance, forensic)
            sent = time.perf_counter()
            ssm.send_command(InstanceIds=[instance], DocumentName="AWS-RunShellScript",
                             Parameters={"commands": [f"ping -c 3 -i 1 {eip}"]})
            accepted = time.perf_counter()
            while not isolated(ec2, instance, forensic):
                if time.perf_counter() - accepted > 30:
                    sys.exit(f"trial {trial}: not isolated after 30 s")
                time.sleep(POLL)
            times.append(time.perf_counter() - accepted)
            totals.append(time.perf_counter() - sent)
            print(f"trial {trial}: {times[-1] * 1000:.0f} ms after accepted, "
                  f"{totals[-1] * 1000:.0f} ms after sent", flush=True)
            gdlab(home, "teardown", "--lab", f"bench-{trial}", check=False)
    finally:
        gdlab(home, "local", "stop")
    for label, values in (("after accepted", times), ("after sent", totals)):
        print(f"median of {len(values)} {label}: {statistics.median(values) * 1000:.0f} ms "
              f"(min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f})")


if __name__ == "__main__":
    main()
