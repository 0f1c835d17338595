"""Follow the incident hop by hop until every hop is seen or the deadline passes."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from gdlab.errors import describe
from gdlab.lab import observe
from gdlab.lab.state import now_iso
from gdlab.lab.steps import LabContext

HOPS = [
    ("threat-list", "Threat list ACTIVE"),
    ("guardduty", "Finding in GuardDuty"),
    ("securityhub", "Finding in Security Hub"),
    ("responder", "Responder ran"),
    ("isolated", "Instance isolated"),
    ("emails", "E-mails published"),
]

HINTS = {
    "threat-list": "the threat list is not ACTIVE: 'aws guardduty get-threat-intel-set' shows "
    "its status; activation takes minutes on AWS, and ERROR means GuardDuty cannot read the file",
    "guardduty": "no finding yet: is the detector enabled and the threat list ACTIVE? GuardDuty "
    "usually needs about 5 minutes for a new finding; 'gdlab trigger' pings again",
    "securityhub": "the finding is not in Security Hub: is Security Hub enabled, with the "
    "GuardDuty integration accepting findings?",
    "responder": "the responder did not run: is the EventBridge rule ENABLED with the Lambda "
    "target, and the invoke permission in place? Check its log group",
    "isolated": "the instance still has other groups: read the responder's log for its reason",
    "emails": "fewer than 2 messages published to the topic: check the rule's SNS target and "
    "the topic policy (SNS metrics in CloudWatch can lag a few minutes on AWS)",
}


@dataclass
class Hop:
    key: str
    label: str
    seen: bool = False
    at: str | None = None
    elapsed: float | None = None  # seconds since the trigger
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class WatchResult:
    hops: list[Hop]
    complete: bool
    seconds: float
    finding_id: str | None = None
    hints: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "complete": self.complete,
            "seconds": round(self.seconds, 3),
            "finding_id": self.finding_id,
            "hops": [h.to_dict() for h in self.hops],
            "hints": self.hints,
        }


def triggered_at(ctx: LabContext) -> datetime | None:
    for event in reversed(ctx.state.timeline):
        if event.phase == "triggered":
            return datetime.fromisoformat(event.time.replace("Z", "+00:00"))
    return None


class Watcher:
    """Polls only the hops not yet seen, in dependency order."""

    def __init__(self, ctx: LabContext):
        self.ctx = ctx
        self.hops = {key: Hop(key, label) for key, label in HOPS}
        self.finding: dict[str, Any] | None = None
        self.since = triggered_at(ctx) or datetime.now(timezone.utc)

    def _see(self, key: str, detail: str) -> None:
        hop = self.hops[key]
        hop.detail = detail
        if hop.seen:
            return
        hop.seen = True
        hop.at = now_iso()
        hop.elapsed = (datetime.now(timezone.utc) - self.since).total_seconds()
        phase = {"guardduty": "detected", "isolated": "isolated"}.get(key)
        if phase and self.ctx.state.phase in ("ready", "triggered", "detected"):
            self.ctx.state.event(f"{hop.label}: {detail}", phase=phase)
        else:
            self.ctx.state.event(f"{hop.label}: {detail}")

    def poll(self) -> None:
        """One look at every hop not yet seen; a failed look is shown and retried next time."""
        for key, look in (
            ("threat-list", self._threat_list),
            ("guardduty", self._guardduty),
            ("securityhub", self._securityhub),
            ("responder", self._responder),
            ("isolated", self._isolated),
            ("emails", self._emails),
        ):
            # the finding is read again after it is seen: its Count keeps growing
            if self.hops[key].seen and key != "guardduty":
                continue
            try:
                look()
            except Exception as exc:  # throttling, a transient error: say so, keep watching
                self.hops[key].detail = f"could not check: {describe(exc)[0]}"

    def _threat_list(self) -> None:
        ctx, hops = self.ctx, self.hops
        status = observe.threat_list_status(ctx)
        if status == "ACTIVE":
            self._see("threat-list", f"{ctx.name('threat_list')} ACTIVE")
        else:
            hops["threat-list"].detail = f"status {status}"

    def _guardduty(self) -> None:
        finding = observe.guardduty_finding(self.ctx)
        if finding:
            self.finding = finding
            self._see(
                "guardduty",
                f"{finding['Id']} severity {finding.get('Severity')} "
                f"count {finding.get('Service', {}).get('Count')}",
            )

    def _securityhub(self) -> None:
        if self.finding is None:
            return
        asff = observe.securityhub_finding(self.ctx, self.finding)
        if asff:
            self._see(
                "securityhub",
                f"workflow {asff.get('Workflow', {}).get('Status')}, "
                f"record {asff.get('RecordState')}",
            )

    def _responder(self) -> None:
        log = observe.responder_log(self.ctx)
        if log["results"]:
            last = log["results"][-1]
            self._see("responder", f"{last.get('action')}: {last.get('reason')}")
        elif log["errors"]:
            self.hops["responder"].detail = f"error: {log['errors'][-1]}"

    def _isolated(self) -> None:
        groups = observe.eni_groups(self.ctx)
        if observe.is_isolated(self.ctx, groups):
            forensic = self.ctx.id_of("sg-forensic")
            self._see("isolated", f"{len(groups)} ENI(s) in {forensic} only")

    def _emails(self) -> None:
        count = observe.published_count(self.ctx)
        if count >= 2:
            self._see("emails", f"{count} messages published to {self.ctx.name('topic')}")
        else:
            self.hops["emails"].detail = f"{count} published so far"

    @property
    def complete(self) -> bool:
        return all(h.seen for h in self.hops.values())


def watch(
    ctx: LabContext,
    timeout_seconds: float | None = None,
    on_update: Callable[[list[Hop]], None] | None = None,
) -> WatchResult:
    """Poll with backoff and jitter until every hop is seen or the deadline passes."""
    if timeout_seconds is None:
        timeout_seconds = float(
            ctx.scenario.watch_local_seconds
            if ctx.cloud.is_local
            else ctx.scenario.watch_aws_seconds
        )
    watcher = Watcher(ctx)
    started = time.monotonic()
    delay, cap = (0.05, 0.5) if ctx.cloud.is_local else (5.0, 30.0)
    while True:
        watcher.poll()
        if on_update:
            on_update(list(watcher.hops.values()))
        if watcher.complete:
            break
        remaining = timeout_seconds - (time.monotonic() - started)
        if remaining <= 0:
            break
        time.sleep(min(remaining, delay * (0.7 + random.random() * 0.6)))
        delay = min(cap, delay * 1.5)
    hops = list(watcher.hops.values())
    result = WatchResult(
        hops=hops,
        complete=watcher.complete,
        seconds=time.monotonic() - started,
        finding_id=watcher.finding["Id"] if watcher.finding else None,
        hints=[HINTS[h.key] for h in hops if not h.seen],
    )
    if not result.complete:
        missing = ", ".join(h.label for h in hops if not h.seen)
        ctx.state.event(f"watch ended at its deadline; not seen: {missing}", kind="error")
    return result
