"""The local GuardDuty's finding lifecycle: repeats update one finding (never seen in the
future), updates are published per FindingPublishingFrequency, suppression rules archive
silently; a new detector's data sources and features; the instance and threat-list content
of a finding. Every GetFindings / GetDetector answer is held to botocore's wire shape."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
from test_traffic import World
from wire_shapes import assert_wire_shape, capture_raw

from gdlab.local import delivery, traffic

TYPE = "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"
SCALE = 1200  # AWS seconds per local second: 15 minutes in 0.75 s, an hour in 3 s
WINDOWS_AMI = "ami-03cf127a"  # a Windows AMI of moto's catalogue


def stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class Lab:
    """World plus one GuardDuty client whose raw answers are all checked, and the events
    GuardDuty puts on EventBridge (with the time each went out)."""

    def __init__(self, client, monkeypatch, entries=("EIP",)):
        self.events: list[tuple[float, dict]] = []
        monkeypatch.setattr(delivery, "put_service_event",
                            lambda account, region, event, bus="default":
                            self.events.append((time.monotonic(), event)))
        self.world = World(client, list(entries))
        self.gd = client("guardduty")
        self.calls = capture_raw(self.gd)

    @property
    def detector(self) -> str:
        return self.world.detector

    def findings(self, **criteria) -> list[dict]:
        ids = self.gd.list_findings(DetectorId=self.detector, **criteria)["FindingIds"]
        return self.gd.get_findings(DetectorId=self.detector, FindingIds=ids)["Findings"] \
            if ids else []

    def counts(self) -> list[int]:
        return [e["detail"]["service"]["count"] for _, e in self.events]

    def wait_events(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.events) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.events) >= n, self.counts()

    def check_wire(self) -> None:
        assert self.calls
        for operation, status, body in self.calls:
            assert status < 300, (operation, body)
            assert_wire_shape("guardduty", operation, body)


def ping(lab: Lab, count: int, interval: float, instance: str | None = None):
    return traffic.simulate_ping(lab.world.moto_instance(instance), lab.world.eip, count,
                                 interval)


@pytest.fixture
def lab(aws_client, monkeypatch):
    monkeypatch.setenv("GDLAB_LOCAL_ACTIVATION_SECONDS", "0")
    monkeypatch.setenv("GDLAB_LOCAL_TIME_SCALE", str(SCALE))
    made: list[Lab] = []

    def make(**kwargs) -> Lab:
        made.append(Lab(aws_client, monkeypatch, **kwargs))
        return made[-1]

    yield make
    for one in made:
        one.check_wire()


def test_repeats_update_one_finding_never_seen_in_the_future(lab):
    lab = lab()
    # 20 echo requests 2000 AWS seconds apart: the record ends 31.7 local seconds from now
    result = ping(lab, count=20, interval=2000)
    assert result.records[0]["end"] > time.time() + 30
    (first,) = lab.findings()
    read_at = time.time()
    service = first["Service"]
    assert stamp(service["EventFirstSeen"]) <= stamp(service["EventLastSeen"]) <= read_at
    assert first["UpdatedAt"] == first["CreatedAt"] and service["Count"] == 1

    time.sleep(0.01)
    ping(lab, count=20, interval=2000)
    (again,) = lab.findings()
    assert again["Id"] == first["Id"] and again["Service"]["Count"] == 2
    assert again["CreatedAt"] == first["CreatedAt"]
    assert again["Service"]["EventFirstSeen"] == service["EventFirstSeen"]
    assert stamp(first["UpdatedAt"]) < stamp(again["UpdatedAt"]) <= time.time()
    assert stamp(service["EventLastSeen"]) < stamp(again["Service"]["EventLastSeen"]) \
        <= time.time()


def test_updates_follow_the_finding_publishing_frequency(lab, aws_client):
    hub = aws_client("securityhub")
    hub.enable_security_hub(EnableDefaultStandards=False)
    lab = lab()
    lab.gd.update_detector(DetectorId=lab.detector, FindingPublishingFrequency="FIFTEEN_MINUTES")
    period = 15 * 60 / SCALE

    lab.world.ping()
    assert lab.counts() == [1]  # a new finding goes out at once
    lab.world.ping()
    lab.world.ping()
    assert lab.counts() == [1]  # its repeats wait for the frequency
    # no more activity: the update still goes out once the interval has passed
    lab.wait_events(2, timeout=period * 4)
    assert lab.counts() == [1, 3]
    (first_at, first), (second_at, second) = lab.events
    assert second_at - first_at >= period * 0.95
    assert second["detail"]["id"] == first["detail"]["id"]
    assert second["detail"]["updatedAt"] > first["detail"]["updatedAt"]
    # Security Hub took the update through the same hook: its copy counts 3 now
    (imported,) = hub.get_findings()["Findings"]
    assert imported["ProductFields"]["aws/guardduty/service/count"] == "3"
    assert imported["UpdatedAt"] == second["detail"]["updatedAt"]

    # a longer frequency applies to the next update
    lab.gd.update_detector(DetectorId=lab.detector, FindingPublishingFrequency="ONE_HOUR")
    lab.world.ping()
    time.sleep(period * 1.5)
    lab.world.ping()  # the analyzer's pass publishes nothing early either
    assert lab.counts() == [1, 3]
    lab.wait_events(3, timeout=60 * 60 / SCALE * 2)
    assert lab.counts() == [1, 3, 5]
    assert lab.events[2][0] - second_at >= 60 * 60 / SCALE * 0.95
    (finding,) = lab.findings()
    assert finding["Service"]["Count"] == 5
    time.sleep(period * 1.5)
    assert len(lab.events) == 3  # nothing pending, nothing more goes out


def test_default_frequency_is_six_hours_and_a_shorter_one_publishes_sooner(lab):
    lab = lab()
    detector = lab.gd.get_detector(DetectorId=lab.detector)
    assert detector["FindingPublishingFrequency"] == "SIX_HOURS"  # AWS's default
    lab.world.ping()
    lab.world.ping()
    time.sleep(15 * 60 / SCALE * 1.5)
    assert lab.counts() == [1]
    # FIFTEEN_MINUTES has passed since the first publication: the change sends it now
    lab.gd.update_detector(DetectorId=lab.detector, FindingPublishingFrequency="FIFTEEN_MINUTES")
    assert lab.counts() == [1, 2]


def criterion(**fields) -> dict:
    return {"Criterion": fields}


def test_suppression_rule_archives_new_findings_and_publishes_nothing(lab, aws_client):
    hub = aws_client("securityhub")
    hub.enable_security_hub(EnableDefaultStandards=False)
    lab = lab()
    lab.gd.update_detector(DetectorId=lab.detector, FindingPublishingFrequency="FIFTEEN_MINUTES")
    instance = lab.world.compromised
    # a saved filter (NOOP) and an ARCHIVE rule that does not match change nothing ...
    lab.gd.create_filter(DetectorId=lab.detector, Name="saved", Action="NOOP",
                         FindingCriteria=criterion(type={"Eq": [TYPE]}))
    lab.gd.create_filter(DetectorId=lab.detector, Name="high-only", Action="ARCHIVE",
                         FindingCriteria=criterion(severity={"Gte": 7}))
    # ... this one suppresses the lab's finding for its instance
    lab.gd.create_filter(
        DetectorId=lab.detector, Name="lab-instance", Action="ARCHIVE", Rank=1,
        FindingCriteria=criterion(**{
            "type": {"Eq": [TYPE]},
            "resource.instanceDetails.instanceId": {"Eq": [instance]},
            "service.action.networkConnectionAction.blocked": {"Eq": ["false"]}}))
    lab.world.ping()
    lab.world.ping()
    (finding,) = lab.findings()
    assert finding["Service"]["Archived"] is True and finding["Service"]["Count"] == 2
    assert lab.findings(FindingCriteria=criterion(**{"service.archived": {"Eq": ["false"]}})) \
        == []
    time.sleep(15 * 60 / SCALE * 1.5)
    lab.world.ping()
    assert lab.events == []
    assert hub.get_findings()["Findings"] == []

    # the rule does not match once the instance is isolated (Blocked: true): a new finding
    # would be published; here it is the same finding (same Id), so it stays archived
    lab.world.isolate()
    lab.world.ping()
    assert lab.events == []


def test_unmatched_finding_is_published_despite_suppression_rules(lab):
    lab = lab()
    lab.gd.create_filter(DetectorId=lab.detector, Name="other", Action="ARCHIVE",
                         FindingCriteria=criterion(**{
                             "resource.instanceDetails.instanceId": {"Neq": [
                                 lab.world.compromised]}}))
    lab.world.ping()
    (finding,) = lab.findings()
    assert finding["Service"]["Archived"] is False
    assert [e["detail"]["id"] for _, e in lab.events] == [finding["Id"]]


# --- detectors ------------------------------------------------------------------------
ENABLED_BY_DEFAULT = ["CLOUD_TRAIL", "DNS_LOGS", "FLOW_LOGS", "S3_DATA_EVENTS",
                      "EKS_AUDIT_LOGS", "EBS_MALWARE_PROTECTION", "RDS_LOGIN_EVENTS",
                      "LAMBDA_NETWORK_LOGS"]


def statuses(detector: dict) -> dict[str, str]:
    return {f["Name"]: f["Status"] for f in detector["Features"]}


def test_new_detector_reports_what_aws_enables(aws_client):
    gd = aws_client("guardduty")
    calls = capture_raw(gd)
    detector_id = gd.create_detector(Enable=True)["DetectorId"]
    detector = gd.get_detector(DetectorId=detector_id)
    sources = detector["DataSources"]
    assert {k: sources[k]["Status"] for k in ("CloudTrail", "DNSLogs", "FlowLogs", "S3Logs")} \
        == dict.fromkeys(("CloudTrail", "DNSLogs", "FlowLogs", "S3Logs"), "ENABLED")
    assert sources["Kubernetes"]["AuditLogs"]["Status"] == "ENABLED"
    malware = sources["MalwareProtection"]
    assert malware["ScanEc2InstanceWithFindings"]["EbsVolumes"]["Status"] == "ENABLED"
    assert malware["ServiceRole"].endswith(
        ":role/aws-service-role/malware-protection.guardduty.amazonaws.com/"
        "AWSServiceRoleForAmazonGuardDutyMalwareProtection")
    assert statuses(detector) == {**dict.fromkeys(ENABLED_BY_DEFAULT, "ENABLED"),
                                  "EKS_RUNTIME_MONITORING": "DISABLED",
                                  "RUNTIME_MONITORING": "DISABLED"}
    runtime = next(f for f in detector["Features"] if f["Name"] == "RUNTIME_MONITORING")
    assert {c["Name"]: c["Status"] for c in runtime["AdditionalConfiguration"]} == {
        "EKS_ADDON_MANAGEMENT": "DISABLED", "ECS_FARGATE_AGENT_MANAGEMENT": "DISABLED",
        "EC2_AGENT_MANAGEMENT": "DISABLED"}
    assert all(isinstance(f["UpdatedAt"], datetime) for f in detector["Features"])
    for operation, _status, body in calls:
        assert_wire_shape("guardduty", operation, body)


def test_explicit_data_sources_and_features_override_the_defaults(aws_client):
    gd = aws_client("guardduty")
    calls = capture_raw(gd)
    with_sources = gd.create_detector(Enable=True, DataSources={
        "S3Logs": {"Enable": False}, "Kubernetes": {"AuditLogs": {"Enable": False}}})[
        "DetectorId"]
    got = gd.get_detector(DetectorId=with_sources)
    assert got["DataSources"]["S3Logs"]["Status"] == "DISABLED"
    assert got["DataSources"]["Kubernetes"]["AuditLogs"]["Status"] == "DISABLED"
    assert statuses(got)["S3_DATA_EVENTS"] == statuses(got)["EKS_AUDIT_LOGS"] == "DISABLED"
    assert statuses(got)["RDS_LOGIN_EVENTS"] == "ENABLED"  # left out: the default

    other = aws_client("guardduty", region="eu-west-1")
    other_calls = capture_raw(other)
    with_features = other.create_detector(Enable=True, Features=[
        {"Name": "EBS_MALWARE_PROTECTION", "Status": "DISABLED"},
        {"Name": "RUNTIME_MONITORING", "Status": "ENABLED", "AdditionalConfiguration": [
            {"Name": "EC2_AGENT_MANAGEMENT", "Status": "ENABLED"}]}])["DetectorId"]
    got = other.get_detector(DetectorId=with_features)
    assert got["DataSources"]["MalwareProtection"]["ScanEc2InstanceWithFindings"][
        "EbsVolumes"]["Status"] == "DISABLED"
    assert statuses(got)["RUNTIME_MONITORING"] == "ENABLED"
    runtime = next(f for f in got["Features"] if f["Name"] == "RUNTIME_MONITORING")
    assert {c["Name"]: c["Status"] for c in runtime["AdditionalConfiguration"]}[
        "EC2_AGENT_MANAGEMENT"] == "ENABLED"

    other.update_detector(DetectorId=with_features, DataSources={"S3Logs": {"Enable": False}},
                          Features=[{"Name": "EBS_MALWARE_PROTECTION", "Status": "ENABLED"}])
    got = other.get_detector(DetectorId=with_features)
    assert got["DataSources"]["S3Logs"]["Status"] == "DISABLED"
    assert statuses(got)["EBS_MALWARE_PROTECTION"] == "ENABLED"
    assert statuses(got)["RUNTIME_MONITORING"] == "ENABLED"  # untouched by the update
    for operation, _status, body in calls + other_calls:
        assert_wire_shape("guardduty", operation, body)


# --- what a finding says --------------------------------------------------------------
def test_finding_describes_the_instance_as_ec2_does(lab):
    lab = lab()
    ec2 = lab.world.ec2
    lab.world.ping()
    (finding,) = lab.findings()
    described = ec2.describe_instances(InstanceIds=[lab.world.compromised])[
        "Reservations"][0]["Instances"][0]
    details = finding["Resource"]["InstanceDetails"]
    (nic,) = details["NetworkInterfaces"]
    assert nic["PrivateDnsName"] == described["PrivateDnsName"] == \
        f"ip-{nic['PrivateIpAddress'].replace('.', '-')}.ec2.internal"
    assert nic["PrivateIpAddresses"] == [{"PrivateIpAddress": nic["PrivateIpAddress"],
                                          "PrivateDnsName": nic["PrivateDnsName"]}]
    assert nic["PublicDnsName"] == described["PublicDnsName"]
    image = ec2.describe_images(ImageIds=[described["ImageId"]])["Images"][0]
    assert details["ImageDescription"] == image["Description"]
    assert "Platform" not in details and "Platform" not in described  # Linux


def test_windows_instance_reports_its_platform(lab):
    lab = lab()
    world = lab.world
    instance = world.ec2.run_instances(
        ImageId=WINDOWS_AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro",
        NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": world.subnet,
                            "Groups": [world.sg_compromised],
                            "AssociatePublicIpAddress": True}])["Instances"][0]
    ping(lab, 1, 10, instance["InstanceId"])
    (finding,) = lab.findings()
    details = finding["Resource"]["InstanceDetails"]
    assert details["InstanceId"] == instance["InstanceId"]
    assert details["Platform"] == instance["Platform"] == "windows"
    assert details["ImageDescription"].startswith("Microsoft Windows Server")


def test_finding_names_the_threat_list_and_the_remote_address(lab):
    lab = lab(entries=("# lab list", "EIP/32"))
    lab.world.ping()
    (finding,) = lab.findings()
    service = finding["Service"]
    remote = service["Action"]["NetworkConnectionAction"]["RemoteIpDetails"]
    assert remote["IpAddressV4"] == lab.world.eip
    assert remote["Organization"]["Asn"] == "16509"
    assert remote["Country"]["CountryName"] == "United States"
    assert service["Evidence"]["ThreatIntelligenceDetails"] == [
        {"ThreatListName": "Example-Threat-List", "ThreatNames": []}]
    assert json.loads(service["AdditionalInfo"]["Value"]) == {
        "threatListName": "Example-Threat-List"}
    assert service["AdditionalInfo"]["Type"] == "default"
    assert finding["Description"].endswith(f"{lab.world.eip} on the list Example-Threat-List.")


def test_archived_finding_publishes_no_updates_until_unarchived(lab):
    lab = lab()
    lab.gd.update_detector(DetectorId=lab.detector, FindingPublishingFrequency="FIFTEEN_MINUTES")
    period = 15 * 60 / SCALE
    lab.world.ping()
    (finding,) = lab.findings()
    lab.gd.archive_findings(DetectorId=lab.detector, FindingIds=[finding["Id"]])
    lab.world.ping()
    time.sleep(period * 1.5)
    lab.world.ping()
    assert lab.counts() == [1]
    (archived,) = lab.findings()
    assert archived["Service"]["Archived"] is True and archived["Service"]["Count"] == 3
    lab.gd.unarchive_findings(DetectorId=lab.detector, FindingIds=[finding["Id"]])
    lab.world.ping()  # the last publication is long past: this update goes out at once
    assert lab.counts() == [1, 4]
