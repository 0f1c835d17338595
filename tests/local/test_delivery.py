"""EventBridge delivery: the scenario's rule and Input Transformer to SNS (and the outbox),
Security Hub import, disabled rules, one delivery per target, aws.* sources, metrics."""

import json
from pathlib import Path

from test_traffic import world  # noqa: F401 - the fixture

from gdlab.local import outbox

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "compromised-ec2"
PATTERN = (SCENARIO / "event-pattern.json").read_text()
NOTIFICATION = json.loads((SCENARIO / "notification.json").read_text())


def topic_for_rule(client, name: str, rule_arn: str) -> str:
    sns = client("sns")
    topic = sns.create_topic(Name=name)["TopicArn"]
    sns.set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sns:Publish", "Resource": topic,
            "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}}]}))
    sns.subscribe(TopicArn=topic, Protocol="email", Endpoint=f"{name}@example.com")
    return topic


def scenario_rule(client, name: str = "rule", state: str = "ENABLED") -> tuple[str, str]:
    events = client("events")
    rule = events.put_rule(Name=name, EventPattern=PATTERN, State=state)["RuleArn"]
    topic = topic_for_rule(client, f"{name}-topic", rule)
    events.put_targets(Rule=name, Targets=[{"Id": "email", "Arn": topic,
                                            "InputTransformer": NOTIFICATION}])
    return rule, topic


def expected_text(finding: dict) -> str:
    """The template with AWS's substitution for a non-JSON template: bare values."""
    values = {
        "gdid": finding["Id"], "instanceid": finding["Resource"]["InstanceDetails"]["InstanceId"],
        "region": finding["Region"], "severity": "5",
        "remoteip": finding["Service"]["Action"]["NetworkConnectionAction"]["RemoteIpDetails"][
            "IpAddressV4"],
    }
    text = NOTIFICATION["InputTemplate"]
    for key, value in values.items():
        text = text.replace(f"<{key}>", value)
    return text


def metric_sum(client, namespace: str, name: str, dimension: dict) -> float:
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    stats = client("cloudwatch").get_metric_statistics(
        Namespace=namespace, MetricName=name, Statistics=["Sum"], Period=3600,
        StartTime=now - dt.timedelta(hours=1), EndTime=now + dt.timedelta(minutes=5),
        Dimensions=[{"Name": k, "Value": v} for k, v in dimension.items()])
    return sum(p["Sum"] for p in stats["Datapoints"])


def test_finding_reaches_the_topic_through_the_input_transformer(world):  # noqa: F811
    w = world(list_entries=["EIP"])
    _rule, topic = scenario_rule(w.client)
    outbox.clear()
    w.ping()
    w.ping()  # a repeat updates the finding; GuardDuty publishes new findings at once
    (finding,) = w.findings()
    (mail,) = outbox.emails(topic)
    assert mail["body"] == expected_text(finding)
    assert mail["to"] == "rule-topic@example.com"
    assert mail["subject"] == "AWS Notification Message"
    assert mail["from"] == "rule-topic <no-reply@sns.amazonaws.com>"
    assert [p["body"] for p in outbox.published(topic)] == [mail["body"]]
    assert metric_sum(w.client, "AWS/Events", "Invocations", {"RuleName": "rule"}) == 1
    assert metric_sum(w.client, "AWS/Events", "FailedInvocations", {"RuleName": "rule"}) == 0
    assert metric_sum(w.client, "AWS/SNS", "NumberOfMessagesPublished",
                      {"TopicName": "rule-topic"}) == 1


def test_disabled_rule_is_silent(world):  # noqa: F811
    w = world(list_entries=["EIP"])
    _rule, topic = scenario_rule(w.client, state="DISABLED")
    outbox.clear()
    w.ping()
    assert outbox.emails(topic) == [] and len(w.findings()) == 1


