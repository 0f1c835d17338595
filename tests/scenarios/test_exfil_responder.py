"""The credential-exfiltration responder against moto: events shaped like GuardDuty's finding
event for UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS, every IAM and
SNS answer it reads held to botocore's shapes, and its least-privilege policy."""

from __future__ import annotations

import importlib.util
import itertools
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.sns.models import sns_backends
from parliament import analyze_policy_string
from wire_shapes import assert_wire_shape, capture_raw

from gdlab.lab import responder
from gdlab.lab.responder_policies import revoke_sessions_policy
from gdlab.local.policy import Principal, RequestContext, Resource, evaluate, role_documents
from gdlab.local.request_context import principal_keys

ROOT = Path(__file__).resolve().parents[2]
HANDLER = ROOT / "scenarios" / "credential-exfiltration" / "responder" / "handler.py"
ACCOUNT = "123456789012"
REGION = "us-east-1"
LAB_TAG = ("gdlab:lab", "gd-1a2b3c")
ROLE = "gdlab-gd-1a2b3c-compromised"
TYPE = "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS"
FINDING_ID = "7ec4e3f4b3e1b2a9c8d7e6f5a4b3c2d1"
UPDATED = "2024-05-14T10:22:41.482Z"
CUTOFF = "2024-05-14T10:22:42Z"  # UPDATED rounded up to the policy's second
TOPIC_NAME = "GuardDuty-Example-gd-1a2b3c"
LOG_GROUP = "/aws/lambda/GuardDuty-Example-Remediation-InstanceCredentialExfiltration-gd-1a2b3c"
_names = itertools.count()


