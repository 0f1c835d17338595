"""The compromised-iam-credentials responder against moto: it makes a lab user's leaked key
Inactive and denies the user everything, once; it leaves other users, other keys and sample
findings alone; its role policy grants exactly what it calls, only on the lab's user."""

from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.sns.models import sns_backends
from parliament import analyze_policy_string
from wire_shapes import assert_wire_shape, capture_raw

from gdlab.lab.responder_policies import disable_key_policy

ROOT = Path(__file__).resolve().parents[2]
HANDLER = ROOT / "scenarios" / "compromised-iam-credentials" / "responder" / "handler.py"
ACCOUNT, REGION = "123456789012", "us-east-1"
LAB_TAG = ("gdlab:lab", "gd-1a2b3c")
USER = "gdlab-gd-1a2b3c-user"
TOPIC_NAME = "GuardDuty-Example-gd-1a2b3c"
LOG_GROUP = "/aws/lambda/GuardDuty-Example-Remediation-IAMUserKey-gd-1a2b3c"
DENY_ALL = "arn:aws:iam::aws:policy/AWSDenyAll"
_names = itertools.count()


def load_handler() -> Any:
    spec = importlib.util.spec_from_file_location(f"gdlab_key_responder_{next(_names)}", HANDLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Lab:
    def __init__(self, client: Any) -> None:
        self.iam, self.sns = client("iam"), client("sns")
        self.topic = self.sns.create_topic(Name=TOPIC_NAME)["TopicArn"]
        self.key = self.user(USER, {LAB_TAG[0]: LAB_TAG[1]})

    def user(self, name: str, tags: dict[str, str]) -> str:
        self.iam.create_user(UserName=name, Path="/gdlab/",
                             Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
        return self.iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]

    def event(self, kind: str = "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom",
              user: str = USER, key: str | None = None, sample: bool = False) -> dict[str, Any]:
        info = {"threatListName": "Example-Threat-List-gd-1a2b3c", **({"sample": True}
                                                                     if sample else {})}
        return {
            "version": "0", "id": "c8c4daa7-a20c-2f03-0070-b7393dd542ad",
            "detail-type": "GuardDuty Finding", "source": "aws.guardduty", "account": ACCOUNT,
            "time": "2024-05-14T10:22:43Z", "region": REGION, "resources": [],
            "detail": {
                "schemaVersion": "2.0", "accountId": ACCOUNT, "region": REGION,
                "id": "7ec4e3f4b3e1b2a9c8d7e6f5a4b3c2d1", "type": kind, "severity": 5,
                "resource": {"resourceType": "AccessKey", "accessKeyDetails": {
                    "accessKeyId": key or self.key, "principalId": "AIDAEXAMPLE",
                    "userName": user, "userType": "IAMUser"}},
                "service": {"action": {"actionType": "AWS_API_CALL", "awsApiCallAction": {
                    "api": "ListObjects", "serviceName": "s3.amazonaws.com",
                    "callerType": "Remote IP",
                    "remoteIpDetails": {"ipAddressV4": "198.51.100.23"}}},
                    "additionalInfo": info},
            },
        }

    def status(self, user: str = USER) -> list[str]:
        return [k["Status"] for k in self.iam.list_access_keys(UserName=user)["AccessKeyMetadata"]]

    def attached(self, user: str = USER) -> list[str]:
        return [p["PolicyArn"] for p in
                self.iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]]

    def mails(self) -> list[str]:
        topic = sns_backends[ACCOUNT][REGION].topics[self.topic]
        return [message for _, message, _subject, _, _ in topic.sent_notifications]


@pytest.fixture
def lab(aws_client: Any, monkeypatch: pytest.MonkeyPatch) -> Lab:
    made = Lab(aws_client)
    monkeypatch.setenv("LAB_TAG_KEY", LAB_TAG[0])
    monkeypatch.setenv("LAB_TAG_VALUE", LAB_TAG[1])
    monkeypatch.setenv("TOPIC_ARN", made.topic)
    return made


@pytest.fixture
def handler(lab: Lab) -> Any:
    module = load_handler()
    module.calls = []
    for service in ("iam", "sns"):
        client = boto3.client(service, region_name=REGION)
        module.calls.append((service, capture_raw(client)))
        module._clients[service] = client
    yield module
    for _service, calls in module.calls:
        for operation, status, body in calls:
            if status < 300:
                assert_wire_shape(_service, operation, body)


