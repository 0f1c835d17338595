"""Security Hub in the local cloud: enable/disable/describe like AWS, GetFindings honours
Filters, BatchImportFindings completes findings. Responses are held to botocore's model."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

ACCOUNT = "123456789012"
REGION = "us-east-1"
GUARDDUTY = f"arn:aws:securityhub:{REGION}::product/aws/guardduty"
CUSTOM = f"arn:aws:securityhub:{REGION}:{ACCOUNT}:product/{ACCOUNT}/default"


def asff(finding_id, instance="i-1", type_="TTPs/Command and Control/UnauthorizedAccess:"
         "EC2-MaliciousIPCaller.Custom", product=GUARDDUTY, generator="detector-arn"):
    return {
        "SchemaVersion": "2018-10-08", "Id": finding_id, "ProductArn": product,
        "GeneratorId": generator, "AwsAccountId": ACCOUNT, "Types": [type_],
        "CreatedAt": "2024-05-01T10:00:00.000Z", "UpdatedAt": "2024-05-01T10:00:00.000Z",
        "Severity": {"Label": "MEDIUM", "Normalized": 50}, "Title": "t", "Description": "d",
        "Resources": [{"Type": "AwsEc2Instance",
                       "Id": f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{instance}"}],
    }


@pytest.fixture
def hub(shared_aws, wire_check, reset_backends):
    reset_backends("securityhub")
    client = shared_aws("securityhub")
    recorder = wire_check(client)
    yield client
    client.meta.events.unregister("before-parse", recorder)
    assert not recorder.problems()


@pytest.fixture
def enabled(hub):
    hub.enable_security_hub(EnableDefaultStandards=False, Tags={"gdlab:lab": "gd-test"})
    result = hub.batch_import_findings(Findings=[
        asff("gd-1", instance="i-1"),
        asff("gd-2", instance="i-2", generator="other-detector"),
        asff("custom-1", instance="i-1", type_="Software and Configuration Checks/x",
             product=CUSTOM),
    ])
    assert (result["SuccessCount"], result["FailedCount"]) == (3, 0)
    return hub


def code_of(excinfo):
    err = excinfo.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def test_enable_twice_is_a_conflict(hub):
    hub.enable_security_hub(EnableDefaultStandards=False)
    with pytest.raises(ClientError) as excinfo:
        hub.enable_security_hub(EnableDefaultStandards=False)
    assert code_of(excinfo) == ("ResourceConflictException", 409)
    assert excinfo.value.response["Error"]["Message"] == (
        f"Account {ACCOUNT} is already subscribed to Security Hub")


def test_describe_hub_and_tags(enabled):
    hub = enabled.describe_hub()
    assert hub["HubArn"] == f"arn:aws:securityhub:{REGION}:{ACCOUNT}:hub/default"
    assert hub["SubscribedAt"]
    assert enabled.describe_hub(HubArn=hub["HubArn"])["HubArn"] == hub["HubArn"]
    assert enabled.list_tags_for_resource(ResourceArn=hub["HubArn"])["Tags"] == {
        "gdlab:lab": "gd-test"}
    enabled.tag_resource(ResourceArn=hub["HubArn"], Tags={"b": "2"})
    enabled.untag_resource(ResourceArn=hub["HubArn"], TagKeys=["gdlab:lab"])
    assert enabled.list_tags_for_resource(ResourceArn=hub["HubArn"])["Tags"] == {"b": "2"}


@pytest.mark.parametrize("operation", ["describe_hub", "get_findings", "disable_security_hub"])
def test_disabled_hub_refuses(hub, operation):
    with pytest.raises(ClientError) as excinfo:
        getattr(hub, operation)()
    assert code_of(excinfo) == ("InvalidAccessException", 401)


def test_import_into_disabled_hub_is_refused(hub):
    with pytest.raises(ClientError) as excinfo:
        hub.batch_import_findings(Findings=[asff("x")])
    assert code_of(excinfo)[0] == "InvalidAccessException"


def test_disable_forgets_findings(enabled):
    enabled.disable_security_hub()
    enabled.enable_security_hub(EnableDefaultStandards=False)
    assert enabled.get_findings()["Findings"] == []


def ids(client, **filters):
    return {f["Id"] for f in client.get_findings(Filters=filters)["Findings"]}


def eq(value, comparison="EQUALS"):
    return [{"Value": value, "Comparison": comparison}]


@pytest.mark.parametrize("filters, expected", [
    ({}, {"gd-1", "gd-2", "custom-1"}),
    ({"Id": eq("gd-1")}, {"gd-1"}),
    ({"Id": eq("gd-", "PREFIX")}, {"gd-1", "gd-2"}),
    ({"Id": eq("gd-1", "NOT_EQUALS")}, {"gd-2", "custom-1"}),
    ({"Type": eq("TTPs/", "PREFIX")}, {"gd-1", "gd-2"}),
    ({"ProductArn": eq(GUARDDUTY)}, {"gd-1", "gd-2"}),
    ({"ProductName": eq("GuardDuty")}, {"gd-1", "gd-2"}),
    ({"ProductName": eq("Default")}, {"custom-1"}),
    ({"ResourceId": eq(f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-1")}, {"gd-1", "custom-1"}),
    ({"ResourceType": eq("AwsEc2Instance")}, {"gd-1", "gd-2", "custom-1"}),
    ({"RecordState": eq("ACTIVE")}, {"gd-1", "gd-2", "custom-1"}),
    ({"RecordState": eq("ARCHIVED")}, set()),
    ({"WorkflowStatus": eq("NEW")}, {"gd-1", "gd-2", "custom-1"}),
    ({"GeneratorId": eq("other-detector")}, {"gd-2"}),
    ({"GeneratorId": eq("other", "PREFIX_NOT_EQUALS")}, {"gd-1", "custom-1"}),
    ({"ProductName": eq("GuardDuty"),
      "ResourceId": eq(f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-1")}, {"gd-1"}),
    ({"Id": [{"Value": "gd-1", "Comparison": "EQUALS"},
             {"Value": "custom-1", "Comparison": "EQUALS"}]}, {"gd-1", "custom-1"}),
    ({"SeverityNormalized": [{"Gte": 40}]}, {"gd-1", "gd-2", "custom-1"}),
    ({"UpdatedAt": [{"Start": "2024-05-01T00:00:00Z", "End": "2024-05-02T00:00:00Z"}]},
     {"gd-1", "gd-2", "custom-1"}),
])
def test_get_findings_filters(enabled, filters, expected):
    assert ids(enabled, **filters) == expected


def test_unsupported_filter_is_a_clear_400(enabled):
    with pytest.raises(ClientError) as excinfo:
        enabled.get_findings(Filters={"NoteText": eq("x")})
    assert code_of(excinfo) == ("InvalidInputException", 400)
    assert "NoteText" in excinfo.value.response["Error"]["Message"]


def test_pages_and_import_fields(enabled):
    first = enabled.get_findings(MaxResults=2)
    assert len(first["Findings"]) == 2 and first["NextToken"]
    rest = enabled.get_findings(MaxResults=2, NextToken=first["NextToken"])
    assert len(rest["Findings"]) == 1 and not rest.get("NextToken")
    finding = enabled.get_findings(Filters={"Id": eq("gd-1")})["Findings"][0]
    assert (finding["ProductName"], finding["CompanyName"], finding["Region"]) == (
        "GuardDuty", "Amazon", REGION)  # as in AWS's sample GuardDuty finding
    assert finding["Workflow"] == {"Status": "NEW"} and finding["RecordState"] == "ACTIVE"


def test_reimport_updates_and_rejects_foreign_accounts(enabled):
    updated = dict(asff("gd-1"), Title="updated", UpdatedAt="2024-05-02T10:00:00.000Z")
    foreign = dict(asff("x"), AwsAccountId="111122223333")
    result = enabled.batch_import_findings(Findings=[updated, foreign])
    assert (result["SuccessCount"], result["FailedCount"]) == (1, 1)
    assert result["FailedFindings"][0]["Id"] == "x"
    got = enabled.get_findings(Filters={"Id": eq("gd-1")})["Findings"]
    assert len(got) == 1 and got[0]["Title"] == "updated"
