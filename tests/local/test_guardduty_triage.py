"""GuardDuty triage and a standalone account's answers in the local cloud: finding feedback,
filters, finding statistics by every GroupBy, members, administrator, publishing
destinations, usage and coverage. Every answer is held to botocore's output shape on the
wire."""

from __future__ import annotations

from datetime import datetime

import pytest
from botocore.exceptions import ClientError
from wire_shapes import assert_wire_shape, capture_raw, wire_mismatches

from gdlab.local import guardduty

ACCOUNT = "123456789012"
REGION = "us-east-1"
MALICIOUS = "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"
PROBE = "Recon:EC2/PortProbeUnprotectedPort"
# Every protection plan named, so the test does not depend on a new detector's defaults.
FEATURES = [{"Name": "S3_DATA_EVENTS", "Status": "ENABLED"},
            {"Name": "EKS_AUDIT_LOGS", "Status": "DISABLED"},
            {"Name": "EBS_MALWARE_PROTECTION", "Status": "DISABLED"},
            {"Name": "RDS_LOGIN_EVENTS", "Status": "DISABLED"},
            {"Name": "LAMBDA_NETWORK_LOGS", "Status": "ENABLED"}]
# AWS answers a standalone account's GetAdministratorAccount / GetMasterAccount with an
# empty 200 (API_GetAdministratorAccount), although the model marks the member required:
# the one divergence from the model allowed, and only for an empty body.
NO_CONTENT = {
    "GetAdministratorAccount": [
        "$: missing required member 'administrator' of GetAdministratorAccountResponse"],
    "GetMasterAccount": ["$: missing required member 'master' of GetMasterAccountResponse"],
}


def check_wire(calls) -> None:
    assert calls
    for operation, status, body in calls:
        if status >= 300:
            continue
        if operation in NO_CONTENT and body == {}:
            assert wire_mismatches("guardduty", operation, body) == NO_CONTENT[operation]
            continue
        assert_wire_shape("guardduty", operation, body)


@pytest.fixture
def calls(shared_aws, reset_backends):
    """What the module's GuardDuty client received in this test, checked afterwards."""
    reset_backends("guardduty")
    recorded = capture_raw(shared_aws("guardduty"))
    yield recorded
    check_wire(recorded)


@pytest.fixture
def gd(shared_aws, calls):
    return shared_aws("guardduty")


@pytest.fixture
def detector(gd):
    return gd.create_detector(Enable=True, Features=FEATURES)["DetectorId"]


def backend():
    return guardduty.backend(ACCOUNT, REGION)


def make_finding(finding_id, type_=MALICIOUS, severity=5.0, instance="i-0a",
                 updated="2024-05-01T10:00:00.000Z"):
    return {
        "Id": finding_id, "Type": type_, "Severity": severity, "Title": f"finding {finding_id}",
        "CreatedAt": updated, "UpdatedAt": updated,
        "Resource": {"ResourceType": "Instance", "InstanceDetails": {"InstanceId": instance}},
        "Service": {"Count": 1, "EventFirstSeen": updated, "EventLastSeen": updated},
    }


@pytest.fixture
def findings(detector):
    b = backend()
    b.upsert_finding(detector, make_finding("a", severity=2.0, instance="i-a",
                                            updated="2024-05-01T10:00:00.000Z"))
    b.upsert_finding(detector, make_finding("b", type_=PROBE, instance="i-b",
                                            updated="2024-05-02T10:00:00.000Z"))
    b.upsert_finding(detector, make_finding("c", severity=8.0, instance="i-c",
                                            updated="2024-05-03T10:00:00.000Z"))
    b.upsert_finding(detector, make_finding("d", severity=8.0, instance="i-a",
                                            updated="2024-05-03T12:00:00.000Z"))
    return detector


def error_of(excinfo) -> tuple[str, int]:
    err = excinfo.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def last_raw(calls, operation):
    return next(body for op, _, body in reversed(calls) if op == operation)


