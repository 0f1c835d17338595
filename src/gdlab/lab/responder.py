"""The responder Lambda as deployable data: its zip, its role, its environment.

The handler itself lives with the scenario (scenarios/<name>/responder/handler.py) because it
is the scenario's code, run by Lambda; this module packages it and states what it may do.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from gdlab.scenario import Scenario, ScenarioError

RUNTIME = "python3.12"
HANDLER = "handler.lambda_handler"
handler_name = HANDLER
# Per ENI two ModifyNetworkInterfaceAttribute calls, plus describes, tags and one publish,
# each retried by botocore's standard mode: seconds normally, a minute leaves room for throttling.
TIMEOUT_SECONDS = 60
MEMORY_MB = 128
# The handler logs one line with this prefix and its result as JSON; verify looks for it.
RESULT_LOG_PREFIX = "gdlab-responder result"

# Zip entries get a fixed time and mode so the same source gives the same bytes and CodeSha256.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_ZIP_MODE = 0o100644  # regular file, rw-r--r--: Lambda only needs to read the code
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
_SKIP_SUFFIXES = (".pyc", ".pyo")


def _source_files(root: Path) -> list[Path]:
    files = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part in _SKIP_DIRS or part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and not path.name.endswith(_SKIP_SUFFIXES):
            files.append(path)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def build_zip(scenario: Scenario) -> bytes:
    """The deployment package of the scenario's responder/ directory, byte-for-byte stable."""
    root = scenario.responder_dir
    files = _source_files(root) if root.is_dir() else []
    if not any(p.relative_to(root).as_posix() == "handler.py" for p in files):
        raise ScenarioError(f"scenario file missing: {root / 'handler.py'}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so external_attr carries the mode
            info.external_attr = _ZIP_MODE << 16
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    return buffer.getvalue()


def code_sha256(zip_bytes: bytes) -> str:
    """Base64 of the SHA-256, as Lambda reports CodeSha256."""
    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode("ascii")


def role_trust_policy(account: str) -> dict[str, Any]:
    """Only Lambda may assume the role, and only for functions in this account."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": account}},
            }
        ],
    }


def role_policy(
    *,
    partition: str,
    region: str,
    account: str,
    lab_tag_key: str,
    lab_tag_value: str,
    forensic_group_id: str,
    untracking_group_id: str | None,
    topic_arn: str,
    log_group_name: str,
) -> dict[str, Any]:
    """Least privilege for the handler: read what it must, change only lab-tagged resources.

    ModifyNetworkInterfaceAttribute authorizes the network interface (required) and, when
    Groups is given, each security group named in it; the Service Authorization Reference
    also lists the instance as an optional resource. So the grant is: lab-tagged interfaces
    and lab-tagged instances, plus exactly the forensic and untracking groups, which gdlab
    creates with the lab tag as well — nothing outside the lab can match.
    """
    ec2 = f"arn:{partition}:ec2:{region}:{account}"
    lab_tag = {f"aws:ResourceTag/{lab_tag_key}": lab_tag_value}
    groups = [f"{ec2}:security-group/{forensic_group_id}"]
    if untracking_group_id:
        groups.append(f"{ec2}:security-group/{untracking_group_id}")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                # Describe* actions support no resource-level permissions: "*" is the only form.
                "Sid": "ReadInstancesAndInterfaces",
                "Effect": "Allow",
                "Action": [
                    "ec2:DescribeInstances",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeSecurityGroups",
                ],
                "Resource": "*",
            },
            {
                # Both resource types in one statement: the interface must carry the lab tag,
                # and the groups it may receive are the two containment groups (tagged too).
                "Sid": "MoveLabInterfacesToContainmentGroups",
                "Effect": "Allow",
                "Action": "ec2:ModifyNetworkInterfaceAttribute",
                "Resource": [f"{ec2}:network-interface/*", f"{ec2}:instance/*", *groups],
                "Condition": {"StringEquals": lab_tag},
            },
            {
                # Only the responder's own record keys, so it cannot retag (or untag) the lab.
                "Sid": "RecordIsolationOnLabInstances",
                "Effect": "Allow",
                "Action": "ec2:CreateTags",
                "Resource": f"{ec2}:instance/*",
                "Condition": {
                    "StringEquals": lab_tag,
                    "ForAllValues:StringLike": {
                        "aws:TagKeys": [
                            "gdlab:isolated-at",
                            "gdlab:finding-id",
                            "gdlab:original-groups:*",
                        ]
                    },
                },
            },
            *report_statements(partition=partition, region=region, account=account,
                               topic_arn=topic_arn, log_group_name=log_group_name),
        ],
    }


def report_statements(*, partition: str, region: str, account: str, topic_arn: str,
                      log_group_name: str) -> list[dict[str, Any]]:
    """What every responder may do to report: publish to the lab's topic, write its logs."""
    return [
        {
            "Sid": "ReportToTheLabTopic",
            "Effect": "Allow",
            "Action": "sns:Publish",
            "Resource": topic_arn,
        },
        {
            # gdlab creates the log group itself, so no logs:CreateLogGroup.
            "Sid": "WriteOwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"arn:{partition}:logs:{region}:{account}:log-group:{log_group_name}:*",
        },
    ]


def environment(
    *,
    lab_tag_key: str,
    lab_tag_value: str,
    forensic_group_id: str,
    untracking_group_id: str | None,
    topic_arn: str,
    log_level: str = "INFO",
) -> dict[str, str]:
    """The function's environment variables (the `Variables` of CreateFunction's Environment)."""
    return {
        "LAB_TAG_KEY": lab_tag_key,
        "LAB_TAG_VALUE": lab_tag_value,
        "FORENSIC_GROUP_ID": forensic_group_id,
        # Empty means: go straight to the forensic group.
        "UNTRACKING_GROUP_ID": untracking_group_id or "",
        "TOPIC_ARN": topic_arn,
        "LOG_LEVEL": log_level,
    }


def parse_result(message: str) -> dict[str, Any] | None:
    """The handler's result from one log message, or None if the line is not a result.

    Lambda prefixes each line with level, time and request id, so the prefix is searched."""
    at = message.find(RESULT_LOG_PREFIX)
    if at < 0:
        return None
    try:
        result = json.loads(message[at + len(RESULT_LOG_PREFIX) :].strip())
    except ValueError:
        return None
    return result if isinstance(result, dict) else None
