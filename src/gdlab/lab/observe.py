"""Evidence, read from the cloud the same way on both targets: the threat list's status,
the finding in GuardDuty and in Security Hub, the responder's log, the instance's ENIs,
the forensic group's rules and the topic's published-message count."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

from gdlab.lab.awsutil import error_code
from gdlab.lab.responder import RESULT_LOG_PREFIX, parse_result
from gdlab.lab.steps import LabContext
from gdlab.lab.steps.response import log_group_name


def threat_list_status(ctx: LabContext) -> str | None:
    res = ctx.state.live("threat-intel-set")
    detector = ctx.state.live("detector")
    if not res or not detector:
        return None
    if res.attrs.get("admin_account"):  # a GuardDuty member's list is its administrator's
        from gdlab.lab import class_admin

        administrator = class_admin.serving(ctx.state.options.get("class"))
        return administrator.list_status(ctx.cloud.region) if administrator else None
    from botocore.exceptions import ClientError

    try:
        info = ctx.cloud.client("guardduty").get_threat_intel_set(
            DetectorId=detector.id, ThreatIntelSetId=res.id
        )
    except ClientError as exc:
        if error_code(exc) in ("BadRequestException", "ResourceNotFoundException"):
            return "DELETED"
        raise
    return info.get("Status")


def threat_list_name(ctx: LabContext) -> str:
    """The name of the list that holds the lab's address: its own, or in a class with a
    GuardDuty administrator the administrator's list for the region."""
    res = ctx.state.live("threat-intel-set")
    return (res.attrs.get("list_name") if res else None) or ctx.name("threat_list")


def finding_subject(ctx: LabContext) -> tuple[str, str | None]:
    """(FindingCriteria field, this lab's value) naming the lab's resource in its findings:
    the scenario's `finding_subject(ctx)` if scenario.py has one, else the compromised
    instance."""
    custom = getattr(ctx.scenario.module(), "finding_subject", None)
    if callable(custom):
        return custom(ctx)
    instance = ctx.state.live("instance-compromised")
    return "resource.instanceDetails.instanceId", instance.id if instance else None


def field_of(finding: dict[str, Any], field: str) -> Any:
    """A FindingCriteria field ('resource.accessKeyDetails.accessKeyId') of a finding as
    GetFindings returns it (PascalCase)."""
    value: Any = finding
    for part in field.split("."):
        if isinstance(value, list):  # a list on the way (S3BucketDetails): its first item
            value = value[0] if value else None
        value = value.get(part[:1].upper() + part[1:]) if isinstance(value, dict) else None
    return value


def guardduty_finding(ctx: LabContext, finding_type: str | None = None) -> dict[str, Any] | None:
    """The scenario's finding (its first type, or `finding_type`) for the lab's resource,
    from the malicious EIP when several match."""
    detector = ctx.state.live("detector")
    field, value = finding_subject(ctx)
    if not detector or not value:
        return None
    guardduty = ctx.cloud.client("guardduty")
    ids = guardduty.list_findings(
        DetectorId=detector.id,
        FindingCriteria={
            "Criterion": {
                "type": {"Eq": [finding_type or ctx.scenario.finding_type]},
                field: {"Eq": [value]},
            }
        },
        MaxResults=50,
    )["FindingIds"]
    if not ids:
        return None
    findings = guardduty.get_findings(DetectorId=detector.id, FindingIds=ids)["Findings"]
    eip = ctx.attr("eip", "public_ip")
    matching = [f for f in findings if remote_ip(f) == eip] or findings
    return max(matching, key=lambda f: f.get("UpdatedAt", ""))


# The action kinds of a finding that carry a remote address (GuardDuty's Action object):
# traffic (NETWORK_CONNECTION) and API calls (AWS_API_CALL).
_REMOTE_ACTIONS = ("NetworkConnectionAction", "AwsApiCallAction")


def remote_ip(finding: dict[str, Any]) -> str | None:
    action = finding.get("Service", {}).get("Action", {}) or {}
    for kind in _REMOTE_ACTIONS:
        details = (action.get(kind) or {}).get("RemoteIpDetails") or {}
        if details.get("IpAddressV4"):
            return details["IpAddressV4"]
    return None