# --- UpdateFindingsFeedback -----------------------------------------------------------------
def test_feedback_shows_in_get_findings(gd, calls, findings):
    gd.update_findings_feedback(DetectorId=findings, FindingIds=["a", "b"], Feedback="USEFUL")
    gd.update_findings_feedback(DetectorId=findings, FindingIds=["b"], Feedback="NOT_USEFUL",
                                Comments="the scanner is ours")
    got = {f["Id"]: f["Service"].get("UserFeedback")
           for f in gd.get_findings(DetectorId=findings,
                                    FindingIds=["a", "b", "c"])["Findings"]}
    assert got == {"a": "USEFUL", "b": "NOT_USEFUL", "c": None}
    raw = last_raw(calls, "GetFindings")
    assert {f["id"]: f["service"].get("userFeedback") for f in raw["findings"]} == {
        "a": "USEFUL", "b": "NOT_USEFUL", "c": None}
    assert backend().feedback_comments_for(findings, "b") == "the scanner is ours"
    assert backend().feedback_comments_for(findings, "a") is None
    # a repeat of the finding keeps the customer's feedback
    backend().upsert_finding(findings, make_finding("b", type_=PROBE, instance="i-b"))
    (again,) = gd.get_findings(DetectorId=findings, FindingIds=["b"])["Findings"]
    assert again["Service"]["UserFeedback"] == "NOT_USEFUL" and again["Service"]["Count"] == 2


@pytest.mark.parametrize("ids, feedback", [
    (["a", "missing"], "USEFUL"),
    (["a"], "MAYBE"),
    (["a"] * 51, "USEFUL"),
])
def test_feedback_refused_changes_nothing(gd, findings, ids, feedback):
    with pytest.raises(ClientError) as excinfo:
        gd.update_findings_feedback(DetectorId=findings, FindingIds=ids, Feedback=feedback)
    assert error_of(excinfo) == ("BadRequestException", 400)
    (a,) = gd.get_findings(DetectorId=findings, FindingIds=["a"])["Findings"]
    assert "UserFeedback" not in a["Service"]


# --- filters --------------------------------------------------------------------------------
def test_filters_round_trip(gd, calls, detector):
    criteria = {"Criterion": {"severity": {"Gte": 7}}}
    gd.create_filter(DetectorId=detector, Name="archive-scanner", Action="ARCHIVE", Rank=2,
                     Description="our scanner", FindingCriteria=criteria, Tags={"team": "sec"})
    gd.create_filter(DetectorId=detector, Name="view-only", FindingCriteria=criteria)
    gd.create_filter(DetectorId=detector, Name="first", Action="ARCHIVE", Rank=1,
                     FindingCriteria={"Criterion": {"type": {"Eq": [PROBE]}}})
    bare = gd.get_filter(DetectorId=detector, FilterName="view-only")
    assert (bare["Name"], bare["Action"], bare["FindingCriteria"]) == (
        "view-only", "NOOP", criteria)
    raw = last_raw(calls, "GetFilter")
    assert "description" not in raw and "name" in raw
    full = gd.get_filter(DetectorId=detector, FilterName="archive-scanner")
    assert (full["Description"], full["Rank"], full["Tags"]) == ("our scanner", 2,
                                                                 {"team": "sec"})

    page = gd.list_filters(DetectorId=detector, MaxResults=2)
    assert page["FilterNames"] == ["archive-scanner", "view-only"]
    rest = gd.list_filters(DetectorId=detector, MaxResults=2, NextToken=page["NextToken"])
    assert rest["FilterNames"] == ["first"] and "NextToken" not in rest

    assert gd.update_filter(DetectorId=detector, FilterName="view-only", Action="ARCHIVE",
                            Rank=3)["Name"] == "view-only"
    assert [(f["Name"], f["Action"]) for f in backend().filters_for(detector)] == [
        ("first", "ARCHIVE"), ("archive-scanner", "ARCHIVE"), ("view-only", "ARCHIVE")]

    gd.delete_filter(DetectorId=detector, FilterName="archive-scanner")
    assert gd.list_filters(DetectorId=detector)["FilterNames"] == ["view-only", "first"]
    with pytest.raises(ClientError) as excinfo:
        gd.get_filter(DetectorId=detector, FilterName="archive-scanner")
    assert error_of(excinfo) == ("BadRequestException", 400)


