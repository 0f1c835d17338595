"""The compromised-s3-bucket scenario end to end through the CLI against a real local cloud
(the run passes, teardown leaves nothing, verify fails protections turned off again), and its
responder against moto (lab buckets only, once; a policy on the one bucket)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from lab.conftest import every_finding_answered, inventory
from parliament import analyze_policy_string

from gdlab.lab.responder_policies import restore_bucket_policy

SCENARIO = "compromised-s3-bucket"
CHECKS = ["rule-matches", "guardduty-finding", "securityhub-finding", "responder-ran",
          "public-access-blocked", "access-logging-on", "emails-sent"]
HANDLER = Path(__file__).resolve().parents[2] / "scenarios" / SCENARIO / "responder" / "handler.py"
REGION = "us-east-1"


def statuses(verify: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in verify["checks"]}


@pytest.mark.slow
def test_run_passes_every_check_and_leaves_nothing(gdlab, cloud):
    code, out, err = gdlab("run", "--scenario", SCENARIO, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert list(statuses(report["verify"])) == CHECKS
    assert set(statuses(report["verify"]).values()) == {"pass"}, report["verify"]
    hops = {h["key"]: h["seen"] for h in report["watch"]["hops"]}
    assert hops["bucket-restored"] is True and all(hops.values())
    assert inventory(cloud) == {}


@pytest.mark.slow
def test_verify_fails_protections_turned_off_again(gdlab, cloud):
    code, out, err = gdlab("setup", "--scenario", SCENARIO, "--json")
    assert code == 0, err
    state = json.loads(out)
    for args in (("trigger",), ("watch",)):
        code, _out, err = gdlab(*args)
        assert code == 0, err
    data = next(r["id"] for r in state["resources"] if r["key"] == "data-bucket")
    rule = next(r["id"] for r in state["resources"] if r["key"] == "rule")
    function = next(r["id"] for r in state["resources"] if r["key"] == "function")
    # With the rule on, turning them off again raises new findings and the responder answers
    # them at once: the automation works. Off, nothing repairs the bucket. Watch returns once
    # the bucket is restored, which one finding's run can do: the other finding's run is
    # asynchronous (as on AWS) and would repair the bucket again, so wait for it first.
    cloud.client("events").disable_rule(Name=rule)
    every_finding_answered(cloud, function, at_least=2)
    s3 = cloud.client("s3")
    s3.delete_public_access_block(Bucket=data)
    s3.put_bucket_logging(Bucket=data, BucketLoggingStatus={})
    code, out, err = gdlab("verify", "--json")
    assert code == 1, err
    found = statuses(json.loads(out))
    assert found["public-access-blocked"] == found["access-logging-on"] == "fail"
    code, _out, err = gdlab("teardown")
    assert code == 0, err
    assert inventory(cloud, state["lab"]) == {}


def load_handler() -> Any:
    spec = importlib.util.spec_from_file_location("gdlab_bucket_responder", HANDLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def event(bucket: str, kind: str = "Policy:S3/BucketBlockPublicAccessDisabled") -> dict:
    return {"source": "aws.guardduty", "detail-type": "GuardDuty Finding", "account":
            "123456789012", "region": REGION, "detail": {
                "id": "7ec4e3f4b3e1b2a9c8d7e6f5a4b3c2d1", "type": kind, "severity": 2,
                "resource": {"resourceType": "S3Bucket", "s3BucketDetails": [{"name": bucket}],
                             "accessKeyDetails": {"userName": "u", "accessKeyId": "AKIA"}},
                "service": {"action": {"awsApiCallAction": {
                    "api": "DeleteBucketPublicAccessBlock"}}, "additionalInfo": {}}}}


def test_the_responder_restores_a_lab_bucket_once_and_leaves_others(aws_client, monkeypatch):
    s3, sns = aws_client("s3"), aws_client("sns")
    for name, tags in (("gdlab-lab-data", [{"Key": "gdlab:lab", "Value": "gd-1"}]),
                       ("gdlab-lab-logs", []), ("someone-elses-bucket", [])):
        s3.create_bucket(Bucket=name)
        if tags:
            s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tags})
    s3.put_bucket_policy(Bucket="gdlab-lab-logs", Policy=json.dumps({"Statement": [{
        "Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"},
        "Action": ["s3:PutObject"], "Resource": "arn:aws:s3:::gdlab-lab-logs/access-logs/*"}]}))
    topic = sns.create_topic(Name="t")["TopicArn"]
    for key, value in {"LAB_TAG_KEY": "gdlab:lab", "LAB_TAG_VALUE": "gd-1", "TOPIC_ARN": topic,
                       "LOG_BUCKET": "gdlab-lab-logs", "LOG_PREFIX": "access-logs/"}.items():
        monkeypatch.setenv(key, value)
    handler = load_handler()
    handler._clients.update(s3=boto3.client("s3", region_name=REGION),
                            sns=boto3.client("sns", region_name=REGION))

    done = handler.lambda_handler(event("gdlab-lab-data"), None)
    assert done["action"] == "restored" and len(done["restored"]) == 2
    block = s3.get_public_access_block(Bucket="gdlab-lab-data")["PublicAccessBlockConfiguration"]
    assert all(block.values())
    assert s3.get_bucket_logging(Bucket="gdlab-lab-data")["LoggingEnabled"] == {
        "TargetBucket": "gdlab-lab-logs", "TargetPrefix": "access-logs/"}
    stealth = "Stealth:S3/ServerAccessLoggingDisabled"
    again = handler.lambda_handler(event("gdlab-lab-data", stealth),
                                   None)
    assert again["action"] == "skipped" and "already restored" in again["reason"]
    assert handler.lambda_handler(event("someone-elses-bucket"), None)["action"] == "refused"
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket="someone-elses-bucket")


def test_the_policy_names_only_the_one_bucket_and_passes_parliament():
    doc = restore_bucket_policy(partition="aws", region=REGION, account="123456789012",
                                bucket="gdlab-lab-data", topic_arn="arn:aws:sns:us-east-1:"
                                "123456789012:t", log_group_name="/aws/lambda/f")
    s3_statements = [s for s in doc["Statement"] if str(s["Action"]).startswith("['s3:")]
    assert {s["Resource"] for s in s3_statements} == {"arn:aws:s3:::gdlab-lab-data"}
    analyzed = analyze_policy_string(json.dumps(doc), include_community_auditors=True)
    # Setting a bucket's Block Public Access is permissions management: it is the remedy.
    assert [(f.issue, f.location.get("actions")) for f in analyzed.findings] == [
        ("PERMISSIONS_MANAGEMENT_ACTIONS", ["s3:putbucketpublicaccessblock"])]