@pytest.mark.parametrize("kind", ["UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom",
                                  "Discovery:S3/MaliciousIPCaller.Custom"])
def test_the_lab_users_key_is_disabled_and_the_user_denied_once(lab, handler, kind):
    result = handler.lambda_handler(lab.event(kind), None)
    assert result["action"] == "disabled" and result["previous_status"] == "Active"
    assert lab.status() == ["Inactive"] and lab.attached() == [DENY_ALL]
    (mail,) = lab.mails()
    assert lab.key in mail and "update-access-key" in mail and "198.51.100.23" in mail
    again = handler.lambda_handler(lab.event(), None)  # the other finding, or a redelivery
    assert again["action"] == "skipped" and "already done" in again["reason"]
    assert len(lab.mails()) == 1


def test_other_users_other_keys_and_samples_are_left_alone(lab, handler):
    other_key = lab.user("someone-else", {})
    refused = handler.lambda_handler(lab.event(user="someone-else", key=other_key), None)
    assert refused["action"] == "refused" and lab.status("someone-else") == ["Active"]
    missing = handler.lambda_handler(lab.event(key="AKIAIOSFODNN7EXAMPLE"), None)
    assert missing["action"] == "skipped" and lab.status() == ["Active"]
    sample = handler.lambda_handler(lab.event(sample=True), None)
    assert sample["action"] == "skipped" and "sample" in sample["reason"]
    other_type = handler.lambda_handler(lab.event("Recon:EC2/PortProbeUnprotectedPort"), None)
    assert other_type["action"] == "skipped"
    assert lab.status() == ["Active"] and lab.attached() == [] and lab.mails() == []


def policy() -> dict[str, Any]:
    return disable_key_policy(partition="aws", region=REGION, account=ACCOUNT, user_name=USER,
                              user_path="/gdlab/", topic_arn=f"arn:aws:sns:{REGION}:{ACCOUNT}:"
                              f"{TOPIC_NAME}", log_group_name=LOG_GROUP,
                              lab_tag_key=LAB_TAG[0], lab_tag_value=LAB_TAG[1])


def test_the_policy_grants_what_the_handler_calls_on_the_one_user(lab, handler):
    handler.lambda_handler(lab.event(), None)
    called = {f"{s}:{op}" for s, calls in handler.calls for op, _, _ in calls}
    assert called == {"iam:ListUserTags", "iam:ListAccessKeys", "iam:ListAttachedUserPolicies",
                      "iam:UpdateAccessKey", "iam:AttachUserPolicy", "sns:Publish"}
    granted = {a: s for s in policy()["Statement"] for a in (
        [s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert called <= set(granted)
    user_arn = f"arn:aws:iam::{ACCOUNT}:user/gdlab/{USER}"
    for action in called - {"sns:Publish"}:
        assert granted[action]["Resource"] == user_arn
    assert granted["iam:UpdateAccessKey"]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/gdlab:lab": "gd-1a2b3c"}}
    assert granted["iam:AttachUserPolicy"]["Condition"]["ArnEquals"] == {
        "iam:PolicyARN": DENY_ALL}


def test_the_policy_passes_parliament_but_for_the_remedy_itself():
    analyzed = analyze_policy_string(json.dumps(policy()), include_community_auditors=True)
    # Changing a key's status and attaching a policy are permissions management and, to
    # parliament, credential exposure (UpdateAccessKey could make a key Active again) and
    # escalation (it does not read the iam:PolicyARN condition that allows only AWSDenyAll):
    # they are the remedy, bounded by the user's ARN, its tag and the one policy ARN.
    assert sorted((f.issue, tuple(sorted(f.location.get("actions"))))
                  for f in analyzed.findings) == [
        ("CREDENTIALS_EXPOSURE", ("iam:updateaccesskey",)),
        ("PERMISSIONS_MANAGEMENT_ACTIONS", ("iam:attachuserpolicy", "iam:updateaccesskey")),
        ("PRIVILEGE_ESCALATION", ("iam:attachuserpolicy",))]
