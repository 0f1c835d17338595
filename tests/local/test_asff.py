"""GuardDuty findings as Security Hub ASFF: botocore's BatchImportFindings validation and
the fields GuardDuty's integration fills."""

import copy

import botocore.session
from botocore.validate import ParamValidator

from gdlab.local.asff import asff_type, product_fields, severity_label, to_asff
from gdlab.local.guardduty import sample_finding


class Backend:
    partition, account_id, region_name = "aws", "123456789012", "eu-west-1"


def finding() -> dict:
    data = sample_finding(Backend(), "d" * 32, "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom")
    data.update({"AccountId": "123456789012", "Region": "eu-west-1", "Partition": "aws",
                 "SchemaVersion": "2.0",
                 "Arn": f"arn:aws:guardduty:eu-west-1:123456789012:detector/{'d' * 32}"
                        f"/finding/{data['Id']}"})
    data["Service"]["AdditionalInfo"]["Value"] = (
        '{"threatListName":"Example-Threat-List","sample":true}')
    data["Service"]["Count"] = 3
    return data


def validate(record: dict) -> None:
    model = botocore.session.get_session().get_service_model("securityhub")
    shape = model.operation_model("BatchImportFindings").input_shape
    report = ParamValidator().validate({"Findings": [record]}, shape)
    assert not report.has_errors(), report.generate_report()


def test_asff_passes_botocore_validation():
    record = to_asff(finding(), "eu-west-1", "123456789012")
    validate(record)
    blocked = finding()
    blocked["Service"]["Action"]["NetworkConnectionAction"]["Blocked"] = True
    validate(to_asff(blocked, "eu-west-1", "123456789012"))


def test_asff_fields():
    source = finding()
    record = to_asff(copy.deepcopy(source), "eu-west-1", "123456789012")
    assert record["SchemaVersion"] == "2018-10-08"
    assert record["Id"] == source["Arn"]
    assert record["ProductArn"] == "arn:aws:securityhub:eu-west-1::product/aws/guardduty"
    assert record["GeneratorId"] == f"arn:aws:guardduty:eu-west-1:123456789012:detector/{'d' * 32}"
    assert record["Types"] == [
        "TTPs/Command and Control/UnauthorizedAccess:EC2-MaliciousIPCaller.Custom"]
    assert record["Severity"] == {"Label": "MEDIUM", "Normalized": 50, "Product": 5.0}
    assert (record["ProductName"], record["CompanyName"]) == ("GuardDuty", "Amazon")
    # Workflow is Security Hub's to set, not the provider's.
    assert "Workflow" not in record and record["RecordState"] == "ACTIVE"
    assert record["SourceUrl"] == (
        "https://eu-west-1.console.aws.amazon.com/guardduty/home?region=eu-west-1"
        f"#/findings?macros=current&fId={source['Id']}")
    assert record["FindingProviderFields"] == {
        "Severity": {"Label": "MEDIUM", "Original": "5"}, "Types": record["Types"]}
    assert record["FirstObservedAt"] == source["Service"]["EventFirstSeen"]
    assert record["LastObservedAt"] == source["Service"]["EventLastSeen"]
    assert record["Title"] == source["Title"] and record["Sample"] is True
    (resource,) = record["Resources"]
    assert resource["Type"] == "AwsEc2Instance"
    assert resource["Id"] == "arn:aws:ec2:eu-west-1:123456789012:instance/i-99999999"
    assert resource["Details"]["AwsEc2Instance"]["Type"] == "m3.xlarge"
    fields = record["ProductFields"]
    assert fields["aws/guardduty/service/additionalInfo/threatListName"] == "Example-Threat-List"
    assert fields["aws/guardduty/service/count"] == "3"
    assert fields["aws/guardduty/service/archived"] == "false"
    assert fields["aws/guardduty/service/evidence/threatIntelligenceDetails.0_/threatListName"] \
        == "GeneratedFindingCustomerListName"
    assert record["Network"]["Direction"] == "OUT"
    assert all(isinstance(v, str) for v in product_fields(source).values())


def test_severity_and_types():
    assert [severity_label(s) for s in (2, 5, 8, 9.5)] == ["LOW", "MEDIUM", "HIGH", "CRITICAL"]
    assert asff_type("Recon:EC2/PortProbeUnprotectedPort") == \
        "TTPs/Discovery/Recon:EC2-PortProbeUnprotectedPort"


def test_guardduty_update_reaches_security_hub_keeping_triage(shared_aws, reset_backends):
    """GuardDuty calls import_finding again when it publishes an update (same Id, higher
    Count, later UpdatedAt); Security Hub's copy follows and keeps the analyst's work."""
    from gdlab.local.asff import import_finding

    reset_backends("securityhub")
    hub = shared_aws("securityhub", region="eu-west-1")
    hub.enable_security_hub(EnableDefaultStandards=False)
    first = finding()
    first["Service"]["Count"] = 1
    first["UpdatedAt"] = "2026-01-01T10:00:00.000Z"
    first["Service"]["EventLastSeen"] = "2026-01-01T10:00:00.000Z"
    import_finding(Backend(), "d" * 32, first)
    (stored,) = hub.get_findings()["Findings"]
    assert stored["ProductFields"]["aws/securityhub/FindingId"] == (
        f"arn:aws:securityhub:eu-west-1::product/aws/guardduty/{first['Arn']}")
    assert stored["ProductFields"]["aws/securityhub/CompanyName"] == "Amazon"
    assert stored["ProductFields"]["aws/securityhub/ProductName"] == "GuardDuty"
    hub.batch_update_findings(
        FindingIdentifiers=[{"Id": stored["Id"], "ProductArn": stored["ProductArn"]}],
        Workflow={"Status": "NOTIFIED"}, Note={"Text": "paged on-call", "UpdatedBy": "me"})

    update = copy.deepcopy(first)
    update["Service"]["Count"] = 4
    update["UpdatedAt"] = "2026-01-01T10:06:00.000Z"
    update["Service"]["EventLastSeen"] = "2026-01-01T10:05:30.000Z"
    import_finding(Backend(), "d" * 32, update)
    (after,) = hub.get_findings()["Findings"]
    assert after["ProductFields"]["aws/guardduty/service/count"] == "4"
    assert after["LastObservedAt"] == "2026-01-01T10:05:30.000Z"
    assert after["UpdatedAt"] == "2026-01-01T10:06:00.000Z"
    assert after["CreatedAt"] == stored["CreatedAt"]
    assert after["FirstObservedAt"] == stored["FirstObservedAt"]
    assert after["Workflow"] == {"Status": "NOTIFIED"}
    assert after["Note"]["Text"] == "paged on-call"

    import_finding(Backend(), "d" * 32, first)  # a late, older copy changes nothing
    (last,) = hub.get_findings()["Findings"]
    assert last["ProductFields"]["aws/guardduty/service/count"] == "4"
