"""The lab's data bucket, whose protections the compromised-s3-bucket attacker turns off, and
the bucket its server access logs go to. Both private and encrypted, like the threat-list
bucket (detection.Bucket), whose naming, emptying and sweep they share."""

from __future__ import annotations

import json

from gdlab.lab.state import Resource
from gdlab.lab.steps import LabContext
from gdlab.lab.steps.detection import Bucket

ACCESS_LOG_PREFIX = "access-logs/"
# AWS's recommended way to let server access logging write (the log bucket owner enforces
# object ownership, so ACLs are off): a bucket policy for the logging service principal.
LOGGING_PRINCIPAL = "logging.s3.amazonaws.com"


def named(ctx: LabContext, what: str) -> str:
    """gdlab-<lab>-<what>-<account>-<region>: at most 51 characters, unique in S3."""
    return f"gdlab-{ctx.lab}-{what}-{ctx.cloud.account}-{ctx.cloud.region}"


def bucket_arn(ctx: LabContext, name: str) -> str:
    return f"arn:{ctx.cloud.partition()}:s3:::{name}"


class AccessLogBucket(Bucket):
    key, label = "log-bucket", "Private, encrypted access-log bucket"

    def name_of(self, ctx: LabContext) -> str:
        return named(ctx, "logs")

    def configure(self, ctx: LabContext, res: Resource) -> None:
        super().configure(ctx, res)
        data = named(ctx, "data")
        ctx.cloud.client("s3").put_bucket_policy(Bucket=res.id, Policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "S3ServerAccessLogsOfTheLabDataBucket",
                "Effect": "Allow",
                "Principal": {"Service": LOGGING_PRINCIPAL},
                "Action": ["s3:PutObject"],
                "Resource": f"{bucket_arn(ctx, res.id)}/{ACCESS_LOG_PREFIX}*",
                "Condition": {"ArnLike": {"aws:SourceArn": bucket_arn(ctx, data)},
                              "StringEquals": {"aws:SourceAccount": ctx.cloud.account}},
            }]}))


class DataBucket(Bucket):
    """The workshop's "finance" bucket: Block Public Access on, server access logging on."""

    key, label = "data-bucket", "Data bucket (public access blocked, access logged)"
    needs = ("log-bucket",)

    def name_of(self, ctx: LabContext) -> str:
        return named(ctx, "data")

    def configure(self, ctx: LabContext, res: Resource) -> None:
        super().configure(ctx, res)  # Block Public Access, encryption, tags
        ctx.cloud.client("s3").put_bucket_logging(Bucket=res.id, BucketLoggingStatus={
            "LoggingEnabled": {"TargetBucket": ctx.id_of("log-bucket"),
                               "TargetPrefix": ACCESS_LOG_PREFIX}})