def load_handler() -> Any:
    """A fresh module each time, so its per-container client cache starts empty."""
    spec = importlib.util.spec_from_file_location(f"gdlab_exfil_responder_{next(_names)}", HANDLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def finding(role_id: str, **changes: Any) -> dict[str, Any]:
    """The finding as GetFindings returns it on the wire (camelCase, as in the event)."""
    detail: dict[str, Any] = {
        "schemaVersion": "2.0",
        "accountId": ACCOUNT,
        "region": REGION,
        "partition": "aws",
        "id": FINDING_ID,
        "arn": f"arn:aws:guardduty:{REGION}:{ACCOUNT}:detector/3caf4e0aaa46ce4ccbcef949a8785353"
               f"/finding/{FINDING_ID}",
        "type": TYPE,
        "resource": {
            "resourceType": "AccessKey",
            "accessKeyDetails": {
                "accessKeyId": "ASIAQRSTUVWXYZ012345",
                "principalId": f"{role_id}:i-05746eb48123455e0",
                "userName": ROLE,
                "userType": "AssumedRole",
            },
            "instanceDetails": {
                "instanceId": "i-05746eb48123455e0",
                "instanceType": "t3.micro",
                "instanceState": "running",
                "iamInstanceProfile": {
                    "arn": f"arn:aws:iam::{ACCOUNT}:instance-profile/{ROLE}",
                    "id": "AIPAQRSTUVWXYZ0123456",
                },
                "tags": [{"key": LAB_TAG[0], "value": LAB_TAG[1]}],
            },
        },
        "service": {
            "serviceName": "guardduty",
            "detectorId": "3caf4e0aaa46ce4ccbcef949a8785353",
            "action": {
                "actionType": "AWS_API_CALL",
                "awsApiCallAction": {
                    "api": "ListBuckets",
                    "serviceName": "s3.amazonaws.com",
                    "callerType": "Remote IP",
                    "remoteIpDetails": {
                        "ipAddressV4": "198.51.100.23",
                        "organization": {"asn": "16509", "asnOrg": "AMAZON-02",
                                         "isp": "Amazon.com", "org": "Amazon.com"},
                        "country": {"countryName": "United States"},
                    },
                },
            },
            "additionalInfo": {"value": json.dumps({"threatListName": "Example-Threat-List"}),
                               "type": "default"},
            "resourceRole": "TARGET",
            "eventFirstSeen": "2024-05-14T10:17:03.000Z",
            "eventLastSeen": "2024-05-14T10:21:58.000Z",
            "archived": False,
            "count": 3,
        },
        "severity": 8,
        "createdAt": "2024-05-14T10:17:40.113Z",
        "updatedAt": UPDATED,
        "title": f"Credentials for instance role {ROLE} used from external IP address.",
        "description": f"Credentials created exclusively for an EC2 instance using instance role "
                       f"{ROLE} have been used from external IP address 198.51.100.23.",
    }
    detail.update(changes)
    return detail


def event_for(detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0", "id": "c8c4daa7-a20c-2f03-0070-b7393dd542ad",
        "detail-type": "GuardDuty Finding", "source": "aws.guardduty", "account": ACCOUNT,
        "time": "2024-05-14T10:22:43Z", "region": REGION, "resources": [], "detail": detail,
    }


class Lab:
    def __init__(self, client: Any) -> None:
        self.iam = client("iam")
        self.sns = client("sns")
        self.topic = self.sns.create_topic(Name=TOPIC_NAME)["TopicArn"]
        self.role_id = self.role(ROLE, tags={LAB_TAG[0]: LAB_TAG[1]})

    def role(self, name: str, tags: dict[str, str]) -> str:
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole"}]}
        kwargs: dict[str, Any] = {"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        return self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust),
                                    **kwargs)["Role"]["RoleId"]

    def event(self, **changes: Any) -> dict[str, Any]:
        return event_for(finding(self.role_id, **changes))

    def inline(self, role: str = ROLE) -> dict[str, Any]:
        return {name: self.iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
                for name in self.iam.list_role_policies(RoleName=role)["PolicyNames"]}

    def mails(self) -> list[tuple[str, str | None]]:
        topic = sns_backends[ACCOUNT][REGION].topics[self.topic]
        return [(message, subject) for _, message, subject, _, _ in topic.sent_notifications]


@pytest.fixture
def lab(aws_client: Any, monkeypatch: pytest.MonkeyPatch) -> Lab:
    lab = Lab(aws_client)
    monkeypatch.setenv("LAB_TAG_KEY", LAB_TAG[0])
    monkeypatch.setenv("LAB_TAG_VALUE", LAB_TAG[1])
    monkeypatch.setenv("TOPIC_ARN", lab.topic)
    return lab


@pytest.fixture
def handler(lab: Lab) -> Any:
    """The handler with its own clients, each raw answer it gets held to botocore's shape."""
    module = load_handler()
    module.calls = []
    for service in ("iam", "sns"):
        client = boto3.client(service, region_name=REGION)
        module.calls.append((service, capture_raw(client)))
        module._clients[service] = client
    yield module
    for service, calls in module.calls:
        for operation, status, body in calls:
            if status < 300:
                assert_wire_shape(service, operation, body)


def operations(module: Any) -> list[str]:
    return [f"{service}:{op}" for service, calls in module.calls for op, _, _ in calls]


def test_the_test_finding_has_guarddutys_shape() -> None:
    assert_wire_shape("guardduty", "GetFindings", {"findings": [finding("AROAEXAMPLE")]})


def test_revokes_a_lab_roles_sessions_with_the_documented_policy(lab: Lab, handler: Any) -> None:
    result = handler.lambda_handler(lab.event(), None)

    assert result["action"] == "revoked"
    assert (result["role"], result["cutoff"], result["finding_id"]) == (ROLE, CUTOFF, FINDING_ID)
    assert result["role_arn"] == f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
    assert result["previous_cutoff"] is None
    assert result["message_id"]
    # IAM User Guide, "Revoke IAM role temporary security credentials", verbatim.
    assert lab.inline() == {"AWSRevokeOlderSessions": {
        "Version": "2012-10-17",
        "Statement": {"Effect": "Deny", "Action": "*", "Resource": "*",
                      "Condition": {"DateLessThan": {"aws:TokenIssueTime": CUTOFF}}}}}
    assert operations(handler) == ["iam:GetRole", "iam:ListRoleTags", "iam:GetRolePolicy",
                                   "iam:PutRolePolicy", "sns:Publish"]


def test_the_policy_denies_only_sessions_issued_before_the_cutoff(lab: Lab, handler: Any) -> None:
    lab.iam.put_role_policy(RoleName=ROLE, PolicyName="app", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}))
    handler.lambda_handler(lab.event(), None)
    cutoff = datetime(2024, 5, 14, 10, 22, 42, tzinfo=UTC)

    def decide(issued_at: datetime) -> Any:
        principal = Principal(
            account=ACCOUNT, arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/i-05746eb48123455e0",
            role_name=ROLE, role_arn=f"arn:aws:iam::{ACCOUNT}:role/{ROLE}",
            session_name="i-05746eb48123455e0", issued_at=issued_at)
        context = RequestContext(action="s3:ListAllMyBuckets", resources=(Resource("*"),),
                                 keys=principal_keys(principal), request_tags={})
        return evaluate(role_documents(ACCOUNT, ROLE), context)

    stolen = decide(cutoff - timedelta(minutes=20))
    assert (stolen.allowed, stolen.explicit_deny) == (False, True)
    assert decide(cutoff - timedelta(seconds=1)).explicit_deny
    fresh = decide(cutoff + timedelta(seconds=1))
    assert (fresh.allowed, fresh.explicit_deny) == (True, False)


