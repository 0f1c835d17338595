"""The local cloud's Organizations and cross-account roles as AWS has them: an account it
creates comes with OrganizationAccountAccessRole (trusted by the management account, holding
AdministratorAccess), and STS AssumeRole is refused when the role is missing or does not trust
the caller."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from gdlab.local.organizations import trusts

MANAGEMENT = "123456789012"


def client(server, service, **keys):
    keys = keys or server.credentials.boto3_kwargs()
    return boto3.client(service, region_name="us-east-1", endpoint_url=server.endpoint,
                        config=Config(retries={"mode": "standard", "max_attempts": 1}), **keys)


def new_account(server, name: str, **extra) -> str:
    org = client(server, "organizations")
    try:
        org.create_organization(FeatureSet="ALL")
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "AlreadyInOrganizationException"
    status = org.create_account(Email=f"{name}@example.com", AccountName=name, **extra)
    return status["CreateAccountStatus"]["AccountId"]


def session_in(server, account: str, role: str = "OrganizationAccountAccessRole",
               **keys) -> dict:
    issued = client(server, "sts", **keys).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/{role}",
        RoleSessionName="gdlab-class-test")["Credentials"]
    return {"aws_access_key_id": issued["AccessKeyId"],
            "aws_secret_access_key": issued["SecretAccessKey"],
            "aws_session_token": issued["SessionToken"]}


def refusal(call) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as info:
        call()
    error = info.value.response
    return (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"],
            error["Error"]["Message"])


def test_a_created_account_has_the_access_role_and_its_session_acts_there(local_server):
    member = new_account(local_server, "student1")
    assert member != MANAGEMENT
    keys = session_in(local_server, member)
    identity = client(local_server, "sts", **keys).get_caller_identity()
    assert identity["Account"] == member
    assert identity["Arn"] == (f"arn:aws:sts::{member}:assumed-role/"
                               "OrganizationAccountAccessRole/gdlab-class-test")
    iam = client(local_server, "iam", **keys)
    attached = iam.list_attached_role_policies(RoleName="OrganizationAccountAccessRole")
    assert [p["PolicyName"] for p in attached["AttachedPolicies"]] == ["AdministratorAccess"]
    trust = iam.get_role(RoleName="OrganizationAccountAccessRole")["Role"]
    principals = json.dumps(trust["AssumeRolePolicyDocument"])
    assert f"arn:aws:iam::{MANAGEMENT}:root" in principals
    # Administrator in the member, and only there: its VPC is not the management account's.
    vpc = client(local_server, "ec2", **keys).create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]
    assert vpc["OwnerId"] == member
    mine = client(local_server, "ec2").describe_vpcs()["Vpcs"]
    assert vpc["VpcId"] not in {v["VpcId"] for v in mine}


def test_the_role_name_given_at_create_account_is_the_one_made(local_server):
    member = new_account(local_server, "student2", RoleName="ClassroomAdmin")
    keys = session_in(local_server, member, role="ClassroomAdmin")
    assert client(local_server, "sts", **keys).get_caller_identity()["Account"] == member
    code, status, _ = refusal(lambda: session_in(local_server, member))
    assert (code, status) == ("AccessDenied", 403)


def test_assume_role_is_refused_for_a_missing_role_as_aws_refuses_it(local_server):
    member = new_account(local_server, "student3")
    arn = f"arn:aws:iam::{member}:role/NoSuchRole"
    code, status, message = refusal(lambda: session_in(local_server, member, role="NoSuchRole"))
    assert (code, status) == ("AccessDenied", 403)
    assert message == (f"User: arn:aws:iam::{MANAGEMENT}:root is not authorized to perform: "
                       f"sts:AssumeRole on resource: {arn}")


def test_assume_role_is_refused_when_the_trust_names_someone_else(local_server):
    member = new_account(local_server, "student4")
    keys = session_in(local_server, member)
    client(local_server, "iam", **keys).create_role(
        RoleName="OnlyItself", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "sts:AssumeRole",
                "Principal": {"AWS": f"arn:aws:iam::{member}:root"}}]}))
    code, _, message = refusal(lambda: session_in(local_server, member, role="OnlyItself"))
    assert code == "AccessDenied" and "sts:AssumeRole" in message
    # The member's own session is trusted by it.
    inner = session_in(local_server, member, role="OnlyItself", **keys)
    assert client(local_server, "sts", **inner).get_caller_identity()["Account"] == member


@pytest.mark.parametrize("statements, allowed", [
    ([{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": "111111111111"}}],
     True),
    ([{"Effect": "Allow", "Action": "sts:*", "Principal": "*"}], True),
    ([{"Effect": "Allow", "Action": ["s3:GetObject"], "Principal": {"AWS": "111111111111"}}],
     False),
    ([{"Effect": "Allow", "Action": "sts:AssumeRole",
       "Principal": {"Service": "lambda.amazonaws.com"}}], False),
    ([{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": "*"}},
      {"Effect": "Deny", "Action": "sts:AssumeRole",
       "Principal": {"AWS": "arn:aws:iam::111111111111:root"}}], False),
])
def test_a_trust_policy_names_the_caller_or_not(statements, allowed):
    document = json.dumps({"Version": "2012-10-17", "Statement": statements})
    assert trusts(document, "111111111111", {"arn:aws:iam::111111111111:user/u"}) is allowed
    assert trusts("{not json", "111111111111", set()) is False


def test_listing_accounts_outside_an_organization_is_refused_as_aws_refuses_it(local_server):
    org = client(local_server, "organizations")
    for call in (org.list_accounts, lambda: org.list_accounts_for_parent(ParentId="r-ab12")):
        code, status, message = refusal(call)
        assert (code, status) == ("AWSOrganizationsNotInUseException", 400)
        assert message == "Your account is not a member of an organization."
    new_account(local_server, "student5")
    assert len(org.list_accounts()["Accounts"]) == 2
