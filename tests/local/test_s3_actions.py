"""S3 requests are authorized against the IAM action AWS checks for them (Service
Authorization Reference, Amazon S3; the Permissions of each S3 API operation): a Delete of
most bucket configurations needs their Put action, Get/PutPublicAccessBlock need
s3:Get/PutBucketPublicAccessBlock, not the CreateBucket/DeleteBucket/ListBucket moto falls
back to."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from gdlab.local.s3_actions import bucket_action

ACCOUNT = "123456789012"
BUCKET = "gdlab-pab-bucket"
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": "sts:AssumeRole",
    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]})
OPEN = {"BlockPublicAcls": False, "IgnorePublicAcls": False, "BlockPublicPolicy": False,
        "RestrictPublicBuckets": False}


@pytest.mark.parametrize(("method", "subresource", "action"), [
    ("GET", "publicAccessBlock", "GetBucketPublicAccessBlock"),
    ("PUT", "publicAccessBlock", "PutBucketPublicAccessBlock"),
    ("DELETE", "publicAccessBlock", "PutBucketPublicAccessBlock"),
    ("GET", "logging", "GetBucketLogging"), ("PUT", "logging", "PutBucketLogging"),
    ("GET", "tagging", "GetBucketTagging"), ("PUT", "tagging", "PutBucketTagging"),
    ("DELETE", "tagging", "PutBucketTagging"),
    ("GET", "policy", "GetBucketPolicy"), ("PUT", "policy", "PutBucketPolicy"),
    ("DELETE", "policy", "DeleteBucketPolicy"),
    ("GET", "encryption", "GetEncryptionConfiguration"),
    ("PUT", "encryption", "PutEncryptionConfiguration"),
    ("DELETE", "encryption", "PutEncryptionConfiguration"),
    ("DELETE", "ownershipControls", "PutBucketOwnershipControls"),
    ("GET", "replication", "GetReplicationConfiguration"),
    ("DELETE", "lifecycle", "PutLifecycleConfiguration"),
    ("PUT", "cors", "PutBucketCORS"), ("GET", "acl", "GetBucketAcl"),
    ("HEAD", None, "ListBucket"),
])
def test_a_bucket_subresource_call_is_authorized_as_iam_names_it(method, subresource, action):
    assert bucket_action(method, {subresource: [""]} if subresource else {}) == action


@pytest.mark.parametrize(("method", "query"), [
    ("GET", {}), ("GET", {"list-type": ["2"]}), ("GET", {"versions": [""]}),
    ("GET", {"uploads": [""]}), ("PUT", {}), ("DELETE", {}), ("POST", {"delete": [""]}),
])
def test_listings_and_bucket_calls_without_a_subresource_keep_motos_action(method, query):
    assert bucket_action(method, query) is None


def client(server, service, **keys):
    return boto3.client(service, region_name="us-east-1", endpoint_url=server.endpoint,
                        config=Config(retries={"mode": "standard", "max_attempts": 1}), **keys)


def role_s3(server, role: str, actions: list[str]):
    """An S3 client of a session of a new role allowed only `actions` on BUCKET."""
    admin = server.credentials.boto3_kwargs()
    iam = client(server, "iam", **admin)
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=TRUST)
    iam.put_role_policy(RoleName=role, PolicyName="p", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": actions, "Resource": f"arn:aws:s3:::{BUCKET}"}]}))
    issued = client(server, "sts", **admin).assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{role}", RoleSessionName="s1")["Credentials"]
    return client(server, "s3", aws_access_key_id=issued["AccessKeyId"],
                  aws_secret_access_key=issued["SecretAccessKey"],
                  aws_session_token=issued["SessionToken"])


def denied(role: str, action: str, call) -> None:
    """The call is refused as S3 refuses it, naming `action`."""
    with pytest.raises(ClientError) as info:
        call()
    error = info.value.response["Error"]
    assert (error["Code"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (
        "AccessDenied", 403)
    assert error["Message"].startswith(
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{role}/s1 is not authorized to perform: "
        f"{action} on resource: ")
    assert error["Message"].endswith(
        f" because no identity-based policy allows the {action} action")


@pytest.fixture
def admin_s3(local_server):
    s3 = client(local_server, "s3", **local_server.credentials.boto3_kwargs())
    s3.create_bucket(Bucket=BUCKET)
    return s3


def test_put_bucket_public_access_block_allows_put_and_delete_and_nothing_else(
        local_server, admin_s3):
    s3 = role_s3(local_server, "pab-writer", ["s3:PutBucketPublicAccessBlock"])
    s3.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration=OPEN)
    assert admin_s3.get_public_access_block(Bucket=BUCKET)[
        "PublicAccessBlockConfiguration"] == OPEN
    s3.delete_public_access_block(Bucket=BUCKET)
    with pytest.raises(ClientError) as info:
        admin_s3.get_public_access_block(Bucket=BUCKET)
    assert info.value.response["Error"]["Code"] == "NoSuchPublicAccessBlockConfiguration"
    role = "pab-writer"
    denied(role, "s3:GetBucketPublicAccessBlock",
           lambda: s3.get_public_access_block(Bucket=BUCKET))
    denied(role, "s3:PutBucketLogging",
           lambda: s3.put_bucket_logging(Bucket=BUCKET, BucketLoggingStatus={}))
    denied(role, "s3:GetBucketLogging", lambda: s3.get_bucket_logging(Bucket=BUCKET))
    denied(role, "s3:ListBucket", lambda: s3.list_objects_v2(Bucket=BUCKET))
    denied(role, "s3:DeleteBucket", lambda: s3.delete_bucket(Bucket=BUCKET))


def test_get_bucket_public_access_block_allows_get_only(local_server, admin_s3):
    admin_s3.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration=OPEN)
    s3 = role_s3(local_server, "pab-reader", ["s3:GetBucketPublicAccessBlock"])
    assert s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"] == OPEN
    denied("pab-reader", "s3:PutBucketPublicAccessBlock",
           lambda: s3.put_public_access_block(Bucket=BUCKET,
                                              PublicAccessBlockConfiguration=OPEN))
    denied("pab-reader", "s3:PutBucketPublicAccessBlock",
           lambda: s3.delete_public_access_block(Bucket=BUCKET))
    assert admin_s3.get_public_access_block(Bucket=BUCKET)[
        "PublicAccessBlockConfiguration"] == OPEN


def test_bucket_create_delete_and_list_do_not_reach_the_public_access_block(
        local_server, admin_s3):
    """The actions moto fell back to for these calls grant none of them."""
    admin_s3.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration=OPEN)
    role = "bucket-keeper"
    s3 = role_s3(local_server, role, ["s3:CreateBucket", "s3:DeleteBucket", "s3:ListBucket"])
    assert s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0
    s3.head_bucket(Bucket=BUCKET)  # HeadBucket is authorized as s3:ListBucket
    denied(role, "s3:PutBucketPublicAccessBlock",
           lambda: s3.put_public_access_block(Bucket=BUCKET,
                                              PublicAccessBlockConfiguration=OPEN))
    denied(role, "s3:PutBucketPublicAccessBlock",
           lambda: s3.delete_public_access_block(Bucket=BUCKET))
    denied(role, "s3:GetBucketPublicAccessBlock",
           lambda: s3.get_public_access_block(Bucket=BUCKET))
    denied(role, "s3:PutEncryptionConfiguration",
           lambda: s3.delete_bucket_encryption(Bucket=BUCKET))


def test_bucket_logging_is_authorized_by_its_own_actions(local_server, admin_s3):
    writer = role_s3(local_server, "log-writer", ["s3:PutBucketLogging"])
    writer.put_bucket_logging(Bucket=BUCKET, BucketLoggingStatus={})
    denied("log-writer", "s3:GetBucketLogging",
           lambda: writer.get_bucket_logging(Bucket=BUCKET))
    reader = role_s3(local_server, "log-reader", ["s3:GetBucketLogging"])
    assert "LoggingEnabled" not in reader.get_bucket_logging(Bucket=BUCKET)
    denied("log-reader", "s3:PutBucketLogging",
           lambda: reader.put_bucket_logging(Bucket=BUCKET, BucketLoggingStatus={}))
