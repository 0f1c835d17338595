"""Fixtures for CLI tests that run real `gdlab` processes against a real local cloud: a gdlab
home and a port of its own (never the user's, never 4599), the commands run there, boto3
clients on that local cloud, and an inventory made with them, service by service, that does
not trust gdlab's own sweep. The local cloud is always stopped afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REGION = "us-east-1"
GDLAB = str(Path(sys.executable).with_name("gdlab"))
# What a user's environment must not bring into these processes.
_DROPPED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN",
            "AWS_SECURITY_TOKEN", "GDLAB_TARGET", "GDLAB_DEBUG", "COLUMNS")


def free_port_of(config: pytest.Config) -> int:
    """tests/conftest.py's find_free_port (that conftest cannot be imported by name: every
    test folder's conftest is a module called 'conftest')."""
    root = Path(__file__).resolve().parents[1] / "conftest.py"
    for plugin in config.pluginmanager.get_plugins():
        where = getattr(plugin, "__file__", None)
        if where and Path(where).resolve() == root:
            return plugin.find_free_port()
    raise AssertionError(f"{root} is not loaded")


class GdlabCloud:
    """A gdlab home and a local-cloud port, the commands run in them, and boto3 clients on
    that local cloud for an inventory independent of gdlab."""

    def __init__(self, home: Path, port: int, columns: int | None = 200):
        self.home = home
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
        env.update(
            GDLAB_HOME=str(home),
            GDLAB_LOCAL_PORT=str(port),
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
        )
        if columns:  # step lines on one line each, whatever the terminal
            env["COLUMNS"] = str(columns)
        self.env = env
        self._clients: dict[str, Any] = {}

    def start(self, *args: str) -> subprocess.Popen[str]:
        """`gdlab ARGS` in this home, in the background."""
        return subprocess.Popen(
            [GDLAB, *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, stdin=subprocess.DEVNULL,
        )

    def run(self, *args: str, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """`gdlab ARGS` in this home (`env`: more variables)."""
        return subprocess.run(
            [GDLAB, *args], env={**self.env, **(env or {})}, capture_output=True, text=True,
            timeout=timeout, stdin=subprocess.DEVNULL,
        )

    def local_env(self) -> dict[str, str]:
        """What `gdlab local env --json` prints for this home (the local cloud is started if
        it is not running): the variables that point AWS tools at it."""
        import json

        done = self.run("local", "env", "--json", timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def keys(self) -> dict[str, str]:
        """boto3 arguments with the local cloud's own credentials (made at its start)."""
        from gdlab.local.credentials import load

        return load(self.home).boto3_kwargs()

    def run_elsewhere(
        self, *args: str, home: Path, columns: int | None = 200, timeout: float = 120,
        **env: str | None,
    ) -> subprocess.CompletedProcess[str]:
        """`gdlab --endpoint-url <this local cloud> ARGS` with GDLAB_HOME=`home`: many homes
        share one local cloud. `columns` None: the width a pipe gets (80); `env`: more
        variables (None removes one)."""
        full = {**self.env, "GDLAB_HOME": str(home),
                **{k: v for k, v in env.items() if v is not None}}
        for name in [k for k, v in env.items() if v is None] + ([] if columns else ["COLUMNS"]):
            full.pop(name, None)
        if columns:
            full["COLUMNS"] = str(columns)
        return subprocess.run(
            [GDLAB, "--endpoint-url", self.endpoint, *args], env=full, capture_output=True,
            text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )

    def client(self, service: str) -> Any:
        if service not in self._clients:
            import boto3
            from botocore.config import Config

            self._clients[service] = boto3.client(
                service, region_name=REGION, endpoint_url=self.endpoint, **self.keys(),
                config=Config(retries={"mode": "standard", "max_attempts": 3}),
            )
        return self._clients[service]

    def stop(self) -> None:
        self.run("local", "stop", timeout=60)

    # --- an inventory that does not trust gdlab ------------------------------------------
    def hub_arn(self) -> str | None:
        """Security Hub's ARN, or None when it is not enabled (AWS says so with one of two
        codes)."""
        from botocore.exceptions import ClientError

        try:
            return self.client("securityhub").describe_hub()["HubArn"]
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            assert code in ("InvalidAccessException", "ResourceNotFoundException"), code
            return None

    def inventory(self, lab: str | None = None) -> dict[str, list[str]]:
        """Every resource gdlab could have made, enumerated service by service (the logic
        of tests/lab/conftest.py's inventory, over HTTP). With `lab`, only what carries that
        lab's tag or name, or sits in one of its VPCs; always excluding AWS's defaults."""
        ec2 = self.client("ec2")
        found: dict[str, list[str]] = {}

        def ours(item: dict[str, Any]) -> bool:
            value = {t["Key"]: t["Value"] for t in item.get("Tags") or []}.get("gdlab:lab")
            return value is not None if lab is None else value == lab

        vpcs = [v for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]]
        if lab is not None:
            vpcs = [v for v in vpcs if ours(v)]
        vpc_ids = {v["VpcId"] for v in vpcs}
        found["vpc"] = sorted(vpc_ids)

        def in_lab(item: dict[str, Any]) -> bool:
            return lab is None or ours(item) or item.get("VpcId") in vpc_ids

        found["subnet"] = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]
                           if not s["DefaultForAz"] and in_lab(s)]
        found["igw"] = [
            g["InternetGatewayId"] for g in ec2.describe_internet_gateways()["InternetGateways"]
            if ours(g) or any(a.get("VpcId") in vpc_ids for a in g.get("Attachments", []))
        ]
        found["route-table"] = [t["RouteTableId"]
                                for t in ec2.describe_route_tables()["RouteTables"] if ours(t)]
        found["security-group"] = [g["GroupId"]
                                   for g in ec2.describe_security_groups()["SecurityGroups"]
                                   if g["GroupName"] != "default" and in_lab(g)]
        found["instance"] = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"]
                             for i in r["Instances"]
                             if i["State"]["Name"] != "terminated" and in_lab(i)]
        found["eip"] = [a["AllocationId"] for a in ec2.describe_addresses()["Addresses"]
                        if lab is None or ours(a)]
        found["flow-log"] = [f["FlowLogId"] for f in ec2.describe_flow_logs()["FlowLogs"]
                             if in_lab(f) or f.get("ResourceId") in vpc_ids]
        iam = self.client("iam")
        prefix = "gdlab-" if lab is None else f"gdlab-{lab}-"
        found["role"] = [r["RoleName"] for r in iam.list_roles(PathPrefix="/gdlab/")["Roles"]
                         if r["RoleName"].startswith(prefix)]
        found["instance-profile"] = [
            p["InstanceProfileName"]
            for p in iam.list_instance_profiles(PathPrefix="/gdlab/")["InstanceProfiles"]
            if p["InstanceProfileName"].startswith(prefix)
        ]
        found["user"] = [u["UserName"] for u in iam.list_users(PathPrefix="/gdlab/")["Users"]
                         if u["UserName"].startswith(prefix)]
        ssm = self.client("ssm")
        found["parameter"] = [
            p["Name"] for p in ssm.describe_parameters(ParameterFilters=[
                {"Key": "Path", "Option": "Recursive", "Values": ["/gdlab"]}])["Parameters"]
            if lab is None or p["Name"].startswith(f"/gdlab/{lab}/")]
        found["bucket"] = [b["Name"] for b in self.client("s3").list_buckets()["Buckets"]
                           if lab is None or b["Name"].startswith(prefix)]
        gd = self.client("guardduty")
        detectors = gd.list_detectors()["DetectorIds"]
        found["detector"] = [
            d for d in detectors
            if lab is None or gd.get_detector(DetectorId=d).get("Tags", {}).get("gdlab:lab") == lab
        ]
        found["threat-intel-set"] = [
            s for d in detectors
            for s in gd.list_threat_intel_sets(DetectorId=d)["ThreatIntelSetIds"]
            if lab is None or gd.get_threat_intel_set(DetectorId=d, ThreatIntelSetId=s)["Name"]
            == f"Example-Threat-List-{lab}"
        ]

        def named(name: str) -> bool:  # the scenario's names end with "-<lab>"
            return lab is None or name.endswith(f"-{lab}")

        sns = self.client("sns")
        found["topic"] = [t["TopicArn"] for t in sns.list_topics()["Topics"]
                          if named(t["TopicArn"].rsplit(":", 1)[-1])]
        found["subscription"] = [s["SubscriptionArn"]
                                 for s in sns.list_subscriptions()["Subscriptions"]
                                 if named(s["TopicArn"].rsplit(":", 1)[-1])]
        found["function"] = [f["FunctionName"]
                             for f in self.client("lambda").list_functions()["Functions"]
                             if named(f["FunctionName"])]
        found["rule"] = [r["Name"] for r in self.client("events").list_rules()["Rules"]
                         if named(r["Name"])]
        found["log-group"] = [g["logGroupName"]
                              for g in self.client("logs").describe_log_groups()["logGroups"]
                              if named(g["logGroupName"])
                              or g["logGroupName"] == f"/gdlab/{lab}/flow-logs"]
        hub = self.hub_arn()
        if hub and lab is not None:
            tags = self.client("securityhub").list_tags_for_resource(ResourceArn=hub)
            hub = hub if tags.get("Tags", {}).get("gdlab:lab") == lab else None
        found["securityhub"] = [hub] if hub else []
        return {k: sorted(v) for k, v in found.items() if v}


@pytest.fixture(scope="module")
def module_cloud(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[GdlabCloud]:
    """One local cloud for a test module (its tests use distinct lab ids), started in a home
    of its own and stopped at the end."""
    cloud = GdlabCloud(tmp_path_factory.mktemp("cloud-home"), free_port_of(pytestconfig))
    try:
        started = cloud.run("local", "start")
        assert started.returncode == 0, started.stdout + started.stderr
        yield cloud
    finally:
        cloud.stop()


@pytest.fixture
def fresh_cloud(tmp_path: Path, pytestconfig: pytest.Config) -> Iterator[GdlabCloud]:
    """A home and a port no local cloud has used: the first command starts a new one (no
    detector, no hub yet). Stopped at the end."""
    cloud = GdlabCloud(tmp_path / "fresh-home", free_port_of(pytestconfig))
    try:
        yield cloud
    finally:
        cloud.stop()
