"""gdlab responder: revokes the sessions of the IAM role whose credentials left their instance.

Runs as a Lambda (python3.12, stdlib + boto3 only) behind the EventBridge rule for
UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS. It acts only on roles
carrying the lab tag and does what IAM's console does under "Revoke active sessions" (IAM User
Guide, "Revoke IAM role temporary security credentials"): it puts the inline policy
AWSRevokeOlderSessions on the role, denying every action to sessions issued before a cut-off
(aws:TokenIssueTime). Sessions issued later, such as the instance's next IMDS credentials,
keep working. It then e-mails a report through SNS.

Environment: LAB_TAG_KEY, LAB_TAG_VALUE, TOPIC_ARN, LOG_LEVEL (default INFO).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

FINDING_TYPE = "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS"
EVENT_SOURCE = "aws.guardduty"
EVENT_DETAIL_TYPE = "GuardDuty Finding"
SUBJECT = "GuardDuty Remediation"
# gdlab's verify searches the function's log group for this prefix; keep it stable.
RESULT_PREFIX = "gdlab-responder result"
# The name IAM's console gives the policy, so the console shows the revocation as its own.
POLICY_NAME = "AWSRevokeOlderSessions"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# IAM: "You cannot revoke the session for a service-linked role."
SERVICE_LINKED_PATH = "/aws-service-role/"

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
    # Lambda's init phase: make the clients once, before the first event.
    for _service in ("iam", "sns"):
        _client(_service)


class Settings:
    def __init__(self) -> None:
        self.lab_tag_key = os.environ["LAB_TAG_KEY"]
        self.lab_tag_value = os.environ["LAB_TAG_VALUE"]
        self.topic_arn = os.environ["TOPIC_ARN"]


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings()
    detail = event.get("detail") if isinstance(event, dict) else None
    detail = detail if isinstance(detail, dict) else {}
    finding_id = detail.get("id")
    keys = _dig(detail, "resource", "accessKeyDetails")
    keys = keys if isinstance(keys, dict) else {}
    role_name = keys.get("userName")
    result = _result("skipped", "", role_name, finding_id)
    try:
        reason = _reject(event, detail, keys)
        if reason:
            result["reason"] = reason
        else:
            result = _respond(settings, event, detail, keys, finding_id)
    except Exception:
        logger.exception("gdlab-responder failed for role %s, finding %s", role_name, finding_id)
        raise
    if result["action"] != "revoked":
        logger.info("nothing done (%s): %s", result["action"], result["reason"])
    logger.info("%s %s", RESULT_PREFIX, json.dumps(result, sort_keys=True))
    return result


def _reject(event: Any, detail: dict[str, Any], keys: dict[str, Any]) -> str | None:
    """Why this event is not ours to act on, or None."""
    if not isinstance(event, dict) or event.get("source") != EVENT_SOURCE:
        return f"not a GuardDuty event (source {_get(event, 'source')!r})"
    if event.get("detail-type") != EVENT_DETAIL_TYPE:
        return f"not a GuardDuty finding (detail-type {event.get('detail-type')!r})"
    if detail.get("type") != FINDING_TYPE:
        return f"finding type {detail.get('type')!r} is not {FINDING_TYPE}"
    if _is_sample(detail):
        return "sample finding (service.additionalInfo.sample is true): its role is fictitious"
    if keys.get("userType") != "AssumedRole":
        return f"the credentials are not a role session (userType {keys.get('userType')!r})"
    if not isinstance(keys.get("userName"), str) or not keys["userName"]:
        return "the finding names no role (resource.accessKeyDetails.userName)"
    return None


def _respond(
    settings: Settings,
    event: dict[str, Any],
    detail: dict[str, Any],
    keys: dict[str, Any],
    finding_id: str | None,
) -> dict[str, Any]:
    iam = _client("iam")
    role_name = keys["userName"]
    try:
        role = iam.get_role(RoleName=role_name)["Role"]
    except ClientError as exc:
        if _code(exc) == "NoSuchEntity":
            return _result("skipped", f"role {role_name} does not exist", role_name, finding_id)
        raise
    refusal = _refusal(settings, iam, role, keys)
    if refusal:
        return _result("refused", refusal, role_name, finding_id)

    cutoff = _cutoff(detail)
    existing = _existing_cutoff(iam, role_name)
    if existing is not None and existing >= cutoff:
        # Never move the cut-off back: an earlier one would let sessions in again.
        result = _result(
            "skipped",
            f"already revoked: sessions of {role_name} issued before "
            f"{existing.strftime(TIME_FORMAT)} are denied",
            role_name,
            finding_id,
        )
        result["cutoff"] = existing.strftime(TIME_FORMAT)
        return result

    stamp = cutoff.strftime(TIME_FORMAT)
    logger.info("role %s: denying sessions issued before %s", role_name, stamp)
    iam.put_role_policy(
        RoleName=role_name,
        PolicyName=POLICY_NAME,
        PolicyDocument=json.dumps(revoke_document(stamp)),
    )
    result = _result(
        "revoked", f"sessions of role {role_name} issued before {stamp} revoked", role_name,
        finding_id,
    )
    result["cutoff"] = stamp
    result["previous_cutoff"] = existing.strftime(TIME_FORMAT) if existing else None
    result["role_arn"] = role.get("Arn")
    message = _message(event, detail, keys, result)
    published = _client("sns").publish(
        TopicArn=settings.topic_arn, Subject=SUBJECT, Message=message
    )
    result["message_id"] = published.get("MessageId")
    return result


def revoke_document(cutoff: str) -> dict[str, Any]:
    """The policy IAM's console writes, verbatim (IAM User Guide, "Revoke IAM role temporary
    security credentials"): deny everything to sessions issued before `cutoff`."""
    return {
        "Version": "2012-10-17",
        "Statement": {
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"DateLessThan": {"aws:TokenIssueTime": cutoff}},
        },
    }


