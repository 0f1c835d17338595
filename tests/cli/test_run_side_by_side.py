"""`gdlab run --all --parallel N`: every scenario side by side, each a `gdlab run` process of
its own in one home, within the Elastic IP quota; one table, one JSON, one JUnit file; a
signal winds every run down and nothing is left (an inventory made here, with boto3).
(fresh_cloud and its inventory: tests/cli/conftest.py.)"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from gdlab.scenario import list_scenarios

pytestmark = pytest.mark.slow

NAMES = [s.name for s in list_scenarios()]
GDLAB = str(Path(sys.executable).with_name("gdlab"))


def nothing_left(cloud: Any) -> None:
    assert cloud.inventory() == {}
    assert cloud.client("guardduty").list_detectors()["DetectorIds"] == []
    assert cloud.hub_arn() is None


def every_run_setting_up(cloud: Any) -> tuple[subprocess.Popen[str], list[str]]:
    """`gdlab run --all --parallel 4` started, and its output read until every run is
    setting its lab up (or it ended before: the caller's checks report it)."""
    cloud.run("local", "start")
    proc = subprocess.Popen(
        [GDLAB, "run", "--all", "--parallel", "4"],
        env=cloud.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        stdin=subprocess.DEVNULL)
    seen: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if not line or (sum(" started (pid" in s for s in seen) == len(NAMES)
                        and "created" in line):
            break
    return proc, seen


def test_every_scenario_side_by_side_passes_with_one_report(fresh_cloud: Any, tmp_path: Path):
    cloud = fresh_cloud
    junit, page = tmp_path / "runs.xml", tmp_path / "incident.html"
    done = cloud.run("run", "--all", "--parallel", "4", "--json", "--junit", str(junit),
                     "--report", str(page), timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["passed"] is True and report["not_run"] == []
    assert [r["scenario"] for r in report["scenarios"]] == NAMES
    for run in report["scenarios"]:
        assert run["passed"] is True
        assert [s["step"] for s in run["steps"]] == ["setup", "trigger", "watch", "verify",
                                                     "teardown"]
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == [f"gdlab.run.{n}" for n in NAMES]
    # They did run side by side: every run started before the first one ended.
    lines = done.stderr.splitlines()
    started = [i for i, line in enumerate(lines) if re.search(r" started \(pid \d+\)", line)]
    ended = [i for i, line in enumerate(lines) if re.search(r" PASSED \(exit 0\)", line)]
    assert len(started) == len(NAMES) and max(started) < min(ended)
    assert f"{len(NAMES)}/{len(NAMES)} scenarios passed" in done.stderr
    # One report from every run's evidence, gathered in its own process before teardown.
    document = page.read_text()
    assert document.count('<section class="lab"') == len(NAMES)
    for run in report["scenarios"]:
        assert f'data-lab="{run["lab"]}"' in document
        assert f'data-finding-id="{run["watch"]["finding_id"]}"' in document
    nothing_left(cloud)


def test_the_elastic_ip_quota_decides_how_many_run_at_once(fresh_cloud: Any):
    """With one address free of the quota, the runs go one at a time whatever --parallel."""
    cloud = fresh_cloud
    cloud.run("local", "start")
    ec2 = cloud.client("ec2")
    held = [ec2.allocate_address(Domain="vpc")["AllocationId"] for _ in range(4)]  # 4 of 5
    try:
        done = cloud.run("run", "--all", "--parallel", "4", timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "(1 Elastic IPs free" in done.stdout
        events = re.findall(r"(started \(pid|PASSED \(exit 0\))", done.stdout)
        assert events == ["started (pid", "PASSED (exit 0)"] * len(NAMES), events
    finally:
        for allocation in held:
            ec2.release_address(AllocationId=allocation)
    nothing_left(cloud)


def test_ctrl_c_winds_every_run_down_and_leaves_nothing(fresh_cloud: Any):
    cloud = fresh_cloud
    proc, seen = every_run_setting_up(cloud)
    proc.send_signal(signal.SIGINT)  # as a terminal's Ctrl-C: to this process only
    rest, _ = proc.communicate(timeout=300)
    out = "".join(seen) + rest
    assert proc.returncode == 130, out
    assert "Traceback" not in out
    assert "not run" not in out or "FAILED" in out
    nothing_left(cloud)


def test_parallel_without_all_is_a_usage_error(fresh_cloud: Any):
    done = fresh_cloud.run("run", "--parallel", "2")
    assert done.returncode == 2
    assert "--parallel runs the scenarios of --all side by side" in done.stderr
    assert "Traceback" not in done.stderr


def test_runs_whose_parent_is_killed_tear_their_labs_down_themselves(fresh_cloud: Any):
    """kill -9 of `gdlab run --all` mid-setup: its runs lose what they write to, and each
    winds down as on a lost terminal (its lab torn down), instead of exiting on the broken
    pipe and leaving it for a teardown by hand."""
    cloud = fresh_cloud
    proc, seen = every_run_setting_up(cloud)
    assert proc.stdout is not None
    runs = [int(pid) for pid in re.findall(r" started \(pid (\d+)\)", "".join(seen))]
    assert len(runs) == len(NAMES), seen
    proc.kill()
    proc.wait()
    proc.stdout.close()
    deadline = time.monotonic() + 240
    while any(Path(f"/proc/{pid}").exists() for pid in runs) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in runs if Path(f"/proc/{pid}").exists()]
    nothing_left(cloud)
