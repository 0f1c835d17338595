"""The Compromised IAM Credentials scenario as gdlab runs it: which of gdlab's building blocks
(gdlab.lab.steps) its lab is made of. The incident is an IAM user's leaked access key used
from the malicious instance; the answer is disabling the key. The compromised instance is the
workshop's "application host" the key belongs to; it takes no part in the attack."""

from __future__ import annotations

from gdlab.lab import hops as library_hops
from gdlab.lab import key_theft
from gdlab.lab import trigger as library_trigger
from gdlab.lab.hops import HopSpec
from gdlab.lab.key_checks import key_checks
from gdlab.lab.steps import Step
from gdlab.lab.steps.identity import LabUser, LeakedKey
from gdlab.lab.steps.kits import RESPONDER_CHAIN, api_attack_side, build
from gdlab.lab.steps.response import DISABLE_KEY


def steps() -> list[Step]:
    """A fresh instance of every step of this scenario's lab; its responder disables keys."""
    return build(api_attack_side(extra=(LabUser, LeakedKey)) + RESPONDER_CHAIN, DISABLE_KEY)


def finding_subject(ctx):  # type: ignore[no-untyped-def]
    """Its findings name the leaked key, not an instance."""
    key = ctx.state.live("access-key")
    return "resource.accessKeyDetails.accessKeyId", key.id if key else None


def hops() -> list[HopSpec]:
    return [library_hops.THREAT_LIST, library_hops.GUARDDUTY, library_hops.SECURITYHUB,
            library_hops.RESPONDER, library_hops.KEY_DISABLED, library_hops.EMAILS]


PROPERTIES: dict[str, tuple[str, ...]] = {
    "rule-matches-finding": ("rule-matches",),
    "finding-raised": ("guardduty-finding",),
    "finding-in-securityhub": ("securityhub-finding",),
    "responder-ran": ("responder-ran",),
    "key-disabled": ("key-inactive",),
    "user-denied": ("user-denied",),
    "key-refused": ("key-refused",),
    "emails-sent": ("emails-sent",),
}


def checks(ctx, waiting=None):  # type: ignore[no-untyped-def]
    return key_checks(ctx, waiting)


def trigger(ctx, count=3):  # type: ignore[no-untyped-def]
    """`gdlab trigger`: with the leaked key, the malicious instance asks who it is (a
    management call: UnauthorizedAccess:IAMUser) and lists the lab's bucket (an S3 data
    event: Discovery:S3), through SSM RunCommand. `count` (pings) has no meaning here."""
    library_trigger.wait_threat_list_active(ctx, 30.0 if ctx.cloud.is_local else 900.0)
    bucket = ctx.id_of("bucket")
    return key_theft.trigger(ctx, ["aws sts get-caller-identity", f"aws s3 ls s3://{bucket}"])
