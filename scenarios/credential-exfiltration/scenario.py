"""The IAM Role Credential Exfiltration scenario as gdlab runs it: which of gdlab's building
blocks (gdlab.lab.steps) its lab is made of. No flow log and no forensic groups: the incident
is API calls made with stolen credentials, and the answer is revoking them, not isolation.
Both instances are managed by SSM (the attack runs on both); only HTTPS leaves them."""

from __future__ import annotations

from gdlab.lab import credential_theft
from gdlab.lab import hops as library_hops
from gdlab.lab import trigger as library_trigger
from gdlab.lab.hops import HopSpec
from gdlab.lab.revocation_checks import revocation_checks
from gdlab.lab.steps import Step
from gdlab.lab.steps.compute import ApplicationInstanceRole
from gdlab.lab.steps.kits import RESPONDER_CHAIN, api_attack_side, build
from gdlab.lab.steps.response import REVOKE


def steps() -> list[Step]:
    """A fresh instance of every step of this scenario's lab; its responder revokes."""
    return build(api_attack_side(ApplicationInstanceRole) + RESPONDER_CHAIN, REVOKE)


def hops() -> list[HopSpec]:
    """What `gdlab watch` follows: the list, the finding in GuardDuty and Security Hub, the
    responder, the revocation it made, and both e-mails."""
    return [library_hops.THREAT_LIST, library_hops.GUARDDUTY, library_hops.SECURITYHUB,
            library_hops.RESPONDER, library_hops.REVOKED, library_hops.EMAILS]


# What the incident must show, and the checks that can prove each.
PROPERTIES: dict[str, tuple[str, ...]] = {
    "rule-matches-finding": ("rule-matches",),
    "finding-raised": ("guardduty-finding",),
    "finding-in-securityhub": ("securityhub-finding",),
    "responder-ran": ("responder-ran",),
    "sessions-revoked": ("sessions-revoked",),
    "stolen-session-refused": ("stolen-session-refused",),
    "emails-sent": ("emails-sent",),
}


def checks(ctx, waiting=None):  # type: ignore[no-untyped-def]
    """What `gdlab verify` looks at: the checks of an incident answered by revocation."""
    return revocation_checks(ctx, waiting)


def trigger(ctx, count=3):  # type: ignore[no-untyped-def]
    """`gdlab trigger`: the compromised instance's role credentials are read from IMDSv2 and
    used from the malicious instance (SSM RunCommand on each). `count` (pings) has no meaning
    here. GuardDuty judges calls from listed addresses only once the list is ACTIVE."""
    library_trigger.wait_threat_list_active(ctx, 30.0 if ctx.cloud.is_local else 900.0)
    return credential_theft.trigger(ctx)