@pytest.mark.parametrize("kwargs", [{"MaxResults": 51}, {"NextToken": "not-a-token"}])
def test_list_filters_refuses_bad_paging(gd, detector, kwargs):
    with pytest.raises(ClientError) as excinfo:
        gd.list_filters(DetectorId=detector, **kwargs)
    assert error_of(excinfo) == ("BadRequestException", 400)


@pytest.mark.parametrize("kwargs", [
    {"Name": "bad-action", "Action": "DELETE"},
    {"Name": "has space"},
    {"Name": "x" * 65},
    {"Name": "too-far", "Rank": 101},
])
def test_create_filter_refusals(gd, detector, kwargs):
    with pytest.raises(ClientError) as excinfo:
        gd.create_filter(DetectorId=detector,
                         FindingCriteria={"Criterion": {"severity": {"Gte": 7}}}, **kwargs)
    assert error_of(excinfo) == ("BadRequestException", 400)
    assert gd.list_filters(DetectorId=detector)["FilterNames"] == []


def test_filter_names_are_unique_and_limited(gd, detector, monkeypatch):
    from gdlab.local.guardduty import triage

    criteria = {"Criterion": {"severity": {"Gte": 7}}}
    gd.create_filter(DetectorId=detector, Name="once", FindingCriteria=criteria,
                     Description="first")
    with pytest.raises(ClientError) as excinfo:
        gd.create_filter(DetectorId=detector, Name="once", FindingCriteria=criteria)
    assert error_of(excinfo) == ("BadRequestException", 400)
    assert gd.get_filter(DetectorId=detector, FilterName="once")["Description"] == "first"
    monkeypatch.setattr(triage, "MAX_FILTERS", 2)
    gd.create_filter(DetectorId=detector, Name="twice", FindingCriteria=criteria)
    with pytest.raises(ClientError) as excinfo:
        gd.create_filter(DetectorId=detector, Name="thrice", FindingCriteria=criteria)
    assert error_of(excinfo) == ("BadRequestException", 400)
    assert gd.list_filters(DetectorId=detector)["FilterNames"] == ["once", "twice"]


@pytest.mark.parametrize("kwargs", [{"Action": "DELETE"}, {"Rank": 101}])
def test_update_filter_refusals_change_nothing(gd, detector, kwargs):
    gd.create_filter(DetectorId=detector, Name="kept", Action="ARCHIVE", Rank=3,
                     FindingCriteria={"Criterion": {"severity": {"Gte": 7}}})
    with pytest.raises(ClientError) as excinfo:
        gd.update_filter(DetectorId=detector, FilterName="kept", **kwargs)
    assert error_of(excinfo) == ("BadRequestException", 400)
    kept = gd.get_filter(DetectorId=detector, FilterName="kept")
    assert (kept["Action"], kept["Rank"]) == ("ARCHIVE", 3)


# --- GetFindingsStatistics ------------------------------------------------------------------
def test_count_by_severity(gd, findings):
    stats = gd.get_findings_statistics(DetectorId=findings,
                                       FindingStatisticTypes=["COUNT_BY_SEVERITY"])
    assert stats["FindingStatistics"] == {"CountBySeverity": {"2.0": 1, "5.0": 1, "8.0": 2}}
    high = gd.get_findings_statistics(
        DetectorId=findings, FindingStatisticTypes=["COUNT_BY_SEVERITY"],
        FindingCriteria={"Criterion": {"severity": {"Gte": 7}}})
    assert high["FindingStatistics"]["CountBySeverity"] == {"8.0": 2}


