"""GuardDuty in the local cloud, in-process (mock_aws + gdlab's extensions). Every response
is also held to botocore's GuardDuty model on the wire (wire_check)."""

from __future__ import annotations

import ipaddress

import pytest
from botocore.exceptions import ClientError

from gdlab.local import guardduty

ACCOUNT = "123456789012"
REGION = "us-east-1"
BUCKET = "gdlab-threat-lists"
MALICIOUS = "54.80.1.2"


@pytest.fixture
def gd(shared_aws, wire_check, monkeypatch, reset_backends):
    reset_backends("guardduty")
    monkeypatch.setenv("GDLAB_LOCAL_ACTIVATION_SECONDS", "0")
    client = shared_aws("guardduty")
    recorder = wire_check(client)
    yield client
    client.meta.events.unregister("before-parse", recorder)
    assert not recorder.problems()


@pytest.fixture
def s3(shared_aws, reset_backends):
    reset_backends("s3")
    client = shared_aws("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def detector(gd):
    return gd.create_detector(Enable=True)["DetectorId"]


def backend():
    return guardduty.backend(ACCOUNT, REGION)


def make_finding(finding_id, type_="UnauthorizedAccess:EC2/MaliciousIPCaller.Custom",
                 severity=5.0, instance="i-0123456789abcdef0", updated="2024-05-01T10:00:00.000Z",
                 count=1):
    return {
        "Id": finding_id, "Type": type_, "Severity": severity, "Title": f"finding {finding_id}",
        "CreatedAt": updated, "UpdatedAt": updated,
        "Resource": {"ResourceType": "Instance", "InstanceDetails": {"InstanceId": instance}},
        "Service": {"Count": count, "EventFirstSeen": updated, "EventLastSeen": updated},
    }


def error_of(excinfo) -> tuple[str, str, int]:
    err = excinfo.value.response
    return err["Error"]["Code"], err["Error"]["Message"], err["ResponseMetadata"]["HTTPStatusCode"]


def test_one_detector_per_region(gd, shared_aws):
    gd.create_detector(Enable=True)
    with pytest.raises(ClientError) as excinfo:
        gd.create_detector(Enable=True)
    assert error_of(excinfo) == (
        "BadRequestException",
        "The request is rejected because a detector already exists for the current account.",
        400,
    )
    assert shared_aws("guardduty", region="eu-west-1").create_detector(Enable=True)["DetectorId"]


def test_threat_intel_set_crud_and_status(gd, s3, detector, monkeypatch):
    s3.put_object(Bucket=BUCKET, Key="list.txt", Body=f"{MALICIOUS}\n".encode())
    monkeypatch.setenv("GDLAB_LOCAL_ACTIVATION_SECONDS", "3600")
    set_id = gd.create_threat_intel_set(
        DetectorId=detector, Name="Example-Threat-List", Format="TXT",
        Location=f"s3://{BUCKET}/list.txt", Activate=True, Tags={"gdlab:lab": "gd-test"},
    )["ThreatIntelSetId"]
    got = gd.get_threat_intel_set(DetectorId=detector, ThreatIntelSetId=set_id)
    assert (got["Name"], got["Format"], got["Status"]) == ("Example-Threat-List", "TXT",
                                                           "ACTIVATING")
    assert got["Tags"] == {"gdlab:lab": "gd-test"}
    assert backend().threat_entries(detector) == []  # not ACTIVE yet

    # A fresh activation with no delay: the status is computed on read, no timer involved.
    monkeypatch.setenv("GDLAB_LOCAL_ACTIVATION_SECONDS", "0")
    gd.update_threat_intel_set(DetectorId=detector, ThreatIntelSetId=set_id, Activate=True,
                               Name="Renamed")
    got = gd.get_threat_intel_set(DetectorId=detector, ThreatIntelSetId=set_id)
    assert (got["Name"], got["Status"]) == ("Renamed", "ACTIVE")
    assert gd.list_threat_intel_sets(DetectorId=detector)["ThreatIntelSetIds"] == [set_id]

    gd.update_threat_intel_set(DetectorId=detector, ThreatIntelSetId=set_id, Activate=False)
    assert gd.get_threat_intel_set(DetectorId=detector,
                                   ThreatIntelSetId=set_id)["Status"] == "INACTIVE"

    gd.delete_threat_intel_set(DetectorId=detector, ThreatIntelSetId=set_id)
    assert gd.list_threat_intel_sets(DetectorId=detector)["ThreatIntelSetIds"] == []
    with pytest.raises(ClientError) as excinfo:
        gd.get_threat_intel_set(DetectorId=detector, ThreatIntelSetId=set_id)
    assert error_of(excinfo)[0] == "BadRequestException"


def test_at_most_six_threat_intel_sets(gd, detector):
    for n in range(6):
        gd.create_threat_intel_set(DetectorId=detector, Name=f"list-{n}", Format="TXT",
                                   Location=f"s3://{BUCKET}/{n}.txt", Activate=False)
    with pytest.raises(ClientError) as excinfo:
        gd.create_threat_intel_set(DetectorId=detector, Name="list-7", Format="TXT",
                                   Location=f"s3://{BUCKET}/7.txt", Activate=False)
    code, message, status = error_of(excinfo)
    assert (code, status) == ("BadRequestException", 400)
    assert "limit of 6" in message


@pytest.mark.parametrize("location", [
    f"s3://{BUCKET}/lists/threats.txt",
    f"https://{BUCKET}.s3.amazonaws.com/lists/threats.txt",
    f"https://s3.{REGION}.amazonaws.com/{BUCKET}/lists/threats.txt",
])
def test_active_list_is_read_from_s3(gd, s3, detector, location):
    s3.put_object(Bucket=BUCKET, Key="lists/threats.txt",
                  Body=f"# the lab's malicious instance\n\n{MALICIOUS}\n 198.51.100.0/24 \n"
                  .encode())
    set_id = gd.create_threat_intel_set(DetectorId=detector, Name="Example-Threat-List",
                                        Format="TXT", Location=location,
                                        Activate=True)["ThreatIntelSetId"]
    assert gd.get_threat_intel_set(DetectorId=detector,
                                   ThreatIntelSetId=set_id)["Status"] == "ACTIVE"
    assert backend().threat_entries(detector) == [
        (ipaddress.IPv4Network(f"{MALICIOUS}/32"), set_id, "Example-Threat-List"),
        (ipaddress.IPv4Network("198.51.100.0/24"), set_id, "Example-Threat-List"),
    ]


@pytest.mark.parametrize("body, reason", [
    (b"54.80.1.2\nnot-an-ip\n", "line 2"),
    (b"2001:db8::1\n", "IPv6"),
    (None, "does not exist"),
])
def test_bad_or_missing_list_goes_to_error(gd, s3, detector, body, reason):
    if body is not None:
        s3.put_object(Bucket=BUCKET, Key="bad.txt", Body=body)
    set_id = gd.create_threat_intel_set(DetectorId=detector, Name="Bad", Format="TXT",
                                        Location=f"s3://{BUCKET}/bad.txt",
                                        Activate=True)["ThreatIntelSetId"]
    assert gd.get_threat_intel_set(DetectorId=detector,
                                   ThreatIntelSetId=set_id)["Status"] == "ERROR"
    intel = backend().get_set("threatintelset", detector, set_id)
    assert reason in intel.error
    assert backend().threat_entries(detector) == []


def test_ip_set_gives_trusted_entries(gd, s3, detector):
    s3.put_object(Bucket=BUCKET, Key="trusted.txt", Body=b"203.0.113.0/24\n")
    ip_set = gd.create_ip_set(DetectorId=detector, Name="Trusted", Format="TXT",
                              Location=f"s3://{BUCKET}/trusted.txt", Activate=True)["IpSetId"]
    got = gd.get_ip_set(DetectorId=detector, IpSetId=ip_set)
    assert got["Status"] == "ACTIVE"
    assert gd.list_ip_sets(DetectorId=detector)["IpSetIds"] == [ip_set]
    assert backend().trusted_entries(detector) == [ipaddress.IPv4Network("203.0.113.0/24")]
    gd.update_ip_set(DetectorId=detector, IpSetId=ip_set, Activate=False)
    assert backend().trusted_entries(detector) == []
    gd.delete_ip_set(DetectorId=detector, IpSetId=ip_set)
    assert gd.list_ip_sets(DetectorId=detector)["IpSetIds"] == []


def test_tags_on_detector_and_sets(gd, detector):
    set_id = gd.create_threat_intel_set(DetectorId=detector, Name="L", Format="TXT",
                                        Location=f"s3://{BUCKET}/l.txt", Activate=False,
                                        Tags={"a": "1"})["ThreatIntelSetId"]
    detector_arn = f"arn:aws:guardduty:{REGION}:{ACCOUNT}:detector/{detector}"
    set_arn = f"{detector_arn}/threatintelset/{set_id}"
    gd.tag_resource(ResourceArn=detector_arn, Tags={"gdlab:lab": "gd-x"})
    gd.tag_resource(ResourceArn=set_arn, Tags={"b": "2"})
    assert gd.list_tags_for_resource(ResourceArn=detector_arn)["Tags"] == {"gdlab:lab": "gd-x"}
    assert gd.list_tags_for_resource(ResourceArn=set_arn)["Tags"] == {"a": "1", "b": "2"}
    gd.untag_resource(ResourceArn=set_arn, TagKeys=["a"])
    assert gd.list_tags_for_resource(ResourceArn=set_arn)["Tags"] == {"b": "2"}
    with pytest.raises(ClientError) as excinfo:
        gd.list_tags_for_resource(ResourceArn=f"{detector_arn}/threatintelset/nope")
    assert error_of(excinfo)[0] == "BadRequestException"


def test_upsert_finding_counts_repeats_and_hooks_only_new(gd, detector, monkeypatch):
    seen = []
    monkeypatch.setattr(guardduty, "on_new_finding", guardduty.on_new_finding)
    hook = lambda b, d, f: seen.append((d, f["Id"]))  # noqa: E731
    guardduty.on_new_finding.append(hook)
    try:
        stored, new = backend().upsert_finding(detector, make_finding("f1", count=2))
        assert new and stored["Service"]["Count"] == 2
        assert stored["Arn"].endswith(f"detector/{detector}/finding/f1")
        again, new = backend().upsert_finding(detector, make_finding(
            "f1", count=3, updated="2024-05-01T11:00:00.000Z"))
    finally:
        guardduty.on_new_finding.remove(hook)
    assert not new
    assert again["Service"]["Count"] == 5
    assert again["Service"]["EventLastSeen"] == "2024-05-01T11:00:00.000Z"
    assert again["UpdatedAt"] == "2024-05-01T11:00:00.000Z"
    assert seen == [(detector, "f1")]
    assert [f["Id"] for f in backend().findings_for(detector)] == ["f1"]
    got = gd.get_findings(DetectorId=detector, FindingIds=["f1"])["Findings"][0]
    assert got["Service"]["Count"] == 5 and got["AccountId"] == ACCOUNT


@pytest.fixture
def three_findings(detector):
    b = backend()
    b.upsert_finding(detector, make_finding("a", severity=2.0, instance="i-a",
                                            updated="2024-05-01T10:00:00.000Z"))
    b.upsert_finding(detector, make_finding("b", type_="Recon:EC2/PortProbeUnprotectedPort",
                                            severity=5.0, instance="i-b",
                                            updated="2024-05-02T10:00:00.000Z"))
    b.upsert_finding(detector, make_finding("c", severity=8.0, instance="i-c",
                                            updated="2024-05-03T10:00:00.000Z"))
    return detector


def ms(stamp: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


@pytest.mark.parametrize("criterion, expected", [
    ({"type": {"Eq": ["UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"]}}, {"a", "c"}),
    ({"type": {"Equals": ["Recon:EC2/PortProbeUnprotectedPort"]}}, {"b"}),
    ({"id": {"Neq": ["a"]}}, {"b", "c"}),
    ({"id": {"NotEquals": ["a", "b"]}}, {"c"}),
    ({"severity": {"Gte": 5}}, {"b", "c"}),
    ({"severity": {"GreaterThan": 5}}, {"c"}),
    ({"severity": {"Lt": 5}}, {"a"}),
    ({"severity": {"LessThanOrEqual": 5}}, {"a", "b"}),
    ({"severity": {"Eq": ["8"]}}, {"c"}),
    ({"resource.instanceDetails.instanceId": {"Eq": ["i-b"]}}, {"b"}),
    ({"service.archived": {"Eq": ["false"]}}, {"a", "b", "c"}),
    ({"updatedAt": {"Gt": ms("2024-05-01T12:00:00Z")}}, {"b", "c"}),
    ({"updatedAt": {"GreaterThanOrEqual": ms("2024-05-02T10:00:00Z"),
                    "LessThan": ms("2024-05-03T00:00:00Z")}}, {"b"}),
    ({"updatedAt": {"Lte": ms("2024-05-01T10:00:00Z")}}, {"a"}),
])
def test_list_findings_criteria(gd, three_findings, criterion, expected):
    ids = gd.list_findings(DetectorId=three_findings,
                           FindingCriteria={"Criterion": criterion})["FindingIds"]
    assert set(ids) == expected


def test_list_findings_sort_and_pages(gd, three_findings):
    by_severity = gd.list_findings(
        DetectorId=three_findings,
        SortCriteria={"AttributeName": "severity", "OrderBy": "DESC"},
    )["FindingIds"]
    assert by_severity == ["c", "b", "a"]
    first = gd.list_findings(DetectorId=three_findings, MaxResults=2,
                             SortCriteria={"AttributeName": "updatedAt", "OrderBy": "ASC"})
    assert first["FindingIds"] == ["a", "b"]
    second = gd.list_findings(DetectorId=three_findings, MaxResults=2,
                              NextToken=first["NextToken"],
                              SortCriteria={"AttributeName": "updatedAt", "OrderBy": "ASC"})
    assert second["FindingIds"] == ["c"] and not second.get("NextToken")


def test_archive_unarchive_and_statistics(gd, three_findings):
    detector = three_findings
    gd.archive_findings(DetectorId=detector, FindingIds=["a"])
    active = {"Criterion": {"service.archived": {"Eq": ["false"]}}}
    assert set(gd.list_findings(DetectorId=detector, FindingCriteria=active)["FindingIds"]) == {
        "b", "c"}
    assert gd.get_findings(DetectorId=detector,
                           FindingIds=["a"])["Findings"][0]["Service"]["Archived"] is True
    gd.unarchive_findings(DetectorId=detector, FindingIds=["a"])
    assert len(gd.list_findings(DetectorId=detector, FindingCriteria=active)["FindingIds"]) == 3

    stats = gd.get_findings_statistics(DetectorId=detector,
                                       FindingStatisticTypes=["COUNT_BY_SEVERITY"])
    assert stats["FindingStatistics"]["CountBySeverity"] == {"2.0": 1, "5.0": 1, "8.0": 1}
    grouped = gd.get_findings_statistics(DetectorId=detector, GroupBy="FINDING_TYPE")
    rows = {r["FindingType"]: r["TotalFindings"]
            for r in grouped["FindingStatistics"]["GroupedByFindingType"]}
    assert rows == {"UnauthorizedAccess:EC2/MaliciousIPCaller.Custom": 2,
                    "Recon:EC2/PortProbeUnprotectedPort": 1}
    assert gd.get_findings(DetectorId=detector, FindingIds=["a", "missing"],
                           SortCriteria={"AttributeName": "severity"})["Findings"][0]["Id"] == "a"


def test_sample_findings(gd, detector, monkeypatch):
    seen = []
    hook = lambda b, d, f: seen.append(f["Id"])  # noqa: E731
    guardduty.on_new_finding.append(hook)
    try:
        gd.create_sample_findings(DetectorId=detector, FindingTypes=[
            "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"])
    finally:
        guardduty.on_new_finding.remove(hook)
    ids = gd.list_findings(DetectorId=detector)["FindingIds"]
    assert ids == seen and len(ids) == 1
    finding = gd.get_findings(DetectorId=detector, FindingIds=ids)["Findings"][0]
    assert finding["Title"].startswith("[SAMPLE] ")
    assert finding["Type"] == "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"
    assert finding["Service"]["AdditionalInfo"] == {"Value": '{"sample":true}', "Type": "default"}
    assert finding["Resource"]["InstanceDetails"]["InstanceId"] == "i-99999999"
    assert finding["Service"]["Evidence"]["ThreatIntelligenceDetails"][0]["ThreatListName"]
    gd.create_sample_findings(DetectorId=detector)  # no types: one of each known type
    assert len(gd.list_findings(DetectorId=detector)["FindingIds"]) == 1 + len(
        guardduty.SAMPLE_SEVERITY)


def test_delete_detector_removes_sets_and_findings(gd, detector):
    gd.create_threat_intel_set(DetectorId=detector, Name="L", Format="TXT",
                               Location=f"s3://{BUCKET}/l.txt", Activate=False)
    backend().upsert_finding(detector, make_finding("x"))
    gd.delete_detector(DetectorId=detector)
    assert detector not in backend().sets and detector not in backend().findings
    assert backend().finding_count() == 0
    again = gd.create_detector(Enable=True)["DetectorId"]  # the region is free again
    assert gd.list_findings(DetectorId=again)["FindingIds"] == []
    with pytest.raises(ClientError):
        gd.list_threat_intel_sets(DetectorId=detector)


def test_bad_input_is_a_400(gd, detector):
    with pytest.raises(ClientError) as excinfo:
        gd.create_threat_intel_set(DetectorId=detector, Name="L", Format="TXT",
                                   Location="ftp://nowhere/list.txt", Activate=True)
    assert error_of(excinfo)[0::2] == ("BadRequestException", 400)
    with pytest.raises(ClientError) as excinfo:
        gd.list_findings(DetectorId=detector, MaxResults=51)
    assert error_of(excinfo)[0] in ("BadRequestException", "ParamValidationError")