def _refusal(settings: Settings, iam: Any, role: dict[str, Any], keys: dict[str, Any]) -> str:
    """Why this role must not be touched, or ""."""
    name = role["RoleName"]
    if str(role.get("Path", "/")).startswith(SERVICE_LINKED_PATH):
        return f"role {name} is a service-linked role: IAM does not allow revoking its sessions"
    # A session's principal id is "<RoleId>:<session name>"; another RoleId means the role
    # was deleted and re-created under the same name, and this one never had the session.
    principal = keys.get("principalId")
    role_id = principal.split(":", 1)[0] if isinstance(principal, str) and ":" in principal else ""
    if role_id and role_id != role.get("RoleId"):
        return (
            f"role {name} has id {role.get('RoleId')}, the finding's session belongs to role id "
            f"{role_id}: not the same role"
        )
    tags = _role_tags(iam, name)
    if tags.get(settings.lab_tag_key) != settings.lab_tag_value:
        return (
            f"role {name} is not tagged {settings.lab_tag_key}={settings.lab_tag_value}: "
            "not a lab role, so its sessions are left alone"
        )
    return ""


def _role_tags(iam: Any, role_name: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    kwargs: dict[str, Any] = {"RoleName": role_name}
    while True:
        page = iam.list_role_tags(**kwargs)
        tags.update({t["Key"]: t["Value"] for t in page.get("Tags", [])})
        if not page.get("IsTruncated") or not page.get("Marker"):
            return tags
        kwargs["Marker"] = page["Marker"]


def _cutoff(detail: dict[str, Any]) -> datetime:
    """The finding's latest time (updatedAt, service.eventLastSeen), or now without one.

    The stolen session was issued before it was last seen, so this cut-off denies it; the
    same finding gives the same cut-off, which keeps a redelivered event a no-op. Rounded up
    to the second (the policy's precision) and never later than now: a future cut-off would
    also deny sessions not yet issued."""
    now = datetime.now(timezone.utc)
    times = [_parse_time(detail.get("updatedAt")),
             _parse_time(_dig(detail, "service", "eventLastSeen"))]
    found = [t for t in times if t is not None]
    moment = min(max(found), now) if found else now
    return _ceil_second(moment)


def _existing_cutoff(iam: Any, role_name: str) -> datetime | None:
    """The latest aws:TokenIssueTime cut-off of the role's AWSRevokeOlderSessions, if any."""
    try:
        document = iam.get_role_policy(RoleName=role_name, PolicyName=POLICY_NAME)["PolicyDocument"]
    except ClientError as exc:
        if _code(exc) == "NoSuchEntity":
            return None
        raise
    if isinstance(document, str):  # botocore decodes it; a raw client may not
        from urllib.parse import unquote

        document = json.loads(unquote(document))
    statements = document.get("Statement") if isinstance(document, dict) else None
    statements = statements if isinstance(statements, list) else [statements]
    found = []
    for statement in statements:
        if not isinstance(statement, dict) or statement.get("Effect") != "Deny":
            continue
        condition = _get(statement.get("Condition"), "DateLessThan")
        values = _get(condition, "aws:TokenIssueTime")
        for value in values if isinstance(values, list) else [values]:
            parsed = _parse_time(value)
            if parsed is not None:
                found.append(parsed)
    return max(found) if found else None


def _message(
    event: dict[str, Any], detail: dict[str, Any], keys: dict[str, Any], result: dict[str, Any]
) -> str:
    role, cutoff = result["role"], result["cutoff"]
    region = detail.get("region") or event.get("region") or ""
    account = detail.get("accountId") or event.get("account")
    call = _dig(detail, "service", "action", "awsApiCallAction") or {}
    remote_ip = _dig(call, "remoteIpDetails", "ipAddressV4")
    instance_id = _dig(detail, "resource", "instanceDetails", "instanceId")
    profile = _dig(detail, "resource", "instanceDetails", "iamInstanceProfile", "arn")
    used = f"The role session {keys.get('accessKeyId') or '(unknown key)'} of role {role}"
    used += f", delivered to EC2 instance {instance_id}," if instance_id else ""
    used += f" was used from {remote_ip}" if remote_ip else " was used from outside AWS"
    if call.get("api"):
        used += f" to call {call['api']}"
        used += f" ({call['serviceName']})" if call.get("serviceName") else ""
    lines = [
        f"GuardDuty finding {result['finding_id']} ({FINDING_TYPE}, severity "
        f"{detail.get('severity', 'unknown')}) in account {account}, region {region}.",
        used + ".",
        "",
        f"What the automated response did at {datetime.now(timezone.utc).strftime(TIME_FORMAT)}:",
        f"It revoked the active sessions of IAM role {result.get('role_arn') or role}: the inline "
        f"policy {POLICY_NAME} now denies every action to any session of the role issued before "
        f"{cutoff} (aws:TokenIssueTime), including the stolen one. Sessions issued after that "
        "time keep the role's permissions.",
    ]
    if result.get("previous_cutoff"):
        lines.append(f"It replaced an earlier cut-off of {result['previous_cutoff']}.")
    lines += [
        "",
        "What to do next:",
        "1. Investigate: review CloudTrail for calls made with access key "
        f"{keys.get('accessKeyId') or 'of the session'}"
        + (f" and from {remote_ip}" if remote_ip else "")
        + ", and what they changed.",
        "2. The instance can still fetch fresh credentials for the role from its metadata "
        "service, so whoever took them may take new ones: "
        + (f"isolate instance {instance_id}" if instance_id else "isolate the instance")
        + ", require IMDSv2, and rebuild it from a known-good image.",
        "3. Rotate anything else the role could read (secrets, keys, parameters)"
        + (f"; the instance profile is {profile}" if profile else "")
        + ".",
        "",
        "To undo the revocation, once the instance is rebuilt and the role's credentials are "
        f"rotated, delete the inline policy {POLICY_NAME} from the role:",
        f"   aws iam delete-role-policy --role-name {role} --policy-name {POLICY_NAME}",
    ]
    return "\n".join(lines) + "\n"


def _additional_info(detail: dict[str, Any]) -> dict[str, Any]:
    """The event carries additionalInfo flat; GetFindings wraps it as {"value": json, "type"}."""
    info = _dig(detail, "service", "additionalInfo")
    if not isinstance(info, dict):
        return {}
    if isinstance(info.get("value"), str):
        try:
            inner = json.loads(info["value"])
        except ValueError:
            inner = None
        if isinstance(inner, dict):
            return {**info, **inner}
    return info


def _is_sample(detail: dict[str, Any]) -> bool:
    sample = _additional_info(detail).get("sample")
    return sample is True or (isinstance(sample, str) and sample.strip().lower() == "true")


def _parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time as GuardDuty and IAM write them ("2024-05-14T10:22:41.123Z")."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _ceil_second(moment: datetime) -> datetime:
    whole = moment.replace(microsecond=0)
    return whole + timedelta(seconds=1) if whole < moment else whole


def _result(action: str, reason: str, role: Any, finding_id: Any) -> dict[str, Any]:
    return {
        "action": action,
        "reason": reason,
        "role": role if isinstance(role, str) else None,
        "role_arn": None,
        "cutoff": None,
        "previous_cutoff": None,
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
