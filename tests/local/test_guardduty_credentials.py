"""GuardDuty's analysis of the trail: an instance's role credentials, read through IMDS and
used from the malicious instance's listed Elastic IP, raise
UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS with AWS's schema (held
to botocore's GetFindings shape on the wire); nothing is raised for the instance's own
addresses, unlisted or trusted addresses, or keys no instance was given."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from test_imds import lab, session_client, stolen  # noqa: F401 - the fixture
from wire_shapes import assert_wire_shape, capture_raw

from gdlab.local import trail
from gdlab.local.guardduty import credentials_analysis

ACCOUNT = "123456789012"
TYPE = "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS"


@pytest.fixture(autouse=True)
def _empty_trail():
    trail.clear()


def findings(w) -> list[dict]:
    """Every finding of the detector, each raw answer held to botocore's shape."""
    assert trail.drain(10)
    gd = w.client("guardduty")
    calls = capture_raw(gd)
    ids = gd.list_findings(DetectorId=w.detector)["FindingIds"]
    found = gd.get_findings(DetectorId=w.detector, FindingIds=ids)["Findings"] if ids else []
    for operation, status, body in calls:
        assert status == 200
        assert_wire_shape("guardduty", operation, body)
    return found


def test_credentials_used_from_the_listed_eip_are_exfiltration(lab, local_server):  # noqa: F811
    w = lab(list_entries=["EIP"])
    credentials = stolen(w.compromised)
    session_client(local_server, "sts", credentials, source=w.eip).get_caller_identity()
    (finding,) = findings(w)
    assert (finding["Type"], finding["Severity"]) == (TYPE, 8.0)
    assert finding["Title"] == "Credentials for instance role ssm used from external IP address."
    assert finding["Description"] == (
        "Credentials created exclusively for an EC2 instance using instance role ssm have "
        f"been used from external IP address {w.eip}.")
    role_id = w.client("iam").get_role(RoleName="ssm")["Role"]["RoleId"]
    resource = finding["Resource"]
    assert resource["ResourceType"] == "AccessKey"
    assert resource["AccessKeyDetails"] == {
        "AccessKeyId": credentials["AccessKeyId"], "PrincipalId": f"{role_id}:{w.compromised}",
        "UserName": "ssm", "UserType": "AssumedRole"}
    assert resource["InstanceDetails"]["InstanceId"] == w.compromised
    service = finding["Service"]
    assert service["Action"]["ActionType"] == "AWS_API_CALL"
    call = service["Action"]["AwsApiCallAction"]
    assert (call["Api"], call["ServiceName"], call["CallerType"]) == (
        "GetCallerIdentity", "sts.amazonaws.com", "Remote IP")
    assert "ErrorCode" not in call
    remote = call["RemoteIpDetails"]
    assert remote["IpAddressV4"] == w.eip
    assert remote["Organization"]["AsnOrg"] == "AMAZON-02"
    assert {"Country", "City", "GeoLocation"} <= set(remote)
    assert json.loads(service["AdditionalInfo"]["Value"]) == {
        "threatListName": "Example-Threat-List"}
    assert service["Evidence"]["ThreatIntelligenceDetails"][0]["ThreatListName"] == \
        "Example-Threat-List"
    assert (service["ResourceRole"], service["Count"], service["Archived"]) == (
        "TARGET", 1, False)


def test_repeats_count_on_one_finding_and_refusals_carry_the_error(lab, local_server):  # noqa: F811
    w = lab(list_entries=["EIP"])
    credentials = stolen(w.compromised)
    ec2 = session_client(local_server, "ec2", credentials, source=w.eip)
    for _ in range(2):
        with pytest.raises(ClientError):  # the role "ssm" has no policy
            ec2.describe_instances()
    (finding,) = findings(w)
    assert finding["Service"]["Count"] == 2
    call = finding["Service"]["Action"]["AwsApiCallAction"]
    assert (call["Api"], call["ServiceName"], call["ErrorCode"]) == (
        "DescribeInstances", "ec2.amazonaws.com", "Client.UnauthorizedOperation")


def test_no_finding_from_the_instance_itself_or_unlisted_places(lab, local_server, local_client):  # noqa: F811
    w = lab(list_entries=["EIP"])
    credentials = stolen(w.compromised)
    own = w.moto_instance().nics[0]
    for source in (own.public_ip, own.private_ip_address, None):
        session_client(local_server, "sts", credentials, source=source).get_caller_identity()
    other = w.ec2.allocate_address(Domain="vpc")["PublicIp"]  # public, on no list
    session_client(local_server, "sts", credentials, source=other).get_caller_identity()
    # The administrator's own key from the listed address: no instance gave it out.
    trail.from_address(local_client("sts"), w.eip).get_caller_identity()
    assert findings(w) == []
    records = trail.records(access_key_id=credentials["AccessKeyId"])
    assert [r["sourceIPAddress"] for r in records] == [own.public_ip, own.private_ip_address,
                                                       "127.0.0.1", other]


def test_a_trusted_address_wins_over_the_threat_list(lab, local_server):  # noqa: F811
    w = lab(list_entries=["EIP"])
    w.trust([w.eip])
    session_client(local_server, "sts", stolen(w.compromised),
                   source=w.eip).get_caller_identity()
    assert findings(w) == []


def test_no_enabled_detector_no_finding(lab, local_server):  # noqa: F811
    w = lab(list_entries=["EIP"])
    w.client("guardduty").update_detector(DetectorId=w.detector, Enable=False)
    session_client(local_server, "sts", stolen(w.compromised),
                   source=w.eip).get_caller_identity()
    assert findings(w) == []


def test_the_analysis_ignores_records_of_unknown_keys():
    record = {"userIdentity": {"accessKeyId": "ASIANOBODYGAVEOUT"},
              "sourceIPAddress": "3.210.0.1", "awsRegion": "us-east-1"}
    assert credentials_analysis.analyze(record) == []