def test_one_delivery_per_target_and_policy_enforced(world):  # noqa: F811
    w = world(list_entries=["EIP"])
    events = w.client("events")
    rule = events.put_rule(Name="fanout", EventPattern=PATTERN)["RuleArn"]
    first, second = (topic_for_rule(w.client, n, rule) for n in ("first", "second"))
    closed = w.client("sns").create_topic(Name="closed")["TopicArn"]  # default policy only
    w.client("sns").subscribe(TopicArn=closed, Protocol="email", Endpoint="x@example.com")
    queue = w.client("sqs").create_queue(QueueName="copy")["QueueUrl"]
    queue_arn = w.client("sqs").get_queue_attributes(
        QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_targets(Rule="fanout", Targets=[
        {"Id": "a", "Arn": first, "InputPath": "$.detail.type"},
        {"Id": "b", "Arn": second, "Input": json.dumps({"fixed": True})},
        {"Id": "c", "Arn": closed},
        {"Id": "d", "Arn": queue_arn},
    ])
    outbox.clear()
    w.ping()
    assert [m["body"] for m in outbox.emails(first)] == [
        json.dumps("UnauthorizedAccess:EC2/MaliciousIPCaller.Custom")]
    assert [m["body"] for m in outbox.emails(second)] == ['{"fixed": true}']
    assert outbox.emails(closed) == []
    messages = w.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
    (message,) = messages["Messages"]
    assert json.loads(message["Body"])["source"] == "aws.guardduty"
    assert metric_sum(w.client, "AWS/Events", "Invocations", {"RuleName": "fanout"}) == 4
    assert metric_sum(w.client, "AWS/Events", "FailedInvocations", {"RuleName": "fanout"}) == 1


def test_client_events_with_aws_sources_are_refused(world):  # noqa: F811
    w = world()
    events = w.client("events")
    events.put_rule(Name="any-guardduty", EventPattern=json.dumps({"source": ["aws.guardduty"]}))
    events.put_rule(Name="mine", EventPattern=json.dumps({"source": ["gdlab.test"]}))
    rule = events.describe_rule(Name="mine")["Arn"]
    topic = topic_for_rule(w.client, "mine-topic", rule)
    events.put_targets(Rule="mine", Targets=[{
        "Id": "t", "Arn": topic, "InputTransformer": {
            "InputPathsMap": {"who": "$.detail.who"},
            "InputTemplate": "hello <who> from <aws.events.rule-name>"}}])
    outbox.clear()
    answer = events.put_events(Entries=[
        {"Source": "aws.guardduty", "DetailType": "GuardDuty Finding", "Detail": "{}"},
        {"Source": "gdlab.test", "DetailType": "t", "Detail": json.dumps({"who": "you"})},
    ])
    assert answer["FailedEntryCount"] == 1
    assert answer["Entries"][0] == {"ErrorCode": "NotAuthorizedForSourceException",
                                    "ErrorMessage": "Not authorized for the source."}
    assert "EventId" in answer["Entries"][1]
    assert [m["body"] for m in outbox.emails(topic)] == ["hello you from mine"]


def test_finding_reaches_security_hub_as_asff(world):  # noqa: F811
    w = world(list_entries=["EIP"])
    hub = w.client("securityhub")
    hub.enable_security_hub(EnableDefaultStandards=False)
    w.ping()
    (finding,) = w.findings()
    (asff,) = hub.get_findings()["Findings"]
    assert asff["Id"] == finding["Arn"]
    assert asff["ProductArn"] == "arn:aws:securityhub:us-east-1::product/aws/guardduty"
    assert asff["Resources"][0]["Id"] == (
        f"arn:aws:ec2:us-east-1:123456789012:instance/{w.compromised}")
    assert asff["ProductFields"]["aws/guardduty/service/additionalInfo/threatListName"] == \
        "Example-Threat-List"


def test_sample_findings_are_published(world):  # noqa: F811
    w = world(list_entries=[])
    _rule, topic = scenario_rule(w.client)
    hub = w.client("securityhub")
    hub.enable_security_hub(EnableDefaultStandards=False)
    outbox.clear()
    w.client("guardduty").create_sample_findings(
        DetectorId=w.detector, FindingTypes=["UnauthorizedAccess:EC2/MaliciousIPCaller.Custom",
                                             "Recon:EC2/PortProbeUnprotectedPort"])
    (mail,) = outbox.emails(topic)
    assert "i-99999999" in mail["body"]
    assert len(hub.get_findings()["Findings"]) == 2
