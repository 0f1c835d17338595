"""The checks that prove an incident answered by revoking an instance role's sessions: the
finding, the responder's run, the revoking policy on the role, the stolen session refused
when the thief tries it again, and both e-mails."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

from gdlab.lab import checks as library
from gdlab.lab import credential_theft
from gdlab.lab.awsutil import error_code
from gdlab.lab.responder_policies import REVOKE_POLICY_NAME
from gdlab.lab.steps import LabContext
from gdlab.lab.verify import Check

# What AWS answers a session that a policy denies, service by service.
_REFUSED = ("UnauthorizedOperation", "AccessDenied", "AuthorizationError")


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def revoking_cutoff(ctx: LabContext) -> datetime | None:
    """The latest aws:TokenIssueTime cut-off of the role's revoking policy, if it has one."""
    from botocore.exceptions import ClientError

    try:
        document = ctx.cloud.client("iam").get_role_policy(
            RoleName=ctx.id_of("instance-role"), PolicyName=REVOKE_POLICY_NAME)["PolicyDocument"]
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return None
        raise
    if isinstance(document, str):
        document = json.loads(unquote(document))
    statements = document.get("Statement", [])
    statements = statements if isinstance(statements, list) else [statements]
    found = []
    for statement in statements:
        if not isinstance(statement, dict) or statement.get("Effect") != "Deny":
            continue
        values = (statement.get("Condition", {}).get("DateLessThan", {})
                  .get("aws:TokenIssueTime"))
        for value in values if isinstance(values, list) else [values]:
            if (moment := _time(value)) is not None:
                found.append(moment)
    return max(found) if found else None


def check_revoked(ctx: LabContext, stolen: credential_theft.StolenSession | None) -> Check:
    title = "The role's older sessions are revoked"
    role = ctx.id_of("instance-role")
    cutoff = revoking_cutoff(ctx)
    if cutoff is None:
        return Check("sessions-revoked", title, "fail",
                     f"role {role} has no {REVOKE_POLICY_NAME} policy denying older sessions")
    evidence = (f"{REVOKE_POLICY_NAME} on {role} denies sessions issued before "
                f"{cutoff:%Y-%m-%dT%H:%M:%SZ}")
    if stolen is None:
        return Check("sessions-revoked", title, "inconclusive",
                     evidence + "; no stolen session in SSM's history to compare it with")
    issued = _time(stolen.issued)
    if issued is None or issued >= cutoff:
        return Check("sessions-revoked", title, "fail",
                     evidence + f", but the stolen session {stolen.access_key_id} was issued "
                     f"at {stolen.issued}: not covered")
    return Check("sessions-revoked", title, "pass",
                 evidence + f", the stolen session {stolen.access_key_id} ({stolen.issued}) "
                 "among them")


def check_refused(ctx: LabContext, stolen: credential_theft.StolenSession | None) -> Check:
    title = "The stolen session is refused"
    if stolen is None:
        return Check("stolen-session-refused", title, "inconclusive",
                     "no stolen session in SSM's history of the compromised instance")
    return credential_theft.check_refused_again(
        ctx, "stolen-session-refused", title, stolen,
        f"{credential_theft.USE} --region {ctx.cloud.region}", _REFUSED)


def _revoked(result: dict[str, Any]) -> str:
    return (f"revoked the sessions of {result.get('role')} issued before {result.get('cutoff')}"
            f" for finding {result.get('finding_id')}")


def revocation_checks(ctx: LabContext, waiting: Any = None) -> list[Check]:
    """`waiting` is unused: nothing here waits for delivery, as flow logs do."""
    checks, _finding = library.findings_checks(ctx)

    def guarded(name: str, title: str, fn: Any, *args: Any) -> None:
        library.guard(checks, name, title, fn, *args)

    log = library.responder_log(ctx)
    guarded("responder-ran", "The responder ran", library.check_responder, ctx, log, "revoked",
            _revoked, "it never revoked the role's sessions")
    stolen = None
    try:
        stolen = credential_theft.last_stolen(ctx)
    except Exception:  # noqa: BLE001 - the two checks below say there is nothing to compare
        stolen = None
    guarded("sessions-revoked", "The role's older sessions are revoked", check_revoked, ctx,
            stolen)
    guarded("stolen-session-refused", "The stolen session is refused", check_refused, ctx,
            stolen)
    guarded("emails-sent", "Both e-mails were sent", library.check_emails, ctx, log)
    return checks
