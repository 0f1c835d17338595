"""What an incident report shows for one lab, as plain JSON-able data: gathered from the
cloud while the lab still exists (`gather`), or from its state alone after teardown
(`from_state`). Nothing here raises for a part that is missing: a lab not yet triggered has
no finding, a target without an outbox no e-mails."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gdlab.lab.state import LabState
    from gdlab.lab.steps import LabContext
    from gdlab.lab.verify import Verdict
    from gdlab.lab.watch import WatchResult
    from gdlab.scenario import Scenario

# The responder's record of each interface's groups before isolation (an instance tag,
# continued in `<key>:2`, `<key>:3`... when long: scenarios/compromised-ec2/responder).
ORIGINAL_GROUPS_TAG = "gdlab:original-groups:"


@dataclass
class Evidence:
    lab: str
    scenario: str
    scenario_title: str = ""
    target: str = ""
    region: str = ""
    phase: str = ""
    resources: list[dict[str, Any]] = field(default_factory=list)
    hops: list[dict[str, Any]] = field(default_factory=list)
    finding: dict[str, Any] | None = None
    asff: dict[str, Any] | None = None
    emails: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    # what the incident must show, and the checks that proved each (verify --json's)
    properties: list[dict[str, Any]] = field(default_factory=list)
    forensic_rules: dict[str, list[dict[str, Any]]] | None = None
    enis: list[dict[str, Any]] = field(default_factory=list)
    teardown: list[dict[str, Any]] = field(default_factory=list)
    # what could not be read, one line each ("finding: AccessDenied ...")
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def from_dict(data: dict[str, Any]) -> Evidence:
    """An Evidence back from to_dict's JSON (keys it does not know are left out)."""
    known = {f.name for f in fields(Evidence)}
    return Evidence(**{k: v for k, v in data.items() if k in known})


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        a = datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((b - a).total_seconds(), 3)


def resources_of(state: LabState) -> list[dict[str, Any]]:
    return [
        {"key": r.key, "type": r.type, "id": r.id, "status": r.status,
         "ownership": r.ownership, "name": r.name}
        for r in state.resources
    ]


def hops_from_timeline(state: LabState) -> list[dict[str, Any]]:
    """The timeline's events from the last trigger on (the trigger itself at 0 s); before
    any trigger, the whole timeline with no seconds."""
    events = list(state.timeline)
    start = None
    for i in range(len(events) - 1, -1, -1):
        if events[i].phase == "triggered":
            start = i
            break
    if start is None:
        return [{"name": e.message.split(": ", 1)[0], "detail": e.message, "seen_at": e.time,
                 "seconds_since_trigger": None} for e in events]
    at = events[start].time
    return [
        {"name": e.message.split(": ", 1)[0], "detail": e.message, "seen_at": e.time,
         "seconds_since_trigger": _seconds_between(at, e.time)}
        for e in events[start:]
    ]


def hops_from_watch(watch: WatchResult, state: LabState | None = None) -> list[dict[str, Any]]:
    """The watch's hops, after the trigger itself (at 0 s) when the lab's timeline has it."""
    hops = [
        {"name": h.label, "detail": h.detail, "seen_at": h.at,
         "seconds_since_trigger": None if h.elapsed is None else round(h.elapsed, 3)}
        for h in watch.hops
    ]
    trigger = next((e for e in reversed(state.timeline) if e.phase == "triggered"),
                   None) if state is not None else None
    if trigger is not None:
        hops.insert(0, {"name": "Triggered", "detail": trigger.message,
                        "seen_at": trigger.time, "seconds_since_trigger": 0.0})
    return hops


def checks_of(verdict: Verdict) -> list[dict[str, Any]]:
    return [
        {"name": c.name, "title": c.title, "passed": c.passed, "status": c.status,
         "evidence": c.evidence}
        for c in verdict.checks
    ]


def from_state(state: LabState, scenario: Scenario | None = None) -> Evidence:
    """A report's evidence from the lab's state alone (after teardown): its resources and
    its timeline."""
    return Evidence(
        lab=state.lab,
        scenario=state.scenario,
        scenario_title=getattr(scenario, "title", "") or "",
        target=state.target,
        region=state.region,
        phase=state.phase,
        resources=resources_of(state),
        hops=hops_from_timeline(state),
    )