def test_without_finding_times_the_cutoff_is_now_and_never_in_the_future(
    lab: Lab, handler: Any
) -> None:
    detail = finding(lab.role_id, updatedAt="2999-01-01T00:00:00.000Z")
    del detail["service"]["eventLastSeen"]
    before = datetime.now(UTC).replace(microsecond=0)

    future = handler.lambda_handler(event_for(detail), None)

    after = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    assert before <= datetime.fromisoformat(future["cutoff"]) <= after
    lab.iam.delete_role_policy(RoleName=ROLE, PolicyName="AWSRevokeOlderSessions")
    for key in ("updatedAt", "createdAt"):
        del detail[key]
    assert before <= datetime.fromisoformat(
        handler.lambda_handler(event_for(detail), None)["cutoff"]) <= after + timedelta(seconds=1)


@pytest.mark.parametrize("tags", [{}, {"gdlab:lab": "gd-ffffff"}, {"Name": "web"}])
def test_roles_without_the_lab_tag_are_refused(lab: Lab, handler: Any, tags: dict) -> None:
    role_id = lab.role("someone-elses-role", tags=tags)
    detail = finding(role_id)
    detail["resource"]["accessKeyDetails"]["userName"] = "someone-elses-role"

    result = handler.lambda_handler(event_for(detail), None)

    assert result["action"] == "refused"
    assert result["reason"] == ("role someone-elses-role is not tagged gdlab:lab=gd-1a2b3c: not "
                                "a lab role, so its sessions are left alone")
    assert result["cutoff"] is None
    assert lab.inline("someone-elses-role") == {}
    assert lab.mails() == []


def test_a_role_recreated_under_the_sessions_role_name_is_refused(lab: Lab, handler: Any) -> None:
    result = handler.lambda_handler(event_for(finding("AROAOLDROLEOLDROLE01")), None)

    assert result["action"] == "refused"
    assert "AROAOLDROLEOLDROLE01" in result["reason"] and "not the same role" in result["reason"]
    assert lab.inline() == {}


def test_service_linked_roles_are_refused(lab: Lab, handler: Any) -> None:
    role = lab.iam.create_service_linked_role(AWSServiceName="autoscaling.amazonaws.com")["Role"]
    detail = finding(role["RoleId"])
    detail["resource"]["accessKeyDetails"]["userName"] = role["RoleName"]

    result = handler.lambda_handler(event_for(detail), None)

    assert result["action"] == "refused"
    assert "service-linked role" in result["reason"]
    assert lab.inline(role["RoleName"]) == {}


def test_unknown_roles_are_skipped(lab: Lab, handler: Any) -> None:
    detail = finding(lab.role_id)
    detail["resource"]["accessKeyDetails"]["userName"] = "gone"

    result = handler.lambda_handler(event_for(detail), None)

    assert (result["action"], result["reason"]) == ("skipped", "role gone does not exist")