@pytest.mark.parametrize("group_by, key, expected", [
    ("SEVERITY", "GroupedBySeverity", [
        {"Severity": 8.0, "TotalFindings": 2, "LastGeneratedAt": "2024-05-03T12:00:00Z"},
        {"Severity": 5.0, "TotalFindings": 1, "LastGeneratedAt": "2024-05-02T10:00:00Z"},
        {"Severity": 2.0, "TotalFindings": 1, "LastGeneratedAt": "2024-05-01T10:00:00Z"}]),
    ("FINDING_TYPE", "GroupedByFindingType", [
        {"FindingType": MALICIOUS, "TotalFindings": 3, "LastGeneratedAt": "2024-05-03T12:00:00Z"},
        {"FindingType": PROBE, "TotalFindings": 1, "LastGeneratedAt": "2024-05-02T10:00:00Z"}]),
    ("ACCOUNT", "GroupedByAccount", [
        {"AccountId": ACCOUNT, "TotalFindings": 4, "LastGeneratedAt": "2024-05-03T12:00:00Z"}]),
    ("RESOURCE", "GroupedByResource", [
        {"AccountId": ACCOUNT, "ResourceType": "Instance", "ResourceId": "i-a",
         "TotalFindings": 2, "LastGeneratedAt": "2024-05-03T12:00:00Z"},
        {"AccountId": ACCOUNT, "ResourceType": "Instance", "ResourceId": "i-c",
         "TotalFindings": 1, "LastGeneratedAt": "2024-05-03T10:00:00Z"},
        {"AccountId": ACCOUNT, "ResourceType": "Instance", "ResourceId": "i-b",
         "TotalFindings": 1, "LastGeneratedAt": "2024-05-02T10:00:00Z"}]),
    ("DATE", "GroupedByDate", [
        {"Date": "2024-05-03T00:00:00Z", "Severity": 8.0, "TotalFindings": 2,
         "LastGeneratedAt": "2024-05-03T12:00:00Z"},
        {"Date": "2024-05-02T00:00:00Z", "Severity": 5.0, "TotalFindings": 1,
         "LastGeneratedAt": "2024-05-02T10:00:00Z"},
        {"Date": "2024-05-01T00:00:00Z", "Severity": 2.0, "TotalFindings": 1,
         "LastGeneratedAt": "2024-05-01T10:00:00Z"}]),
])
def test_grouped_statistics(gd, findings, group_by, key, expected):
    stats = gd.get_findings_statistics(DetectorId=findings, GroupBy=group_by)
    assert list(stats["FindingStatistics"]) == [key]
    want = [{k: at(v) if k in ("Date", "LastGeneratedAt") else v for k, v in row.items()}
            for row in expected]
    assert stats["FindingStatistics"][key] == want
    smallest = gd.get_findings_statistics(DetectorId=findings, GroupBy=group_by,
                                          OrderBy="ASC", MaxResults=1)
    assert smallest["FindingStatistics"][key] == [
        min(want, key=lambda r: (r["TotalFindings"], -r["LastGeneratedAt"].timestamp()))]


def test_grouped_statistics_honour_criteria(gd, findings):
    stats = gd.get_findings_statistics(
        DetectorId=findings, GroupBy="RESOURCE",
        FindingCriteria={"Criterion": {"type": {"Eq": [PROBE]}}})
    assert [r["ResourceId"] for r in stats["FindingStatistics"]["GroupedByResource"]] == ["i-b"]


@pytest.mark.parametrize("kwargs", [
    {},
    {"FindingStatisticTypes": ["COUNT_BY_SEVERITY"], "GroupBy": "SEVERITY"},
    {"FindingStatisticTypes": ["COUNT_BY_SEVERITY"], "MaxResults": 5},
    {"FindingStatisticTypes": ["COUNT_BY_SEVERITY"], "OrderBy": "ASC"},
    {"GroupBy": "REGION"},
    {"GroupBy": "SEVERITY", "OrderBy": "UP"},
    {"GroupBy": "SEVERITY", "MaxResults": 101},
])
def test_statistics_refusals(gd, findings, kwargs):
    with pytest.raises(ClientError) as excinfo:
        gd.get_findings_statistics(DetectorId=findings, **kwargs)
    assert error_of(excinfo) == ("BadRequestException", 400)


# --- the standalone account -----------------------------------------------------------------
def test_standalone_account_answers(gd, calls, detector):
    assert gd.list_members(DetectorId=detector)["Members"] == []
    assert gd.list_members(DetectorId=detector, OnlyAssociated="false")["Members"] == []
    assert "Administrator" not in gd.get_administrator_account(DetectorId=detector)
    assert last_raw(calls, "GetAdministratorAccount") == {}
    assert "Master" not in gd.get_master_account(DetectorId=detector)
    assert last_raw(calls, "GetMasterAccount") == {}
    assert gd.list_publishing_destinations(DetectorId=detector)["Destinations"] == []
    assert last_raw(calls, "ListPublishingDestinations") == {"destinations": []}
    assert gd.list_coverage(DetectorId=detector)["Resources"] == []
    assert last_raw(calls, "ListCoverage") == {"resources": []}


