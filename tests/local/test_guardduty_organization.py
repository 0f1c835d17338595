"""GuardDuty's administrator and members through AWS Organizations, over the local cloud's
HTTP server with each account's own credentials (sessions of OrganizationAccountAccessRole):
the management account designates the administrator, the administrator adds organization
accounts as members (Enabled at once, GuardDuty turned on in them), members cannot manage
threat lists but the administrator's apply to them, and the administrator sees every
member's findings. Every raw answer is held to botocore's GuardDuty shapes."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from wire_shapes import assert_wire_shape, capture_raw

from gdlab.local import analyzer, trail
from gdlab.local.guardduty import api_call_analysis as calls

MANAGEMENT = "123456789012"
LISTED = "3.210.7.7"
LIST_NAME = "Org-Threat-List"


def client(server, service, keys=None, region="us-east-1"):
    keys = keys or server.credentials.boto3_kwargs()
    return boto3.client(service, region_name=region, endpoint_url=server.endpoint,
                        config=Config(retries={"mode": "standard", "max_attempts": 1}),
                        **keys)


def new_account(server, name: str) -> str:
    org = client(server, "organizations")
    try:
        org.create_organization(FeatureSet="ALL")
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "AlreadyInOrganizationException"
    status = org.create_account(Email=f"{name}@example.com", AccountName=name)
    return status["CreateAccountStatus"]["AccountId"]


def session_in(server, account: str) -> dict:
    issued = client(server, "sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole",
        RoleSessionName="gdlab-org-test")["Credentials"]
    return {"aws_access_key_id": issued["AccessKeyId"],
            "aws_secret_access_key": issued["SecretAccessKey"],
            "aws_session_token": issued["SessionToken"]}


def refusal(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


class Org:
    """An organization with a GuardDuty administrator ("security") and a member account
    ("student1") created but not yet a GuardDuty member; GuardDuty clients record raw
    answers for the shape check."""

    def __init__(self, server):
        self.server = server
        self.admin = new_account(server, "security")
        self.member = new_account(server, "student1")
        self.admin_keys = session_in(server, self.admin)
        self.member_keys = session_in(server, self.member)
        self.recorded: list[list] = []
        self.mgmt_gd = self.gd()
        self.admin_gd = self.gd(self.admin_keys)
        self.member_gd = self.gd(self.member_keys)

    def gd(self, keys=None, region="us-east-1"):
        gd = client(self.server, "guardduty", keys, region)
        self.recorded.append(capture_raw(gd))
        return gd

    def designate(self) -> str:
        self.mgmt_gd.enable_organization_admin_account(AdminAccountId=self.admin)
        (detector,) = self.admin_gd.list_detectors()["DetectorIds"]
        return detector

    def check_shapes(self) -> None:
        for recorded in self.recorded:
            for operation, status, body in recorded:
                # AWS answers an account with no administrator "success (HTTP 200) but no
                # content" (API_GetAdministratorAccount), though the model marks it required.
                if body == {} and operation in ("GetAdministratorAccount", "GetMasterAccount"):
                    continue
                if status < 300:
                    assert_wire_shape("guardduty", operation, body)


@pytest.fixture
def org(local_server, monkeypatch):
    monkeypatch.setenv("GDLAB_LOCAL_ACTIVATION_SECONDS", "0")
    trail.clear()
    world = Org(local_server)
    yield world
    world.check_shapes()


def test_the_management_account_designates_the_administrator(org):
    detector = org.designate()  # designating it turned GuardDuty on in the administrator
    admins = org.mgmt_gd.list_organization_admin_accounts()["AdminAccounts"]
    assert admins == [{"AdminAccountId": org.admin, "AdminStatus": "ENABLED"}]
    # Only the management account may; only an account of the organization; one at a time.
    code, _ = refusal(lambda: org.admin_gd.enable_organization_admin_account(
        AdminAccountId=org.admin))
    assert code == "BadRequestException"
    code, message = refusal(lambda: org.mgmt_gd.enable_organization_admin_account(
        AdminAccountId="999999999999"))
    assert code == "BadRequestException" and "not a member of the organization" in message
    code, _ = refusal(lambda: org.mgmt_gd.enable_organization_admin_account(
        AdminAccountId=org.member))
    assert code == "BadRequestException"
    code, _ = refusal(lambda: org.member_gd.list_organization_admin_accounts())
    assert code == "BadRequestException"
    # The administrator runs the organization's configuration; nobody else does.
    org.admin_gd.update_organization_configuration(DetectorId=detector,
                                                   AutoEnableOrganizationMembers="NONE")
    mine = org.member_gd.create_detector(Enable=True)["DetectorId"]
    code, _ = refusal(lambda: org.member_gd.describe_organization_configuration(
        DetectorId=mine))
    assert code == "BadRequestException"
    # Designating it registered it in Organizations and trusted GuardDuty there; removing it
    # in GuardDuty leaves both (AWS: "To de-register ... run DeregisterDelegatedAdministrator").
    organizations = client(org.server, "organizations")

    def delegated() -> list[str]:
        return [a["Id"] for a in organizations.list_delegated_administrators(
            ServicePrincipal="guardduty.amazonaws.com")["DelegatedAdministrators"]]

    assert delegated() == [org.admin]
    assert "guardduty.amazonaws.com" in {s["ServicePrincipal"] for s in organizations.
                                         list_aws_service_access_for_organization()[
                                             "EnabledServicePrincipals"]}
    org.mgmt_gd.disable_organization_admin_account(AdminAccountId=org.admin)
    assert org.mgmt_gd.list_organization_admin_accounts()["AdminAccounts"] == []
    assert delegated() == [org.admin]
    # Another account cannot be designated while Organizations names this one.
    code, message = refusal(lambda: org.mgmt_gd.enable_organization_admin_account(
        AdminAccountId=org.member))
    assert code == "BadRequestException" and org.admin in message
    organizations.deregister_delegated_administrator(
        AccountId=org.admin, ServicePrincipal="guardduty.amazonaws.com")
    assert delegated() == []


def test_an_organization_account_added_as_member_is_enabled_at_once(org):
    detector = org.designate()
    assert org.member_gd.list_detectors()["DetectorIds"] == []
    result = org.admin_gd.create_members(DetectorId=detector, AccountDetails=[
        {"AccountId": org.member, "Email": "student1@example.com"},
        {"AccountId": org.admin, "Email": "security@example.com"}])
    (itself,) = result["UnprocessedAccounts"]
    assert itself["AccountId"] == org.admin and "member of itself" in itself["Result"]
    # CreateMembers by the delegated administrator turns GuardDuty on in the member.
    (member_detector,) = org.member_gd.list_detectors()["DetectorIds"]
    (member,) = org.admin_gd.list_members(DetectorId=detector)["Members"]
    assert member["AccountId"] == org.member and member["DetectorId"] == member_detector
    assert (member["RelationshipStatus"], member["AdministratorId"], member["MasterId"],
            member["Email"]) == ("Enabled", org.admin, org.admin, "student1@example.com")
    found = org.member_gd.get_administrator_account(DetectorId=member_detector)
    assert (found["Administrator"]["AccountId"],
            found["Administrator"]["RelationshipStatus"]) == (org.admin, "Enabled")
    assert org.member_gd.get_master_account(
        DetectorId=member_detector)["Master"]["AccountId"] == org.admin
    raw = [body for recorded in org.recorded for operation, _, body in recorded
           if operation == "GetAdministratorAccount"]
    assert raw[-1]["administrator"]["accountId"] == org.admin  # the wire's camelCase
    again = org.admin_gd.create_members(DetectorId=detector, AccountDetails=[
        {"AccountId": org.member, "Email": "student1@example.com"}])
    assert "already a member" in again["UnprocessedAccounts"][0]["Result"]
    # GetMembers names what it does not know.
    got = org.admin_gd.get_members(DetectorId=detector,
                                   AccountIds=[org.member, "999999999999"])
    assert [m["AccountId"] for m in got["Members"]] == [org.member]
    assert [u["AccountId"] for u in got["UnprocessedAccounts"]] == ["999999999999"]
    # Disassociated: listed only when asked for all; the member has no administrator.
    assert org.admin_gd.disassociate_members(DetectorId=detector, AccountIds=[org.member])[
        "UnprocessedAccounts"] == []
    assert org.admin_gd.list_members(DetectorId=detector)["Members"] == []
    (removed,) = org.admin_gd.list_members(DetectorId=detector,
                                           OnlyAssociated="false")["Members"]
    assert removed["RelationshipStatus"] == "Removed"
    assert "Administrator" not in org.member_gd.get_administrator_account(
        DetectorId=member_detector)
    assert org.admin_gd.delete_members(DetectorId=detector, AccountIds=[org.member])[
        "UnprocessedAccounts"] == []
    assert org.admin_gd.list_members(DetectorId=detector,
                                     OnlyAssociated="false")["Members"] == []


def test_auto_enable_all_enrols_every_account_of_the_organization(org):
    detector = org.designate()
    org.admin_gd.update_organization_configuration(
        DetectorId=detector, AutoEnableOrganizationMembers="ALL",
        DataSources={"S3Logs": {"AutoEnable": True}})
    config = org.admin_gd.describe_organization_configuration(DetectorId=detector)
    assert (config["AutoEnable"], config["AutoEnableOrganizationMembers"],
            config["MemberAccountLimitReached"]) == (True, "ALL", False)
    assert config["DataSources"]["S3Logs"] == {"AutoEnable": True}
    members = {m["AccountId"]: m for m in
               org.admin_gd.list_members(DetectorId=detector)["Members"]}
    # Every account but the administrator, the management account included.
    assert set(members) == {org.member, MANAGEMENT}
    assert {m["RelationshipStatus"] for m in members.values()} == {"Enabled"}
    assert len(org.member_gd.list_detectors()["DetectorIds"]) == 1
    # Under ALL an organization account cannot be disassociated.
    (kept,) = org.admin_gd.disassociate_members(
        DetectorId=detector, AccountIds=[org.member])["UnprocessedAccounts"]
    assert kept["AccountId"] == org.member
    code, _ = refusal(lambda: org.admin_gd.update_organization_configuration(
        DetectorId=detector, AutoEnable=True, AutoEnableOrganizationMembers="NEW"))
    assert code == "BadRequestException"


def test_auto_enable_new_enrols_only_accounts_that_join_later(org):
    detector = org.designate()
    org.admin_gd.update_organization_configuration(DetectorId=detector, AutoEnable=True)
    config = org.admin_gd.describe_organization_configuration(DetectorId=detector)
    assert config["AutoEnableOrganizationMembers"] == "NEW"
    assert org.admin_gd.list_members(DetectorId=detector)["Members"] == []
    late = new_account(org.server, "student2")
    late_gd = org.gd(session_in(org.server, late))
    # The new account's own first call finds GuardDuty on and its administrator named.
    (late_detector,) = late_gd.list_detectors()["DetectorIds"]
    assert late_gd.get_administrator_account(
        DetectorId=late_detector)["Administrator"]["AccountId"] == org.admin
    assert [m["AccountId"] for m in
            org.admin_gd.list_members(DetectorId=detector)["Members"]] == [late]


def test_members_use_the_administrators_lists_and_the_administrator_sees_their_findings(
        org):
    detector = org.designate()
    s3 = client(org.server, "s3", org.admin_keys)
    s3.create_bucket(Bucket="gdlab-org-lists")
    s3.put_object(Bucket="gdlab-org-lists", Key="threats.txt", Body=f"{LISTED}\n")
    org.admin_gd.create_threat_intel_set(DetectorId=detector, Name=LIST_NAME, Format="TXT",
                                         Activate=True,
                                         Location="s3://gdlab-org-lists/threats.txt")
    org.admin_gd.create_members(DetectorId=detector, AccountDetails=[
        {"AccountId": org.member, "Email": "student1@example.com"}])
    (member_detector,) = org.member_gd.list_detectors()["DetectorIds"]
    # A member cannot manage lists: the administrator's apply to it.
    for call in (
        lambda: org.member_gd.create_threat_intel_set(
            DetectorId=member_detector, Name="mine", Format="TXT", Activate=True,
            Location="s3://gdlab-org-lists/threats.txt"),
        lambda: org.member_gd.create_ip_set(
            DetectorId=member_detector, Name="mine", Format="TXT", Activate=True,
            Location="s3://gdlab-org-lists/threats.txt"),
    ):
        code, message = refusal(call)
        assert code == "BadRequestException" and "member account" in message
    # An IAM user of the member calls from an address on the administrator's list.
    iam = client(org.server, "iam", org.member_keys)
    iam.create_user(UserName="student")
    iam.put_user_policy(UserName="student", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="student")["AccessKey"]
    sts = trail.from_address(client(org.server, "sts", {
        "aws_access_key_id": key["AccessKeyId"],
        "aws_secret_access_key": key["SecretAccessKey"]}), LISTED)
    assert sts.get_caller_identity()["Account"] == org.member
    assert trail.drain(10)
    ids = org.member_gd.list_findings(DetectorId=member_detector)["FindingIds"]
    (finding,) = org.member_gd.get_findings(DetectorId=member_detector,
                                            FindingIds=ids)["Findings"]
    assert (finding["Type"], finding["AccountId"]) == (calls.IAM_CUSTOM, org.member)
    assert finding["Service"]["Evidence"]["ThreatIntelligenceDetails"] == [
        {"ThreatListName": LIST_NAME, "ThreatNames": []}]
    # The administrator sees its own findings and the member's; the member only its own.
    org.admin_gd.create_sample_findings(DetectorId=detector,
                                        FindingTypes=["Recon:EC2/PortProbeUnprotectedPort"])
    seen = org.admin_gd.list_findings(DetectorId=detector)["FindingIds"]
    assert finding["Id"] in seen and len(seen) == 2
    by_account = {f["AccountId"]: f for f in org.admin_gd.get_findings(
        DetectorId=detector, FindingIds=seen)["Findings"]}
    assert set(by_account) == {org.admin, org.member}
    assert by_account[org.member]["Id"] == finding["Id"]
    only_member = org.admin_gd.list_findings(DetectorId=detector, FindingCriteria={
        "Criterion": {"accountId": {"Eq": [org.member]}}})["FindingIds"]
    assert only_member == [finding["Id"]]
    assert org.member_gd.list_findings(DetectorId=member_detector)["FindingIds"] == ids
    stats = org.admin_gd.get_findings_statistics(
        DetectorId=detector, GroupBy="ACCOUNT")["FindingStatistics"]
    assert {row["AccountId"] for row in stats["GroupedByAccount"]} == {org.admin, org.member}
    # Archived by the administrator, the member's finding is archived in the member.
    org.admin_gd.archive_findings(DetectorId=detector, FindingIds=[finding["Id"]])
    (archived,) = org.member_gd.get_findings(DetectorId=member_detector,
                                             FindingIds=ids)["Findings"]
    assert archived["Service"]["Archived"] is True
    # Another region is another organization setting: us-west-2 has no administrator.
    west = org.gd(org.member_keys, "us-west-2")
    west_detector = west.create_detector(Enable=True)["DetectorId"]
    assert "Administrator" not in west.get_administrator_account(DetectorId=west_detector)


def test_a_members_traffic_to_the_administrators_listed_address_is_a_finding(org):
    """The flow-log analyzer reads a member's lists as the API-call analysis does: the
    administrator's ACTIVE threat list raises the member's finding, its trusted list
    silences another address."""
    detector = org.designate()
    s3 = client(org.server, "s3", org.admin_keys)
    s3.create_bucket(Bucket="gdlab-org-lists")
    s3.put_object(Bucket="gdlab-org-lists", Key="threats.txt",
                  Body=f"{LISTED}\n3.210.9.0/24\n")
    s3.put_object(Bucket="gdlab-org-lists", Key="trusted.txt", Body="3.210.9.9\n")
    org.admin_gd.create_threat_intel_set(DetectorId=detector, Name=LIST_NAME, Format="TXT",
                                         Activate=True,
                                         Location="s3://gdlab-org-lists/threats.txt")
    org.admin_gd.create_ip_set(DetectorId=detector, Name="trusted", Format="TXT",
                               Activate=True, Location="s3://gdlab-org-lists/trusted.txt")
    org.admin_gd.create_members(DetectorId=detector, AccountDetails=[
        {"AccountId": org.member, "Email": "student1@example.com"}])
    ec2 = client(org.server, "ec2", org.member_keys)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    (instance,) = ec2.run_instances(ImageId="ami-760aaa0f", InstanceType="t3.micro",
                                    MinCount=1, MaxCount=1, SubnetId=subnet)["Instances"]
    nic = instance["NetworkInterfaces"][0]
    now = int(time.time())

    def record(remote: str) -> dict:
        return {"interface-id": nic["NetworkInterfaceId"],
                "srcaddr": nic["PrivateIpAddress"], "dstaddr": remote, "srcport": "0",
                "dstport": "0", "protocol": "1", "action": "ACCEPT", "log-status": "OK",
                "start": str(now - 5), "end": str(now)}

    stored = analyzer.analyze(org.member, "us-east-1", [record(LISTED), record("3.210.9.9")])
    (finding,) = stored  # the trusted address raised nothing
    assert finding["AccountId"] == org.member
    assert finding["Service"]["Evidence"]["ThreatIntelligenceDetails"] == [
        {"ThreatListName": LIST_NAME, "ThreatNames": []}]
    assert finding["Service"]["Action"]["NetworkConnectionAction"]["RemoteIpDetails"][
        "IpAddressV4"] == LISTED
    assert finding["Id"] in org.admin_gd.list_findings(DetectorId=detector)["FindingIds"]
