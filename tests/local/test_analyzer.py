"""The GuardDuty analyzer: flow records against ACTIVE threat lists, one finding per
(type, instance, remote IP) in GuardDuty's schema, and its EventBridge shape."""

import json
import re
import time

from test_traffic import world  # noqa: F401 - the fixture

from gdlab.local import analyzer

TYPE = "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"


def test_listed_ip_gives_one_finding_that_counts_repeats(world):  # noqa: F811
    w = world(list_entries=["# the lab list", "EIP/32"])
    w.ping()
    (finding,) = w.findings()
    assert re.fullmatch(r"[0-9a-f]{32}", finding["Id"])
    assert finding["Arn"] == (f"arn:aws:guardduty:us-east-1:123456789012:detector/"
                              f"{w.detector}/finding/{finding['Id']}")
    assert finding["Type"] == TYPE and finding["Severity"] == 5
    assert finding["SchemaVersion"] == "2.0" and finding["Partition"] == "aws"
    assert finding["Title"] == (f"EC2 instance {w.compromised} communicating with "
                                "disallowed IP address.")
    assert finding["Description"] == (
        f"EC2 instance {w.compromised} is communicating with a disallowed IP address "
        f"{w.eip} on the list Example-Threat-List.")
    details = finding["Resource"]["InstanceDetails"]
    assert finding["Resource"]["ResourceType"] == "Instance"
    assert details["InstanceId"] == w.compromised and details["InstanceType"] == "t3.micro"
    assert {"Key": "gdlab:lab", "Value": "gd-test"} in details["Tags"]
    assert details["IamInstanceProfile"]["Arn"].endswith(":instance-profile/ssm")
    (nic,) = details["NetworkInterfaces"]
    assert nic["SecurityGroups"] == [{"GroupId": w.sg_compromised, "GroupName": "compromised"}]
    assert nic["VpcId"] == w.vpc and nic["SubnetId"] == w.subnet and nic["PublicIp"]
    service = finding["Service"]
    conn = service["Action"]["NetworkConnectionAction"]
    assert service["Action"]["ActionType"] == "NETWORK_CONNECTION"
    assert (conn["ConnectionDirection"], conn["Protocol"], conn["Blocked"]) == (
        "OUTBOUND", "ICMP", False)
    assert conn["RemoteIpDetails"]["IpAddressV4"] == w.eip
    assert conn["LocalIpDetails"]["IpAddressV4"] == nic["PrivateIpAddress"]
    assert service["Evidence"]["ThreatIntelligenceDetails"] == [
        {"ThreatListName": "Example-Threat-List", "ThreatNames": []}]
    assert json.loads(service["AdditionalInfo"]["Value"]) == {
        "threatListName": "Example-Threat-List"}
    assert (service["ResourceRole"], service["Count"], service["Archived"]) == (
        "ACTOR", 1, False)

    w.ping()
    w.ping()
    (again,) = w.findings()
    assert again["Id"] == finding["Id"] and again["Service"]["Count"] == 3
    assert again["Service"]["EventLastSeen"] >= finding["Service"]["EventLastSeen"]


def test_unlisted_ip_gives_no_finding(world):  # noqa: F811
    w = world(list_entries=["198.51.100.0/24"])
    w.ping()
    w.ping("203.0.113.50")
    assert w.findings() == []


def test_trusted_list_wins(world):  # noqa: F811
    w = world(list_entries=["EIP"])
    w.trust([f"{w.eip}/32"])
    w.ping()
    assert w.findings() == []


def test_rejected_attempts_are_findings_too(world):  # noqa: F811
    w = world(list_entries=["EIP"])
    w.isolate()
    result = w.ping()
    assert result.records[0]["action"] == "REJECT"
    (finding,) = w.findings()
    assert finding["Service"]["Action"]["NetworkConnectionAction"]["Blocked"] is True


def test_no_detector_no_analysis(world):  # noqa: F811
    w = world()
    w.ping()
    from moto.guardduty.models import guardduty_backends

    assert all(not b.findings for _, _, b in guardduty_backends.iter_backends())


def test_event_detail_is_the_camel_case_finding(world):  # noqa: F811
    w = world(list_entries=["EIP"])
    w.ping()
    from gdlab.local import guardduty

    (stored,) = guardduty.backend("123456789012", "us-east-1").findings_for(w.detector)
    event = analyzer.to_event(stored, "us-east-1", "123456789012")
    assert {k: event[k] for k in ("version", "detail-type", "source", "account", "region",
                                  "resources")} == {
        "version": "0", "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
        "account": "123456789012", "region": "us-east-1", "resources": []}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])
    detail = event["detail"]
    assert detail["id"] == stored["Id"] and detail["severity"] == 5
    assert detail["resource"]["instanceDetails"]["instanceId"] == w.compromised
    assert {"key": "gdlab:lab", "value": "gd-test"} in \
        detail["resource"]["instanceDetails"]["tags"]
    assert detail["service"]["additionalInfo"] == {"threatListName": "Example-Threat-List"}
    remote = detail["service"]["action"]["networkConnectionAction"]["remoteIpDetails"]
    assert remote["ipAddressV4"] == w.eip
    assert detail["service"]["evidence"]["threatIntelligenceDetails"][0][
        "threatListName"] == "Example-Threat-List"


def test_repeats_are_published_at_most_once_per_frequency(world, monkeypatch):  # noqa: F811
    """AWS publishes a new finding at once and folds its repeats into one event per
    FindingPublishingFrequency: an instance that matches on every ping sets the rule off
    once per interval, not once per ping, and each event carries the Count so far."""
    from gdlab.local import clock, delivery

    monkeypatch.setenv("GDLAB_LOCAL_TIME_SCALE", "3000")  # 15 minutes in 0.3 s
    published = []
    monkeypatch.setattr(delivery, "put_service_event",
                        lambda account, region, event, bus="default": published.append(
                            (time.monotonic(), event)))
    w = world(list_entries=["EIP"])
    w.client("guardduty").update_detector(DetectorId=w.detector,
                                          FindingPublishingFrequency="FIFTEEN_MINUTES")
    period = clock.local_seconds(15 * 60)
    started, pings = time.monotonic(), 0
    while time.monotonic() - started < 2.5 * period or pings < 3:
        w.ping()
        pings += 1
    (finding,) = w.findings()
    assert finding["Service"]["Count"] == pings
    assert {e["detail"]["id"] for _, e in published} == {finding["Id"]}
    assert published[0][1]["detail"]["service"]["count"] == 1
    # one event now, then at most one per period: far fewer than the pings
    assert 2 <= len(published) <= 1 + (time.monotonic() - started) / period
    gaps = [b[0] - a[0] for a, b in zip(published, published[1:], strict=False)]
    assert all(gap >= period * 0.95 for gap in gaps)
    counts = [e["detail"]["service"]["count"] for _, e in published]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
