"""The local trail: one CloudTrail-shaped management event per authenticated request, with
the caller's userIdentity (Root, IAMUser, AssumedRole with its session issuer and IMDS
delivery), errors as CloudTrail writes them, a source address only the local cloud's own
process can set, and the /_gdlab/trail route."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from test_imds import lab, session_client, stolen  # noqa: F401 - the fixture

from gdlab.local import api, trail

ACCOUNT = "123456789012"


@pytest.fixture(autouse=True)
def _empty_trail():
    trail.clear()


def route(server, **query) -> list[dict]:
    return api.fetch(server.endpoint, "trail", credentials=server.credentials,
                     **query)["Records"]


def test_an_administrator_call_is_a_root_event(local_server, local_client):
    trail.clear()
    local_client("sts").get_caller_identity()
    (event,) = route(local_server, event_name="GetCallerIdentity")
    keys = local_server.credentials
    assert event["userIdentity"] == {
        "type": "Root", "principalId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:root",
        "accountId": ACCOUNT, "accessKeyId": keys.access_key_id}
    assert (event["eventSource"], event["eventName"], event["awsRegion"]) == (
        "sts.amazonaws.com", "GetCallerIdentity", "us-east-1")
    assert event["sourceIPAddress"] == "127.0.0.1"
    assert event["userAgent"].startswith("Boto3/") and "Botocore/" in event["userAgent"]
    assert (event["eventType"], event["managementEvent"], event["eventCategory"]) == (
        "AwsApiCall", True, "Management")
    assert event["recipientAccountId"] == ACCOUNT and "errorCode" not in event
    assert event["eventTime"].endswith("Z") and len(event["eventTime"]) == 20
    assert event["eventID"] != event["requestID"]


def test_instance_credentials_are_an_assumed_role_with_its_delivery(lab, local_server):  # noqa: F811
    w = lab()
    credentials = stolen(w.compromised)
    ec2 = session_client(local_server, "ec2", credentials)
    with pytest.raises(ClientError) as refused:  # the role "ssm" has no policy
        ec2.describe_instances()
    assert refused.value.response["Error"]["Code"] == "UnauthorizedOperation"
    (event,) = route(local_server, access_key_id=credentials["AccessKeyId"])
    identity = event["userIdentity"]
    role = w.client("iam").get_role(RoleName="ssm")["Role"]
    assert identity["type"] == "AssumedRole"
    assert identity["principalId"] == f"{role['RoleId']}:{w.compromised}"
    assert identity["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/ssm/{w.compromised}"
    assert identity["sessionContext"]["sessionIssuer"] == {
        "type": "Role", "principalId": role["RoleId"], "arn": role["Arn"],
        "accountId": ACCOUNT, "userName": "ssm"}
    assert identity["sessionContext"]["ec2RoleDelivery"] == "2.0"
    assert identity["sessionContext"]["attributes"]["mfaAuthenticated"] == "false"
    assert (event["eventSource"], event["eventName"]) == ("ec2.amazonaws.com",
                                                          "DescribeInstances")
    # CloudTrail prefixes EC2's error codes with Client.
    assert event["errorCode"] == "Client.UnauthorizedOperation"
    assert "not authorized" in event["errorMessage"]


def test_an_iam_user_key_is_an_iam_user_event(local_server, local_client):
    trail.clear()
    iam = local_client("iam")
    user = iam.create_user(UserName="analyst")["User"]
    key = iam.create_access_key(UserName="analyst")["AccessKey"]
    client = boto3.client("sts", region_name="us-east-1", endpoint_url=local_server.endpoint,
                          aws_access_key_id=key["AccessKeyId"],
                          aws_secret_access_key=key["SecretAccessKey"],
                          config=Config(retries={"mode": "standard", "max_attempts": 1}))
    client.get_caller_identity()
    (event,) = route(local_server, access_key_id=key["AccessKeyId"])
    assert event["userIdentity"] == {
        "type": "IAMUser", "principalId": user["UserId"], "arn": user["Arn"],
        "accountId": ACCOUNT, "accessKeyId": key["AccessKeyId"], "userName": "analyst"}


def test_only_the_local_cloud_process_can_set_the_source(lab, local_server):  # noqa: F811
    w = lab()
    credentials = stolen(w.compromised)
    sts = session_client(local_server, "sts", credentials, source=w.eip)
    sts.get_caller_identity()
    seen: dict = {}
    sts.meta.events.register("before-send", lambda request, **_: seen.update(
        request.headers), unique_id="copy")
    sts.get_caller_identity()
    # A client that claims the address with no proof, a made-up proof, or the proof of
    # another request is recorded from where it connects.
    copied = seen[trail.PROOF_HEADER]
    copied = copied.decode() if isinstance(copied, bytes) else copied
    for proof in (None, "0" * 64, copied):
        forger = session_client(local_server, "sts", credentials)

        def claim(request, proof=proof, **_):
            request.headers[trail.SOURCE_HEADER] = w.eip
            if proof is not None:
                request.headers[trail.PROOF_HEADER] = proof

        forger.meta.events.register("before-send", claim)
        forger.get_caller_identity()
    events = route(local_server, access_key_id=credentials["AccessKeyId"])
    assert [e["sourceIPAddress"] for e in events] == [w.eip, w.eip] + ["127.0.0.1"] * 3
    with pytest.raises(ValueError):
        trail.from_address(sts, "not-an-address")


def test_the_source_headers_do_not_reach_moto(local_server, local_client):
    trail.clear()
    environ = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_GDLAB_SOURCE_IP": "3.210.1.1",
               "HTTP_X_GDLAB_SOURCE_PROOF": "0" * 64}
    assert trail.resolve_source(environ) == "127.0.0.1"
    assert "HTTP_X_GDLAB_SOURCE_IP" not in environ and "HTTP_X_GDLAB_SOURCE_PROOF" not in environ
    # a valid proof is honoured only from a loopback peer
    signed = {"HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=AKIA/20260101/us-east-1/sts/"
                                    "aws4_request, SignedHeaders=host, Signature=" + "a" * 64}
    good = trail.proof("3.210.1.1", "a" * 64)

    def claim(peer: str, value: str) -> str:
        return trail.resolve_source({**signed, "REMOTE_ADDR": peer,
                                     "HTTP_X_GDLAB_SOURCE_IP": "3.210.1.1",
                                     "HTTP_X_GDLAB_SOURCE_PROOF": value})

    assert claim("192.0.2.7", good) == "192.0.2.7"
    assert claim("127.0.0.1", good) == "3.210.1.1"
    assert claim("127.0.0.1", good) == "127.0.0.1"  # each proof is honoured once
    assert claim("127.0.0.1", trail.proof("3.210.1.1", "b" * 64)) == "127.0.0.1"


def test_s3_requests_are_recorded_once(local_server, local_client):
    trail.clear()
    s3 = local_client("s3")
    s3.create_bucket(Bucket="gdlab-trail-test")
    with pytest.raises(ClientError):
        s3.head_bucket(Bucket="gdlab-no-such-bucket")
    events = route(local_server)
    assert [e["eventSource"] for e in events] == ["s3.amazonaws.com"] * 2
    assert events[0]["eventName"] == "CreateBucket" and "errorCode" not in events[0]
    assert events[1]["errorCode"]


def test_the_trail_keeps_the_last_records(local_server, local_client):
    trail.clear()
    environ = {"REMOTE_ADDR": "127.0.0.1"}
    caller = trail.auth.Caller("AKIAEXAMPLE", f"arn:aws:iam::{ACCOUNT}:root", ACCOUNT)
    for number in range(trail.MAX_KEPT + 5):
        trail.record(dict(environ), caller, "sts", f"Call{number}")
    kept = trail.records()
    assert len(kept) == trail.MAX_KEPT
    assert kept[0]["eventName"] == "Call5" and kept[-1]["eventName"] == \
        f"Call{trail.MAX_KEPT + 4}"


def test_the_route_is_the_administrators_only(local_server):
    with pytest.raises(api.LocalApiError, match="sign /_gdlab/ requests"):
        api.fetch(local_server.endpoint, "trail")


def test_the_error_code_is_the_one_the_client_reads(local_server, local_client):
    gd = local_client("guardduty")
    with pytest.raises(ClientError) as refused:
        gd.get_detector(DetectorId="0" * 32)
    (event,) = route(local_server, event_name="GetDetector")
    assert event["eventSource"] == "guardduty.amazonaws.com"
    assert event["errorCode"] == refused.value.response["Error"]["Code"]
    assert event["errorMessage"] == refused.value.response["Error"]["Message"]


def test_s3_requests_carry_cloudtrails_event_names(local_server, local_client):
    s3 = local_client("s3")
    s3.create_bucket(Bucket="gdlab-trail-names")
    trail.clear()
    s3.put_object(Bucket="gdlab-trail-names", Key="k", Body=b"x")
    s3.get_object(Bucket="gdlab-trail-names", Key="k")
    s3.list_objects_v2(Bucket="gdlab-trail-names")
    s3.list_buckets()
    off = {"BlockPublicAcls": False, "IgnorePublicAcls": False, "BlockPublicPolicy": False,
           "RestrictPublicBuckets": False}
    s3.put_public_access_block(Bucket="gdlab-trail-names",
                               PublicAccessBlockConfiguration=off)
    s3.get_public_access_block(Bucket="gdlab-trail-names")
    s3.delete_public_access_block(Bucket="gdlab-trail-names")
    s3.put_bucket_logging(Bucket="gdlab-trail-names", BucketLoggingStatus={})
    s3.get_bucket_logging(Bucket="gdlab-trail-names")
    s3.put_bucket_policy(Bucket="gdlab-trail-names", Policy=json.dumps(
        {"Version": "2012-10-17", "Statement": []}))
    events = route(local_server)
    assert [(e["eventName"], e["managementEvent"], e["eventCategory"]) for e in events] == [
        ("PutObject", False, "Data"), ("GetObject", False, "Data"),
        ("ListObjects", False, "Data"), ("ListBuckets", True, "Management"),
        ("PutBucketPublicAccessBlock", True, "Management"),
        ("GetBucketPublicAccessBlock", True, "Management"),
        ("DeleteBucketPublicAccessBlock", True, "Management"),
        ("PutBucketLogging", True, "Management"), ("GetBucketLogging", True, "Management"),
        ("PutBucketPolicy", True, "Management")]
    assert {e["eventSource"] for e in events} == {"s3.amazonaws.com"}
    by_name = {e["eventName"]: e for e in events}
    assert by_name["GetObject"]["requestParameters"]["key"] == "k"
    assert by_name["GetObject"]["resources"][0] == {
        "type": "AWS::S3::Object", "ARN": "arn:aws:s3:::gdlab-trail-names/k"}
    assert by_name["ListObjects"]["requestParameters"]["list-type"] == "2"  # a V2 listing
    put = by_name["PutBucketPublicAccessBlock"]["requestParameters"]
    assert put["bucketName"] == "gdlab-trail-names"
    assert {k: v for k, v in put["PublicAccessBlockConfiguration"].items()
            if k != "xmlns"} == off
    logging_status = by_name["PutBucketLogging"]["requestParameters"]["BucketLoggingStatus"]
    assert "LoggingEnabled" not in logging_status
    assert by_name["ListBuckets"]["requestParameters"].get("bucketName") is None