@pytest.mark.parametrize("call", [
    lambda gd, d: gd.list_members(DetectorId=d, MaxResults=51),
    lambda gd, d: gd.list_publishing_destinations(DetectorId=d, MaxResults=51),
    lambda gd, d: gd.list_coverage(DetectorId=d, NextToken="not-a-token"),
    lambda gd, d: gd.get_usage_statistics(DetectorId=d, UsageStatisticType="SUM_BY_ACCOUNT",
                                          UsageCriteria={}, MaxResults=51),
])
def test_standalone_lists_refuse_bad_paging(gd, detector, call):
    with pytest.raises(ClientError) as excinfo:
        call(gd, detector)
    assert error_of(excinfo) == ("BadRequestException", 400)


def test_an_administrator_outside_an_organization_is_refused(gd, calls, detector):
    # AWS designates a delegated administrator only from an organization's management
    # account (the wire case of a designated one: test_guardduty_organization.py).
    with pytest.raises(ClientError) as excinfo:
        gd.enable_organization_admin_account(AdminAccountId="210987654321")
    assert error_of(excinfo) == ("BadRequestException", 400)
    assert "Administrator" not in gd.get_administrator_account(DetectorId=detector)
    assert last_raw(calls, "GetAdministratorAccount") == {}


@pytest.mark.parametrize("call", [
    lambda gd: gd.list_members(DetectorId="0" * 32),
    lambda gd: gd.get_administrator_account(DetectorId="0" * 32),
    lambda gd: gd.get_master_account(DetectorId="0" * 32),
    lambda gd: gd.list_publishing_destinations(DetectorId="0" * 32),
    lambda gd: gd.list_coverage(DetectorId="0" * 32),
    lambda gd: gd.get_usage_statistics(DetectorId="0" * 32, UsageCriteria={},
                                       UsageStatisticType="SUM_BY_ACCOUNT"),
    lambda gd: gd.update_findings_feedback(DetectorId="0" * 32, FindingIds=[],
                                           Feedback="USEFUL"),
])
def test_unknown_detector_is_refused(gd, call):
    with pytest.raises(ClientError) as excinfo:
        call(gd)
    assert error_of(excinfo) == ("BadRequestException", 400)


ZERO = {"Amount": "0", "Unit": "USD"}
PLAN_FEATURES = ["FLOW_LOGS", "CLOUD_TRAIL", "DNS_LOGS", "S3_DATA_EVENTS", "LAMBDA_NETWORK_LOGS"]


@pytest.mark.parametrize("usage_type, key, expected", [
    ("SUM_BY_ACCOUNT", "SumByAccount", [{"AccountId": ACCOUNT, "Total": ZERO}]),
    ("SUM_BY_DATA_SOURCE", "SumByDataSource", [
        {"DataSource": s, "Total": ZERO}
        for s in ("FLOW_LOGS", "CLOUD_TRAIL", "DNS_LOGS", "S3_LOGS")]),
    ("SUM_BY_FEATURES", "SumByFeature", [{"Feature": f, "Total": ZERO} for f in PLAN_FEATURES]),
    ("TOP_ACCOUNTS_BY_FEATURE", "TopAccountsByFeature", [
        {"Feature": f, "Accounts": [{"AccountId": ACCOUNT, "Total": ZERO}]}
        for f in PLAN_FEATURES]),
    ("SUM_BY_RESOURCE", "SumByResource", []),
    ("TOP_RESOURCES", "TopResources", []),
])
def test_usage_statistics(gd, detector, usage_type, key, expected):
    got = gd.get_usage_statistics(DetectorId=detector, UsageStatisticType=usage_type,
                                  UsageCriteria={}, Unit="USD")
    assert got["UsageStatistics"] == {key: expected} and "NextToken" not in got


