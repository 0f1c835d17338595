"""Fixtures for the lab core: a Cloud on in-process moto, a store, the scenario, and an
inventory that enumerates each service directly (moto's tagging API misses EIPs, IAM roles
and GuardDuty), so a leak cannot hide."""

from __future__ import annotations

from typing import Any

import pytest

from gdlab.cloud import Cloud, CloudSettings
from gdlab.lab import lifecycle
from gdlab.lab.state import LabStore
from gdlab.scenario import load


@pytest.fixture
def cloud(mocked_aws: None) -> Cloud:
    return Cloud(CloudSettings(target="aws", region="us-east-1"))


@pytest.fixture
def store(gdlab_home) -> LabStore:
    return LabStore(gdlab_home)


@pytest.fixture
def scenario():
    return load()


def fast(ctx):
    """moto answers at once: poll it quickly though the target is 'aws'."""
    ctx.poll_seconds = 0.01
    ctx.patience_seconds = 2.0
    return ctx


@pytest.fixture
def new_lab(cloud, store, scenario):
    def make(lab: str = "gd-test01", email: str | None = None):
        state = lifecycle.open_lab(store, cloud, scenario, lab=lab, email=email)
        return fast(lifecycle.context(cloud, state, scenario))

    return make


def every_finding_answered(cloud: Cloud, function: str, at_least: int) -> None:
    """Waits until GuardDuty holds at_least findings and the responder's log has a result for
    each: EventBridge invokes the Lambda asynchronously, so a run may still be under way after
    watch saw the first answer, and would undo what a test does next."""
    import time

    from gdlab.lab.responder import RESULT_LOG_PREFIX, parse_result

    guardduty, logs = cloud.client("guardduty"), cloud.client("logs")
    detector = guardduty.list_detectors()["DetectorIds"][0]
    deadline = time.monotonic() + 60
    while True:
        findings = set(guardduty.list_findings(DetectorId=detector)["FindingIds"])
        lines = logs.filter_log_events(logGroupName=f"/aws/lambda/{function}",
                                       filterPattern=f'"{RESULT_LOG_PREFIX}"')["events"]
        answered = {(parse_result(e["message"]) or {}).get("finding_id") for e in lines}
        if len(findings) >= at_least and findings <= answered:
            return
        assert time.monotonic() < deadline, f"findings {findings}, answered {answered}"
        time.sleep(0.2)


def inventory(cloud: Cloud, lab: str | None = None) -> dict[str, list[str]]:
    """Every resource gdlab could have made, enumerated service by service. With `lab`,
    only what carries that lab's tag or name; always excluding AWS's defaults."""
    ec2 = cloud.client("ec2")
    found: dict[str, list[str]] = {}

    def tagged(tags: list[dict[str, str]] | None) -> bool:
        tags = {t["Key"]: t["Value"] for t in tags or []}
        return "gdlab:lab" in tags and (lab is None or tags["gdlab:lab"] == lab)

    found["vpc"] = [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]]
    found["subnet"] = [
        s["SubnetId"] for s in ec2.describe_subnets()["Subnets"] if not s["DefaultForAz"]
    ]
    found["igw"] = [
        g["InternetGatewayId"]
        for g in ec2.describe_internet_gateways()["InternetGateways"]
        if tagged(g.get("Tags"))
    ]
    found["route-table"] = [
        t["RouteTableId"]
        for t in ec2.describe_route_tables()["RouteTables"]
        if tagged(t.get("Tags"))
    ]
    found["security-group"] = [
        g["GroupId"]
        for g in ec2.describe_security_groups()["SecurityGroups"]
        if g["GroupName"] != "default"
    ]
    found["instance"] = [
        i["InstanceId"]
        for r in ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
    ]
    found["eip"] = [a["AllocationId"] for a in ec2.describe_addresses()["Addresses"]]
    found["flow-log"] = [f["FlowLogId"] for f in ec2.describe_flow_logs()["FlowLogs"]]
    iam = cloud.client("iam")
    found["role"] = [r["RoleName"] for r in iam.list_roles()["Roles"] if "gdlab" in r["RoleName"]]
    found["instance-profile"] = [
        p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]
    ]
    found["user"] = [u["UserName"] for u in iam.list_users()["Users"]
                     if "gdlab" in u["UserName"] and (lab is None or lab in u["UserName"])]
    found["parameter"] = [
        p["Name"] for p in cloud.client("ssm").describe_parameters(ParameterFilters=[
            {"Key": "Path", "Option": "Recursive", "Values": ["/gdlab"]}])["Parameters"]
        if lab is None or p["Name"].startswith(f"/gdlab/{lab}/")]
    found["bucket"] = [b["Name"] for b in cloud.client("s3").list_buckets()["Buckets"]]
    gd = cloud.client("guardduty")
    detectors = gd.list_detectors()["DetectorIds"]
    found["detector"] = detectors
    found["threat-intel-set"] = [
        s for d in detectors for s in gd.list_threat_intel_sets(DetectorId=d)["ThreatIntelSetIds"]
    ]
    found["topic"] = [t["TopicArn"] for t in cloud.client("sns").list_topics()["Topics"]]
    found["subscription"] = [
        s["SubscriptionArn"] for s in cloud.client("sns").list_subscriptions()["Subscriptions"]
    ]
    found["function"] = [
        f["FunctionName"] for f in cloud.client("lambda").list_functions()["Functions"]
    ]
    found["rule"] = [r["Name"] for r in cloud.client("events").list_rules()["Rules"]]
    found["log-group"] = [
        g["logGroupName"] for g in cloud.client("logs").describe_log_groups()["logGroups"]
    ]
    try:
        cloud.client("securityhub").describe_hub()
        found["securityhub"] = ["enabled"]
    except Exception:
        found["securityhub"] = []
    return {k: v for k, v in found.items() if v}


@pytest.fixture
def leftovers(cloud) -> Any:
    return lambda lab=None: inventory(cloud, lab)
