"""The Compromised S3 Bucket scenario as gdlab runs it: which of gdlab's building blocks
(gdlab.lab.steps) its lab is made of. A leaked IAM user key, allowed to manage the data
bucket's settings, turns its protections off from the malicious instance; the answer is
turning them back on. The compromised instance takes no part in the attack."""

from __future__ import annotations

from gdlab.lab import hops as library_hops
from gdlab.lab import key_theft
from gdlab.lab import trigger as library_trigger
from gdlab.lab.bucket_checks import bucket_checks
from gdlab.lab.hops import HopSpec
from gdlab.lab.steps import Step
from gdlab.lab.steps.buckets import AccessLogBucket, DataBucket
from gdlab.lab.steps.identity import LabUser, LeakedKey
from gdlab.lab.steps.kits import RESPONDER_CHAIN, api_attack_side, build
from gdlab.lab.steps.response import RESTORE_BUCKET

# What the data bucket's administrator (the leaked key's user) may do to it.
BUCKET_ADMIN = ("s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock",
                "s3:GetBucketLogging", "s3:PutBucketLogging")

def steps() -> list[Step]:
    """A fresh instance of every step of this scenario's lab; its responder restores, its
    user administers the data bucket."""
    kinds = api_attack_side(extra=(AccessLogBucket, DataBucket, LabUser, LeakedKey))
    return build(kinds + RESPONDER_CHAIN, RESTORE_BUCKET,
                 made={LabUser: LabUser("data-bucket", BUCKET_ADMIN)})


def finding_subject(ctx):  # type: ignore[no-untyped-def]
    """Its findings name the data bucket."""
    bucket = ctx.state.live("data-bucket")
    return "resource.s3BucketDetails.name", bucket.id if bucket else None


def hops() -> list[HopSpec]:
    return [library_hops.THREAT_LIST, library_hops.GUARDDUTY, library_hops.SECURITYHUB,
            library_hops.RESPONDER, library_hops.BUCKET_RESTORED, library_hops.EMAILS]


PROPERTIES: dict[str, tuple[str, ...]] = {
    "rule-matches-finding": ("rule-matches",),
    "finding-raised": ("guardduty-finding",),
    "finding-in-securityhub": ("securityhub-finding",),
    "responder-ran": ("responder-ran",),
    "public-access-blocked": ("public-access-blocked",),
    "access-logging-on": ("access-logging-on",),
    "emails-sent": ("emails-sent",),
}


def checks(ctx, waiting=None):  # type: ignore[no-untyped-def]
    return bucket_checks(ctx, waiting)


def trigger(ctx, count=3):  # type: ignore[no-untyped-def]
    """`gdlab trigger`: with the leaked key, the malicious instance removes the data bucket's
    Block Public Access and turns its server access logging off (SSM RunCommand). `count`
    (pings) has no meaning here."""
    library_trigger.wait_threat_list_active(ctx, 30.0 if ctx.cloud.is_local else 900.0)
    bucket = ctx.id_of("data-bucket")
    return key_theft.trigger(ctx, [
        f"aws s3api delete-public-access-block --bucket {bucket}",
        f"aws s3api put-bucket-logging --bucket {bucket} --bucket-logging-status '{{}}'",
    ])
