"""The local cloud authenticates every AWS request as AWS does: its own administrator key,
the sessions its STS issues and its IAM users' active keys sign; anything else is refused
with the error each service gives, as botocore parses it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from gdlab.local import auth
from gdlab.local.credentials import generate

ACCOUNT = "123456789012"
TRUST_ANYONE_IN_ACCOUNT = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": "sts:AssumeRole",
    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]})


def client(server, service, **keys):
    return boto3.client(service, region_name="us-east-1", endpoint_url=server.endpoint,
                        config=Config(retries={"mode": "standard", "max_attempts": 1}), **keys)


def refused(call) -> dict:
    with pytest.raises(ClientError) as info:
        call()
    return {"code": info.value.response["Error"]["Code"],
            "status": info.value.response["ResponseMetadata"]["HTTPStatusCode"],
            "message": info.value.response["Error"].get("Message", "")}


def role_session(server, role: str, statements: list) -> dict:
    """boto3 keys of a session of a new role whose identity policy is `statements`."""
    admin = server.credentials.boto3_kwargs()
    iam = client(server, "iam", **admin)
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=TRUST_ANYONE_IN_ACCOUNT)
    iam.put_role_policy(RoleName=role, PolicyName="p", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": statements}))
    issued = client(server, "sts", **admin).assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{role}", RoleSessionName="s1")["Credentials"]
    return {"aws_access_key_id": issued["AccessKeyId"],
            "aws_secret_access_key": issued["SecretAccessKey"],
            "aws_session_token": issued["SessionToken"]}


STRANGER = generate().boto3_kwargs()


@pytest.mark.parametrize("service, call, code, status", [
    ("sts", lambda c: c.get_caller_identity(), "InvalidClientTokenId", 403),
    ("ec2", lambda c: c.describe_vpcs(), "AuthFailure", 401),
    ("sns", lambda c: c.list_topics(), "InvalidClientTokenId", 403),
    ("iam", lambda c: c.list_roles(), "InvalidClientTokenId", 403),
    ("guardduty", lambda c: c.list_detectors(), "UnrecognizedClientException", 403),
    ("securityhub", lambda c: c.describe_hub(), "UnrecognizedClientException", 403),
    ("lambda", lambda c: c.list_functions(), "UnrecognizedClientException", 403),
    ("logs", lambda c: c.describe_log_groups(), "UnrecognizedClientException", 403),
    ("events", lambda c: c.list_rules(), "UnrecognizedClientException", 403),
    ("s3", lambda c: c.list_buckets(), "InvalidAccessKeyId", 403),
])
def test_an_unknown_key_is_refused_as_each_service_refuses_it(local_server, service, call,
                                                              code, status):
    answer = refused(lambda: call(client(local_server, service, **STRANGER)))
    assert (answer["code"], answer["status"]) == (code, status)


@pytest.mark.parametrize("service, call, code", [
    ("sts", lambda c: c.get_caller_identity(), "SignatureDoesNotMatch"),
    ("guardduty", lambda c: c.list_detectors(), "InvalidSignatureException"),
    ("s3", lambda c: c.list_buckets(), "SignatureDoesNotMatch"),
    ("ec2", lambda c: c.describe_vpcs(), "AuthFailure"),
])
def test_the_right_key_with_a_wrong_secret_is_refused(local_server, service, call, code):
    wrong = {"aws_access_key_id": local_server.credentials.access_key_id,
             "aws_secret_access_key": generate().secret_access_key}
    assert refused(lambda: call(client(local_server, service, **wrong)))["code"] == code


def test_the_administrator_key_signs_every_protocol(local_server):
    keys = local_server.credentials.boto3_kwargs()
    client(local_server, "s3", **keys).create_bucket(Bucket="signed-path-bucket")
    s3 = client(local_server, "s3", **keys)
    # Keys with characters that SigV4 encodes: S3 signs the path as sent.
    s3.put_object(Bucket="signed-path-bucket", Key="a b/c+d=é.txt", Body=b"x")
    assert s3.get_object(Bucket="signed-path-bucket", Key="a b/c+d=é.txt")["Body"].read() == b"x"
    gd = client(local_server, "guardduty", **keys)
    detector = gd.create_detector(Enable=True)["DetectorId"]
    assert gd.get_detector(DetectorId=detector)["Status"] == "ENABLED"
    assert client(local_server, "ec2", **keys).describe_regions()["Regions"]
    assert "Topics" in client(local_server, "sns", **keys).list_topics()
    me = client(local_server, "sts", **keys).get_caller_identity()
    assert (me["Arn"], me["UserId"], me["Account"]) == (
        f"arn:aws:iam::{ACCOUNT}:root", ACCOUNT, ACCOUNT)


def test_an_unsigned_request_is_refused(local_server):
    request = urllib.request.Request(
        local_server.endpoint + "/", method="POST",
        data=b"Action=GetCallerIdentity&Version=2011-06-15",
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 403
    assert b"<Code>MissingAuthenticationToken</Code>" in info.value.read()


def test_a_presigned_url_works_until_it_expires(local_server):
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=local_server.endpoint,
                      config=Config(signature_version="s3v4"),
                      **local_server.credentials.boto3_kwargs())
    s3.create_bucket(Bucket="presigned-bucket")
    s3.put_object(Bucket="presigned-bucket", Key="k", Body=b"shared")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "presigned-bucket",
                                                          "Key": "k"}, ExpiresIn=60)
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.read() == b"shared"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url.replace("presigned-bucket/k", "presigned-bucket/other"),
                               timeout=10)
    assert b"SignatureDoesNotMatch" in info.value.read()
    legacy = boto3.client("s3", region_name="us-east-1", endpoint_url=local_server.endpoint,
                          config=Config(signature_version="s3"),
                          **local_server.credentials.boto3_kwargs())
    v2 = legacy.generate_presigned_url("get_object", Params={"Bucket": "presigned-bucket",
                                                             "Key": "k"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(v2, timeout=10)
    assert info.value.code == 400 and b"<Code>InvalidRequest</Code>" in info.value.read()


def test_a_signature_from_long_ago_is_refused():
    environ = {"HTTP_AUTHORIZATION": (
        "AWS4-HMAC-SHA256 Credential=AKIAAAAAAAAAAAAAAAAA/20200101/us-east-1/sts/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64),
        "HTTP_X_AMZ_DATE": "20200101T000000Z", "REQUEST_METHOD": "POST"}
    with pytest.raises(auth.Refused) as info:
        auth.authenticate(environ, generate(), now=datetime(2020, 1, 1, tzinfo=UTC)
                          + timedelta(minutes=6))
    assert info.value.kind == "skew"
    status, _, body = auth.refusal(environ, info.value)
    assert status.startswith("403") and b"SignatureDoesNotMatch" in body


def test_sessions_of_its_sts_sign_with_their_token_only(local_server):
    admin = local_server.credentials.boto3_kwargs()
    iam = client(local_server, "iam", **admin)
    iam.create_role(RoleName="reader", AssumeRolePolicyDocument=TRUST_ANYONE_IN_ACCOUNT)
    issued = client(local_server, "sts", **admin).assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/reader", RoleSessionName="alice")["Credentials"]
    session = {"aws_access_key_id": issued["AccessKeyId"],
               "aws_secret_access_key": issued["SecretAccessKey"]}
    me = client(local_server, "sts", aws_session_token=issued["SessionToken"], **session)
    assert me.get_caller_identity()["Arn"] == \
        f"arn:aws:sts::{ACCOUNT}:assumed-role/reader/alice"
    without_token = client(local_server, "sts", **session)
    assert refused(without_token.get_caller_identity)["code"] == "InvalidClientTokenId"
    other_token = client(local_server, "guardduty", aws_session_token="x" + issued[
        "SessionToken"][1:], **session)
    assert refused(other_token.list_detectors)["code"] == "UnrecognizedClientException"


def test_a_role_session_may_do_what_its_role_allows_and_nothing_more(local_server):
    keys = role_session(local_server, "lister", [
        {"Effect": "Allow", "Action": ["guardduty:ListDetectors", "s3:ListAllMyBuckets",
                                       "ec2:Describe*"], "Resource": "*"},
        {"Effect": "Deny", "Action": "ec2:DescribeVpcs", "Resource": "*"}])
    assert client(local_server, "guardduty", **keys).list_detectors()["DetectorIds"] == []
    assert "Buckets" in client(local_server, "s3", **keys).list_buckets()
    ec2 = client(local_server, "ec2", **keys)
    assert ec2.describe_regions()["Regions"]
    denied = refused(ec2.describe_vpcs)
    assert denied["code"] == "UnauthorizedOperation"
    assert "with an explicit deny in an identity-based policy" in denied["message"]
    gd = refused(lambda: client(local_server, "guardduty", **keys).create_detector(Enable=True))
    assert (gd["code"], gd["status"]) == ("AccessDeniedException", 403)
    s3 = refused(lambda: client(local_server, "s3", **keys).create_bucket(Bucket="nope-bucket"))
    assert (s3["code"], s3["status"]) == ("AccessDenied", 403)


def test_an_iam_users_key_signs_while_it_is_active_and_its_policies_decide(local_server):
    iam = client(local_server, "iam", **local_server.credentials.boto3_kwargs())
    iam.create_user(UserName="dev")
    iam.create_group(GroupName="readers")
    iam.add_user_to_group(GroupName="readers", UserName="dev")
    iam.put_group_policy(GroupName="readers", PolicyName="list", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*", "Action": [
            "s3:ListAllMyBuckets", "guardduty:ListDetectors"]}]}))
    key = iam.create_access_key(UserName="dev")["AccessKey"]
    keys = {"aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"]}
    sts = client(local_server, "sts", **keys)
    assert sts.get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/dev"
    assert "Buckets" in client(local_server, "s3", **keys).list_buckets()
    gd = client(local_server, "guardduty", **keys)
    assert gd.list_detectors()["DetectorIds"] == []
    # The incident's responder for a stolen key: a deny-all attached to the user.
    deny_all = iam.create_policy(PolicyName="deny-all", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*",
                                                "Resource": "*"}]}))["Policy"]["Arn"]
    iam.attach_user_policy(UserName="dev", PolicyArn=deny_all)
    denied = refused(gd.list_detectors)
    assert denied["code"] == "AccessDeniedException"
    assert denied["message"].startswith(f"User: arn:aws:iam::{ACCOUNT}:user/dev is not "
                                        "authorized to perform: guardduty:ListDetectors")
    assert "explicit deny" in denied["message"]
    iam.update_access_key(UserName="dev", AccessKeyId=key["AccessKeyId"], Status="Inactive")
    assert refused(sts.get_caller_identity)["code"] == "InvalidClientTokenId"


def test_aws_source_ip_is_the_address_the_request_comes_from(local_server):
    """A policy condition on aws:SourceIp sees an instance's address when the instance
    simulation makes the call from it (trail.from_address), the peer's address otherwise."""
    from gdlab.local import trail

    keys = role_session(local_server, "from-here", [
        {"Effect": "Allow", "Action": "guardduty:ListDetectors", "Resource": "*"},
        {"Effect": "Deny", "Action": "*", "Resource": "*",
         "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}}])
    assert client(local_server, "guardduty", **keys).list_detectors()["DetectorIds"] == []
    remote = trail.from_address(client(local_server, "guardduty", **keys), "203.0.113.7")
    denied = refused(remote.list_detectors)
    assert denied["code"] == "AccessDeniedException" and "explicit deny" in denied["message"]
