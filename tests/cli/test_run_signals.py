"""`gdlab run` and `gdlab setup` under real signals, in real processes, on the local cloud.

Each test starts a real `gdlab` process, waits until it reaches a phase, signals it the way
a terminal (Ctrl-C: the whole foreground process group), a supervisor (SIGTERM) or a lost
terminal (SIGHUP) would, and then takes an inventory of the local cloud with boto3 that owes
nothing to gdlab's own state: nothing of the lab may be left.

The run talks to the local cloud through a small TCP relay in this process (`--endpoint-url`)
that adds a little latency to every request, as a real AWS endpoint has, and can hold a
chosen call in flight: that makes "during setup", "while RunInstances is in flight" and
"during teardown" moments a test can reach without racing the clock.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

REGION = "us-east-1"

WAIT = 120.0  # generous upper bounds for a shared, slow machine; never asserted on


class Relay:
    """127.0.0.1:<port> -> the local cloud, byte for byte, `delay` seconds later per chunk
    the client sends; a chunk containing `hold` (bytes) waits until `release()`."""

    def __init__(self, upstream: int, delay: float = 0.02):
        self.upstream = upstream
        self.delay = delay
        self.hold: bytes | None = None
        self.held = threading.Event()
        self._release = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def holding(self, marker: bytes) -> None:
        self.hold, self._release = marker, threading.Event()
        self.held.clear()

    def release(self) -> None:
        self.hold = None
        self._release.set()

    def close(self) -> None:
        self._closed = True
        self.release()
        self._server.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
        except OSError:
            client.close()
            return
        tail = b""
        try:
            while True:
                ready, _, _ = select.select([client, upstream], [], [], 1.0)
                if self._closed:
                    return
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        time.sleep(self.delay)
                        marker = self.hold
                        if marker and marker in tail + data:
                            self.held.set()
                            self._release.wait()
                        tail = data[-256:]
                        upstream.sendall(data)
                    else:
                        client.sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()


def gdlab_env(home: Path, port: int) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith("AWS_") and k not in ("GDLAB_TARGET", "GDLAB_DEBUG")
    }
    env.update(
        GDLAB_HOME=str(home), GDLAB_LOCAL_PORT=str(port), AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION, PYTHONUNBUFFERED="1", COLUMNS="200",
    )
    return env


class Cloud:
    """One local cloud for the module, its home, a relay to it, and boto3 clients."""

    def __init__(self, home: Path, port: int):
        self.home, self.port = home, port
        self.env = gdlab_env(home, port)
        self.endpoint = f"http://127.0.0.1:{port}"
        self.relay = Relay(port)
        self._clients: dict[str, Any] = {}

    def gdlab(self, *args: str, timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gdlab", *args], env=self.env, capture_output=True,
            text=True, timeout=timeout,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        """A gdlab process in its own process group (as a terminal's foreground job is),
        talking to the local cloud through the relay."""
        return subprocess.Popen(
            [sys.executable, "-m", "gdlab", "--endpoint-url", self.relay.endpoint, *args],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )

    def client(self, service: str) -> Any:
        if service not in self._clients:
            import boto3
            from botocore.config import Config

            from gdlab.local.credentials import load

            self._clients[service] = boto3.client(
                service, region_name=REGION, endpoint_url=self.endpoint,
                **load(self.home).boto3_kwargs(),  # the local cloud's own, made at its start
                config=Config(retries={"mode": "standard", "max_attempts": 2}),
            )
        return self._clients[service]

    def state(self, lab: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.home / "labs" / f"{lab}.json").read_text())
        except (OSError, ValueError):
            return None

    def inventory(self) -> dict[str, list[str]]:
        """Every lab-like resource in the local cloud, found without gdlab's help."""
        ec2, iam = self.client("ec2"), self.client("iam")
        default_vpcs = {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v.get("IsDefault")}
        found: dict[str, list[str]] = {
            "instances": [
                i["InstanceId"]
                for r in ec2.describe_instances()["Reservations"]
                for i in r["Instances"]
                if i["State"]["Name"] != "terminated"
            ],
            "vpcs": [
                v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v["VpcId"] not in default_vpcs
            ],
            "security-groups": [
                g["GroupId"]
                for g in ec2.describe_security_groups()["SecurityGroups"]
                if g["GroupName"] != "default"
            ],
            "subnets": [
                s["SubnetId"]
                for s in ec2.describe_subnets()["Subnets"]
                if s["VpcId"] not in default_vpcs
            ],
            "internet-gateways": [
                g["InternetGatewayId"]
                for g in ec2.describe_internet_gateways()["InternetGateways"]
                if not {a["VpcId"] for a in g.get("Attachments", [])} & default_vpcs
            ],
            "addresses": [a["AllocationId"] for a in ec2.describe_addresses()["Addresses"]],
            "flow-logs": [f["FlowLogId"] for f in ec2.describe_flow_logs()["FlowLogs"]],
            "iam-roles": [
                r["RoleName"]
                for r in iam.list_roles()["Roles"]
                if r["Path"].startswith("/gdlab/") or r["RoleName"].startswith("gdlab-")
            ],
            "instance-profiles": [
                p["InstanceProfileName"]
                for p in iam.list_instance_profiles()["InstanceProfiles"]
                if p["Path"].startswith("/gdlab/") or p["InstanceProfileName"].startswith("gdlab-")
            ],
            "buckets": [b["Name"] for b in self.client("s3").list_buckets()["Buckets"]],
            "topics": [t["TopicArn"] for t in self.client("sns").list_topics()["Topics"]],
            "functions": [
                f["FunctionName"] for f in self.client("lambda").list_functions()["Functions"]
            ],
            "rules": [r["Name"] for r in self.client("events").list_rules()["Rules"]],
            "log-groups": [
                g["logGroupName"] for g in self.client("logs").describe_log_groups()["logGroups"]
            ],
        }
        guardduty = self.client("guardduty")
        detectors = guardduty.list_detectors()["DetectorIds"]
        found["detectors"] = detectors
        found["threat-intel-sets"] = [
            t for d in detectors for t in guardduty.list_threat_intel_sets(DetectorId=d)[
                "ThreatIntelSetIds"]
        ]
        try:
            found["security-hub"] = [self.client("securityhub").describe_hub()["HubArn"]]
        except Exception as exc:  # not enabled: InvalidAccessException
            assert "InvalidAccess" in str(exc) or "not subscribed" in str(exc), exc
            found["security-hub"] = []
        return {kind: ids for kind, ids in found.items() if ids}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("signals-home")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cloud = Cloud(home, port)
    started = cloud.gdlab("local", "start")
    assert started.returncode == 0, started.stderr
    assert cloud.inventory() == {}  # also waits until the local cloud answers
    yield cloud
    cloud.relay.close()
    cloud.gdlab("local", "stop")


@pytest.fixture
def clean(cloud: Cloud):
    """After a test, whatever it left is removed, so the next one starts from nothing."""
    yield cloud
    cloud.relay.release()
    cloud.relay.delay = 0.02
    if cloud.inventory():
        cloud.gdlab("teardown", "--all")


def wait_for(what: str, proc: subprocess.Popen[str], check: Any) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"gdlab ended ({proc.returncode}) before {what}:\n{out[-2000:]}\n{err}")
        time.sleep(0.005)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def created(cloud: Cloud, lab: str) -> int:
    state = cloud.state(lab) or {}
    return sum(1 for r in state.get("resources", []) if r["status"] == "created")


