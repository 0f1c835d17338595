"""gdlab responder: isolates the EC2 instance named in a GuardDuty finding.

Runs as a Lambda (python3.12, stdlib + boto3 only) behind the EventBridge rule for
UnauthorizedAccess:EC2/MaliciousIPCaller.Custom. It acts only on instances carrying the lab
tag, moves every network interface through an allow-all "untracking" group to the forensic
group (AWS's containment guidance: a plain group swap leaves tracked connections open),
records what it changed as tags on the instance, and e-mails a report through SNS.

Environment: LAB_TAG_KEY, LAB_TAG_VALUE, FORENSIC_GROUP_ID, UNTRACKING_GROUP_ID (may be
empty), TOPIC_ARN, LOG_LEVEL (default INFO).
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

FINDING_TYPE = "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"
EVENT_SOURCE = "aws.guardduty"
EVENT_DETAIL_TYPE = "GuardDuty Finding"
SUBJECT = "GuardDuty Remediation"
# gdlab's verify searches the function's log group for this prefix; keep it stable.
RESULT_PREFIX = "gdlab-responder result"
TAG_ISOLATED_AT = "gdlab:isolated-at"
TAG_FINDING_ID = "gdlab:finding-id"
TAG_ORIGINAL_GROUPS = "gdlab:original-groups:"
TAG_VALUE_MAX = 256
NOT_FOUND_CODES = ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed")
GONE_STATES = ("shutting-down", "terminated")

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
    # Lambda's init phase: make the clients once, before the first event (AWS's guidance for
    # SDK clients), so an invocation pays only for its own calls.
    for _service in ("ec2", "sns"):
        _client(_service)


class Settings:
    def __init__(self) -> None:
        self.lab_tag_key = os.environ["LAB_TAG_KEY"]
        self.lab_tag_value = os.environ["LAB_TAG_VALUE"]
        self.forensic_group = os.environ["FORENSIC_GROUP_ID"]
        self.untracking_group = os.environ.get("UNTRACKING_GROUP_ID", "").strip() or None
        self.topic_arn = os.environ["TOPIC_ARN"]


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings()
    detail = event.get("detail") if isinstance(event, dict) else None
    detail = detail if isinstance(detail, dict) else {}
    finding_id = detail.get("id")
    instance_id = _dig(detail, "resource", "instanceDetails", "instanceId")
    result = _result("skipped", "", instance_id, finding_id)
    try:
        reason = _reject(event, detail, instance_id)
        if reason:
            result["reason"] = reason
        else:
            result = _respond(settings, event, detail, instance_id, finding_id)
    except Exception:
        logger.exception(
            "gdlab-responder failed for instance %s, finding %s", instance_id, finding_id
        )
        raise
    if result["action"] == "skipped":
        logger.info("nothing to do: %s", result["reason"])
    logger.info("%s %s", RESULT_PREFIX, json.dumps(result, sort_keys=True))
    return result


def _reject(event: Any, detail: dict[str, Any], instance_id: Any) -> str | None:
    """Why this event is not ours to act on, or None."""
    if not isinstance(event, dict) or event.get("source") != EVENT_SOURCE:
        return f"not a GuardDuty event (source {_get(event, 'source')!r})"
    if event.get("detail-type") != EVENT_DETAIL_TYPE:
        return f"not a GuardDuty finding (detail-type {event.get('detail-type')!r})"
    if detail.get("type") != FINDING_TYPE:
        return f"finding type {detail.get('type')!r} is not {FINDING_TYPE}"
    if _is_sample(detail):
        return "sample finding (service.additionalInfo.sample is true): its instance is fictitious"
    if not isinstance(instance_id, str) or not instance_id:
        return "the finding names no EC2 instance (resource.instanceDetails.instanceId)"
    return None


def _respond(
    settings: Settings,
    event: dict[str, Any],
    detail: dict[str, Any],
    instance_id: str,
    finding_id: str | None,
) -> dict[str, Any]:
    ec2 = _client("ec2")
    instance = _describe_instance(ec2, instance_id)
    if instance is None:
        return _result("skipped", f"instance {instance_id} does not exist", instance_id, finding_id)
    state = _dig(instance, "State", "Name")
    if state in GONE_STATES:
        return _result("skipped", f"instance {instance_id} is {state}", instance_id, finding_id)
    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
    if tags.get(settings.lab_tag_key) != settings.lab_tag_value:
        return _result(
            "skipped",
            f"instance {instance_id} is not tagged "
            f"{settings.lab_tag_key}={settings.lab_tag_value}: not a lab instance",
            instance_id,
            finding_id,
        )
    # DescribeNetworkInterfaces is the authority on each interface's groups.
    enis = ec2.describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}]
    )["NetworkInterfaces"]
    enis.sort(key=lambda e: (_dig(e, "Attachment", "DeviceIndex") or 0, e["NetworkInterfaceId"]))
    if not enis:
        return _result(
            "skipped", f"instance {instance_id} has no network interfaces", instance_id, finding_id
        )
    forensic = [settings.forensic_group]
    # Groups are a set; sorted ids keep tags and e-mails stable from one run to the next.
    current = {
        e["NetworkInterfaceId"]: sorted(g["GroupId"] for g in e.get("Groups", [])) for e in enis
    }
    if all(groups == forensic for groups in current.values()):
        result = _result("skipped", "already isolated", instance_id, finding_id)
        result["enis"] = [_eni_entry(eni_id, groups, groups) for eni_id, groups in current.items()]
        return result

    # Save the groups to restore before touching anything, so a person can always reverse it.
    ours = {settings.forensic_group, settings.untracking_group} - {None}
    before: dict[str, list[str]] = {}
    for eni_id, groups in current.items():
        recorded = _recorded_groups(tags, eni_id)
        # A retry after a partial run sees our own groups; the tag holds the real originals.
        before[eni_id] = recorded if recorded and set(groups) <= ours else groups
    _tag(
        ec2,
        instance_id,
        {TAG_FINDING_ID: str(finding_id or "unknown"), **_original_group_tags(before)},
    )

    for eni_id, groups in current.items():
        if groups == forensic:
            continue
        if settings.untracking_group and groups != [settings.untracking_group]:
            # Allow-all in and out makes the open flows untracked; the next change drops them.
            _set_groups(ec2, eni_id, [settings.untracking_group])
            _into_forensic_or_back(ec2, eni_id, forensic, before[eni_id])
        else:
            _set_groups(ec2, eni_id, forensic)

    isolated_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    _tag(ec2, instance_id, {TAG_ISOLATED_AT: isolated_at})
    result = _result(
        "isolated",
        f"instance {instance_id} isolated into {settings.forensic_group}",
        instance_id,
        finding_id,
    )
    result["enis"] = [_eni_entry(eni_id, before[eni_id], forensic) for eni_id in current]
    names = _group_names(ec2, {g for e in result["enis"] for g in e["groups_before"]} | ours)
    message = _message(settings, event, detail, instance, result, isolated_at, names)
    published = _client("sns").publish(
        TopicArn=settings.topic_arn, Subject=SUBJECT, Message=message
    )
    result["message_id"] = published.get("MessageId")
    return result


def _describe_instance(ec2: Any, instance_id: str) -> dict[str, Any] | None:
    try:
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in NOT_FOUND_CODES:
            return None
        raise
    instances = [i for r in reservations for i in r.get("Instances", [])]
    return instances[0] if instances else None


def _group_names(ec2: Any, group_ids: set[str]) -> dict[str, str]:
    """Names make the e-mail readable; without them (a group gone, no permission) ids do."""
    try:
        groups = ec2.describe_security_groups(GroupIds=sorted(group_ids))["SecurityGroups"]
    except ClientError as exc:
        logger.warning("cannot name security groups: %s", exc)
        return {}
    return {g["GroupId"]: g.get("GroupName", "") for g in groups}


def _set_groups(ec2: Any, eni_id: str, groups: list[str]) -> None:
    logger.info("network interface %s -> %s", eni_id, ",".join(groups))
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eni_id, Groups=groups)


def _into_forensic_or_back(
    ec2: Any, eni_id: str, forensic: list[str], original: list[str]
) -> None:
    """The untracking group allows everything: an interface must never be left in it. If
    the move to the forensic group fails twice, put the original groups back and raise."""
    try:
        _set_groups(ec2, eni_id, forensic)
        return
    except ClientError as exc:
        logger.warning("moving %s to the forensic group failed, retrying: %s", eni_id, exc)
    try:
        _set_groups(ec2, eni_id, forensic)
    except ClientError:
        logger.error("network interface %s: back to its original groups", eni_id)
        _set_groups(ec2, eni_id, original)
        raise


def _tag(ec2: Any, instance_id: str, tags: dict[str, str]) -> None:
    ec2.create_tags(
        Resources=[instance_id], Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())]
    )


def _original_group_tags(before: dict[str, list[str]]) -> dict[str, str]:
    """`gdlab:original-groups:<eni>` = comma-separated ids. A value is at most 256 characters,
    so a long list continues in `<key>:2`, `<key>:3`, ... (16 groups need two tags)."""
    tags: dict[str, str] = {}
    for eni_id, groups in before.items():
        chunks: list[str] = []
        for group in groups:
            if chunks and len(chunks[-1]) + 1 + len(group) <= TAG_VALUE_MAX:
                chunks[-1] += "," + group
            else:
                chunks.append(group)
        key = TAG_ORIGINAL_GROUPS + eni_id
        for n, chunk in enumerate(chunks, start=1):
            tags[key if n == 1 else f"{key}:{n}"] = chunk
    return tags


def _recorded_groups(tags: dict[str, str], eni_id: str) -> list[str]:
    key = TAG_ORIGINAL_GROUPS + eni_id
    parts, n = [], 1
    while (tags.get(key) if n == 1 else tags.get(f"{key}:{n}")) is not None:
        parts.append(tags[key] if n == 1 else tags[f"{key}:{n}"])
        n += 1
    return [g for part in parts for g in part.split(",") if g]


def _message(
    settings: Settings,
    event: dict[str, Any],
    detail: dict[str, Any],
    instance: dict[str, Any],
    result: dict[str, Any],
    isolated_at: str,
    names: dict[str, str],
) -> str:
    instance_id = result["instance_id"]
    region = detail.get("region") or event.get("region") or ""
    remote_ip = _dig(
        detail, "service", "action", "networkConnectionAction", "remoteIpDetails", "ipAddressV4"
    )
    threat_lists = _threat_lists(detail)
    profile = _dig(instance, "IamInstanceProfile", "Arn") or _dig(
        detail, "resource", "instanceDetails", "iamInstanceProfile", "arn"
    )
    region_flag = f" --region {region}" if region else ""

    def named(groups: list[str]) -> str:
        return ", ".join(f"{g} ({names[g]})" if names.get(g) else g for g in groups) or "(none)"

    talked = f"EC2 instance {instance_id} communicated with "
    talked += f"{remote_ip}" if remote_ip else "an IP address"
    if threat_lists:
        talked += f", which is on the GuardDuty threat list {', '.join(threat_lists)}."
    else:
        talked += ", which is on a GuardDuty threat list."
    account = detail.get("accountId") or event.get("account")
    lines = [
        f"GuardDuty finding {result['finding_id']} ({FINDING_TYPE}, severity "
        f"{detail.get('severity', 'unknown')}) in account {account}, region {region}.",
        talked,
        "",
        f"What the automated response did at {isolated_at}:",
        f"It isolated the instance: every network interface now has only the forensic security "
        f"group {settings.forensic_group}, which has no rules, so the instance can neither send "
        "nor receive traffic.",
    ]
    if settings.untracking_group:
        lines.append(
            f"Each interface passed first through the allow-all group {settings.untracking_group} "
            "so that connections already open became untracked and were cut by the final change."
        )
    lines.append("Security groups per network interface, before -> now:")
    for eni in result["enis"]:
        lines.append(
            f"  {eni['id']}: {named(eni['groups_before'])} -> {named(eni['groups_after'])}"
        )
    lines += [
        "",
        "What to do next:",
        "1. Preserve evidence: snapshot the instance's EBS volumes before anything else changes:",
        f"   aws ec2 create-snapshots{region_flag} --instance-specification "
        f"InstanceId={instance_id} --copy-tags-from-source volume",
        "2. Investigate: review CloudTrail for API calls made with the instance's role "
        "credentials, and the VPC flow logs of its interfaces"
        + (f" for traffic with {remote_ip}" if remote_ip else "")
        + "; look for other instances that talked to the same address.",
        "3. Rotate the credentials the instance had: revoke the active sessions of "
        + (f"the role in instance profile {profile}" if profile else "its instance role")
        + ", and replace any keys, passwords or tokens stored on its disks or in its user data.",
        "4. Terminate the instance, or rebuild it from a known-good image; do not return it to "
        "service as it is.",
        "",
        "To reverse the isolation (only once the investigation is over), give each interface its "
        f"original groups back; they are recorded as tags {TAG_ORIGINAL_GROUPS}<interface> on "
        f"{instance_id}:",
    ]
    for eni in result["enis"]:
        groups = " ".join(eni["groups_before"])
        lines.append(
            f"   aws ec2 modify-network-interface-attribute{region_flag} "
            f"--network-interface-id {eni['id']} --groups {groups}"
        )
    lines.append(
        f"The tags {TAG_ISOLATED_AT} and {TAG_FINDING_ID} on the instance record when "
        "and why it was isolated."
    )
    return "\n".join(lines) + "\n"


def _threat_lists(detail: dict[str, Any]) -> list[str]:
    names: list[str] = []
    info = _additional_info(detail)
    if isinstance(info.get("threatListName"), str):
        names.append(info["threatListName"])
    for item in _dig(detail, "service", "evidence", "threatIntelligenceDetails") or []:
        name = item.get("threatListName") if isinstance(item, dict) else None
        if isinstance(name, str) and name not in names:
            names.append(name)
    return names


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


def _result(action: str, reason: str, instance_id: Any, finding_id: Any) -> dict[str, Any]:
    return {
        "action": action,
        "reason": reason,
        "instance_id": instance_id if isinstance(instance_id, str) else None,
        "finding_id": finding_id if isinstance(finding_id, str) else None,
        "enis": [],
        "message_id": None,
    }


def _eni_entry(eni_id: str, before: list[str], after: list[str]) -> dict[str, Any]:
    return {"id": eni_id, "groups_before": list(before), "groups_after": list(after)}


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None
