"""Security Hub triage in the local cloud: BatchUpdateFindings, insights and the standards
EnableSecurityHub enables, each answer held to botocore's output shape on the wire."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from wire_shapes import assert_wire_shape, capture_raw

ACCOUNT = "123456789012"
REGION = "us-east-1"
GUARDDUTY = f"arn:aws:securityhub:{REGION}::product/aws/guardduty"


def asff(finding_id, instance="i-1", updated="2024-05-01T10:00:00.000Z", **extra):
    record = {
        "SchemaVersion": "2018-10-08", "Id": finding_id, "ProductArn": GUARDDUTY,
        "GeneratorId": "detector-arn", "AwsAccountId": ACCOUNT,
        "Types": ["TTPs/Command and Control/UnauthorizedAccess:EC2-MaliciousIPCaller.Custom"],
        "CreatedAt": "2024-05-01T10:00:00.000Z", "UpdatedAt": updated,
        "Severity": {"Label": "MEDIUM", "Normalized": 50}, "Title": "t", "Description": "d",
        "Resources": [{"Type": "AwsEc2Instance",
                       "Id": f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{instance}"}],
    }
    record.update(extra)
    return record


@pytest.fixture
def hub(shared_aws, reset_backends):
    reset_backends("securityhub")
    client = shared_aws("securityhub")
    calls = capture_raw(client)
    yield client
    assert calls
    for operation, status, body in calls:
        if status < 300:
            assert_wire_shape("securityhub", operation, body)


@pytest.fixture
def enabled(hub):
    hub.enable_security_hub(EnableDefaultStandards=False)
    hub.batch_import_findings(Findings=[asff("gd-1"), asff("gd-2", instance="i-2"),
                                        asff("gd-3", instance="i-2")])
    return hub


def one(client, finding_id):
    (finding,) = client.get_findings(
        Filters={"Id": [{"Value": finding_id, "Comparison": "EQUALS"}]})["Findings"]
    return finding


def ident(finding_id, product=GUARDDUTY):
    return {"Id": finding_id, "ProductArn": product}


def test_batch_update_sets_customer_fields(enabled):
    before = one(enabled, "gd-1")
    result = enabled.batch_update_findings(
        FindingIdentifiers=[ident("gd-1")], Workflow={"Status": "NOTIFIED"},
        Note={"Text": "isolated by the responder", "UpdatedBy": "analyst"},
        Severity={"Label": "HIGH"}, UserDefinedFields={"ticket": "SEC-1"},
        VerificationState="TRUE_POSITIVE", Confidence=80, Criticality=60,
        Types=["TTPs/Command and Control/x"],
        RelatedFindings=[ident("gd-2")])
    assert result == {"ProcessedFindings": [ident("gd-1")], "UnprocessedFindings": [],
                      "ResponseMetadata": result["ResponseMetadata"]}
    after = one(enabled, "gd-1")
    assert after["Workflow"] == {"Status": "NOTIFIED"} and after["WorkflowState"] == "ASSIGNED"
    assert after["Note"]["Text"] == "isolated by the responder"
    assert after["Note"]["UpdatedBy"] == "analyst" and after["Note"]["UpdatedAt"]
    assert after["Severity"]["Label"] == "HIGH" and after["Severity"]["Normalized"] == 70
    assert after["UserDefinedFields"] == {"ticket": "SEC-1"}
    assert (after["VerificationState"], after["Confidence"], after["Criticality"]) == (
        "TRUE_POSITIVE", 80, 60)
    assert after["Types"] == ["TTPs/Command and Control/x"]
    assert after["RelatedFindings"] == [ident("gd-2")]
    # AWS: BatchUpdateFindings never changes UpdatedAt (that is the provider's).
    assert after["UpdatedAt"] == before["UpdatedAt"]
    assert after["ProcessedAt"] >= before["ProcessedAt"]
    assert one(enabled, "gd-2")["Workflow"] == {"Status": "NEW"}


@pytest.mark.parametrize("severity, expected", [
    ({"Normalized": 95}, {"Label": "CRITICAL", "Normalized": 95}),
    ({"Normalized": 0}, {"Label": "INFORMATIONAL", "Normalized": 0}),
    ({"Normalized": 39}, {"Label": "LOW", "Normalized": 39}),
    ({"Label": "LOW"}, {"Label": "LOW", "Normalized": 1}),
    ({"Label": "MEDIUM", "Normalized": 55}, {"Label": "MEDIUM", "Normalized": 55}),
])
def test_severity_label_and_normalized_follow_each_other(enabled, severity, expected):
    enabled.batch_update_findings(FindingIdentifiers=[ident("gd-1")], Severity=severity)
    got = one(enabled, "gd-1")["Severity"]
    assert {k: got[k] for k in ("Label", "Normalized")} == expected


@pytest.mark.parametrize("status, state", [("NEW", "NEW"), ("RESOLVED", "RESOLVED"),
                                           ("SUPPRESSED", "DEFERRED")])
def test_workflow_status_sets_workflow_state(enabled, status, state):
    enabled.batch_update_findings(FindingIdentifiers=[ident("gd-1")],
                                  Workflow={"Status": status})
    got = one(enabled, "gd-1")
    assert (got["Workflow"]["Status"], got["WorkflowState"]) == (status, state)


def test_unknown_and_duplicated_identifiers_are_unprocessed(enabled):
    result = enabled.batch_update_findings(
        FindingIdentifiers=[ident("gd-1"), ident("nope"), ident("gd-2"), ident("gd-2"),
                            ident("gd-1", product="arn:aws:securityhub:us-east-1::product/x/y")],
        Workflow={"Status": "RESOLVED"})
    assert result["ProcessedFindings"] == [ident("gd-1")]
    errors = [(u["FindingIdentifier"]["Id"], u["ErrorCode"], u["ErrorMessage"])
              for u in result["UnprocessedFindings"]]
    assert errors == [("nope", "FindingNotFound", "Finding Not Found"),
                      ("gd-2", "DuplicatedFindingIdentifier", "Finding Identifier is duplicated"),
                      ("gd-2", "DuplicatedFindingIdentifier", "Finding Identifier is duplicated"),
                      ("gd-1", "FindingNotFound", "Finding Not Found")]
    assert one(enabled, "gd-2")["Workflow"]["Status"] == "NEW"


@pytest.mark.parametrize("update", [{"Workflow": {"Status": "CLOSED"}}, {"Confidence": 101},
                                    {"Severity": {"Label": "SEVERE"}},
                                    {"VerificationState": "MAYBE"}])
def test_invalid_update_is_a_400(enabled, update):
    with pytest.raises(ClientError) as excinfo:
        enabled.batch_update_findings(FindingIdentifiers=[ident("gd-1")], **update)
    error = excinfo.value.response
    assert error["Error"]["Code"] == "InvalidInputException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert one(enabled, "gd-1")["Workflow"]["Status"] == "NEW"


def test_reimport_keeps_customer_fields_and_creation(enabled):
    enabled.batch_update_findings(
        FindingIdentifiers=[ident("gd-1")], Workflow={"Status": "NOTIFIED"},
        Note={"Text": "n", "UpdatedBy": "me"}, Severity={"Label": "CRITICAL"},
        UserDefinedFields={"k": "v"}, VerificationState="TRUE_POSITIVE", Confidence=10)
    update = asff("gd-1", updated="2030-01-01T00:00:00.000Z", Title="seen again",
                  CreatedAt="2030-01-01T00:00:00.000Z",
                  ProductFields={"aws/guardduty/service/count": "7"},
                  Workflow={"Status": "NEW"}, Note={"Text": "provider", "UpdatedBy": "gd",
                                                    "UpdatedAt": "2030-01-01T00:00:00Z"},
                  Severity={"Label": "LOW", "Normalized": 10}, Confidence=99)
    assert enabled.batch_import_findings(Findings=[update])["SuccessCount"] == 1
    got = one(enabled, "gd-1")
    assert got["Title"] == "seen again"
    assert got["ProductFields"]["aws/guardduty/service/count"] == "7"
    assert got["UpdatedAt"].startswith("2030-01-01")
    assert got["CreatedAt"] == "2024-05-01T10:00:00.000Z"
    assert got["Workflow"] == {"Status": "NOTIFIED"} and got["Note"]["Text"] == "n"
    assert got["Severity"]["Label"] == "CRITICAL" and got["Confidence"] == 10
    assert got["UserDefinedFields"] == {"k": "v"}
    assert got["VerificationState"] == "TRUE_POSITIVE"


def test_provider_fields_apply_while_no_customer_set_them(enabled):
    update = asff("gd-2", instance="i-2", updated="2030-01-01T00:00:00.000Z",
                  Severity={"Label": "HIGH", "Normalized": 70})
    enabled.batch_import_findings(Findings=[update])
    assert one(enabled, "gd-2")["Severity"]["Label"] == "HIGH"


def test_reimport_not_later_is_ignored(enabled):
    stale = asff("gd-1", Title="stale")  # same UpdatedAt as stored
    older = asff("gd-1", Title="older", updated="2024-04-01T00:00:00.000Z")
    enabled.batch_import_findings(Findings=[stale, older])
    assert one(enabled, "gd-1")["Title"] == "t"


def test_archived_then_active_resets_resolved_to_new(enabled):
    enabled.batch_update_findings(FindingIdentifiers=[ident("gd-1")],
                                  Workflow={"Status": "RESOLVED"})
    enabled.batch_import_findings(Findings=[asff("gd-1", RecordState="ARCHIVED",
                                                 updated="2025-01-01T00:00:00.000Z")])
    assert one(enabled, "gd-1")["Workflow"]["Status"] == "RESOLVED"
    enabled.batch_import_findings(Findings=[asff("gd-1", RecordState="ACTIVE",
                                                 updated="2026-01-01T00:00:00.000Z")])
    got = one(enabled, "gd-1")
    assert (got["Workflow"]["Status"], got["WorkflowState"]) == ("NEW", "NEW")


def test_import_adds_security_hub_product_fields(enabled):
    fields = one(enabled, "gd-1")["ProductFields"]
    assert fields == {"aws/securityhub/FindingId": f"{GUARDDUTY}/gd-1",
                      "aws/securityhub/ProductName": "GuardDuty",
                      "aws/securityhub/CompanyName": "Amazon"}


def test_insights_lifecycle_and_results(enabled):
    filters = {"ProductName": [{"Value": "GuardDuty", "Comparison": "EQUALS"}]}
    arn = enabled.create_insight(Name="by instance", Filters=filters,
                                 GroupByAttribute="ResourceId")["InsightArn"]
    assert arn.startswith(f"arn:aws:securityhub:{REGION}:{ACCOUNT}:insight/{ACCOUNT}/custom/")
    (insight,) = enabled.get_insights()["Insights"]
    assert insight == {"InsightArn": arn, "Name": "by instance", "Filters": filters,
                       "GroupByAttribute": "ResourceId"}
    assert enabled.get_insights(InsightArns=[arn])["Insights"] == [insight]
    results = enabled.get_insight_results(InsightArn=arn)["InsightResults"]
    assert results["InsightArn"] == arn and results["GroupByAttribute"] == "ResourceId"
    assert results["ResultValues"] == [
        {"GroupByAttributeValue": f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-2", "Count": 2},
        {"GroupByAttributeValue": f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-1", "Count": 1}]
    enabled.batch_update_findings(FindingIdentifiers=[ident("gd-2")],
                                  Workflow={"Status": "RESOLVED"})
    enabled.update_insight(InsightArn=arn, Name="open by status", GroupByAttribute=
                           "WorkflowStatus")
    values = enabled.get_insight_results(InsightArn=arn)["InsightResults"]["ResultValues"]
    assert values == [{"GroupByAttributeValue": "NEW", "Count": 2},
                      {"GroupByAttributeValue": "RESOLVED", "Count": 1}]
    assert enabled.delete_insight(InsightArn=arn)["InsightArn"] == arn
    assert enabled.get_insights()["Insights"] == []
    with pytest.raises(ClientError) as excinfo:
        enabled.get_insight_results(InsightArn=arn)
    assert excinfo.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_insight_with_unknown_group_by_is_refused(enabled):
    with pytest.raises(ClientError) as excinfo:
        enabled.create_insight(Name="x", Filters={}, GroupByAttribute="Colour")
    assert excinfo.value.response["Error"]["Code"] == "InvalidInputException"


def test_default_standards(hub):
    hub.enable_security_hub()
    standards = hub.get_enabled_standards()["StandardsSubscriptions"]
    assert [s["StandardsArn"] for s in standards] == [
        "arn:aws:securityhub:::ruleset/cis-aws-foundations-benchmark/v/1.2.0",
        f"arn:aws:securityhub:{REGION}::standards/aws-foundational-security-best-practices"
        "/v/1.0.0"]
    assert {s["StandardsStatus"] for s in standards} == {"READY"}
    chosen = standards[1]["StandardsSubscriptionArn"]
    assert hub.get_enabled_standards(StandardsSubscriptionArns=[chosen])[
        "StandardsSubscriptions"] == [standards[1]]
    hub.disable_security_hub()
    hub.enable_security_hub(EnableDefaultStandards=False)
    assert hub.get_enabled_standards()["StandardsSubscriptions"] == []


def test_triage_over_http(local_client):
    """The same operations through the real local-cloud server: routes for insight ARNs
    (with '/' and ':' in the path) and the raw answers' shapes."""
    hub = local_client("securityhub")
    calls = capture_raw(hub)
    hub.enable_security_hub()
    hub.batch_import_findings(Findings=[asff("gd-1")])
    arn = hub.create_insight(Name="by type", Filters={}, GroupByAttribute="Type")["InsightArn"]
    values = hub.get_insight_results(InsightArn=arn)["InsightResults"]["ResultValues"]
    assert values == [{"GroupByAttributeValue": asff("gd-1")["Types"][0], "Count": 1}]
    hub.update_insight(InsightArn=arn, Name="renamed")
    assert hub.get_insights(InsightArns=[arn])["Insights"][0]["Name"] == "renamed"
    result = hub.batch_update_findings(FindingIdentifiers=[ident("gd-1"), ident("x")],
                                       Workflow={"Status": "SUPPRESSED"})
    assert [u["ErrorCode"] for u in result["UnprocessedFindings"]] == ["FindingNotFound"]
    assert len(hub.get_enabled_standards()["StandardsSubscriptions"]) == 2
    assert hub.delete_insight(InsightArn=arn)["InsightArn"] == arn
    operations = {operation for operation, _, _ in calls}
    assert {"BatchUpdateFindings", "CreateInsight", "GetInsights", "GetInsightResults",
            "UpdateInsight", "DeleteInsight", "GetEnabledStandards"} <= operations
    for operation, status, body in calls:
        assert status < 300, (operation, body)
        assert_wire_shape("securityhub", operation, body)
