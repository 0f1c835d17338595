"""The checks verify can make: the library scenarios compose their proof from
(scenarios/<name>/scenario.py `checks()` and `PROPERTIES`). Each check looks at the cloud and
passes, fails or is inconclusive, with the evidence it saw."""

from __future__ import annotations

import json
from typing import Any

from gdlab.errors import GdlabError, describe
from gdlab.lab import flows, observe, trigger
from gdlab.lab.steps import LabContext
from gdlab.lab.verify import Check


def _ok(flag: bool) -> str:
    return "pass" if flag else "fail"


def _finding_problems(ctx: LabContext, finding: dict[str, Any], kind: str) -> tuple[str, list]:
    field, value = observe.finding_subject(ctx)
    subject = observe.field_of(finding, field)
    eip = ctx.attr("eip", "public_ip")
    lists = observe.threat_list_names(finding)
    wanted_list = observe.threat_list_name(ctx)
    problems = []
    if finding.get("Type") != kind:
        problems.append(f"type {finding.get('Type')}")
    if subject != value:
        problems.append(f"{field.rsplit('.', 1)[-1]} {subject}, not {value}")
    if observe.remote_ip(finding) != eip:
        problems.append(f"remote IP {observe.remote_ip(finding)} is not the EIP {eip}")
    if kind.endswith(".Custom") and wanted_list not in lists:  # a custom threat list's type
        problems.append(f"threat lists {lists} lack {wanted_list}")
    evidence = (
        f"{finding['Id']}: {finding.get('Type')} on {subject}, remote {observe.remote_ip(finding)}"
        f", list {', '.join(lists) or '-'}, severity {finding.get('Severity')}, "
        f"count {finding.get('Service', {}).get('Count')}"
    )
    return evidence, problems


def check_guardduty(ctx: LabContext, finding: dict[str, Any] | None) -> Check:
    """The scenario's first finding type for the lab's resource, from the listed EIP
    (`finding`, already looked up), and any other type it raised, each as it should be. A
    later type may be missing: the response can refuse the attacker's next call before it is
    made (seconds on the local cloud, where GuardDuty answers at once; minutes on AWS)."""
    title = "GuardDuty has the finding"
    subject = observe.finding_subject(ctx)[1]
    said, wrong = [], []
    for kind in ctx.scenario.finding_types:
        first = kind == ctx.scenario.finding_type
        found = finding if first else observe.guardduty_finding(ctx, kind)
        if found is None:
            if first:
                wrong.append(f"no {kind} finding for {subject}")
            else:
                said.append(f"no {kind} finding for {subject} (its call may have come after "
                            "the response)")
            continue
        evidence, problems = _finding_problems(ctx, found, kind)
        said.append(evidence + (" — wrong: " + "; ".join(problems) if problems else ""))
        wrong += problems
    return Check("guardduty-finding", title, _ok(not wrong),
                 "; ".join([w for w in wrong if w.startswith("no ")] + said))


def check_securityhub(ctx: LabContext, finding: dict[str, Any] | None) -> Check:
    title = "Security Hub has it (ASFF, ACTIVE)"
    if finding is None:
        return Check("securityhub-finding", title, "fail", "no GuardDuty finding to look up")
    asff = observe.securityhub_finding(ctx, finding)
    if asff is None:
        return Check(
            "securityhub-finding", title, "fail", f"no ASFF finding with Id {finding['Arn']}"
        )
    state = asff.get("RecordState")
    return Check(
        "securityhub-finding",
        title,
        _ok(state == "ACTIVE"),
        f"{asff.get('Types', ['?'])[0]}, RecordState {state}, "
        f"Workflow {asff.get('Workflow', {}).get('Status')}",
    )


def check_enis(ctx: LabContext) -> Check:
    groups = observe.eni_groups(ctx)
    forensic = ctx.state.live("sg-forensic")
    evidence = "; ".join(f"{eni}: {','.join(g) or '-'}" for eni, g in groups.items()) or "no ENIs"
    return Check(
        "enis-isolated",
        "Every ENI has exactly the forensic group",
        _ok(observe.is_isolated(ctx, groups)),
        f"{evidence} (forensic group {forensic.id if forensic else 'missing'})",
    )


def check_forensic_rules(ctx: LabContext) -> Check:
    rules = observe.forensic_rules(ctx)
    title = "The forensic group has no rules"
    if rules is None:
        return Check("forensic-group-empty", title, "fail", "forensic group not found")
    ingress, egress = rules
    return Check(
        "forensic-group-empty",
        title,
        _ok(ingress == 0 and egress == 0),
        f"{ingress} ingress, {egress} egress rule(s) in {ctx.id_of('sg-forensic')}",
    )


