"""The first e-mail: the rule's SNS target Input Transformer, rendered as EventBridge does."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from gdlab import scenario as scenarios

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "guardduty-finding-event.json"
CONSOLE = (
    "https://us-east-1.console.aws.amazon.com/guardduty/home?region=us-east-1"
    "#/findings?macros=current&fId=16afba5c5c43e07c9e3e5e2e544e95df"
)
# What an SNS e-mail subscriber reads for the documented-shape event. AWS keeps the quotes of a
# string template ("instance <instance> is in <state>" -> "instance i-0123456789 is in RUNNING").
EXPECTED_EMAIL = "\n".join(
    [
        '"GuardDuty finding 16afba5c5c43e07c9e3e5e2e544e95df"',
        '"EC2 instance i-05746eb48123455e0 in us-east-1 may be compromised and should be '
        'investigated."',
        '"It communicated with 198.51.100.77, an IP address on your GuardDuty threat list '
        '(severity 5)."',
        '"The automated response isolates the instance; a second e-mail, GuardDuty Remediation, '
        'reports what it changed."',
        f'"Finding: {CONSOLE}"',
    ]
)
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")


def aws_text_render(template: str, paths_map: dict[str, str], event: dict[str, Any]) -> str:
    """EventBridge for a string (non-JSON) template, per the user guide: each <name> becomes the
    bare value at its path (strings unescaped, numbers as JSON); a path that does not resolve
    creates no variable, so it renders as nothing; the rest of the template is kept as is."""

    def value(path: str) -> Any:
        node: Any = event
        for key in path.removeprefix("$.").split("."):
            if not isinstance(node, dict) or key not in node:
                return ""
            node = node[key]
        return node if isinstance(node, str) else json.dumps(node)

    values = {name: value(path) for name, path in paths_map.items()}
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


@pytest.fixture
def notification() -> dict[str, Any]:
    return scenarios.load("compromised-ec2").notification


@pytest.fixture
def event() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


def test_the_email_reads_as_expected(notification: dict[str, Any], event: dict[str, Any]) -> None:
    text = aws_text_render(notification["InputTemplate"], notification["InputPathsMap"], event)

    assert text == EXPECTED_EMAIL


def test_gdlab_local_renderer_agrees(notification: dict[str, Any], event: dict[str, Any]) -> None:
    transform = pytest.importorskip("gdlab.local.transform")

    text = transform.render(notification["InputTemplate"], notification["InputPathsMap"], event)

    assert text == EXPECTED_EMAIL


def test_it_carries_what_the_workshop_email_carried(notification: dict[str, Any]) -> None:
    paths = notification["InputPathsMap"]
    assert paths == {
        "gdid": "$.detail.id",
        "instanceid": "$.detail.resource.instanceDetails.instanceId",
        "region": "$.detail.region",
        "severity": "$.detail.severity",
        "remoteip": "$.detail.service.action.networkConnectionAction.remoteIpDetails.ipAddressV4",
    }
    template = notification["InputTemplate"]
    assert "may be compromised and should be investigated" in template
    assert (
        "https://<region>.console.aws.amazon.com/guardduty/home?region=<region>"
        "#/findings?macros=current&fId=<gdid>"
    ) in template


def test_template_follows_eventbridge_rules(
    notification: dict[str, Any], event: dict[str, Any]
) -> None:
    template, paths = notification["InputTemplate"], notification["InputPathsMap"]
    # "For Strings, quotes are required": a multi-line text is one quoted string per line,
    # as the GuardDuty user guide's own e-mail template is written.
    for line in template.split("\n"):
        assert line.startswith('"') and line.endswith('"'), line
        assert '"' not in line[1:-1], f"an inner quote would need escaping: {line}"
    assert not template.lstrip().startswith(("{", "[")), "a JSON template would be minified"
    assert len(template) <= 8192
    used = set(_PLACEHOLDER.findall(template))
    assert used == set(paths), "every variable used, none undefined"
    for name, path in paths.items():
        assert re.fullmatch(r"[A-Za-z0-9_\-]+", name) and not name.lower().startswith("aws.")
        # Dot notation only, and every path resolves in the documented event shape.
        assert re.fullmatch(r"\$(\.[A-Za-z0-9_\-]+)+", path), path
        node: Any = event
        for key in path[2:].split("."):
            node = node[key]
        assert isinstance(node, (str, int, float)), f"{name} must be a scalar"


def test_a_missing_remote_ip_renders_as_nothing(
    notification: dict[str, Any], event: dict[str, Any]
) -> None:
    del event["detail"]["service"]["action"]["networkConnectionAction"]["remoteIpDetails"]

    text = aws_text_render(notification["InputTemplate"], notification["InputPathsMap"], event)

    assert '"It communicated with , an IP address' in text
    assert CONSOLE in text


def test_moto_template_parser_does_not_follow_aws_here(
    notification: dict[str, Any], event: dict[str, Any]
) -> None:
    """Why gdlab has its own renderer: moto json-parses the rendered template, which a
    multi-line string template (valid for AWS) is not."""
    from moto.events.utils import EventTemplateParser

    event["ingestion-time"] = event["time"]
    with pytest.raises(ValueError):
        EventTemplateParser.parse(
            notification["InputTemplate"], notification["InputPathsMap"], event
        )