def timeline(cloud: Cloud, lab: str) -> list[str]:
    return [e["message"] for e in (cloud.state(lab) or {}).get("timeline", [])]


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"gdlab did not end after the signal:\n{out[-2000:]}\n{err}")
    return proc.returncode, out, err


def ctrl_c(proc: subprocess.Popen[str], how: int = signal.SIGINT) -> None:
    """What a terminal does: the signal goes to the whole foreground process group."""
    os.killpg(proc.pid, how)


def assert_torn_down(cloud: Cloud, lab: str, code: int, out: str, err: str) -> None:
    assert code == 130, (out[-2000:], err)
    assert cloud.inventory() == {}, err
    state = cloud.state(lab)
    assert state is not None and state["phase"] == "torn-down", err
    assert f"lab {lab} torn down, nothing of it remains" in err, err
    assert "Traceback" not in out + err


def test_sigint_early_in_setup_tears_down(clean: Cloud):
    cloud, lab = clean, "sig-early"
    proc = cloud.start("run", "--lab", lab)
    wait_for("the lab to open", proc, lambda: cloud.state(lab))
    ctrl_c(proc)
    code, out, err = finish(proc)
    assert_torn_down(cloud, lab, code, out, err)
    assert "interrupted (SIGINT): finishing the calls in flight" in err, err
    assert "setup complete: lab ready" not in timeline(cloud, lab), timeline(cloud, lab)
    assert f"setup of lab {lab} interrupted" in out  # the run's setup step says so
    assert "── trigger" not in out  # no phase started after the signal