def _isolated(result: dict[str, Any]) -> str:
    return (f"isolated {result.get('instance_id')} for finding {result.get('finding_id')}, "
            f"{len(result.get('enis', []))} ENI(s)")


def check_responder(ctx: LabContext, log: dict[str, Any], action: str = "isolated",
                    what: Any = _isolated, never: str = "it never isolated the instance") -> Check:
    """The responder's log has a run whose result is `action` (what(result) says what it did)
    and no error."""
    title = "The responder ran without error"
    results = log["results"]
    acted = [r for r in results if r.get("action") == action]
    if log["errors"]:
        return Check("responder-ran", title, "fail", f"error in its log: {log['errors'][-1]}")
    if not acted:
        reasons = "; ".join(str(r.get("reason")) for r in results) or "no run in its log group"
        return Check("responder-ran", title, "fail", f"{never}: {reasons}")
    return Check("responder-ran", title, "pass",
                 f"{log['invocations']} invocation(s); {what(acted[-1])}")


def check_emails(ctx: LabContext, log: dict[str, Any]) -> Check:
    title = "Both e-mails were sent"
    published = observe.published_count(ctx)
    remediation = [r.get("message_id") for r in log["results"] if r.get("message_id")]
    # Only the rule and the responder may publish to the topic (its policy), so any
    # message beyond the responder's is the finding e-mail from the Input Transformer.
    finding_mails = published - len(remediation)
    ok = finding_mails >= 1 and len(remediation) >= 1
    return Check(
        "emails-sent",
        title,
        _ok(ok),
        f"{published} published to {ctx.name('topic')}: {max(finding_mails, 0)} finding "
        f"e-mail(s) from the rule, {len(remediation)} remediation e-mail(s) from the responder",
    )


def check_unreachable(ctx: LabContext) -> Check:
    title = "The instance can no longer reach the malicious IP"
    agent = _agent_status(ctx)
    if agent not in (None, "Online"):
        return Check(
            "ping-blocked",
            title,
            "inconclusive",
            f"the SSM agent is {agent}: isolation also cuts its HTTPS to SSM, so no ping can "
            "be sent (the flow log shows the blocked traffic)",
        )
    try:
        result = trigger.ping(ctx, count=2, wait_online=False)
    except GdlabError as exc:
        return Check("ping-blocked", title, "inconclusive", f"no ping could be sent: {exc}")
    summary = _ping_summary(result.output) or result.status
    if not result.finished:
        return Check(
            "ping-blocked",
            title,
            "inconclusive",
            f"the ping command did not finish in time ({result.detail}): no result was seen",
        )
    if not result.delivered:
        return Check(
            "ping-blocked",
            title,
            "inconclusive",
            f"SSM could not reach the isolated instance ({result.detail}): isolation also "
            "cuts the SSM agent, so no ping result was seen",
        )
    if result.replies:
        return Check(
            "ping-blocked", title, "fail", f"{result.command}: replies came back ({summary})"
        )
    return Check("ping-blocked", title, "pass", f"{result.command}: {summary}")


def _agent_status(ctx: LabContext) -> str | None:
    instance = ctx.state.live("instance-compromised")
    if not instance:
        return None
    info = ctx.cloud.client("ssm").describe_instance_information(
        Filters=[{"Key": "InstanceIds", "Values": [instance.id]}]
    )["InstanceInformationList"]
    return info[0].get("PingStatus") if info else "not registered"


def check_flows(ctx: LabContext, waiting: flows.Waiting | None = None) -> Check:
    title = "The flow log shows the blocked traffic"
    at = flows.isolated_at(ctx)
    if at is None:
        return Check(
            "flows-rejected",
            title,
            "inconclusive",
            "the instance carries no gdlab:isolated-at tag: nothing to look for after it",
        )
    enis = sorted(observe.eni_groups(ctx))
    eip = ctx.attr("eip", "public_ip")
    timeouts = ctx.scenario
    deadline = (
        timeouts.flow_logs_local_seconds if ctx.cloud.is_local else timeouts.flow_logs_aws_seconds
    )
    found = flows.prove_blocked(
        ctx,
        enis,
        eip,
        at,
        deadline,
        waiting=waiting,
        poll_seconds=min(30.0, max(ctx.poll_seconds * 6, 0.2)),
    )
    return Check("flows-rejected", title, found.status, found.evidence)


def _ping_summary(output: str) -> str:
    for line in output.splitlines():
        if "packets transmitted" in line:
            return line.strip()
    return ""


