"""The hops an incident is watched through: the library scenarios pick theirs from
(scenarios/<name>/scenario.py `hops()`). Each hop is a look at the cloud that either sees it
(watcher.see) or says what it found instead (watcher.note); watch.py polls them in the order
the scenario lists them. Expected times are AWS's (REFERENCE: latencies): a new finding
reaches GuardDuty's API and EventBridge in about 5 minutes, Security Hub about 5 minutes
after that; the responder and its e-mail follow EventBridge in seconds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gdlab.lab import observe


@dataclass(frozen=True)
class HopSpec:
    key: str
    label: str
    look: Callable[[Any], None]  # look(watcher): see or note the hop
    expected_aws_seconds: float  # after the trigger, on AWS
    hint: str  # what to check when it was not seen by the deadline
    phase: str | None = None  # the lab's phase once it is first seen
    again: bool = False  # looked at after it is seen (the finding's Count keeps growing)


def _threat_list(watcher: Any) -> None:
    ctx = watcher.ctx
    status = observe.threat_list_status(ctx)
    if status == "ACTIVE":
        watcher.see("threat-list", f"{observe.threat_list_name(ctx)} ACTIVE")
    else:
        watcher.note("threat-list", f"status {status}")


def _guardduty(watcher: Any) -> None:
    finding = observe.guardduty_finding(watcher.ctx)
    if finding:
        watcher.finding = finding
        watcher.see("guardduty", f"{finding['Id']} severity {finding.get('Severity')} "
                                 f"count {finding.get('Service', {}).get('Count')}")


def _securityhub(watcher: Any) -> None:
    if watcher.finding is None:
        return
    asff = observe.securityhub_finding(watcher.ctx, watcher.finding)
    if asff:
        watcher.see("securityhub", f"workflow {asff.get('Workflow', {}).get('Status')}, "
                                   f"record {asff.get('RecordState')}")


def _responder(watcher: Any) -> None:
    log = observe.responder_log(watcher.ctx)
    if log["results"]:
        last = log["results"][-1]
        watcher.see("responder", f"{last.get('action')}: {last.get('reason')}")
    elif log["errors"]:
        watcher.note("responder", f"error: {log['errors'][-1]}")


def _isolated(watcher: Any) -> None:
    ctx = watcher.ctx
    groups = observe.eni_groups(ctx)
    if observe.is_isolated(ctx, groups):
        watcher.see("isolated", f"{len(groups)} ENI(s) in {ctx.id_of('sg-forensic')} only")


def _revoked(watcher: Any) -> None:
    from gdlab.lab.revocation_checks import revoking_cutoff

    ctx = watcher.ctx
    cutoff = revoking_cutoff(ctx)
    if cutoff is not None:
        watcher.see("revoked", f"{ctx.id_of('instance-role')} denies sessions issued before "
                               f"{cutoff:%H:%M:%S}")


def _key_disabled(watcher: Any) -> None:
    from gdlab.lab.key_checks import check_key_inactive

    check = check_key_inactive(watcher.ctx)
    if check.status == "pass":
        watcher.see("key-disabled", check.evidence)


def _bucket_restored(watcher: Any) -> None:
    from gdlab.lab.bucket_checks import check_logging_on, check_public_access_blocked

    ctx = watcher.ctx
    checks = [check_public_access_blocked(ctx), check_logging_on(ctx)]
    if all(c.status == "pass" for c in checks) and observe.responder_log(ctx)["results"]:
        watcher.see("bucket-restored", "; ".join(c.evidence for c in checks))


def _emails(watcher: Any) -> None:
    ctx = watcher.ctx
    count = observe.published_count(ctx)
    if count >= 2:
        watcher.see("emails", f"{count} messages published to {ctx.name('topic')}")
    else:
        watcher.note("emails", f"{count} published so far")


THREAT_LIST = HopSpec(
    "threat-list", "Threat list ACTIVE", _threat_list, 0,  # trigger waits for ACTIVE first
    "the threat list is not ACTIVE: 'aws guardduty get-threat-intel-set' shows its status; "
    "activation takes minutes on AWS, and ERROR means GuardDuty cannot read the file")
GUARDDUTY = HopSpec(
    "guardduty", "Finding in GuardDuty", _guardduty, 300,
    "no finding yet: is the detector enabled and the threat list ACTIVE? GuardDuty usually "
    "needs about 5 minutes for a new finding; 'gdlab trigger' pings again",
    phase="detected", again=True)
SECURITYHUB = HopSpec(
    "securityhub", "Finding in Security Hub", _securityhub, 600,
    "the finding is not in Security Hub: is Security Hub enabled, with the GuardDuty "
    "integration accepting findings?")
RESPONDER = HopSpec(
    "responder", "Responder ran", _responder, 310,
    "the responder did not run: is the EventBridge rule ENABLED with the Lambda target, and "
    "the invoke permission in place? Check its log group")
ISOLATED = HopSpec(
    "isolated", "Instance isolated", _isolated, 310,
    "the instance still has other groups: read the responder's log for its reason",
    phase="isolated")
REVOKED = HopSpec(
    "revoked", "Role sessions revoked", _revoked, 310,
    "the instance role has no AWSRevokeOlderSessions policy: read the responder's log for its "
    "reason", phase="revoked")
KEY_DISABLED = HopSpec(
    "key-disabled", "Access key disabled", _key_disabled, 310,
    "the leaked key is still Active: read the responder's log for its reason",
    phase="disabled")
BUCKET_RESTORED = HopSpec(
    "bucket-restored", "Bucket protections restored", _bucket_restored, 310,
    "the bucket's Block Public Access or access logging is still off: read the responder's "
    "log for its reason", phase="restored")
EMAILS = HopSpec(
    "emails", "E-mails published", _emails, 310,
    "fewer than 2 messages published to the topic: check the rule's SNS target and the topic "
    "policy (SNS metrics in CloudWatch can lag a few minutes on AWS)")
