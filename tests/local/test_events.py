"""EventBridge API corrections: TestEventPattern answers with delivery's matcher, PutEvents
refuses non-string members and aws.* sources, and neither fires a rule it should not."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from wire_shapes import assert_wire_shape, capture_raw

EVENT = {"id": "1", "account": "123456789012", "source": "aws.guardduty",
         "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": [],
         "detail-type": "GuardDuty Finding",
         "detail": {"type": "UnauthorizedAccess:EC2/SSHBruteForce", "severity": 5.0}}


@pytest.fixture
def events(shared_aws):
    return shared_aws("events")


@pytest.mark.parametrize(("pattern", "expected"), [
    ({"source": ["aws.guardduty"]}, True),
    ({"source": ["aws.securityhub"]}, False),
    ({"detail": {"type": [{"prefix": "UnauthorizedAccess:EC2/"}]}}, True),
    ({"detail": {"severity": [{"numeric": [">=", 7]}]}}, False),
    ({"detail": {"type": [{"anything-but": "Recon:EC2/PortProbeUnprotectedPort"}]}}, True),
])
def test_test_event_pattern_answers_like_delivery(events, pattern, expected):
    from moto.events.models import EventPattern

    calls = capture_raw(events)
    answer = events.test_event_pattern(EventPattern=json.dumps(pattern), Event=json.dumps(EVENT))
    assert answer["Result"] is expected
    # the very matcher a rule uses when it fires
    assert EventPattern.load(json.dumps(pattern)).matches_event(EVENT) is expected
    operation, status, body = calls[-1]
    assert (operation, status) == ("TestEventPattern", 200)
    assert_wire_shape("events", operation, body)
    assert body == {"Result": expected}


def test_an_invalid_pattern_is_invalid_event_pattern_exception(events):
    for pattern in ("{not json", json.dumps({"source": "aws.guardduty"}),
                    json.dumps({"source": []})):
        with pytest.raises(ClientError) as caught:
            events.test_event_pattern(EventPattern=pattern, Event=json.dumps(EVENT))
        assert caught.value.response["Error"]["Code"] == "InvalidEventPatternException"


@pytest.mark.parametrize("missing", ["id", "account", "source", "time", "region",
                                     "detail-type"])
def test_an_event_without_a_required_field_is_not_valid(events, missing):
    event = {k: v for k, v in EVENT.items() if k != missing}
    with pytest.raises(ClientError) as caught:
        events.test_event_pattern(EventPattern=json.dumps({"source": ["aws.guardduty"]}),
                                  Event=json.dumps(event))
    assert caught.value.response["Error"] == {"Code": "ValidationException",
                                              "Message": "Parameter Event is not valid."}


def test_an_event_that_is_not_a_json_object_is_not_valid(events):
    for event in ("not json", "[1, 2]"):
        with pytest.raises(ClientError) as caught:
            events.test_event_pattern(EventPattern="{}", Event=event)
        assert caught.value.response["Error"]["Code"] == "ValidationException"


def test_aws_sources_are_refused_per_entry(events):
    calls = capture_raw(events)
    answer = events.put_events(Entries=[
        {"Source": "aws.guardduty", "DetailType": "GuardDuty Finding", "Detail": "{}"},
        {"Source": "gdlab.test", "DetailType": "t", "Detail": "{}"}])
    assert answer["FailedEntryCount"] == 1
    assert answer["Entries"][0] == {"ErrorCode": "NotAuthorizedForSourceException",
                                    "ErrorMessage": "Not authorized for the source."}
    assert "EventId" in answer["Entries"][1]
    assert_wire_shape("events", "PutEvents", calls[-1][2])


# --- raw signed requests: what botocore's own validation would never send -------------------
def _signed_put_events(server, entries: list) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="POST", url=server.endpoint + "/", data=json.dumps(
        {"Entries": entries}).encode(), headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSEvents.PutEvents"})
    keys = server.credentials
    SigV4Auth(Credentials(keys.access_key_id, keys.secret_access_key), "events",
              "us-east-1").add_auth(request)
    prepared = request.prepare()
    http = urllib.request.Request(prepared.url, data=prepared.body, method="POST",
                                  headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(http, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.fixture
def watched_queue(local_client):
    """A rule on the default bus for aws.guardduty and gdlab.test events, delivering to SQS."""
    events, sqs = local_client("events"), local_client("sqs")
    url = sqs.create_queue(QueueName="rule-target")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    events.put_rule(Name="watch", EventPattern=json.dumps(
        {"source": ["aws.guardduty", "gdlab.test"]}))
    events.put_targets(Rule="watch", Targets=[{"Id": "q", "Arn": arn}])
    return sqs, url


def _delivered(sqs, url) -> list:
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                               WaitTimeSeconds=0).get("Messages", [])


@pytest.mark.parametrize("source", [["aws.guardduty"], {"s": "aws.guardduty"}, 7])
def test_a_non_string_source_is_refused_and_fires_nothing(local_server, watched_queue, source):
    sqs, url = watched_queue
    status, body = _signed_put_events(local_server, [
        {"Source": source, "DetailType": "GuardDuty Finding", "Detail": "{}"}])
    assert status == 400
    assert body["__type"].endswith("SerializationException")
    assert _delivered(sqs, url) == []


def test_a_raw_string_source_is_delivered(local_server, watched_queue):
    # the same request with a string source reaches the queue: the refusal above is real
    sqs, url = watched_queue
    status, body = _signed_put_events(local_server, [
        {"Source": "gdlab.test", "DetailType": "t", "Detail": "{}"}])
    assert status == 200
    assert_wire_shape("events", "PutEvents", body)
    assert [json.loads(m["Body"])["source"] for m in _delivered(sqs, url)] == ["gdlab.test"]


def test_a_raw_aws_source_is_refused_per_entry_and_fires_nothing(local_server, watched_queue):
    sqs, url = watched_queue
    status, body = _signed_put_events(local_server, [
        {"Source": "aws.guardduty", "DetailType": "GuardDuty Finding", "Detail": "{}"}])
    assert status == 200
    assert_wire_shape("events", "PutEvents", body)
    assert body == {"FailedEntryCount": 1, "Entries": [
        {"ErrorCode": "NotAuthorizedForSourceException",
         "ErrorMessage": "Not authorized for the source."}]}
    assert _delivered(sqs, url) == []


def test_rule_reads_leave_absent_members_out(events):
    calls = capture_raw(events)
    events.put_rule(Name="no-nulls", EventPattern=json.dumps({"source": ["gdlab.test"]}))
    events.put_targets(Rule="no-nulls", Targets=[{"Id": "t", "Arn": (
        "arn:aws:sns:us-east-1:123456789012:somewhere")}])
    assert "NextToken" not in events.list_rules()
    events.describe_rule(Name="no-nulls")
    events.list_targets_by_rule(Rule="no-nulls")
    events.list_event_buses()
    events.describe_event_bus()
    for operation, _status, body in calls:
        assert b"null" not in body, (operation, body)
        assert_wire_shape("events", operation, body)
    events.remove_targets(Rule="no-nulls", Ids=["t"])
    events.delete_rule(Name="no-nulls")