@pytest.mark.parametrize("info", [
    {"sample": True}, {"sample": "true"}, {"sample": "True"},
    {"value": json.dumps({"sample": True}), "type": "default"},  # the GetFindings form
])
def test_sample_findings_are_skipped(lab: Lab, handler: Any, info: dict) -> None:
    event = lab.event()
    event["detail"]["service"]["additionalInfo"] = info

    result = handler.lambda_handler(event, None)

    assert result["action"] == "skipped"
    assert "sample finding" in result["reason"]
    assert lab.inline() == {} and lab.mails() == []


def test_sample_false_is_acted_on(lab: Lab, handler: Any) -> None:
    event = lab.event()
    event["detail"]["service"]["additionalInfo"] = {"sample": "false"}

    assert handler.lambda_handler(event, None)["action"] == "revoked"


def test_other_finding_types_sources_and_shapes_are_skipped(lab: Lab, handler: Any) -> None:
    events = [lab.event(type=t) for t in (
        "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.InsideAWS",
        "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom",
        "Recon:IAMUser/MaliciousIPCaller.Custom")]
    for change in ({"source": "aws.securityhub"}, {"detail-type": "AWS API Call via CloudTrail"}):
        events.append({**lab.event(), **change})
    user = lab.event()
    user["detail"]["resource"]["accessKeyDetails"]["userType"] = "IAMUser"
    nameless = lab.event()
    del nameless["detail"]["resource"]["accessKeyDetails"]["userName"]
    events += [user, nameless, {}, {"source": "aws.guardduty"}, "text", None, []]

    results = [handler.lambda_handler(event, None) for event in events]

    assert {r["action"] for r in results} == {"skipped"}
    assert "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom" in results[1]["reason"]
    assert results[3]["reason"].startswith("not a GuardDuty event")
    assert results[5]["reason"] == "the credentials are not a role session (userType 'IAMUser')"
    assert results[6]["reason"] == "the finding names no role (resource.accessKeyDetails.userName)"
    assert lab.inline() == {} and lab.mails() == []
    assert operations(handler) == []


def test_a_redelivered_event_changes_nothing(lab: Lab, handler: Any) -> None:
    first = handler.lambda_handler(lab.event(), None)
    again = handler.lambda_handler(lab.event(), None)

    assert first["action"] == "revoked"
    assert (again["action"], again["cutoff"]) == ("skipped", CUTOFF)
    assert again["reason"] == (f"already revoked: sessions of {ROLE} issued before {CUTOFF} "
                               "are denied")
    assert len(lab.mails()) == 1
    assert operations(handler).count("iam:PutRolePolicy") == 1


def test_a_later_finding_moves_the_cutoff_on_and_an_earlier_one_never_back(
    lab: Lab, handler: Any
) -> None:
    handler.lambda_handler(lab.event(), None)

    later = handler.lambda_handler(lab.event(updatedAt="2024-05-14T16:22:41.000Z"), None)
    earlier = handler.lambda_handler(lab.event(updatedAt="2024-05-14T09:00:00.000Z"), None)

    assert (later["action"], later["cutoff"], later["previous_cutoff"]) == (
        "revoked", "2024-05-14T16:22:41Z", CUTOFF)
    assert (earlier["action"], earlier["cutoff"]) == ("skipped", "2024-05-14T16:22:41Z")
    condition = lab.inline()["AWSRevokeOlderSessions"]["Statement"]["Condition"]
    assert condition == {"DateLessThan": {"aws:TokenIssueTime": "2024-05-14T16:22:41Z"}}
    assert len(lab.mails()) == 2
    assert "replaced an earlier cut-off of 2024-05-14T10:22:42Z" in lab.mails()[1][0]


