"""Security Hub's cross-Region aggregation over the local cloud's HTTP server: a finding
aggregator lives in the Region where it was created, one per account, and GetFindings there
returns the linked Regions' findings of the same account (and no other account's). Every
raw answer is held to botocore's Security Hub shapes."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from wire_shapes import assert_wire_shape, capture_raw

ACCOUNT = "123456789012"
HOME, WEST, EU = "us-east-1", "us-west-2", "eu-west-1"


def asff(finding_id: str, region: str, account: str = ACCOUNT) -> dict:
    return {
        "SchemaVersion": "2018-10-08", "Id": finding_id,
        "ProductArn": f"arn:aws:securityhub:{region}:{account}:product/{account}/default",
        "GeneratorId": "gdlab-test", "AwsAccountId": account,
        "Types": ["Software and Configuration Checks/x"],
        "CreatedAt": "2024-05-01T10:00:00.000Z", "UpdatedAt": "2024-05-01T10:00:00.000Z",
        "Severity": {"Label": "MEDIUM"}, "Title": "t", "Description": "d",
        "Resources": [{"Type": "Other", "Id": f"{region}-thing"}],
    }


class Hubs:
    """Security Hub clients by Region (one account), each recording raw answers."""

    def __init__(self, server, keys=None):
        self.server, self.keys = server, keys or server.credentials.boto3_kwargs()
        self.clients: dict[str, object] = {}
        self.recorded: list[list] = []

    def __call__(self, region: str):
        if region not in self.clients:
            client = boto3.client(
                "securityhub", region_name=region, endpoint_url=self.server.endpoint,
                config=Config(retries={"mode": "standard", "max_attempts": 1}), **self.keys)
            self.recorded.append(capture_raw(client))
            self.clients[region] = client
        return self.clients[region]

    def with_findings(self, account: str = ACCOUNT) -> Hubs:
        for region in (HOME, WEST, EU):
            self(region).enable_security_hub(EnableDefaultStandards=False)
            result = self(region).batch_import_findings(
                Findings=[asff(f"{region}-1", region, account)])
            assert result["SuccessCount"] == 1
        return self

    def ids(self, region: str) -> set[str]:
        return {f["Id"] for f in self(region).get_findings()["Findings"]}

    def check_shapes(self) -> None:
        for recorded in self.recorded:
            for operation, status, body in recorded:
                if status < 300:
                    assert_wire_shape("securityhub", operation, body)


@pytest.fixture
def hubs(local_server):
    found = Hubs(local_server).with_findings()
    yield found
    found.check_shapes()


def error(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


def test_all_regions_brings_the_linked_regions_findings_to_the_aggregation_region(hubs):
    assert hubs.ids(HOME) == {f"{HOME}-1"}  # no aggregator: each Region its own
    created = hubs(HOME).create_finding_aggregator(RegionLinkingMode="ALL_REGIONS")
    arn = created["FindingAggregatorArn"]
    assert arn.startswith(f"arn:aws:securityhub:{HOME}:{ACCOUNT}:finding-aggregator/")
    assert (created["FindingAggregationRegion"], created["RegionLinkingMode"]) == (
        HOME, "ALL_REGIONS")
    assert hubs.ids(HOME) == {f"{HOME}-1", f"{WEST}-1", f"{EU}-1"}
    west = hubs(HOME).get_findings(Filters={"Region": [
        {"Value": WEST, "Comparison": "EQUALS"}]})["Findings"]
    assert [(f["Id"], f["Region"]) for f in west] == [(f"{WEST}-1", WEST)]
    assert hubs.ids(WEST) == {f"{WEST}-1"}  # a linked Region still sees only its own
    # Get and List answer in any Region; the aggregator is the account's one.
    assert hubs(WEST).get_finding_aggregator(FindingAggregatorArn=arn)[
        "FindingAggregationRegion"] == HOME
    assert hubs(EU).list_finding_aggregators()["FindingAggregators"] == [
        {"FindingAggregatorArn": arn}]
    code, _ = error(lambda: hubs(WEST).create_finding_aggregator(
        RegionLinkingMode="ALL_REGIONS"))
    assert code == "LimitExceededException"


def test_specified_and_excepted_regions(hubs):
    arn = hubs(HOME).create_finding_aggregator(RegionLinkingMode="SPECIFIED_REGIONS",
                                               Regions=[WEST])["FindingAggregatorArn"]
    assert hubs.ids(HOME) == {f"{HOME}-1", f"{WEST}-1"}
    updated = hubs(HOME).update_finding_aggregator(
        FindingAggregatorArn=arn, RegionLinkingMode="ALL_REGIONS_EXCEPT_SPECIFIED",
        Regions=[WEST])
    assert (updated["RegionLinkingMode"], updated["Regions"]) == (
        "ALL_REGIONS_EXCEPT_SPECIFIED", [WEST])
    assert hubs.ids(HOME) == {f"{HOME}-1", f"{EU}-1"}
    hubs(HOME).update_finding_aggregator(FindingAggregatorArn=arn,
                                         RegionLinkingMode="NO_REGIONS")
    assert hubs.ids(HOME) == {f"{HOME}-1"}
    # Update and Delete only from the aggregation Region.
    code, _ = error(lambda: hubs(WEST).update_finding_aggregator(
        FindingAggregatorArn=arn, RegionLinkingMode="ALL_REGIONS"))
    assert code == "InvalidInputException"
    code, _ = error(lambda: hubs(WEST).delete_finding_aggregator(FindingAggregatorArn=arn))
    assert code == "InvalidInputException"
    hubs(HOME).delete_finding_aggregator(FindingAggregatorArn=arn)
    assert hubs(HOME).list_finding_aggregators()["FindingAggregators"] == []
    assert hubs.ids(HOME) == {f"{HOME}-1"}
    code, _ = error(lambda: hubs(HOME).get_finding_aggregator(FindingAggregatorArn=arn))
    assert code == "ResourceNotFoundException"


@pytest.mark.parametrize("mode, regions", [
    ("SPECIFIED_REGIONS", None), ("ALL_REGIONS_EXCEPT_SPECIFIED", []),
    ("ALL_REGIONS", [WEST]), ("SOME_REGIONS", None)])
def test_a_linking_mode_and_its_regions_must_agree(hubs, mode, regions):
    extra = {} if regions is None else {"Regions": regions}
    code, _ = error(lambda: hubs(HOME).create_finding_aggregator(RegionLinkingMode=mode,
                                                                 **extra))
    assert code == "InvalidInputException"


def test_an_aggregator_needs_security_hub_in_its_region(local_server):
    hubs = Hubs(local_server)
    code, _ = error(lambda: hubs(HOME).create_finding_aggregator(
        RegionLinkingMode="ALL_REGIONS"))
    assert code == "InvalidAccessException"


def test_another_accounts_aggregator_links_only_that_accounts_regions(hubs, local_server):
    org = boto3.client("organizations", region_name=HOME, endpoint_url=local_server.endpoint,
                       **local_server.credentials.boto3_kwargs())
    org.create_organization(FeatureSet="ALL")
    member = org.create_account(Email="student1@example.com",
                                AccountName="student1")["CreateAccountStatus"]["AccountId"]
    sts = boto3.client("sts", region_name=HOME, endpoint_url=local_server.endpoint,
                       **local_server.credentials.boto3_kwargs())
    issued = sts.assume_role(RoleArn=f"arn:aws:iam::{member}:role/OrganizationAccountAccessRole",
                             RoleSessionName="gdlab-hub-test")["Credentials"]
    theirs = Hubs(local_server, {"aws_access_key_id": issued["AccessKeyId"],
                                 "aws_secret_access_key": issued["SecretAccessKey"],
                                 "aws_session_token": issued["SessionToken"]})
    theirs(HOME).enable_security_hub(EnableDefaultStandards=False)
    theirs(WEST).enable_security_hub(EnableDefaultStandards=False)
    theirs(WEST).batch_import_findings(Findings=[asff("member-west", WEST, member)])
    theirs(HOME).create_finding_aggregator(RegionLinkingMode="ALL_REGIONS")
    assert theirs.ids(HOME) == {"member-west"}
    (finding,) = theirs(HOME).get_findings()["Findings"]
    assert (finding["AwsAccountId"], finding["Region"]) == (member, WEST)
    # The management account has no aggregator of its own: still one Region's findings.
    assert hubs.ids(HOME) == {f"{HOME}-1"}
    theirs.check_shapes()


def session_keys(server, account: str) -> dict:
    sts = boto3.client("sts", region_name=HOME, endpoint_url=server.endpoint,
                       **server.credentials.boto3_kwargs())
    issued = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole",
                             RoleSessionName="gdlab-hub-test")["Credentials"]
    return {"aws_access_key_id": issued["AccessKeyId"],
            "aws_secret_access_key": issued["SecretAccessKey"],
            "aws_session_token": issued["SessionToken"]}


def test_the_administrator_sees_its_members_findings_and_with_an_aggregator_every_regions(
        hubs, local_server):
    org = boto3.client("organizations", region_name=HOME, endpoint_url=local_server.endpoint,
                       **local_server.credentials.boto3_kwargs())
    org.create_organization(FeatureSet="ALL")
    accounts = {name: org.create_account(Email=f"{name}@example.com", AccountName=name)[
        "CreateAccountStatus"]["AccountId"] for name in ("security", "student1")}
    admin = Hubs(local_server, session_keys(local_server, accounts["security"]))
    student = Hubs(local_server, session_keys(local_server, accounts["student1"]))
    student.with_findings(accounts["student1"])
    admin(HOME).enable_security_hub(EnableDefaultStandards=False)
    hubs(HOME).enable_organization_admin_account(AdminAccountId=accounts["security"])
    assert admin.ids(HOME) == set()  # designated, but no member yet
    unprocessed = admin(HOME).create_members(AccountDetails=[
        {"AccountId": accounts["student1"], "Email": "student1@example.com"}])
    assert unprocessed["UnprocessedAccounts"] == []
    (finding,) = admin(HOME).get_findings()["Findings"]
    assert (finding["Id"], finding["AwsAccountId"]) == (f"{HOME}-1", accounts["student1"])
    admin(HOME).create_finding_aggregator(RegionLinkingMode="SPECIFIED_REGIONS",
                                          Regions=[WEST])
    found = {(f["AwsAccountId"], f["Region"]) for f in admin(HOME).get_findings()["Findings"]}
    assert found == {(accounts["student1"], HOME), (accounts["student1"], WEST)}
    # The member still sees its own Region's findings only; the management account its own.
    assert student.ids(HOME) == {f"{HOME}-1"}
    assert {f["AwsAccountId"] for f in student(HOME).get_findings()["Findings"]} == {
        accounts["student1"]}
    assert {f["AwsAccountId"] for f in hubs(HOME).get_findings()["Findings"]} == {ACCOUNT}
    admin.check_shapes()
    student.check_shapes()