def guard(into: list[Check], name: str, title: str, fn: Any, *args: Any) -> None:
    try:
        into.append(fn(*args))
    except Exception as exc:  # one broken query must not hide the other checks
        into.append(Check(name, title, "fail", f"could not check: {describe(exc)[0]}"))


def finding_event(ctx: LabContext, finding_type: str) -> dict[str, Any]:
    """The skeleton of the event GuardDuty sends EventBridge for a finding of that type."""
    return {
        "version": "0",
        "id": "00000000-0000-0000-0000-000000000000",
        "detail-type": "GuardDuty Finding",
        "source": "aws.guardduty",
        "account": ctx.cloud.account,
        "time": "2024-01-01T00:00:00Z",
        "region": ctx.cloud.region,
        "resources": [],
        "detail": {"schemaVersion": "2.0", "accountId": ctx.cloud.account,
                   "region": ctx.cloud.region, "type": finding_type,
                   "severity": ctx.scenario.severity},
    }


def check_rule(ctx: LabContext) -> Check:
    """The deployed rule's pattern matches every finding type of the scenario (EventBridge's
    TestEventPattern): a type GuardDuty renamed, as the workshop's exfiltration type was,
    would leave the rule silent while everything else looks fine."""
    title = "The rule's pattern matches the finding types"
    events = ctx.cloud.client("events")
    rule = ctx.name("rule")
    pattern = events.describe_rule(Name=rule).get("EventPattern")
    if not pattern:
        return Check("rule-matches", title, "fail", f"rule {rule} has no event pattern")
    missed = [kind for kind in ctx.scenario.finding_types if not events.test_event_pattern(
        EventPattern=pattern, Event=json.dumps(finding_event(ctx, kind)))["Result"]]
    if missed:
        return Check("rule-matches", title, "fail",
                     f"rule {rule} never fires for {', '.join(missed)}: its pattern is {pattern}")
    return Check("rule-matches", title, "pass",
                 f"rule {rule} matches {', '.join(ctx.scenario.finding_types)}")


def findings_checks(ctx: LabContext) -> tuple[list[Check], dict[str, Any] | None]:
    """The rule that routes the finding, the finding in GuardDuty and in Security Hub: the
    start of every scenario's proof."""
    checks: list[Check] = []
    guard(checks, "rule-matches", "The rule's pattern matches the finding types", check_rule,
          ctx)
    finding = None
    try:
        finding = observe.guardduty_finding(ctx)
    except Exception as exc:
        checks.append(Check("guardduty-finding", "GuardDuty has the finding", "fail",
                            f"could not check: {describe(exc)[0]}"))
    else:
        guard(checks, "guardduty-finding", "GuardDuty has the finding", check_guardduty, ctx,
               finding)
    guard(checks, "securityhub-finding", "Security Hub has it", check_securityhub, ctx, finding)
    return checks, finding


def responder_log(ctx: LabContext) -> dict[str, Any]:
    """The responder's log as observe reads it, or its failure to read as an error."""
    try:
        return observe.responder_log(ctx)
    except Exception as exc:
        return {"results": [], "errors": [f"log unreadable: {describe(exc)[0]}"],
                "invocations": 0}


def isolation_checks(ctx: LabContext, waiting: flows.Waiting | None = None) -> list[Check]:
    """The proof of an incident answered by isolating an instance: the finding in GuardDuty
    and Security Hub, every ENI in an empty forensic group, the responder's run and e-mails,
    and the traffic blocked (ping from the instance, REJECTs in the flow log). `waiting`
    hears about waits (flow-log delivery takes minutes on AWS)."""
    checks, _finding = findings_checks(ctx)

    def guarded(name: str, title: str, fn: Any, *args: Any) -> None:
        guard(checks, name, title, fn, *args)

    guarded("enis-isolated", "Every ENI has the forensic group", check_enis, ctx)
    guarded("forensic-group-empty", "The forensic group has no rules", check_forensic_rules, ctx)
    log = responder_log(ctx)
    guarded("responder-ran", "The responder ran", check_responder, ctx, log)
    guarded("emails-sent", "Both e-mails were sent", check_emails, ctx, log)
    # Both wait on the cloud (SSM's delivery timeout, flow-log delivery): side by side.
    from concurrent.futures import ThreadPoolExecutor

    ping_checks: list[Check] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gdlab-verify") as pool:
        ping = pool.submit(
            lambda: guard(ping_checks, "ping-blocked", "The instance cannot reach the IP",
                           check_unreachable, ctx)
        )
        flow_checks: list[Check] = []
        guard(flow_checks, "flows-rejected", "The flow log shows the blocked traffic",
               check_flows, ctx, waiting)
        ping.result()
    checks += ping_checks + flow_checks
    return checks
