"""gdlab responder: disables an IAM user's access key that was used from a listed address.

Runs as a Lambda (python3.12, stdlib + boto3 only) behind the EventBridge rule for
UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom and Discovery:S3/MaliciousIPCaller.Custom.
It acts only on users carrying the lab tag and does what AWS's guidance for a compromised
access key starts with (IAM User Guide, "Manage access keys for IAM users"; AWS Security
Incident Response Guide): it makes the key Inactive, so every request signed with it is
refused, and attaches AWS's managed policy AWSDenyAll to the user, so no other key or password
of the user can act either (a managed policy its role may attach by ARN alone, where an
inline policy would let it write any permission). It then e-mails a report through SNS.

Environment: LAB_TAG_KEY, LAB_TAG_VALUE, TOPIC_ARN, LOG_LEVEL (default INFO).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime, timezone
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

FINDING_TYPES = ("UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom",
                 "Discovery:S3/MaliciousIPCaller.Custom")
EVENT_SOURCE = "aws.guardduty"
EVENT_DETAIL_TYPE = "GuardDuty Finding"
SUBJECT = "GuardDuty Remediation"
# gdlab's verify searches the function's log group for this prefix; keep it stable.
RESULT_PREFIX = "gdlab-responder result"
DENY_POLICY_NAME = "AWSDenyAll"  # AWS managed: Deny * on *
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

logger = logging.getLogger("gdlab.responder")
logger.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
if not logging.getLogger().handlers:
    # Outside Lambda (gdlab's local runner) nothing prints INFO records; Lambda's runtime
    # installs its own handler on the root logger, so this never doubles lines there.
    _stream = logging.StreamHandler(sys.stdout)
    _stream.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    logger.addHandler(_stream)

_CONFIG = Config(retries={"mode": "standard"})
_clients: dict[str, Any] = {}


def _client(name: str) -> Any:
    """One client per service per container; boto3 reads AWS_ENDPOINT_URL itself."""
    if name not in _clients:
        _clients[name] = boto3.client(name, config=_CONFIG)
    return _clients[name]


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    for _service in ("iam", "sns"):  # Lambda's init phase: the clients once
        _client(_service)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    tag_key, tag_value = os.environ["LAB_TAG_KEY"], os.environ["LAB_TAG_VALUE"]
    topic_arn = os.environ["TOPIC_ARN"]
    detail = event.get("detail") if isinstance(event, dict) else None
    detail = detail if isinstance(detail, dict) else {}
    keys = _dig(detail, "resource", "accessKeyDetails")
    keys = keys if isinstance(keys, dict) else {}
    finding_id = detail.get("id") if isinstance(detail.get("id"), str) else None
    result = _result("skipped", "", keys, finding_id)
    try:
        reason = _reject(event, detail, keys)
        if reason:
            result["reason"] = reason
        else:
            result = _respond(tag_key, tag_value, topic_arn, event, detail, keys, finding_id)
    except Exception:
        logger.exception("gdlab-responder failed for key %s of %s, finding %s",
                         keys.get("accessKeyId"), keys.get("userName"), finding_id)
        raise
    if result["action"] != "disabled":
        logger.info("nothing done (%s): %s", result["action"], result["reason"])
    logger.info("%s %s", RESULT_PREFIX, json.dumps(result, sort_keys=True))
    return result


def _reject(event: Any, detail: dict[str, Any], keys: dict[str, Any]) -> str | None:
    """Why this event is not ours to act on, or None."""
    if not isinstance(event, dict) or event.get("source") != EVENT_SOURCE:
        return f"not a GuardDuty event (source {_get(event, 'source')!r})"
    if event.get("detail-type") != EVENT_DETAIL_TYPE:
        return f"not a GuardDuty finding (detail-type {event.get('detail-type')!r})"
    if detail.get("type") not in FINDING_TYPES:
        return f"finding type {detail.get('type')!r} is not one of {', '.join(FINDING_TYPES)}"
    if _is_sample(detail):
        return "sample finding (service.additionalInfo.sample is true): its key is fictitious"
    if keys.get("userType") != "IAMUser":
        return f"the key is not an IAM user's (userType {keys.get('userType')!r})"
    if not all(isinstance(keys.get(k), str) and keys[k] for k in ("userName", "accessKeyId")):
        return "the finding names no user and access key (resource.accessKeyDetails)"
    return None


def _respond(tag_key: str, tag_value: str, topic_arn: str, event: dict[str, Any],
             detail: dict[str, Any], keys: dict[str, Any], finding_id: str | None
             ) -> dict[str, Any]:
    iam = _client("iam")
    user, key_id = keys["userName"], keys["accessKeyId"]
    try:
        tags = _user_tags(iam, user)
        listed = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    except ClientError as exc:
        if _code(exc) == "NoSuchEntity":
            return _result("skipped", f"user {user} does not exist", keys, finding_id)
        raise
    if tags.get(tag_key) != tag_value:
        return _result("refused", f"user {user} is not tagged {tag_key}={tag_value}: not a "
                                  "lab user, so its keys are left alone", keys, finding_id)
    key = next((k for k in listed if k.get("AccessKeyId") == key_id), None)
    if key is None:
        return _result("skipped", f"user {user} has no access key {key_id}", keys, finding_id)
    was = key.get("Status")
    if was != "Inactive":
        iam.update_access_key(UserName=user, AccessKeyId=key_id, Status="Inactive")
    deny_arn = f"arn:{_partition(keys, detail)}:iam::aws:policy/{DENY_POLICY_NAME}"
    denied = deny_arn in _attached(iam, user)
    if not denied:
        iam.attach_user_policy(UserName=user, PolicyArn=deny_arn)
    if was == "Inactive" and denied:
        return _result("skipped", f"already done: key {key_id} is Inactive and {user} has "
                                  f"{DENY_POLICY_NAME}", keys, finding_id)
    result = _result("disabled", f"access key {key_id} of user {user} made Inactive, "
                                 f"{DENY_POLICY_NAME} attached", keys, finding_id)
    result["previous_status"] = was
    result["message_id"] = _client("sns").publish(
        TopicArn=topic_arn, Subject=SUBJECT, Message=_message(event, detail, keys, result)
    ).get("MessageId")
    return result


def _user_tags(iam: Any, user: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    kwargs: dict[str, Any] = {"UserName": user}
    while True:
        page = iam.list_user_tags(**kwargs)
        tags.update({t["Key"]: t["Value"] for t in page.get("Tags", [])})
        if not page.get("IsTruncated") or not page.get("Marker"):
            return tags
        kwargs["Marker"] = page["Marker"]


def _attached(iam: Any, user: str) -> list[str]:
    arns: list[str] = []
    kwargs: dict[str, Any] = {"UserName": user}
    while True:
        page = iam.list_attached_user_policies(**kwargs)
        arns += [p["PolicyArn"] for p in page.get("AttachedPolicies", [])]
        if not page.get("IsTruncated") or not page.get("Marker"):
            return arns
        kwargs["Marker"] = page["Marker"]


def _partition(keys: dict[str, Any], detail: dict[str, Any]) -> str:
    partition = detail.get("partition")
    return partition if partition in ("aws", "aws-cn", "aws-us-gov") else "aws"


def _message(event: dict[str, Any], detail: dict[str, Any], keys: dict[str, Any],
             result: dict[str, Any]) -> str:
    user, key_id = keys["userName"], keys["accessKeyId"]
    region = detail.get("region") or event.get("region") or ""
    account = detail.get("accountId") or event.get("account")
    call = _dig(detail, "service", "action", "awsApiCallAction") or {}
    remote_ip = _dig(call, "remoteIpDetails", "ipAddressV4")
    used = f"Access key {key_id} of IAM user {user} was used"
    used += f" from {remote_ip}" if remote_ip else ""
    if call.get("api"):
        used += f" to call {call['api']}"
        used += f" ({call['serviceName']})" if call.get("serviceName") else ""
    lines = [
        f"GuardDuty finding {result['finding_id']} ({detail.get('type')}, severity "
        f"{detail.get('severity', 'unknown')}) in account {account}, region {region}.",
        used + ".",
        "",
        f"What the automated response did at {datetime.now(timezone.utc).strftime(TIME_FORMAT)}:",
        f"1. It made access key {key_id} Inactive (it was {result.get('previous_status')}): "
        "every request signed with it is now refused.",
        f"2. It attached the AWS managed policy {DENY_POLICY_NAME} to user {user}, denying "
        "every action to any of the user's other keys or its password.",
        "",
        "What to do next:",
        f"1. Investigate: review CloudTrail for calls made with access key {key_id}"
        + (f" and from {remote_ip}" if remote_ip else "") + ", and what they changed.",
        "2. Find where the key leaked (code, configuration, a developer's machine) and remove "
        "it there.",
        f"3. Delete the key for good once nothing legitimate uses it: aws iam delete-access-key "
        f"--user-name {user} --access-key-id {key_id}",
        "",
        "To undo, if the alert was a false positive:",
        f"   aws iam update-access-key --user-name {user} --access-key-id {key_id} "
        "--status Active",
        f"   aws iam detach-user-policy --user-name {user} --policy-arn "
        f"arn:aws:iam::aws:policy/{DENY_POLICY_NAME}",
    ]
    return "\n".join(lines) + "\n"


def _is_sample(detail: dict[str, Any]) -> bool:
    info = _dig(detail, "service", "additionalInfo")
    if not isinstance(info, dict):
        return False
    if isinstance(info.get("value"), str):  # GetFindings' {"value": json, "type"} wrapping
        try:
            inner = json.loads(info["value"])
        except ValueError:
            inner = None
        if isinstance(inner, dict):
            info = {**info, **inner}
    sample = info.get("sample")
    return sample is True or (isinstance(sample, str) and sample.strip().lower() == "true")


def _result(action: str, reason: str, keys: dict[str, Any], finding_id: Any) -> dict[str, Any]:
    user, key_id = keys.get("userName"), keys.get("accessKeyId")
    return {
        "action": action,
        "reason": reason,
        "user": user if isinstance(user, str) else None,
        "access_key_id": key_id if isinstance(key_id, str) else None,
        "previous_status": None,
        "finding_id": finding_id if isinstance(finding_id, str) else None,
        "message_id": None,
    }


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None
