"""gdlab mail: the lab topic's e-mails from the local cloud's outbox."""

import json

from gdlab.lab.state import LabState, LabStore
from gdlab.local import outbox


def make_lab(lab: str, target: str = "local", topic: str | None = None) -> LabState:
    state = LabStore().create(LabState(lab=lab, scenario="compromised-ec2", target=target,
                                       region="us-east-1"))
    if topic:
        state.record("sns-topic", "AWS::SNS::Topic", topic)
    return state


def test_mail_shows_the_lab_topic_emails(local_client, local_server, run_cli):
    sns = local_client("sns")
    topic = sns.create_topic(Name="GuardDuty-Example-gd-mail1")["TopicArn"]
    other = sns.create_topic(Name="other")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="analyst@example.com")
    sns.subscribe(TopicArn=other, Protocol="email", Endpoint="someone@example.com")
    outbox.clear()
    sns.publish(TopicArn=topic, Message='"GuardDuty finding abc"')
    sns.publish(TopicArn=other, Message="not this one")
    sns.publish(TopicArn=topic, Message="Instance isolated.", Subject="GuardDuty Remediation")
    make_lab("gd-mail1", topic=topic)

    code, out, err = run_cli("--endpoint-url", local_server.endpoint, "mail", "--json")
    assert code == 0, err
    mails = json.loads(out)
    assert [(m["to"], m["subject"], m["body"]) for m in mails] == [
        ("analyst@example.com", "AWS Notification Message", '"GuardDuty finding abc"'),
        ("analyst@example.com", "GuardDuty Remediation", "Instance isolated."),
    ]
    assert set(mails[0]) == {"from", "to", "subject", "body", "time"}

    code, out, err = run_cli("--endpoint-url", local_server.endpoint, "mail", "--lab",
                             "gd-mail1")
    assert code == 0, err
    assert "Subject:" in out and "GuardDuty Remediation" in out and "Instance isolated." in out
    assert "To:" in out and "analyst@example.com" in out and "not this one" not in out
    assert out.index("GuardDuty finding abc") < out.index("Instance isolated.")


def test_mail_on_aws_says_where_the_mail_goes(run_cli):
    make_lab("gd-mail2", target="aws", topic="arn:aws:sns:us-east-1:123456789012:t")
    code, out, _ = run_cli("mail", "--lab", "gd-mail2")
    assert code == 0
    assert "subscribed inbox" in out and "cannot read" in out


def test_mail_help_has_an_example(run_cli):
    code, out, _ = run_cli("mail", "--help")
    assert code == 0 and "Example: gdlab mail" in out