def test_a_later_cutoff_set_by_a_person_is_kept(lab: Lab, handler: Any) -> None:
    # What the console writes when someone presses "Revoke active sessions" (a list works too).
    kept = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Action": ["*"], "Resource": ["*"],
        "Condition": {"DateLessThan": {"aws:TokenIssueTime": "2024-05-15T08:00:00Z"}}}]}
    lab.iam.put_role_policy(RoleName=ROLE, PolicyName="AWSRevokeOlderSessions",
                            PolicyDocument=json.dumps(kept))

    result = handler.lambda_handler(lab.event(), None)

    assert (result["action"], result["cutoff"]) == ("skipped", "2024-05-15T08:00:00Z")
    assert lab.inline() == {"AWSRevokeOlderSessions": kept}


def test_the_report_says_what_was_done_and_how_to_undo_it(lab: Lab, handler: Any) -> None:
    handler.lambda_handler(lab.event(), None)

    [(message, subject)] = lab.mails()
    assert subject == "GuardDuty Remediation"
    assert f"GuardDuty finding {FINDING_ID} ({TYPE}, severity 8)" in message
    assert "ASIAQRSTUVWXYZ012345 of role gdlab-gd-1a2b3c-compromised, delivered to EC2 " \
           "instance i-05746eb48123455e0, was used from 198.51.100.23 to call ListBuckets " \
           "(s3.amazonaws.com)." in message
    assert f"arn:aws:iam::{ACCOUNT}:role/{ROLE}" in message
    assert f"any session of the role issued before {CUTOFF}" in message
    assert "require IMDSv2" in message
    assert message.rstrip().endswith(
        f"aws iam delete-role-policy --role-name {ROLE} --policy-name AWSRevokeOlderSessions")


