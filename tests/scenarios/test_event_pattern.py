"""The rule's event pattern against events shaped like AWS's GuardDuty finding event."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from moto.events.models import EventPattern

from gdlab import scenario as scenarios

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "guardduty-finding-event.json"


@pytest.fixture
def pattern() -> EventPattern:
    path = scenarios.load("compromised-ec2").path / "event-pattern.json"
    return EventPattern.load(path.read_text())


@pytest.fixture
def event() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


def with_type(event: dict[str, Any], finding_type: str) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    changed["detail"]["type"] = finding_type
    return changed


def test_the_pattern_is_the_workshop_rule_plus_the_detail_type() -> None:
    assert scenarios.load("compromised-ec2").event_pattern == {
        "source": ["aws.guardduty"],
        "detail-type": ["GuardDuty Finding"],
        "detail": {"type": ["UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"]},
    }


def test_matches_the_finding(pattern: EventPattern, event: dict[str, Any]) -> None:
    assert pattern.matches_event(event)


@pytest.mark.parametrize(
    "finding_type",
    [
        "Recon:EC2/PortProbeUnprotectedPort",
        "UnauthorizedAccess:EC2/MaliciousIPCaller",
        "Backdoor:EC2/C&CActivity.B",
        "Backdoor:EC2/C&CActivity.B!DNS",
        "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom",
        "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom.Extra",
        # Matching is case-sensitive on AWS.
        "unauthorizedaccess:ec2/maliciousipcaller.custom",
    ],
)
def test_ignores_other_finding_types(
    pattern: EventPattern, event: dict[str, Any], finding_type: str
) -> None:
    assert not pattern.matches_event(with_type(event, finding_type))


@pytest.mark.parametrize(
    "change",
    [
        {"source": "aws.securityhub"},
        {"source": "gdlab.test"},
        {"detail-type": "AWS API Call via CloudTrail"},
        {"detail-type": "GuardDuty Runtime Protection Unhealthy"},
    ],
)
def test_ignores_other_sources(
    pattern: EventPattern, event: dict[str, Any], change: dict[str, str]
) -> None:
    event.update(change)

    assert not pattern.matches_event(event)


def test_ignores_an_event_without_a_type(pattern: EventPattern, event: dict[str, Any]) -> None:
    del event["detail"]["type"]

    assert not pattern.matches_event(event)


def test_moto_matcher_follows_aws_rules_the_pattern_relies_on(event: dict[str, Any]) -> None:
    """AWS: values in a pattern array match exactly (any of them), fields the pattern does not
    name are ignored, and nested objects match field by field."""
    assert EventPattern.load(json.dumps({"source": ["x", "aws.guardduty"]})).matches_event(event)
    assert not EventPattern.load(json.dumps({"source": ["aws.guard"]})).matches_event(event)
    nested = {"detail": {"resource": {"resourceType": ["Instance"]}}}
    assert EventPattern.load(json.dumps(nested)).matches_event(event)
    missing = {"detail": {"resource": {"nothing": ["Instance"]}}}
    assert not EventPattern.load(json.dumps(missing)).matches_event(event)
