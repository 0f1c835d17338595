"""The responder as deployable data: a stable zip, a least-privilege role, its environment."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
from parliament import analyze_policy_string

from gdlab import scenario as scenarios
from gdlab.lab import responder
from gdlab.scenario import ScenarioError

ACCOUNT = "123456789012"
FORENSIC = "sg-0123456789abcdef0"
UNTRACKING = "sg-0fedcba9876543210"
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:GuardDuty-Example-gd-1a2b3c"
LOG_GROUP = "/aws/lambda/GuardDuty-Example-Remediation-EC2MaliciousIPCaller-gd-1a2b3c"
# Everything the handler calls, and nothing else.
ALLOWED_ACTIONS = {
    "ec2:DescribeInstances",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:ModifyNetworkInterfaceAttribute",
    "ec2:CreateTags",
    "sns:Publish",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
}
READ_ONLY = {"ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSecurityGroups"}


def policy(untracking: str | None = UNTRACKING, partition: str = "aws") -> dict[str, Any]:
    return responder.role_policy(
        partition=partition,
        region="us-east-1",
        account=ACCOUNT,
        lab_tag_key="gdlab:lab",
        lab_tag_value="gd-1a2b3c",
        forensic_group_id=FORENSIC,
        untracking_group_id=untracking,
        topic_arn=TOPIC,
        log_group_name=LOG_GROUP,
    )


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def grants(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """action -> the statements that allow it."""
    found: dict[str, list[dict[str, Any]]] = {}
    for statement in doc["Statement"]:
        for action in as_list(statement["Action"]):
            found.setdefault(action, []).append(statement)
    return found


# --- the zip -----------------------------------------------------------------------------


@pytest.fixture
def scenario_copy(tmp_path: Path) -> scenarios.Scenario:
    """The real scenario in a scratch folder, so a test can litter its responder/ dir."""
    real = scenarios.load("compromised-ec2")
    shutil.copytree(real.path, tmp_path / real.name)
    return dataclasses.replace(real, path=tmp_path / real.name)


def test_zip_is_deterministic() -> None:
    scenario = scenarios.load("compromised-ec2")

    first, second = responder.build_zip(scenario), responder.build_zip(scenario)

    assert first == second
    assert responder.code_sha256(first) == responder.code_sha256(second)


def test_zip_holds_the_handler_at_its_root() -> None:
    scenario = scenarios.load("compromised-ec2")
    archive = zipfile.ZipFile(io.BytesIO(responder.build_zip(scenario)))

    assert archive.namelist() == ["handler.py"]
    assert archive.read("handler.py") == (scenario.responder_dir / "handler.py").read_bytes()
    module, function = responder.HANDLER.split(".")
    assert f"{module}.py" in archive.namelist()
    assert f"def {function}(" in archive.read(f"{module}.py").decode()
    assert responder.handler_name == responder.HANDLER == "handler.lambda_handler"
    assert responder.RUNTIME == "python3.12"


def test_zip_ignores_caches_and_fixes_times_and_modes(scenario_copy: scenarios.Scenario) -> None:
    root = scenario_copy.responder_dir
    clean = responder.build_zip(scenario_copy)
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "handler.cpython-312.pyc").write_bytes(b"\x00cache")
    (root / "stale.pyc").write_bytes(b"\x00")
    (root / ".DS_Store").write_bytes(b"\x00")
    (root / "lib").mkdir()
    (root / "lib" / "helper.py").write_text("X = 1\n")
    (root / "handler.py").touch()  # a new mtime must not change the bytes
    (root / "lib" / "helper.py").chmod(0o700)

    archive = zipfile.ZipFile(io.BytesIO(responder.build_zip(scenario_copy)))

    assert archive.namelist() == ["handler.py", "lib/helper.py"]
    for info in archive.infolist():
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.external_attr >> 16 == 0o100644
        assert info.compress_type == zipfile.ZIP_DEFLATED
    (root / "lib" / "helper.py").unlink()
    assert responder.build_zip(scenario_copy) == clean


def test_zip_without_a_handler_is_an_error(scenario_copy: scenarios.Scenario) -> None:
    (scenario_copy.responder_dir / "handler.py").unlink()

    with pytest.raises(ScenarioError, match="handler.py"):
        responder.build_zip(scenario_copy)


def test_code_sha256_is_lambdas_format() -> None:
    data = responder.build_zip(scenarios.load("compromised-ec2"))

    digest = responder.code_sha256(data)

    assert base64.b64decode(digest) == hashlib.sha256(data).digest()
    assert len(digest) == 44 and digest.endswith("=")


# --- the role ----------------------------------------------------------------------------


@pytest.mark.parametrize("untracking", [UNTRACKING, None])
def test_policy_passes_parliament(untracking: str | None) -> None:
    analyzed = analyze_policy_string(
        json.dumps(policy(untracking)), include_community_auditors=True
    )

    assert [(f.issue, f.detail) for f in analyzed.findings] == []


def test_policy_grants_only_what_the_handler_calls() -> None:
    doc = policy()

    assert set(grants(doc)) == ALLOWED_ACTIONS
    for statement in doc["Statement"]:
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement and "NotResource" not in statement
        for action in as_list(statement["Action"]):
            assert "*" not in action
            assert not action.startswith(("iam:", "sts:"))


def test_only_describe_actions_run_on_every_resource() -> None:
    for action, statements in grants(policy()).items():
        resources = [r for s in statements for r in as_list(s["Resource"])]
        if action in READ_ONLY:
            assert resources == ["*"]
        else:
            assert "*" not in resources, action


def test_interfaces_change_only_on_lab_resources_and_only_to_containment_groups() -> None:
    [statement] = grants(policy())["ec2:ModifyNetworkInterfaceAttribute"]

    # The instance is an optional resource type of the action: granted, lab-tagged only.
    assert statement["Resource"] == [
        "arn:aws:ec2:us-east-1:123456789012:network-interface/*",
        "arn:aws:ec2:us-east-1:123456789012:instance/*",
        f"arn:aws:ec2:us-east-1:123456789012:security-group/{FORENSIC}",
        f"arn:aws:ec2:us-east-1:123456789012:security-group/{UNTRACKING}",
    ]
    assert statement["Condition"] == {"StringEquals": {"aws:ResourceTag/gdlab:lab": "gd-1a2b3c"}}
    [without] = grants(policy(untracking=None))["ec2:ModifyNetworkInterfaceAttribute"]
    assert without["Resource"] == [
        "arn:aws:ec2:us-east-1:123456789012:network-interface/*",
        "arn:aws:ec2:us-east-1:123456789012:instance/*",
        f"arn:aws:ec2:us-east-1:123456789012:security-group/{FORENSIC}",
    ]


def test_tags_only_lab_instances_and_only_its_own_keys() -> None:
    [statement] = grants(policy())["ec2:CreateTags"]

    assert statement["Resource"] == "arn:aws:ec2:us-east-1:123456789012:instance/*"
    assert statement["Condition"]["StringEquals"] == {"aws:ResourceTag/gdlab:lab": "gd-1a2b3c"}
    assert statement["Condition"]["ForAllValues:StringLike"] == {
        "aws:TagKeys": ["gdlab:isolated-at", "gdlab:finding-id", "gdlab:original-groups:*"]
    }


def test_publishes_to_one_topic_and_logs_to_its_own_group() -> None:
    found = grants(policy(partition="aws-cn"))

    assert [s["Resource"] for s in found["sns:Publish"]] == [TOPIC]
    log_arn = f"arn:aws-cn:logs:us-east-1:{ACCOUNT}:log-group:{LOG_GROUP}:*"
    assert [s["Resource"] for s in found["logs:PutLogEvents"]] == [log_arn]
    assert [s["Resource"] for s in found["logs:CreateLogStream"]] == [log_arn]
    assert "logs:CreateLogGroup" not in found


def test_only_lambda_of_this_account_assumes_the_role() -> None:
    assert responder.role_trust_policy(ACCOUNT) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
            }
        ],
    }


# --- the function's settings -------------------------------------------------------------


def test_environment() -> None:
    env = responder.environment(
        lab_tag_key="gdlab:lab",
        lab_tag_value="gd-1a2b3c",
        forensic_group_id=FORENSIC,
        untracking_group_id=None,
        topic_arn=TOPIC,
    )

    assert env == {
        "LAB_TAG_KEY": "gdlab:lab",
        "LAB_TAG_VALUE": "gd-1a2b3c",
        "FORENSIC_GROUP_ID": FORENSIC,
        "UNTRACKING_GROUP_ID": "",
        "TOPIC_ARN": TOPIC,
        "LOG_LEVEL": "INFO",
    }
    assert all(isinstance(v, str) for v in env.values())


def test_limits_are_within_lambdas() -> None:
    assert 3 <= responder.TIMEOUT_SECONDS <= 900
    assert 128 <= responder.MEMORY_MB <= 10240


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('gdlab-responder result {"action": "isolated"}', {"action": "isolated"}),
        (
            '[INFO]\t2024-05-14T10:22:43.120Z\t8f5b\tgdlab-responder result {"action": "skipped"}',
            {"action": "skipped"},
        ),
        ("START RequestId: 8f5b Version: $LATEST", None),
        ("gdlab-responder result not json", None),
        ('gdlab-responder result ["a list"]', None),
    ],
)
def test_parse_result(line: str, expected: dict[str, Any] | None) -> None:
    assert responder.parse_result(line) == expected


def test_handler_and_module_share_the_result_prefix() -> None:
    source = (scenarios.load("compromised-ec2").responder_dir / "handler.py").read_text()

    assert f'RESULT_PREFIX = "{responder.RESULT_LOG_PREFIX}"' in source


def test_handler_needs_only_what_the_lambda_runtime_has() -> None:
    import ast
    import sys

    source = (scenarios.load("compromised-ec2").responder_dir / "handler.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])

    assert imported - set(sys.stdlib_module_names) == {"boto3", "botocore"}