def test_sigint_halfway_lets_the_call_in_flight_finish_and_journals_it(clean: Cloud):
    """RunInstances is held in flight when Ctrl-C comes: the run waits for it, journals the
    instance it made, and the teardown removes that instance too."""
    cloud, lab = clean, "sig-half"
    cloud.relay.holding(b"Action=RunInstances")
    proc = cloud.start("run", "--lab", lab)
    wait_for("RunInstances in flight", proc, cloud.relay.held.is_set)
    wait_for("half the resources", proc, lambda: created(cloud, lab) >= 13)  # of 26
    ctrl_c(proc)
    time.sleep(0.5)
    assert proc.poll() is None  # the call in flight holds it: it cannot have given up on it
    assert "teardown started" not in timeline(cloud, lab)
    cloud.relay.release()
    code, out, err = finish(proc)
    assert_torn_down(cloud, lab, code, out, err)
    instances = [
        r for r in cloud.state(lab)["resources"] if r["key"].startswith("instance-") and r["id"]
    ]
    assert instances and all(r["status"] == "deleted" for r in instances), instances


def test_sigterm_during_setup_json_stays_json(clean: Cloud):
    cloud, lab = clean, "sig-term"
    proc = cloud.start("run", "--lab", lab, "--json")
    wait_for("a few resources", proc, lambda: created(cloud, lab) >= 5)
    proc.send_signal(signal.SIGTERM)  # a supervisor signals the process alone
    code, out, err = finish(proc)
    assert_torn_down(cloud, lab, code, out, err)
    report = json.loads(out)  # stdout is the report and nothing else
    assert report["interrupted"] == "SIGTERM" and report["passed"] is False
    assert [s["step"] for s in report["steps"]] == ["setup", "teardown"]
    assert report["steps"][-1]["ok"] is True
    assert "interrupted (SIGTERM)" in err


@pytest.mark.parametrize(
    ("phase", "marker", "how", "after"),
    [
        ("watch", b"/findings HTTP/1.1", signal.SIGHUP, "verify"),  # list_findings
        ("trigger", b"AmazonSSM.GetCommandInvocation", signal.SIGINT, "watch"),
    ],
    ids=["sighup-in-watch", "sigint-in-trigger"],
)
def test_signal_while_a_phase_waits_in_the_main_thread(clean: Cloud, phase, marker, how, after):
    """Trigger's SSM wait and watch's polling only read: the signal ends the phase at once
    (the held call is abandoned), no later phase starts, and the teardown follows."""
    cloud, lab = clean, f"sig-{phase}"
    cloud.relay.holding(marker)
    proc = cloud.start("run", "--lab", lab)
    wait_for(f"{phase} waiting on the cloud", proc, cloud.relay.held.is_set)
    ctrl_c(proc, how)
    code, out, err = finish(proc)
    cloud.relay.release()
    assert_torn_down(cloud, lab, code, out, err)
    assert f"{phase} interrupted ({signal.Signals(how).name})" in out, out[-2000:]
    assert f"── {after}" not in out


def test_sigterm_during_teardown_is_a_first_signal_the_teardown_finishes(clean: Cloud):
    cloud, lab = clean, "sig-td"
    cloud.relay.holding(b"DELETE /2015-03-31/functions/")
    proc = cloud.start("run", "--lab", lab)
    wait_for("the teardown deleting the function", proc, cloud.relay.held.is_set)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    cloud.relay.release()
    code, out, err = finish(proc)
    assert_torn_down(cloud, lab, code, out, err)
    assert f"during the teardown of lab {lab}: finishing it" in err, err
    assert "send it again to stop" in err


