"""The Input Transformer renderer against AWS's documented examples and the scenario's
own notification template."""

import json
from pathlib import Path

import pytest

from gdlab.local.transform import PathError, extract, render

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "compromised-ec2"

# The example event of AWS's "input transformation" guide.
EC2_EVENT = {
    "version": "0",
    "id": "7bf73129-1428-4cd3-a780-95db273d1602",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "123456789012",
    "time": "2015-11-11T21:29:54Z",
    "region": "us-east-1",
    "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],
    "detail": {"instance-id": "i-0123456789", "state": "RUNNING"},
}
PATHS = {"timestamp": "$.time", "instance": "$.detail.instance-id", "state": "$.detail.state"}


def test_simple_string_keeps_its_quotes():
    out = render('"instance <instance> is in <state>"', PATHS, EC2_EVENT)
    assert out == '"instance i-0123456789 is in RUNNING"'


def test_plain_text_template():
    assert render("<instance> is in state <state>", PATHS, EC2_EVENT) == (
        "i-0123456789 is in state RUNNING"
    )


def test_simple_json_quotes_string_values_and_minifies():
    out = render('{\n  "instance" : <instance>,\n  "state": <state>\n}', PATHS, EC2_EVENT)
    assert out == '{"instance":"i-0123456789","state":"RUNNING"}'


def test_json_with_strings_and_variables():
    template = (
        '{"instance" : <instance>, "state": "<state>", '
        '"instanceStatus": "instance \\"<instance>\\" is in <state>"}'
    )
    assert json.loads(render(template, PATHS, EC2_EVENT)) == {
        "instance": "i-0123456789",
        "state": "RUNNING",
        "instanceStatus": 'instance "i-0123456789" is in RUNNING',
    }


def test_json_mix_of_variables_and_static_information():
    out = render('{"instance": <instance>, "state": [9, <state>, true], "Transformed": "Yes"}',
                 PATHS, EC2_EVENT)
    assert json.loads(out) == {
        "instance": "i-0123456789",
        "state": [9, "RUNNING", True],
        "Transformed": "Yes",
    }


def test_reserved_variables():
    template = (
        '{"ruleArn": <aws.events.rule-arn>, "ruleName": <aws.events.rule-name>, '
        '"originalEvent": <aws.events.event>, "full": <aws.events.event.json>, '
        '"at": <aws.events.event.ingestion-time>}'
    )
    arn = "arn:aws:events:us-east-2:123456789012:rule/example"
    out = json.loads(render(template, {}, EC2_EVENT, "example", arn, "2015-11-11T21:29:55Z"))
    assert out["ruleArn"] == arn and out["ruleName"] == "example"
    assert "detail" not in out["originalEvent"] and out["originalEvent"]["id"] == EC2_EVENT["id"]
    assert out["full"] == EC2_EVENT
    assert out["at"] == "2015-11-11T21:29:55Z"
    assert render('"<aws.events.rule-name> triggered"', {}, EC2_EVENT, "example") == (
        '"example triggered"'
    )


def test_missing_path_creates_no_variable():
    paths = {"nope": "$.detail.absent"}
    assert render('"x<nope>y"', paths, EC2_EVENT) == '"xy"'
    assert render('{"a": <nope>}', paths, EC2_EVENT) == '{"a":null}'


def test_objects_inside_a_string_lose_inner_quotes():
    out = render('"detail: <d>"', {"d": "$.detail"}, EC2_EVENT)
    assert out == '"detail: {instance-id:i-0123456789,state:RUNNING}"'


def test_numbers_in_text_and_json():
    event = {"detail": {"severity": 5, "ratio": 2.5}}
    paths = {"s": "$.detail.severity", "r": "$.detail.ratio"}
    assert render('"sev <s> r <r>"', paths, event) == '"sev 5 r 2.5"'
    assert render('{"s": <s>}', paths, event) == '{"s":5}'


def test_unknown_placeholder_is_left_alone():
    assert render("a <b> c", {}, EC2_EVENT) == "a <b> c"


def test_json_paths():
    event = {"a": {"b-c": [{"d": 1}, {"d": 2}]}}
    assert extract("$.a.b-c[1].d", event) == 2
    assert extract("$.a.b-c[*].d", event) == [1, 2]
    assert extract("$", event) is event
    with pytest.raises(PathError):
        extract("detail.x", event)


def test_scenario_notification_template():
    spec = json.loads((SCENARIO / "notification.json").read_text())
    event = {
        "source": "aws.guardduty",
        "detail-type": "GuardDuty Finding",
        "region": "eu-west-1",
        "detail": {
            "id": "0123456789abcdef0123456789abcdef",
            "region": "eu-west-1",
            "severity": 5,
            "resource": {"instanceDetails": {"instanceId": "i-0abc"}},
            "service": {
                "action": {
                    "networkConnectionAction": {"remoteIpDetails": {"ipAddressV4": "54.1.2.3"}}
                }
            },
        },
    }
    out = render(spec["InputTemplate"], spec["InputPathsMap"], event)
    # A non-JSON template: every placeholder gets the bare value, the quotes stay.
    expected = spec["InputTemplate"]
    for name, value in {"gdid": "0123456789abcdef0123456789abcdef", "instanceid": "i-0abc",
                        "region": "eu-west-1", "severity": "5", "remoteip": "54.1.2.3"}.items():
        expected = expected.replace(f"<{name}>", value)
    assert out == expected
    assert "<" not in out and "i-0abc" in out and "54.1.2.3" in out


def test_multi_line_text_keeps_each_line_as_written():
    template = '"Instance <instance>"\n"is <state>"'
    assert render(template, PATHS, EC2_EVENT) == '"Instance i-0123456789"\n"is RUNNING"'