def _tried(evidence: Evidence, what: str, read: Any) -> Any:
    """read(), or None with a note when the cloud would not tell."""
    try:
        return read()
    except Exception as exc:  # noqa: BLE001 - a report shows what it could read
        from gdlab.errors import describe

        evidence.notes.append(f"{what}: {describe(exc)[0]}")
        return None


def gather(
    ctx: LabContext,
    *,
    watch: WatchResult | None = None,
    verdict: Verdict | None = None,
    emails: list[dict[str, Any]] | None = None,
) -> Evidence:
    """Everything a report shows for the lab, read from the cloud while it still exists.
    Call it before teardown; the caller fills `teardown` afterwards."""
    from gdlab.lab import observe

    evidence = from_state(ctx.state, ctx.scenario)
    if watch is not None:
        evidence.hops = hops_from_watch(watch, ctx.state)
    if verdict is not None:
        evidence.checks = checks_of(verdict)
        evidence.properties = verdict.to_dict()["properties"]
    evidence.finding = _tried(evidence, "GuardDuty finding",
                              lambda: observe.guardduty_finding(ctx))
    if evidence.finding:
        finding = evidence.finding
        evidence.asff = _tried(evidence, "Security Hub finding",
                               lambda: observe.securityhub_finding(ctx, finding))
    if emails is None:
        emails = _tried(evidence, "e-mails", lambda: lab_emails(ctx)) or []
    evidence.emails = [dict(e) for e in emails]
    evidence.forensic_rules = _tried(evidence, "forensic group", lambda: forensic_group(ctx))
    evidence.enis = _tried(evidence, "network interfaces", lambda: enis_of(ctx)) or []
    return evidence


def lab_emails(ctx: LabContext) -> list[dict[str, Any]]:
    """The lab's e-mails as `gdlab mail --json` gives them (local cloud; none on AWS,
    where they go to the subscribed inbox)."""
    topic = ctx.state.live("sns-topic")
    if not ctx.cloud.is_local or topic is None or not topic.id:
        return []
    from gdlab.cli.mail import lab_mails

    return lab_mails(ctx.cloud, topic.id)


def forensic_group(ctx: LabContext) -> dict[str, list[dict[str, Any]]] | None:
    """The forensic security group's rules, if the scenario has one."""
    forensic = ctx.state.live("sg-forensic")
    if forensic is None or not forensic.id:
        return None
    from botocore.exceptions import ClientError

    from gdlab.lab.awsutil import error_code

    try:
        group = ctx.cloud.client("ec2").describe_security_groups(GroupIds=[forensic.id])[
            "SecurityGroups"][0]
    except ClientError as exc:
        if error_code(exc) == "InvalidGroup.NotFound":
            return None
        raise
    return {"ingress": list(group.get("IpPermissions", [])),
            "egress": list(group.get("IpPermissionsEgress", []))}


def recorded_groups(tags: dict[str, str], eni: str) -> list[str] | None:
    """An interface's groups before isolation, from the responder's instance tags (None
    when it recorded none)."""
    key = ORIGINAL_GROUPS_TAG + eni
    if key not in tags:
        return None
    parts, n = [tags[key]], 2
    while f"{key}:{n}" in tags:
        parts.append(tags[f"{key}:{n}"])
        n += 1
    return [g for part in parts for g in part.split(",") if g]


def enis_of(ctx: LabContext) -> list[dict[str, Any]]:
    """Each ENI of the compromised instance: its groups now, and before isolation when the
    responder recorded them."""
    from gdlab.lab import observe

    instance = ctx.state.live("instance-compromised")
    if instance is None or not instance.id:
        return []
    now = observe.eni_groups(ctx)
    tags: dict[str, str] = {}
    with contextlib.suppress(Exception):
        reservations = ctx.cloud.client("ec2").describe_instances(
            InstanceIds=[instance.id])["Reservations"]
        for reservation in reservations:
            for found in reservation.get("Instances", []):
                tags.update({t["Key"]: t["Value"] for t in found.get("Tags", [])})
    return [
        {"eni": eni, "instance": instance.id, "groups_now": groups,
         "groups_before": recorded_groups(tags, eni)}
        for eni, groups in sorted(now.items())
    ]