def test_usage_statistics_criteria_and_paging(gd, detector):
    def usage(**kwargs):
        return gd.get_usage_statistics(DetectorId=detector, **kwargs)

    some = usage(UsageStatisticType="SUM_BY_FEATURES",
                 UsageCriteria={"Features": ["S3_DATA_EVENTS", "EKS_AUDIT_LOGS"]})
    assert some["UsageStatistics"]["SumByFeature"] == [
        {"Feature": "S3_DATA_EVENTS", "Total": ZERO}]
    other = usage(UsageStatisticType="SUM_BY_ACCOUNT",
                  UsageCriteria={"AccountIds": ["210987654321"]})
    assert other["UsageStatistics"]["SumByAccount"] == []
    first = usage(UsageStatisticType="SUM_BY_DATA_SOURCE", UsageCriteria={}, MaxResults=3)
    assert len(first["UsageStatistics"]["SumByDataSource"]) == 3
    rest = usage(UsageStatisticType="SUM_BY_DATA_SOURCE", UsageCriteria={}, MaxResults=3,
                 NextToken=first["NextToken"])
    assert rest["UsageStatistics"]["SumByDataSource"] == [{"DataSource": "S3_LOGS",
                                                           "Total": ZERO}]
    assert "NextToken" not in rest
    for bad in ({"UsageStatisticType": "SUM_BY_ACCOUNT", "Unit": "EUR"},
                {"UsageStatisticType": "SUM_BY_REGION"}):
        with pytest.raises(ClientError) as excinfo:
            usage(UsageCriteria={}, **bad)
        assert error_of(excinfo) == ("BadRequestException", 400)


# --- through the real HTTP local cloud ------------------------------------------------------
def test_triage_routes_over_http(local_client):
    gd = local_client("guardduty")
    calls = capture_raw(gd)
    detector = gd.create_detector(Enable=True, Features=FEATURES)["DetectorId"]
    gd.create_sample_findings(DetectorId=detector, FindingTypes=[MALICIOUS, PROBE])
    ids = gd.list_findings(DetectorId=detector)["FindingIds"]
    gd.update_findings_feedback(DetectorId=detector, FindingIds=ids[:1], Feedback="USEFUL",
                                Comments="confirmed")
    (first,) = gd.get_findings(DetectorId=detector, FindingIds=ids[:1])["Findings"]
    assert first["Service"]["UserFeedback"] == "USEFUL"
    with pytest.raises(ClientError) as excinfo:
        gd.update_findings_feedback(DetectorId=detector, FindingIds=["nope"],
                                    Feedback="USEFUL")
    assert error_of(excinfo) == ("BadRequestException", 400)

    gd.create_filter(DetectorId=detector, Name="probes", Action="ARCHIVE",
                     FindingCriteria={"Criterion": {"type": {"Eq": [PROBE]}}})
    assert gd.list_filters(DetectorId=detector)["FilterNames"] == ["probes"]
    assert "Description" not in gd.get_filter(DetectorId=detector, FilterName="probes")

    stats = gd.get_findings_statistics(DetectorId=detector, GroupBy="FINDING_TYPE")
    assert {r["FindingType"] for r in stats["FindingStatistics"]["GroupedByFindingType"]} == {
        MALICIOUS, PROBE}
    gd.get_findings_statistics(DetectorId=detector, GroupBy="DATE")
    gd.get_findings_statistics(DetectorId=detector, GroupBy="RESOURCE")

    assert gd.list_members(DetectorId=detector)["Members"] == []
    assert "Administrator" not in gd.get_administrator_account(DetectorId=detector)
    assert "Master" not in gd.get_master_account(DetectorId=detector)
    assert gd.list_publishing_destinations(DetectorId=detector)["Destinations"] == []
    assert gd.list_coverage(DetectorId=detector)["Resources"] == []
    usage = gd.get_usage_statistics(DetectorId=detector, UsageStatisticType="SUM_BY_ACCOUNT",
                                    UsageCriteria={})
    assert usage["UsageStatistics"]["SumByAccount"] == [{"AccountId": ACCOUNT, "Total": ZERO}]
    assert {op for op, status, _ in calls if status < 300} >= {
        "UpdateFindingsFeedback", "ListFilters", "GetFilter", "GetFindingsStatistics",
        "ListMembers", "GetAdministratorAccount", "GetMasterAccount",
        "ListPublishingDestinations", "ListCoverage", "GetUsageStatistics"}
    check_wire(calls)
