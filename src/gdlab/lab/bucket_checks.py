"""The checks that prove an incident answered by restoring a bucket's protections: the
findings, the responder's run, Block Public Access fully on, access logging to the lab's log
bucket, and both e-mails."""

from __future__ import annotations

from typing import Any

from gdlab.lab import checks as library
from gdlab.lab.awsutil import error_code
from gdlab.lab.steps import LabContext
from gdlab.lab.steps.buckets import ACCESS_LOG_PREFIX
from gdlab.lab.verify import Check

SETTINGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


def check_public_access_blocked(ctx: LabContext) -> Check:
    title = "The bucket blocks public access again"
    from botocore.exceptions import ClientError

    bucket = ctx.id_of("data-bucket")
    try:
        found = ctx.cloud.client("s3").get_public_access_block(
            Bucket=bucket)["PublicAccessBlockConfiguration"]
    except ClientError as exc:
        if error_code(exc) == "NoSuchPublicAccessBlockConfiguration":
            return Check("public-access-blocked", title, "fail",
                         f"{bucket} has no Block Public Access configuration")
        raise
    off = [k for k in SETTINGS if not found.get(k)]
    return Check("public-access-blocked", title, "fail" if off else "pass",
                 f"{bucket}: " + (f"{', '.join(off)} off" if off
                                  else "all four Block Public Access settings on"))


def check_logging_on(ctx: LabContext) -> Check:
    title = "The bucket logs its access again"
    bucket, target = ctx.id_of("data-bucket"), ctx.id_of("log-bucket")
    enabled = ctx.cloud.client("s3").get_bucket_logging(Bucket=bucket).get("LoggingEnabled") or {}
    ok = enabled.get("TargetBucket") == target and \
        enabled.get("TargetPrefix") == ACCESS_LOG_PREFIX
    where = (f"s3://{enabled.get('TargetBucket')}/{enabled.get('TargetPrefix') or ''}"
             if enabled else "nowhere (logging off)")
    return Check("access-logging-on", title, "pass" if ok else "fail",
                 f"{bucket} logs to {where}" + ("" if ok else
                                                f", not s3://{target}/{ACCESS_LOG_PREFIX}"))


def _restored(result: dict[str, Any]) -> str:
    return (f"restored {result.get('bucket')} ({'; '.join(result.get('restored') or [])}) "
            f"for finding {result.get('finding_id')}")


def bucket_checks(ctx: LabContext, waiting: Any = None) -> list[Check]:
    """`waiting` is unused: nothing here waits for delivery, as flow logs do."""
    checks, _finding = library.findings_checks(ctx)

    def guarded(name: str, title: str, fn: Any, *args: Any) -> None:
        library.guard(checks, name, title, fn, *args)

    log = library.responder_log(ctx)
    guarded("responder-ran", "The responder ran", library.check_responder, ctx, log,
            "restored", _restored, "it never restored the bucket")
    guarded("public-access-blocked", "The bucket blocks public access again",
            check_public_access_blocked, ctx)
    guarded("access-logging-on", "The bucket logs its access again", check_logging_on, ctx)
    guarded("emails-sent", "Both e-mails were sent", library.check_emails, ctx, log)
    return checks