def test_second_signal_stops_the_teardown_and_says_how_to_finish(clean: Cloud):
    cloud, lab = clean, "sig-twice"
    proc = cloud.start("run", "--lab", lab)
    wait_for(
        "the responder's function to be journaled",
        proc,
        lambda: any(
            r["key"] == "function" and r["status"] == "created"
            for r in (cloud.state(lab) or {}).get("resources", [])
        ),
    )
    cloud.relay.holding(b"DELETE /2015-03-31/functions/")
    ctrl_c(proc)
    wait_for("the teardown deleting the function", proc, cloud.relay.held.is_set)
    ctrl_c(proc)
    time.sleep(0.3)
    cloud.relay.release()
    code, out, err = finish(proc)
    assert code == 130, (out[-2000:], err)
    last = err.strip().splitlines()[-1]
    assert f"teardown of lab {lab} interrupted" in last, err
    assert "resource(s) remain (" in last and f"'gdlab teardown --lab {lab}'" in last, last
    left = cloud.inventory()
    assert left and "functions" not in left  # the delete in flight finished; the rest waits
    done = cloud.gdlab("teardown", "--lab", lab)
    assert done.returncode == 0, done.stderr
    assert cloud.inventory() == {}


def test_setup_alone_treats_sigterm_like_ctrl_c(clean: Cloud):
    """`gdlab setup` keeps what it made (it never tears down) and says how to remove it."""
    cloud, lab = clean, "sig-setup"
    proc = cloud.start("setup", "--lab", lab)
    wait_for("a few resources", proc, lambda: created(cloud, lab) >= 5)
    proc.send_signal(signal.SIGTERM)
    code, out, err = finish(proc)
    assert code == 130, (out[-2000:], err)
    assert f"setup of lab {lab} interrupted" in err and f"gdlab teardown --lab {lab}" in err
    state = cloud.state(lab)
    assert [r for r in state["resources"] if r["status"] == "pending"] == []  # all journaled
    assert cloud.inventory()  # kept, as setup does
    done = cloud.gdlab("teardown", "--lab", lab)
    assert done.returncode == 0, done.stderr
    assert cloud.inventory() == {}


def test_keep_keeps_the_lab_on_a_signal_and_says_how_to_remove_it(clean: Cloud):
    cloud, lab = clean, "sig-keep"
    proc = cloud.start("run", "--lab", lab, "--keep")
    wait_for("a few resources", proc, lambda: created(cloud, lab) >= 5)
    ctrl_c(proc)
    code, out, err = finish(proc)
    assert code == 130, (out[-2000:], err)
    assert err.strip().splitlines()[-1] == (
        f"gdlab run interrupted (SIGINT): lab {lab} kept (--keep) — "
        f"'gdlab teardown --lab {lab}' removes it"
    )
    assert "teardown started" not in timeline(cloud, lab)
    done = cloud.gdlab("teardown", "--lab", lab)
    assert done.returncode == 0, done.stderr
    assert cloud.inventory() == {}


def test_ctrl_c_stops_a_plain_teardown_and_names_what_is_left(clean: Cloud):
    """`gdlab teardown` alone: the first signal lets the delete in flight finish, then stops
    and names what is left; a second teardown finishes it."""
    cloud, lab = clean, "sig-plain"
    made = cloud.gdlab("setup", "--lab", lab)
    assert made.returncode == 0, made.stderr
    function = b"GuardDuty-Example-Remediation-EC2MaliciousIPCaller-" + lab.encode()
    cloud.relay.holding(b"DELETE /2015-03-31/functions/" + function + b" HTTP")
    proc = cloud.start("teardown", "--lab", lab)
    wait_for("the teardown deleting the function", proc, cloud.relay.held.is_set)
    ctrl_c(proc)
    time.sleep(0.3)
    cloud.relay.release()
    code, out, err = finish(proc)
    assert code == 130, (out[-2000:], err)
    assert "stopping the teardown once the deletes in flight have finished" in err, err
    assert f"teardown of lab {lab} interrupted" in err and f"gdlab teardown --lab {lab}" in err
    assert "Traceback" not in out + err
    left = cloud.inventory()
    assert left and "functions" not in left
    done = cloud.gdlab("teardown", "--lab", lab)
    assert done.returncode == 0, done.stderr
    assert cloud.inventory() == {}
