"""The outbox: e-mail deliveries and every publish, kept and served over HTTP."""

import json
import urllib.error
import urllib.request

import pytest

from gdlab.local import outbox
from gdlab.local.api import LocalApiError, fetch
from gdlab.local.credentials import generate


def test_email_deliveries_and_publishes_are_kept(aws_client):
    sns = aws_client("sns")
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    other = sns.create_topic(Name="other")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="a@example.com")
    sns.subscribe(TopicArn=topic, Protocol="email-json", Endpoint="b@example.com")
    outbox.clear()
    message_id = sns.publish(TopicArn=topic, Message="hello", Subject="Greetings")["MessageId"]
    sns.publish(TopicArn=other, Message="nobody reads this")
    plain, as_json = outbox.emails(topic)
    assert (plain["to"], plain["subject"], plain["body"]) == ("a@example.com", "Greetings",
                                                             "hello")
    assert plain["message_id"] == message_id and plain["topic_arn"] == topic
    body = json.loads(as_json["body"])
    assert (as_json["to"], body["Type"], body["Message"], body["MessageId"]) == (
        "b@example.com", "Notification", "hello", message_id)
    assert [p["body"] for p in outbox.published(other)] == ["nobody reads this"]
    assert len(outbox.published()) == 2 and len(outbox.emails()) == 2


def test_routes_over_http(local_client, local_server):
    sns = local_client("sns")
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="a@example.com")
    outbox.clear()
    sns.publish(TopicArn=topic, Message="over the wire")

    def get(name: str, topic: str):
        return fetch(local_server.endpoint, name, credentials=local_server.credentials,
                     topic=topic)

    (mail,) = get("outbox", topic)
    assert mail["body"] == "over the wire" and mail["to"] == "a@example.com"
    assert get("outbox", "arn:aws:sns:us-east-1:123456789012:none") == []
    assert [p["body"] for p in get("published", topic)] == ["over the wire"]
    # The lab's mail is the local administrator's to read: unsigned, or signed by anyone
    # else, the route refuses.
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{local_server.endpoint}/_gdlab/outbox?topic={topic}")
    assert info.value.code == 403
    with pytest.raises(LocalApiError, match="the local cloud refused /_gdlab/outbox"):
        fetch(local_server.endpoint, "outbox", credentials=generate(), topic=topic)
