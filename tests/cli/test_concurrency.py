"""Nothing leaks when gdlab commands race: real `gdlab` processes against a real local cloud.

Two setups of one lab, every command on a lab another process holds, a setup and a teardown
of one lab, two labs sharing one GuardDuty detector and Security Hub (torn down together, or
one set up while the other goes), two labs set up at once in a region with no detector, two
setups fighting over the last Elastic IP of the quota. After each, an inventory made here,
service by service with boto3 (not with gdlab's own sweep), shows exactly what the promise
says: one of each resource, or nothing at all.
(module_cloud, fresh_cloud and their inventory: tests/cli/conftest.py.)"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

TRACEBACK = "Traceback (most recent call last)"
GDLAB = str(Path(sys.executable).with_name("gdlab"))
# A step line of setup: " ✓   0.19s  Lab VPC    created    vpc-..."
_STEP = re.compile(r"\s(created|adopted|exists|found|configured|failed)\s")

# One lab of compromised-ec2 without an e-mail subscription, as the inventory counts it
# (the detector and Security Hub are one per region: counted apart).
ONE_LAB = {
    "vpc": 1, "subnet": 1, "igw": 1, "route-table": 1, "security-group": 4, "instance": 2,
    "eip": 1, "role": 3, "instance-profile": 1, "bucket": 1, "threat-intel-set": 1, "topic": 1,
    "function": 1, "rule": 1, "log-group": 2, "flow-log": 1,
}


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{proc.args} did not end in {timeout} s:\n{out}\n{err}")
    return proc.returncode, out, err


def no_traceback(*texts: str) -> None:
    for text in texts:
        assert TRACEBACK not in text, text


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def per_lab(found: dict[str, list[str]]) -> dict[str, int]:
    return {k: len(v) for k, v in found.items() if k not in ("detector", "securityhub")}


# --- 1. two setups of one lab ----------------------------------------------------------------
def busy_line(lab: str) -> re.Pattern[str]:
    return re.compile(rf"error: lab {lab} is in use by gdlab setup --lab {lab} \(pid \d+\) — "
                      r"wait for that command to finish")


def test_two_setups_of_one_lab_make_one_lab(module_cloud: Any):
    cloud, lab = module_cloud, "race-x"
    both = [cloud.start("setup", "--lab", lab), cloud.start("setup", "--lab", lab)]
    results = [finish(proc) for proc in both]
    for _, out, err in results:
        no_traceback(out, err)
    winners = [r for r in results if r[0] == 0 and "created" in _STEP.findall(r[1])]
    assert len(winners) == 1, results
    (loser,) = [r for r in results if r is not winners[0]]
    code, out, err = loser
    if code == 0:  # it waited for the lock (saying so), then resumed: everything is there
        waiting = [line for line in err.splitlines() if "is in use by" in line]
        assert len(waiting) == 1 and waiting[0].startswith(f"lab {lab} is in use by gdlab "
                                                           f"setup --lab {lab} (pid "), err
        assert waiting[0].endswith("waiting up to 5 s"), err
        assert set(_STEP.findall(out)) == {"exists"}, out
    else:  # it waited 5 s, then refused in one line
        assert code == 1, loser
        lines = error_lines(err)
        assert len(lines) == 1 and busy_line(lab).match(lines[0]), err

    found = cloud.inventory(lab)
    assert per_lab(found) == ONE_LAB, found
    assert len(cloud.client("guardduty").list_detectors()["DetectorIds"]) == 1
    rule = f"GuardDuty-Event-EC2-MaliciousIPCaller-{lab}"
    targets = cloud.client("events").list_targets_by_rule(Rule=rule)["Targets"]
    assert sorted(t["Id"] for t in targets) == ["gdlab-email", "gdlab-responder"]
    function = f"GuardDuty-Example-Remediation-EC2MaliciousIPCaller-{lab}"
    policy = json.loads(cloud.client("lambda").get_policy(FunctionName=function)["Policy"])
    assert len(policy["Statement"]) == 1, policy

    down = cloud.run("teardown", "--lab", lab)
    no_traceback(down.stdout, down.stderr)
    assert down.returncode == 0, down.stdout + down.stderr
    assert cloud.inventory(lab) == {}


def test_every_command_on_a_busy_lab_waits_then_refuses_in_one_line(module_cloud: Any):
    """The lab's lock held by another process (here: this one, as a `gdlab watch` would):
    each command that changes the lab says once that it waits, then refuses in one line
    naming the holder, and changes nothing; a dry run takes no lock and goes on."""
    cloud, lab = module_cloud, "busy-1"
    made = cloud.run("setup", "--lab", lab)
    assert made.returncode == 0, made.stdout + made.stderr
    before = cloud.inventory(lab)
    state = cloud.home / "labs" / f"{lab}.json"
    journal = state.read_bytes()
    holder = f"gdlab watch --lab {lab} (pid {os.getpid()})"
    fd = os.open(cloud.home / "labs" / f"{lab}.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{holder}\n".encode(), 0)
        commands = [("setup", "--lab", lab), ("teardown", "--lab", lab),
                    ("trigger", "--lab", lab), ("watch", "--lab", lab),
                    ("verify", "--lab", lab), ("teardown", "--all", "--yes")]
        procs = {args: cloud.start(*args) for args in commands}
        dry = cloud.run("teardown", "--lab", lab, "--dry-run")
        results = {args: finish(proc) for args, proc in procs.items()}
    finally:
        os.close(fd)  # lets the lock go
    no_traceback(dry.stdout, dry.stderr)
    assert dry.returncode == 0 and "would-delete" in dry.stdout, dry.stdout + dry.stderr
    waiting = f"lab {lab} is in use by {holder}; waiting up to 5 s"
    busy = (f"lab {lab} is in use by {holder} — wait for that command to finish (or stop "
            "it), then retry")
    for args, (code, out, err) in results.items():
        no_traceback(out, err)
        assert code == 1, (args, code, out, err)
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines.count(waiting) == 1, (args, err)
        if args[1] == "--all":  # the others go on; this one is named in the summary
            assert len(error_lines(err)) == 1 and busy in error_lines(err)[0], (args, err)
        else:
            assert error_lines(err) == [f"error: {busy}"], (args, err)
    assert state.read_bytes() == journal
    assert cloud.inventory(lab) == before

    down = cloud.run("teardown", "--lab", lab)
    assert down.returncode == 0, down.stdout + down.stderr
    assert cloud.inventory(lab) == {}


def test_the_waiting_line_stays_one_line_whatever_the_holder_ran(
    module_cloud: Any, tmp_path: Path
):
    """A holder's command line is its argv, which may hold a newline or an escape
    (gdlab verify --junit $'report\\n.xml')."""
    home, lab = tmp_path / "home", "busy-2"
    (home / "labs").mkdir(parents=True, mode=0o700)
    fd = os.open(home / "labs" / f"{lab}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.pwrite(fd, f"gdlab verify --lab {lab} --junit report\n\x1b[2J.xml (pid "
                      f"{os.getpid()})\n".encode(), 0)
        result = module_cloud.run_elsewhere("teardown", "--lab", lab, home=home)
    finally:
        os.close(fd)
    assert result.returncode == 1, result.stderr
    assert "\x1b" not in result.stderr, result.stderr
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        line for line in result.stderr.splitlines()
        if line.startswith((f"lab {lab} is in use by", "error: "))], result.stderr


# --- 2. a setup and a teardown of one lab ---------------------------------------------------
# The teardown starts with the setup, a little after (locally: while the setup holds the
# lab, so it waits), or later still: whichever comes first, nothing may be left.
@pytest.mark.parametrize(("lab", "after"), [("race-st1", 0.0), ("race-st2", 0.8),
                                            ("race-st3", 2.0)])
def test_setup_and_teardown_of_one_lab_at_once_leave_nothing(
    module_cloud: Any, lab: str, after: float
):
    cloud = module_cloud
    procs = {"setup": cloud.start("setup", "--lab", lab)}
    time.sleep(after)
    procs["teardown"] = cloud.start("teardown", "--lab", lab)
    results = {name: finish(proc) for name, proc in procs.items()}
    for name, (code, out, err) in results.items():
        no_traceback(out, err)
        # 1: busy, or (teardown first) no such lab yet; 2: setup of a lab torn down meanwhile
        assert code in (0, 1, 2), (name, code, out, err)
        if code:
            assert len(error_lines(err)) == 1, (name, err)
    final = cloud.run("teardown", "--lab", lab)
    no_traceback(final.stdout, final.stderr)
    assert final.returncode == 0, (results, final.stdout, final.stderr)
    assert cloud.inventory(lab) == {}, results


# --- 3. a detector and a hub shared by two labs -----------------------------------------------
def test_teardown_all_removes_a_detector_and_hub_shared_by_two_labs(fresh_cloud: Any):
    cloud = fresh_cloud
    for lab in ("share-a", "share-b"):  # a creates the detector and the hub, b adopts them
        made = cloud.run("setup", "--lab", lab)
        no_traceback(made.stdout, made.stderr)
        assert made.returncode == 0, made.stdout + made.stderr
    assert len(cloud.client("guardduty").list_detectors()["DetectorIds"]) == 1
    assert cloud.hub_arn() is not None
    down = cloud.run("teardown", "--all", "--yes")
    no_traceback(down.stdout, down.stderr)
    assert down.returncode == 0, down.stdout + down.stderr
    assert cloud.client("guardduty").list_detectors()["DetectorIds"] == []
    assert cloud.hub_arn() is None  # InvalidAccessException / ResourceNotFoundException
    assert cloud.inventory() == {}


# The creator of the detector and hub torn down at the same moment as the lab that adopted
# them, or while a second lab is being set up and adopts them: whoever ends last removes
# them, and nothing of either lab is left.
def two_labs_sharing(cloud: Any, first: str, second: str | None) -> None:
    assert cloud.client("guardduty").list_detectors()["DetectorIds"] == [], \
        "an earlier test left a detector: the first lab would not create one"
    for lab in filter(None, (first, second)):
        made = cloud.run("setup", "--lab", lab)
        assert made.returncode == 0, made.stdout + made.stderr
    (detector,) = cloud.client("guardduty").list_detectors()["DetectorIds"]
    assert cloud.inventory(first).get("detector") == [detector]  # the first one made it


def all_gone_after(cloud: Any, results: list[tuple[int, str, str]], *labs: str) -> None:
    """Every command ended well (a lab busy in another terminal never stops a teardown from
    deciding who removes the shared detector and hub) and nothing of the labs is left."""
    for code, out, err in results:
        no_traceback(out, err)
        assert code == 0, (code, out, err)
    for lab in labs:
        assert cloud.inventory(lab) == {}, (lab, results)
    assert cloud.client("guardduty").list_detectors()["DetectorIds"] == [], results
    assert cloud.hub_arn() is None, results


def test_creator_and_adopter_torn_down_at_once_leave_no_detector(module_cloud: Any):
    cloud = module_cloud
    two_labs_sharing(cloud, "own-a", "own-b")
    procs = [cloud.start("teardown", "--lab", "own-a"), cloud.start("teardown", "--lab", "own-b")]
    all_gone_after(cloud, [finish(proc) for proc in procs], "own-a", "own-b")


def test_creator_torn_down_while_a_lab_adopting_it_is_set_up(module_cloud: Any):
    cloud = module_cloud
    two_labs_sharing(cloud, "own-c", None)
    procs = [cloud.start("setup", "--lab", "own-d"), cloud.start("teardown", "--lab", "own-c")]
    results = [finish(proc) for proc in procs]
    try:
        # Whichever went first, own-d has a detector and a hub now (own-c's, still tagged
        # with its name, when own-d shared them), and nothing else of own-c is left.
        assert len(cloud.client("guardduty").list_detectors()["DetectorIds"]) == 1, results
        left = cloud.inventory("own-c")
        assert set(left) <= {"detector", "securityhub"}, (left, results)
    finally:
        results.append(finish(cloud.start("teardown", "--lab", "own-d")))
    all_gone_after(cloud, results, "own-c", "own-d")


def test_two_runs_of_different_scenarios_at_once_leave_nothing(module_cloud: Any):
    """Each run holds its lab for all of its minutes: the teardown that ends first must
    not need the other lab's lock to leave the shared detector and hub to it."""
    cloud = module_cloud
    assert cloud.client("guardduty").list_detectors()["DetectorIds"] == []
    procs = [
        cloud.start("run", "--lab", "pair-iam", "--scenario", "compromised-iam-credentials"),
        cloud.start("run", "--lab", "pair-s3", "--scenario", "compromised-s3-bucket"),
    ]
    results = [finish(proc, timeout=300) for proc in procs]
    try:
        for _code, out, _err in results:
            assert "PASSED" in out, out
        all_gone_after(cloud, results, "pair-iam", "pair-s3")
    finally:
        cloud.run("teardown", "--all", "--yes")


