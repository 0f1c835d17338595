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
    assert record["Workflow"] == {"Status": "NEW"} and record["RecordState"] == "ACTIVE"
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
