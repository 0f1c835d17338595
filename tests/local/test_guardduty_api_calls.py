"""GuardDuty's analysis of IAM users' API calls and of S3 buckets' protections: a user's key
called from a listed address raises UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom or,
for S3 reads, Discovery:S3/MaliciousIPCaller.Custom (data events only with S3 Protection
on); turning a bucket's Block Public Access or server access logging off raises
Policy:S3/BucketBlockPublicAccessDisabled or Stealth:S3/ServerAccessLoggingDisabled whoever
calls. Every answer is held to botocore's GetFindings shape on the wire."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from wire_shapes import assert_wire_shape, capture_raw

from gdlab.local import trail
from gdlab.local.guardduty import api_call_analysis as calls

ACCOUNT = "123456789012"
LISTED = "3.210.7.7"
UNLISTED = "3.210.8.8"
BUCKET = "gdlab-test-data"
OFF = {"BlockPublicAcls": False, "IgnorePublicAcls": False, "BlockPublicPolicy": False,
       "RestrictPublicBuckets": False}


class World:
    """A detector with an ACTIVE threat list holding LISTED, a data bucket, and an IAM user
    allowed everything."""

    def __init__(self, server, client):
        self.server, self.client = server, client
        s3 = client("s3")
        s3.create_bucket(Bucket="gdlab-test-lists")
        s3.put_object(Bucket="gdlab-test-lists", Key="threats.txt", Body=f"{LISTED}\n")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_tagging(Bucket=BUCKET, Tagging={"TagSet": [
            {"Key": "gdlab:lab", "Value": "gd-test"}]})
        self.gd = client("guardduty")
        self.detector = self.gd.create_detector(Enable=True)["DetectorId"]
        self.gd.create_threat_intel_set(DetectorId=self.detector, Name="Example-Threat-List",
                                        Format="TXT", Activate=True,
                                        Location="s3://gdlab-test-lists/threats.txt")
        iam = client("iam")
        self.user = iam.create_user(UserName="analyst")["User"]
        iam.put_user_policy(UserName="analyst", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        self.key = iam.create_access_key(UserName="analyst")["AccessKey"]

    def user_client(self, service: str, source: str | None = LISTED):
        client = boto3.client(service, region_name="us-east-1",
                              endpoint_url=self.server.endpoint,
                              aws_access_key_id=self.key["AccessKeyId"],
                              aws_secret_access_key=self.key["SecretAccessKey"],
                              config=Config(retries={"mode": "standard", "max_attempts": 1}))
        return trail.from_address(client, source) if source else client

    def trust(self, address: str) -> None:
        self.client("s3").put_object(Bucket="gdlab-test-lists", Key="trusted.txt",
                                     Body=f"{address}\n")
        self.gd.create_ip_set(DetectorId=self.detector, Name="trusted", Format="TXT",
                              Activate=True, Location="s3://gdlab-test-lists/trusted.txt")

    def findings(self, finding_type: str | None = None) -> list[dict]:
        """The detector's findings (of one type), each raw answer held to botocore's shape."""
        assert trail.drain(10)
        raw = capture_raw(self.gd)
        ids = self.gd.list_findings(DetectorId=self.detector)["FindingIds"]
        found = self.gd.get_findings(DetectorId=self.detector,
                                     FindingIds=ids)["Findings"] if ids else []
        for operation, status, body in raw:
            assert status == 200
            assert_wire_shape("guardduty", operation, body)
        return [f for f in found if finding_type in (None, f["Type"])]


@pytest.fixture
def world(local_server, local_client, monkeypatch):
    monkeypatch.setenv("GDLAB_LOCAL_ACTIVATION_SECONDS", "0")
    w = World(local_server, local_client)
    trail.clear()
    return w


def test_a_users_call_from_a_listed_address_is_a_malicious_ip_caller(world):
    world.user_client("sts").get_caller_identity()
    (finding,) = world.findings()
    assert (finding["Type"], finding["Severity"]) == (calls.IAM_CUSTOM, 5.0)
    assert finding["Title"] == \
        "API GetCallerIdentity was invoked from an IP address on a custom threat list."
    assert finding["Resource"] == {"ResourceType": "AccessKey", "AccessKeyDetails": {
        "AccessKeyId": world.key["AccessKeyId"], "PrincipalId": world.user["UserId"],
        "UserName": "analyst", "UserType": "IAMUser"}}
    service = finding["Service"]
    call = service["Action"]["AwsApiCallAction"]
    assert service["Action"]["ActionType"] == "AWS_API_CALL"
    assert (call["Api"], call["ServiceName"], call["CallerType"]) == (
        "GetCallerIdentity", "sts.amazonaws.com", "Remote IP")
    assert call["RemoteIpDetails"]["IpAddressV4"] == LISTED and "ErrorCode" not in call
    assert service["Evidence"]["ThreatIntelligenceDetails"] == [
        {"ThreatListName": "Example-Threat-List", "ThreatNames": []}]
    assert json.loads(service["AdditionalInfo"]["Value"]) == {
        "threatListName": "Example-Threat-List"}
    assert (service["ResourceRole"], service["Count"], service["Archived"]) == (
        "TARGET", 1, False)


def test_s3_reads_from_a_listed_address_are_discovery(world):
    s3 = world.user_client("s3")
    s3.list_objects_v2(Bucket=BUCKET)
    s3.list_buckets()
    found = {f["Service"]["Action"]["AwsApiCallAction"]["Api"]: f
             for f in world.findings(calls.S3_DISCOVERY)}
    assert set(found) == {"ListObjects", "ListBuckets"}
    assert world.findings(calls.IAM_CUSTOM) == []  # S3 calls raise S3's own types
    listing = found["ListObjects"]
    assert listing["Severity"] == 8.0
    resource = listing["Resource"]
    assert resource["ResourceType"] == "S3Bucket"  # a data event
    assert resource["AccessKeyDetails"]["UserName"] == "analyst"
    (bucket,) = resource["S3BucketDetails"]
    assert (bucket["Name"], bucket["Arn"], bucket["Type"]) == (
        BUCKET, f"arn:aws:s3:::{BUCKET}", "Destination")
    assert bucket["Tags"] == [{"Key": "gdlab:lab", "Value": "gd-test"}]
    assert bucket["PublicAccess"]["EffectivePermission"] == "NOT_PUBLIC"
    assert bucket["DefaultServerSideEncryption"]["EncryptionType"] == "AES256"
    # ListBuckets is a management event: the access key is the resource.
    assert found["ListBuckets"]["Resource"]["ResourceType"] == "AccessKey"
    assert "S3BucketDetails" not in found["ListBuckets"]["Resource"]


def test_without_s3_protection_only_management_events_are_read(world):
    world.gd.update_detector(DetectorId=world.detector, Features=[
        {"Name": "S3_DATA_EVENTS", "Status": "DISABLED"}])
    s3 = world.user_client("s3")
    s3.list_objects_v2(Bucket=BUCKET)
    s3.list_buckets()
    assert [f["Service"]["Action"]["AwsApiCallAction"]["Api"]
            for f in world.findings()] == ["ListBuckets"]


def test_no_finding_from_unlisted_or_trusted_addresses_or_for_the_administrator(world):
    world.user_client("sts", UNLISTED).get_caller_identity()
    world.user_client("sts", source=None).get_caller_identity()  # 127.0.0.1
    trail.from_address(world.client("sts"), LISTED).get_caller_identity()  # Root
    assert world.findings() == []
    world.trust(LISTED)
    world.user_client("sts").get_caller_identity()
    world.user_client("s3").list_buckets()
    assert world.findings() == []


def test_repeats_count_on_one_finding_and_refusals_carry_the_error(world):
    sts = world.user_client("sts")
    sts.get_caller_identity()
    sts.get_caller_identity()
    (finding,) = world.findings()
    assert finding["Service"]["Count"] == 2
    s3 = world.user_client("s3")
    for _ in range(2):
        with pytest.raises(ClientError):
            s3.list_objects_v2(Bucket="gdlab-no-such-bucket")
    (refused,) = world.findings(calls.S3_DISCOVERY)
    assert refused["Service"]["Count"] == 2
    assert refused["Service"]["Action"]["AwsApiCallAction"]["ErrorCode"] == "NoSuchBucket"
    assert refused["Resource"]["ResourceType"] == "AccessKey"  # no bucket to describe


def test_turning_block_public_access_off_is_a_policy_finding_whoever_calls(world):
    s3 = world.client("s3")  # the administrator, from 127.0.0.1
    s3.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration={
        **OFF, "BlockPublicAcls": True})  # still partly on
    assert world.findings() == []
    s3.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration=OFF)
    (finding,) = world.findings(calls.BPA_DISABLED)
    assert finding["Severity"] == 2.0
    assert finding["Title"] == \
        f"Amazon S3 Block Public Access was disabled for S3 bucket {BUCKET}."
    resource = finding["Resource"]
    assert resource["ResourceType"] == "S3Bucket"
    assert resource["AccessKeyDetails"]["UserType"] == "Root"
    (bucket,) = resource["S3BucketDetails"]
    block = bucket["PublicAccess"]["PermissionConfiguration"]["BucketLevelPermissions"][
        "BlockPublicAccess"]
    assert block == OFF
    call = finding["Service"]["Action"]["AwsApiCallAction"]
    assert (call["Api"], call["ServiceName"]) == ("PutBucketPublicAccessBlock",
                                                  "s3.amazonaws.com")
    assert "Evidence" not in finding["Service"]
    # The user deleting it from anywhere raises it again: a finding of its own principal.
    world.user_client("s3", UNLISTED).delete_public_access_block(Bucket=BUCKET)
    by_user = [f for f in world.findings(calls.BPA_DISABLED)
               if f["Resource"]["AccessKeyDetails"]["UserType"] == "IAMUser"]
    assert [f["Service"]["Action"]["AwsApiCallAction"]["Api"] for f in by_user] == [
        "DeleteBucketPublicAccessBlock"]


def test_turning_server_access_logging_off_is_a_stealth_finding(world):
    s3 = world.client("s3")
    s3.put_bucket_logging(Bucket=BUCKET, BucketLoggingStatus={})
    (finding,) = world.findings(calls.LOGGING_DISABLED)
    assert (finding["Severity"], finding["Resource"]["ResourceType"]) == (2.0, "S3Bucket")
    assert finding["Resource"]["S3BucketDetails"][0]["Name"] == BUCKET
    assert finding["Service"]["Action"]["AwsApiCallAction"]["Api"] == "PutBucketLogging"


def test_a_failed_call_raises_no_policy_or_stealth_finding(world):
    s3 = world.client("s3")
    for call in (lambda: s3.delete_public_access_block(Bucket="gdlab-no-such-bucket"),
                 lambda: s3.put_bucket_logging(Bucket="gdlab-no-such-bucket",
                                               BucketLoggingStatus={})):
        with pytest.raises(ClientError):
            call()
    assert world.findings() == []


def test_sample_findings_of_the_api_call_types(world):
    types = [calls.IAM_CUSTOM, calls.S3_DISCOVERY, calls.BPA_DISABLED,
             calls.LOGGING_DISABLED]
    world.gd.create_sample_findings(DetectorId=world.detector, FindingTypes=types)
    found = {f["Type"]: f for f in world.findings()}
    assert set(found) == set(types)
    for finding_type, finding in found.items():
        assert finding["Title"].startswith("[SAMPLE] ")
        assert json.loads(finding["Service"]["AdditionalInfo"]["Value"]) == {"sample": True}
        assert finding["Severity"] == calls.SEVERITY[finding_type]
        assert finding["Service"]["Action"]["ActionType"] == "AWS_API_CALL"
        assert ("Evidence" in finding["Service"]) == finding_type.endswith(".Custom")
        assert finding["Resource"]["ResourceType"] == (
            "S3Bucket" if "S3/" in finding_type else "AccessKey")
