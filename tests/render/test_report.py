"""The incident report renderer (gdlab.render.report): one self-contained HTML document, a
section per lab, everything from the cloud escaped, the architecture drawn from the lab's
own resources with the incident's path numbered, and nothing fetched from anywhere."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from gdlab.lab.evidence import Evidence
from gdlab.render import report

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _resources(keys: list[str], prefix: str = "id") -> list[dict[str, Any]]:
    return [{"key": k, "type": "AWS::X", "id": f"{prefix}-{k}", "status": "created",
             "ownership": "created", "name": None} for k in keys]


EC2_KEYS = ["instance-compromised", "instance-malicious", "eip", "detector",
            "threat-intel-set", "sg-forensic", "securityhub", "rule", "sns-topic", "function"]


def ec2_evidence(**overrides: Any) -> Evidence:
    base = dict(
        lab="gd-abc123", scenario="compromised-ec2", scenario_title="Compromised EC2 Instance",
        target="local", region="us-east-1", phase="torn-down",
        resources=_resources(EC2_KEYS),
        hops=[{"name": "Triggered", "detail": "ping", "seen_at": "2026-01-01T00:00:00.000Z",
               "seconds_since_trigger": 0.0},
              {"name": "Finding in GuardDuty", "detail": "f", "seen_at":
               "2026-01-01T00:00:03.000Z", "seconds_since_trigger": 3.0},
              {"name": "Instance isolated", "detail": "", "seen_at": None,
               "seconds_since_trigger": None}],
        finding={"Id": "f00d", "Type": "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom",
                 "Severity": 5, "Title": "EC2 instance i-1 communicating", "Region":
                 "us-east-1", "AccountId": "123456789012",
                 "Resource": {"ResourceType": "Instance",
                              "InstanceDetails": {"InstanceId": "i-1"}},
                 "Service": {"Count": 3, "EventFirstSeen": "a", "EventLastSeen": "b"}},
        asff={"Id": "arn:finding/f00d", "Title": "t", "Types": ["TTPs/x"],
              "Severity": {"Label": "MEDIUM", "Normalized": 50},
              "Workflow": {"Status": "NEW"}, "RecordState": "ACTIVE",
              "Resources": [{"Type": "AwsEc2Instance", "Id": "arn:i-1"}]},
        emails=[{"subject": None, "body": "first", "time": "t1", "to": "a@example.com"},
                {"subject": "GuardDuty Remediation", "body": "second", "time": "t2"}],
        checks=[{"name": "enis-isolated", "title": "Every ENI", "passed": True,
                 "status": "pass", "evidence": "eni-1: sg-f"},
                {"name": "ping-blocked", "title": "No ping", "passed": False,
                 "status": "inconclusive", "evidence": "SSM could not reach it"}],
        properties=[{"name": "instance-isolated", "proven": True,
                     "proven_by": ["enis-isolated"]}],
        forensic_rules={"ingress": [], "egress": []},
        enis=[{"eni": "eni-1", "instance": "i-1", "groups_now": ["sg-f"],
               "groups_before": ["sg-a", "sg-b"]}],
        teardown=[{"key": "vpc", "label": "Lab VPC", "status": "deleted", "id": "vpc-1"}],
    )
    base.update(overrides)
    return Evidence(**base)


class Tags(HTMLParser):
    """Every start tag with its attributes, and whether the document nests properly."""

    VOID = {"meta", "br", "img", "input", "link", "hr", "path", "line", "rect", "circle"}

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []
        self.mismatched: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.mismatched.append(tag)
        else:
            self.stack.pop()


def parsed(document: str) -> Tags:
    tags = Tags()
    tags.feed(document)
    tags.close()
    return tags


def test_a_report_is_one_well_formed_document_that_fetches_nothing():
    document = report.html([ec2_evidence()])
    tags = parsed(document)
    assert tags.mismatched == [] and tags.stack == []
    names = [t for t, _a in tags.tags]
    assert "script" not in names and "link" not in names and "iframe" not in names
    for _tag, attrs in tags.tags:
        for name in ("src", "href"):
            assert not attrs.get(name) or attrs[name].startswith("#"), attrs
    assert "url(http" not in document and "@import" not in document
    assert document.startswith("<!DOCTYPE html>")


def test_everything_from_the_cloud_is_escaped():
    hostile = ec2_evidence(
        lab=HOSTILE, phase=HOSTILE, resources=_resources(EC2_KEYS, prefix=HOSTILE),
        finding={**ec2_evidence().finding, "Title": HOSTILE, "Id": f'"{HOSTILE}'},
        asff={**ec2_evidence().asff, "Title": HOSTILE},
        emails=[{"subject": HOSTILE, "body": HOSTILE, "to": HOSTILE, "time": HOSTILE}],
        checks=[{"name": f'"x{HOSTILE}', "title": HOSTILE, "passed": False, "status":
                 HOSTILE, "evidence": HOSTILE}],
        properties=[{"name": HOSTILE, "proven": False, "proven_by": [HOSTILE]}],
        enis=[{"eni": HOSTILE, "instance": HOSTILE, "groups_now": [HOSTILE],
               "groups_before": None}],
        teardown=[{"key": HOSTILE, "label": HOSTILE, "status": HOSTILE, "id": HOSTILE}],
        notes=[HOSTILE],
    )
    document = report.html([hostile])
    assert "<script" not in document and "<img" not in document
    tags = parsed(document)
    assert tags.mismatched == [] and tags.stack == []
    assert all(not any(k.startswith("on") for k in attrs) for _t, attrs in tags.tags)
    assert "&lt;script&gt;" in document


def test_the_architecture_draws_every_resource_and_numbers_the_incidents_path():
    svg = report.architecture(ec2_evidence())
    assert svg.count('<g class="node') == len(EC2_KEYS) - 1  # the EIP goes in its instance
    assert "EIP id-eip" in svg and "id-instance-compromised" in svg
    steps = re.findall(r'data-step="(\d)"', svg)
    assert steps == ["1", "2", "3", "4", "5", "5", "6"]
    legend = re.findall(r'<li value="(\d)">', svg)
    assert legend == ["1", "2", "3", "4", "5", "6"]
    assert "isolates the instance into the forensic group" in svg


def test_a_scenario_that_attacks_through_the_api_points_its_path_at_what_it_attacks():
    keys = ["instance-malicious", "eip", "access-key", "detector", "threat-intel-set",
            "securityhub", "rule", "sns-topic", "function"]
    svg = report.architecture(ec2_evidence(resources=_resources(keys)))
    assert 'data-key="access-key"' in svg and "Leaked access key" in svg
    assert re.findall(r'data-step="(\d)"', svg) == ["1", "2", "3", "4", "5", "5", "6"]
    assert "shuts the attacker out" in svg and "forensic" not in svg


def test_pending_resources_are_not_drawn_and_no_resources_say_so():
    pending = [{**r, "status": "pending"} for r in _resources(EC2_KEYS)]
    assert report.architecture(ec2_evidence(resources=pending)) == (
        '<p class="none">No resources recorded.</p>')


def test_the_timeline_bars_grow_with_the_seconds_and_an_unseen_hop_says_so():
    svg = report.timeline(ec2_evidence().hops)
    widths = [float(w) for w in re.findall(r'class="bar" x="\d+" y="\d+" width="([\d.]+)"',
                                           svg)]
    assert widths == [2.0, 480.0]
    assert "+3.00 s · 00:00:03.000" in svg and "not seen" in svg
    ticks = re.findall(r'class="tick"[^>]*>([^<]+)<', svg)
    assert ticks[0] == "0 s" and ticks[-1] == "3 s" and 2 <= len(ticks) <= 7


def test_the_finding_reads_as_the_console_summarises_it():
    view = report.finding_view(ec2_evidence().finding)
    assert "Medium" in view and "Instance: i-1" in view
    assert 'data-finding-id="f00d"' in view and "<details>" in view
    assert report.severity_label(8.0) == "High" and report.severity_label("x") == ""
    assert "No finding" in report.finding_view(None)


def test_the_emails_show_snss_sender_and_its_subject_when_none_was_given():
    view = report.emails_view(ec2_evidence().emails)
    assert view.count('<article class="email">') == 2
    assert report.SNS_SUBJECT in view and "GuardDuty Remediation" in view
    assert report.SNS_FROM.replace("<", "&lt;").replace(">", "&gt;") in view


def test_the_verify_table_says_what_gdlab_verify_says():
    view = report.checks_view(ec2_evidence().checks, ec2_evidence().properties)
    assert 'data-check="enis-isolated" data-status="pass"' in view
    assert 'data-status="inconclusive"' in view and "INCONCLUSIVE" in view
    assert "1/2 checks passed, 1 inconclusive; 1/1 properties proven" in view
    assert "instance-isolated: enis-isolated" in view
    assert report.checks_view([], []) == '<p class="none">Not verified.</p>'


def test_isolation_shows_no_rules_and_each_interfaces_groups_before_and_after():
    ev = ec2_evidence()
    assert report.forensic_view(ev.forensic_rules).count(">none<") == 2
    open_rule = {"ingress": [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                              "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}], "egress": []}
    assert "tcp 22-22 0.0.0.0/0" in report.forensic_view(open_rule)
    view = report.enis_view(ev.enis)
    assert "sg-a, sg-b" in view and "sg-f" in view


def test_several_labs_make_one_report_with_a_section_each():
    labs = [ec2_evidence(lab="gd-one"), ec2_evidence(lab="gd-two", teardown=[])]
    document = report.html(labs)
    assert document.count('<section class="lab"') == 2
    assert "gdlab incident report — 2 labs" in document and "gd-one, gd-two" in document
    assert document.count("<h3>Teardown</h3>") == 1
    assert 'No lab.' in report.html([])