def test_logs_one_result_line_that_gdlab_can_parse(
    lab: Lab, handler: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sample = lab.event()
    sample["detail"]["service"]["additionalInfo"] = {"sample": True}
    with caplog.at_level(logging.INFO, logger="gdlab.responder"):
        revoked = handler.lambda_handler(lab.event(), None)
        skipped = handler.lambda_handler(sample, None)

    lines = [r.getMessage() for r in caplog.records if "gdlab-responder result" in r.getMessage()]
    assert all(line.startswith("gdlab-responder result {") for line in lines)
    parsed = [responder.parse_result(line) for line in lines]
    assert parsed == [revoked, skipped]
    assert {k: parsed[0][k] for k in ("action", "role", "cutoff", "finding_id")} == {
        "action": "revoked", "role": ROLE, "cutoff": CUTOFF, "finding_id": FINDING_ID}


def test_clients_are_made_once_per_container_with_standard_retries(lab: Lab) -> None:
    module = load_handler()
    module.lambda_handler(lab.event(), None)
    iam, sns = module._clients["iam"], module._clients["sns"]
    module.lambda_handler(lab.event(updatedAt="2024-05-14T11:00:00.000Z"), None)

    assert module._clients == {"iam": iam, "sns": sns}
    assert iam.meta.config.retries["mode"] == "standard"


def test_real_errors_are_raised_for_lambda_to_retry(
    lab: Lab, handler: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOPIC_ARN", lab.topic + "-gone")

    with pytest.raises(Exception, match="NotFound"):
        handler.lambda_handler(lab.event(), None)


# --- its policy --------------------------------------------------------------------------
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:{TOPIC_NAME}"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"


def policy(tagged: bool = True, partition: str = "aws") -> dict[str, Any]:
    tag = {"lab_tag_key": LAB_TAG[0], "lab_tag_value": LAB_TAG[1]} if tagged else {}
    return revoke_sessions_policy(partition=partition, region=REGION, account=ACCOUNT,
                                  role_name=ROLE, topic_arn=TOPIC, log_group_name=LOG_GROUP,
                                  **tag)


@pytest.mark.parametrize("tagged", [True, False])
def test_policy_passes_parliament_but_for_the_one_permissions_action(tagged: bool) -> None:
    analyzed = analyze_policy_string(json.dumps(policy(tagged)), include_community_auditors=True)

    # Writing an inline policy is permissions management by definition: it is the remedy.
    assert [(f.issue, f.location.get("actions")) for f in analyzed.findings] == [
        ("PERMISSIONS_MANAGEMENT_ACTIONS", ["iam:putrolepolicy"])]


def test_policy_grants_what_the_handler_calls_on_exact_resources(lab: Lab, handler: Any) -> None:
    handler.lambda_handler(lab.event(), None)
    doc = policy()
    granted = {a: s for s in doc["Statement"] for a in ([s["Action"]] if isinstance(
        s["Action"], str) else s["Action"])}

    called = set(operations(handler))
    assert called == {"iam:GetRole", "iam:ListRoleTags", "iam:GetRolePolicy",
                      "iam:PutRolePolicy", "sns:Publish"}
    assert set(granted) == called | {"logs:CreateLogStream", "logs:PutLogEvents"}
    for action in ("iam:GetRole", "iam:ListRoleTags", "iam:GetRolePolicy", "iam:PutRolePolicy"):
        assert granted[action]["Resource"] == ROLE_ARN
    assert granted["sns:Publish"]["Resource"] == TOPIC
    assert granted["logs:PutLogEvents"]["Resource"] == (
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{LOG_GROUP}:*")
    assert all(s["Effect"] == "Allow" and "*" not in str(s["Action"]) for s in doc["Statement"])
    assert policy(partition="aws-cn")["Statement"][0]["Resource"] == (
        f"arn:aws-cn:iam::{ACCOUNT}:role/{ROLE}")


def test_put_role_policy_only_on_the_lab_role_while_it_carries_the_lab_tag() -> None:
    documents = [json.dumps(policy())]
    principal = Principal(account=ACCOUNT, arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/r/fn",
                          role_name="r", role_arn=f"arn:aws:iam::{ACCOUNT}:role/r",
                          session_name="fn", issued_at=datetime.now(UTC))

    def allowed(action: str, arn: str, tags: dict[str, str]) -> bool:
        context = RequestContext(action=action, resources=(Resource(arn, tags),),
                                 keys=principal_keys(principal), request_tags={})
        return evaluate(documents, context).allowed

    lab_tags = {LAB_TAG[0]: LAB_TAG[1]}
    assert allowed("iam:PutRolePolicy", ROLE_ARN, lab_tags)
    assert not allowed("iam:PutRolePolicy", ROLE_ARN, {})
    assert not allowed("iam:PutRolePolicy", ROLE_ARN, {LAB_TAG[0]: "gd-ffffff"})
    assert not allowed("iam:PutRolePolicy", f"arn:aws:iam::{ACCOUNT}:role/other", lab_tags)
    assert not allowed("iam:DeleteRolePolicy", ROLE_ARN, lab_tags)
    # Reading needs no tag: the handler must see an untagged role to say why it refuses.
    assert allowed("iam:ListRoleTags", ROLE_ARN, {})
    assert not allowed("iam:GetRole", f"arn:aws:iam::{ACCOUNT}:role/other", {})
    untagged = [json.dumps(policy(tagged=False))]
    context = RequestContext(action="iam:PutRolePolicy", resources=(Resource(ROLE_ARN, {}),),
                             keys=principal_keys(principal), request_tags={})
    assert evaluate(untagged, context).allowed


def test_tag_key_and_value_go_together() -> None:
    with pytest.raises(ValueError, match="together"):
        revoke_sessions_policy(partition="aws", region=REGION, account=ACCOUNT, role_name=ROLE,
                               topic_arn=TOPIC, log_group_name=LOG_GROUP, lab_tag_key="k")



def test_the_role_arn_carries_the_roles_path() -> None:
    found = revoke_sessions_policy(partition="aws", region=REGION, account=ACCOUNT,
                                   role_name=ROLE, role_path="/gdlab/", topic_arn=TOPIC,
                                   log_group_name=LOG_GROUP)
    assert found["Statement"][0]["Resource"] == f"arn:aws:iam::{ACCOUNT}:role/gdlab/{ROLE}"
    with pytest.raises(ValueError, match="IAM path"):
        revoke_sessions_policy(partition="aws", region=REGION, account=ACCOUNT, role_name=ROLE,
                               role_path="gdlab", topic_arn=TOPIC, log_group_name=LOG_GROUP)
