"""Prove the incident: named checks, each passed or not, with the evidence it saw."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gdlab.errors import GdlabError, describe
from gdlab.lab import observe, trigger
from gdlab.lab.steps import LabContext


@dataclass
class Check:
    name: str
    title: str
    status: str  # pass | fail | inconclusive
    evidence: str

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "passed": self.passed,
            "status": self.status,
            "evidence": self.evidence,
        }


@dataclass
class Verdict:
    lab: str
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lab": self.lab,
            "passed": self.passed,
            "checks": [c.to_dict() for c in self.checks],
        }


def _ok(flag: bool) -> str:
    return "pass" if flag else "fail"


def check_guardduty(ctx: LabContext, finding: dict[str, Any] | None) -> Check:
    title = "GuardDuty has the finding"
    if finding is None:
        return Check(
            "guardduty-finding",
            title,
            "fail",
            f"no {ctx.scenario.finding_type} finding for the compromised instance",
        )
    instance = finding.get("Resource", {}).get("InstanceDetails", {}).get("InstanceId")
    eip = ctx.attr("eip", "public_ip")
    lists = observe.threat_list_names(finding)
    wanted_list = ctx.name("threat_list")
    problems = []
    if finding.get("Type") != ctx.scenario.finding_type:
        problems.append(f"type {finding.get('Type')}")
    if instance != ctx.id_of("instance-compromised"):
        problems.append(f"instance {instance}")
    if observe.remote_ip(finding) != eip:
        problems.append(f"remote IP {observe.remote_ip(finding)} is not the EIP {eip}")
    if wanted_list not in lists:
        problems.append(f"threat lists {lists} lack {wanted_list}")
    evidence = (
        f"{finding['Id']}: {finding.get('Type')} on {instance}, remote {observe.remote_ip(finding)}"
        f", list {', '.join(lists) or '-'}, severity {finding.get('Severity')}, "
        f"count {finding.get('Service', {}).get('Count')}"
    )
    if problems:
        evidence += " — wrong: " + "; ".join(problems)
    return Check("guardduty-finding", title, _ok(not problems), evidence)


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


def check_responder(ctx: LabContext, log: dict[str, Any]) -> Check:
    title = "The responder ran without error"
    results = log["results"]
    acted = [r for r in results if r.get("action") == "isolated"]
    if log["errors"]:
        return Check("responder-ran", title, "fail", f"error in its log: {log['errors'][-1]}")
    if not acted:
        reasons = "; ".join(str(r.get("reason")) for r in results) or "no run in its log group"
        return Check("responder-ran", title, "fail", f"it never isolated the instance: {reasons}")
    last = acted[-1]
    return Check(
        "responder-ran",
        title,
        "pass",
        f"{log['invocations']} invocation(s); isolated {last.get('instance_id')} for finding "
        f"{last.get('finding_id')}, {len(last.get('enis', []))} ENI(s)",
    )


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


def _ping_summary(output: str) -> str:
    for line in output.splitlines():
        if "packets transmitted" in line:
            return line.strip()
    return ""


def verify(ctx: LabContext) -> Verdict:
    checks: list[Check] = []

    def guarded(name: str, title: str, fn: Any, *args: Any) -> None:
        try:
            checks.append(fn(*args))
        except Exception as exc:  # one broken query must not hide the other checks
            checks.append(Check(name, title, "fail", f"could not check: {describe(exc)[0]}"))

    finding = None
    try:
        finding = observe.guardduty_finding(ctx)
    except Exception as exc:
        checks.append(
            Check(
                "guardduty-finding",
                "GuardDuty has the finding",
                "fail",
                f"could not check: {describe(exc)[0]}",
            )
        )
    else:
        guarded("guardduty-finding", "GuardDuty has the finding", check_guardduty, ctx, finding)
    guarded("securityhub-finding", "Security Hub has it", check_securityhub, ctx, finding)
    guarded("enis-isolated", "Every ENI has the forensic group", check_enis, ctx)
    guarded("forensic-group-empty", "The forensic group has no rules", check_forensic_rules, ctx)
    try:
        log = observe.responder_log(ctx)
    except Exception as exc:
        log = {"results": [], "errors": [f"log unreadable: {describe(exc)[0]}"], "invocations": 0}
    guarded("responder-ran", "The responder ran", check_responder, ctx, log)
    guarded("emails-sent", "Both e-mails were sent", check_emails, ctx, log)
    guarded("ping-blocked", "The instance cannot reach the IP", check_unreachable, ctx)
    verdict = Verdict(ctx.lab, checks)
    failed = [c.name for c in checks if not c.passed]
    if verdict.passed:
        ctx.state.event("verified: every check passed", phase="verified")
    else:
        ctx.state.event(f"verify failed: {', '.join(failed)}", kind="error")
    return verdict