class HoldingProxy:
    """An HTTP proxy in front of the local cloud that holds every request matching `hold`
    until `count` of them have arrived (or `guard` seconds passed), then lets them all go:
    commands that check-then-create are made to check before any of them creates."""

    def __init__(self, upstream: str, hold: Callable[[str, str], bool], count: int = 2,
                 guard: float = 15.0):
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        up = urlsplit(upstream)
        arrived = threading.Semaphore(0)
        released = threading.Event()
        self.held: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if hold(self.command, self.path):
                    proxy.held.append(f"{self.command} {self.path}")
                    arrived.release()
                    if len(proxy.held) >= count:
                        released.set()
                    released.wait(guard)
                conn = http.client.HTTPConnection(up.hostname, up.port, timeout=120)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("connection", "content-length")}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("connection", "content-length",
                                           "transfer-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HoldingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_two_labs_set_up_at_once_in_one_home_share_one_detector(module_cloud: Any):
    """In one home the place's lock orders them: one creates, the other shares."""
    cloud = module_cloud
    assert cloud.client("guardduty").list_detectors()["DetectorIds"] == [], \
        "an earlier test left a detector"
    procs = [cloud.start("setup", "--lab", lab) for lab in ("one-a", "one-b")]
    results = [finish(proc) for proc in procs]
    try:
        for code, out, err in results:
            no_traceback(out, err)
            assert code == 0, (code, err)
        assert len(cloud.client("guardduty").list_detectors()["DetectorIds"]) == 1
        kinds = sorted(
            next(r["ownership"] for r in json.loads(
                cloud.run("status", "--lab", lab, "--json").stdout)["resources"]
                 if r["key"] == "detector")
            for lab in ("one-a", "one-b"))
        assert kinds == ["created", "shared"]
    finally:
        down = cloud.run("teardown", "--all", "--yes")
    assert down.returncode == 0, down.stdout + down.stderr
    assert cloud.inventory() == {}


def test_two_labs_set_up_at_once_from_two_homes_share_the_region_detector(
    module_cloud: Any, tmp_path: Path
):
    """Two homes (two machines) see nothing of each other: both look, both create, AWS
    allows one, and the loser adopts it (never removing it)."""
    cloud = module_cloud
    assert cloud.client("guardduty").list_detectors()["DetectorIds"] == [], \
        "an earlier test left a detector"
    homes = {lab: tmp_path / lab for lab in ("det-a", "det-b")}
    # GuardDuty's CreateDetector is POST /detector: both setups list first, then create
    creates = HoldingProxy(cloud.endpoint, lambda method, path: (method, path) == (
        "POST", "/detector"))
    try:
        with creates:
            procs = [subprocess.Popen(
                [GDLAB, "--endpoint-url", creates.endpoint, "setup", "--lab", lab],
                env={**cloud.env, "GDLAB_HOME": str(home)},
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                stdin=subprocess.DEVNULL) for lab, home in homes.items()]
            results = [finish(proc) for proc in procs]
        assert len(creates.held) == 2, creates.held  # the race did happen
        for code, out, err in results:
            no_traceback(out, err)
            assert code == 0, (code, err)
        assert len(cloud.client("guardduty").list_detectors()["DetectorIds"]) == 1
    finally:
        downs = [subprocess.run([GDLAB, "--endpoint-url", cloud.endpoint, "teardown", "--all",
                                 "--yes"], env={**cloud.env, "GDLAB_HOME": str(home)},
                                capture_output=True, text=True, timeout=120)
                 for home in homes.values()]
    for down in downs:
        assert down.returncode == 0, down.stdout + down.stderr
    assert cloud.inventory() == {}


# --- 4. two setups and the last Elastic IP of the quota --------------------------------------
def test_two_setups_for_the_last_elastic_ip_one_wins_one_refuses(module_cloud: Any):
    cloud = module_cloud
    ec2 = cloud.client("ec2")
    assert ec2.describe_addresses()["Addresses"] == [], "an earlier test leaked an address"
    mine = [ec2.allocate_address(Domain="vpc")["AllocationId"] for _ in range(4)]
    # The region's detector exists already (both labs adopt it): two setups racing to
    # create one is another test's matter.
    detector = cloud.client("guardduty").create_detector(Enable=True)["DetectorId"]
    try:
        procs = [cloud.start("setup", "--lab", lab) for lab in ("eip-one", "eip-two")]
        results = [finish(proc) for proc in procs]
        for _, out, err in results:
            no_traceback(out, err)
        assert sorted(code for code, _, _ in results) == [0, 1], results
        (loser,) = [r for r in results if r[0] == 1]
        lines = error_lines(loser[2])
        assert len(lines) == 1, loser
        assert lines[0].startswith("error: Elastic IP quota exhausted in us-east-1"), loser
        assert len(ec2.describe_addresses()["Addresses"]) == 5

        down = cloud.run("teardown", "--all", "--yes")
        no_traceback(down.stdout, down.stderr)
        assert down.returncode == 0, down.stdout + down.stderr
        assert cloud.inventory() == {"eip": sorted(mine), "detector": [detector]}
    finally:
        for allocation in mine:
            ec2.release_address(AllocationId=allocation)
        cloud.client("guardduty").delete_detector(DetectorId=detector)
    assert ec2.describe_addresses()["Addresses"] == []