def threat_list_names(finding: dict[str, Any]) -> list[str]:
    evidence = finding.get("Service", {}).get("Evidence", {}) or {}
    names = [d.get("ThreatListName") for d in evidence.get("ThreatIntelligenceDetails", [])]
    return [n for n in names if n]


def securityhub_finding(ctx: LabContext, finding: dict[str, Any]) -> dict[str, Any] | None:
    """The same finding as Security Hub imported it (ASFF), by its GuardDuty ARN."""
    from botocore.exceptions import ClientError

    hub = ctx.cloud.client("securityhub")
    product = f"arn:{ctx.cloud.partition()}:securityhub:{ctx.cloud.region}::product/aws/guardduty"
    try:
        found = hub.get_findings(
            Filters={
                "Id": [{"Value": finding["Arn"], "Comparison": "EQUALS"}],
                "ProductArn": [{"Value": product, "Comparison": "EQUALS"}],
            },
            MaxResults=10,
        )["Findings"]
    except ClientError as exc:
        if error_code(exc) == "InvalidAccessException":  # Security Hub not enabled
            return None
        raise
    return found[0] if found else None


def responder_log(ctx: LabContext) -> dict[str, Any]:
    """The responder's runs as its log group tells them: results, errors, invocations."""
    from botocore.exceptions import ClientError

    logs = ctx.cloud.client("logs")
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    reports = 0
    kwargs: dict[str, Any] = {"logGroupName": log_group_name(ctx)}
    try:
        while True:
            page = logs.filter_log_events(**kwargs)
            for event in page.get("events", []):
                message = event["message"]
                if RESULT_LOG_PREFIX in message:
                    result = parse_result(message)
                    if result is None:
                        errors.append(f"unreadable result line: {message.strip()[:160]}")
                    else:
                        results.append(result)
                elif message.startswith("REPORT RequestId"):
                    reports += 1
                elif "[ERROR]" in message or "Task timed out" in message:
                    errors.append(message.strip()[:300])
            token = page.get("nextToken")
            if not token or token == kwargs.get("nextToken"):
                break
            kwargs["nextToken"] = token
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
    return {"results": results, "errors": errors, "invocations": reports}


def eni_groups(ctx: LabContext) -> dict[str, list[str]]:
    """Every ENI of the compromised instance and its security groups."""
    instance = ctx.state.live("instance-compromised")
    if not instance:
        return {}
    enis = ctx.cloud.client("ec2").describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance.id]}]
    )["NetworkInterfaces"]
    return {e["NetworkInterfaceId"]: sorted(g["GroupId"] for g in e["Groups"]) for e in enis}


def is_isolated(ctx: LabContext, groups: dict[str, list[str]]) -> bool:
    forensic = ctx.state.live("sg-forensic")
    return (
        bool(groups) and forensic is not None and all(g == [forensic.id] for g in groups.values())
    )


def forensic_rules(ctx: LabContext) -> tuple[int, int] | None:
    forensic = ctx.state.live("sg-forensic")
    if not forensic:
        return None
    from botocore.exceptions import ClientError

    try:
        group = ctx.cloud.client("ec2").describe_security_groups(GroupIds=[forensic.id])[
            "SecurityGroups"
        ][0]
    except ClientError as exc:
        if error_code(exc) == "InvalidGroup.NotFound":
            return None
        raise
    return len(group.get("IpPermissions", [])), len(group.get("IpPermissionsEgress", []))


def published_count(ctx: LabContext) -> int:
    """Messages published to the lab's topic since the lab began (CloudWatch AWS/SNS)."""
    start = datetime.fromisoformat(ctx.state.created_at.replace("Z", "+00:00"))
    start -= timedelta(minutes=5)
    end = datetime.now(timezone.utc) + timedelta(minutes=1)
    # At most 1,440 datapoints per request: a lab kept for days needs longer periods.
    minutes = math.ceil((end - start).total_seconds() / 60 / 1440)
    stats = ctx.cloud.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/SNS",
        MetricName="NumberOfMessagesPublished",
        Dimensions=[{"Name": "TopicName", "Value": ctx.name("topic")}],
        StartTime=start,
        EndTime=end,
        Period=60 * max(1, minutes),
        Statistics=["Sum"],
    )
    return int(sum(point.get("Sum", 0) for point in stats.get("Datapoints", [])))
