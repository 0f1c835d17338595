"""gdlab responder: restores a lab bucket's Block Public Access and server access logging
after someone turned them off.

Runs as a Lambda (python3.12, stdlib + boto3 only) behind the EventBridge rule for
Policy:S3/BucketBlockPublicAccessDisabled and Stealth:S3/ServerAccessLoggingDisabled. It acts
only on buckets carrying the lab tag: it turns all four Block Public Access settings back on
and sends the bucket's access logs to the lab's log bucket again, whichever of the two the
finding names (both are checked, so one run repairs what the attacker did in either order),
then e-mails a report through SNS.

Environment: LAB_TAG_KEY, LAB_TAG_VALUE, TOPIC_ARN, LOG_BUCKET, LOG_PREFIX, LOG_LEVEL.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime, timezone
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

FINDING_TYPES = ("Policy:S3/BucketBlockPublicAccessDisabled",
                 "Stealth:S3/ServerAccessLoggingDisabled")
EVENT_SOURCE = "aws.guardduty"
EVENT_DETAIL_TYPE = "GuardDuty Finding"
SUBJECT = "GuardDuty Remediation"
# gdlab's verify searches the function's log group for this prefix; keep it stable.
RESULT_PREFIX = "gdlab-responder result"
BLOCK_ALL = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
             "RestrictPublicBuckets": True}
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

logger = logging.getLogger("gdlab.responder")
logger.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
if not logging.getLogger().handlers:
    # Outside Lambda (gdlab's local runner) nothing prints INFO records; Lambda's runtime
    # installs its own handler on the root logger, so this never doubles lines there.
    _stream = logging.StreamHandler(sys.stdout)
    _stream.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    logger.addHandler(_stream)

_CONFIG = Config(retries={"mode": "standard"})
_clients: dict[str, Any] = {}


def _client(name: str) -> Any:
    """One client per service per container; boto3 reads AWS_ENDPOINT_URL itself."""
    if name not in _clients:
        _clients[name] = boto3.client(name, config=_CONFIG)
    return _clients[name]


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    for _service in ("s3", "sns"):  # Lambda's init phase: the clients once
        _client(_service)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = {k: os.environ[k] for k in ("LAB_TAG_KEY", "LAB_TAG_VALUE", "TOPIC_ARN",
                                           "LOG_BUCKET", "LOG_PREFIX")}
    detail = event.get("detail") if isinstance(event, dict) else None
    detail = detail if isinstance(detail, dict) else {}
    finding_id = detail.get("id") if isinstance(detail.get("id"), str) else None
    buckets = _dig(detail, "resource", "s3BucketDetails")
    bucket = next((b.get("name") for b in buckets if isinstance(b, dict)
                   and isinstance(b.get("name"), str)), None) if isinstance(buckets, list) else None
    result = _result("skipped", "", bucket, finding_id)
    try:
        reason = _reject(event, detail, bucket)
        if reason:
            result["reason"] = reason
        else:
            result = _respond(settings, event, detail, bucket, finding_id)
    except Exception:
        logger.exception("gdlab-responder failed for bucket %s, finding %s", bucket, finding_id)
        raise
    if result["action"] != "restored":
        logger.info("nothing done (%s): %s", result["action"], result["reason"])
    logger.info("%s %s", RESULT_PREFIX, json.dumps(result, sort_keys=True))
    return result


def _reject(event: Any, detail: dict[str, Any], bucket: str | None) -> str | None:
    if not isinstance(event, dict) or event.get("source") != EVENT_SOURCE:
        return f"not a GuardDuty event (source {_get(event, 'source')!r})"
    if event.get("detail-type") != EVENT_DETAIL_TYPE:
        return f"not a GuardDuty finding (detail-type {event.get('detail-type')!r})"
    if detail.get("type") not in FINDING_TYPES:
        return f"finding type {detail.get('type')!r} is not one of {', '.join(FINDING_TYPES)}"
    if _is_sample(detail):
        return "sample finding (service.additionalInfo.sample is true): its bucket is fictitious"
    if not bucket:
        return "the finding names no bucket (resource.s3BucketDetails)"
    return None


def _respond(settings: dict[str, str], event: dict[str, Any], detail: dict[str, Any],
             bucket: str, finding_id: str | None) -> dict[str, Any]:
    s3 = _client("s3")
    try:
        tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    except ClientError as exc:
        if _code(exc) in ("NoSuchBucket", "NoSuchTagSet"):
            return _result("refused" if _code(exc) == "NoSuchTagSet" else "skipped",
                           f"bucket {bucket}: {_code(exc)}", bucket, finding_id)
        raise
    if tags.get(settings["LAB_TAG_KEY"]) != settings["LAB_TAG_VALUE"]:
        return _result("refused", f"bucket {bucket} is not tagged {settings['LAB_TAG_KEY']}="
                                  f"{settings['LAB_TAG_VALUE']}: not a lab bucket, left alone",
                       bucket, finding_id)
    done = []
    if _public_access_block(s3, bucket) != BLOCK_ALL:
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=BLOCK_ALL)
        done.append("Block Public Access turned back on (all four settings)")
    wanted = {"TargetBucket": settings["LOG_BUCKET"], "TargetPrefix": settings["LOG_PREFIX"]}
    logging_now = s3.get_bucket_logging(Bucket=bucket).get("LoggingEnabled") or {}
    if {k: logging_now.get(k) for k in wanted} != wanted:
        s3.put_bucket_logging(Bucket=bucket, BucketLoggingStatus={"LoggingEnabled": wanted})
        done.append(f"server access logging to s3://{wanted['TargetBucket']}/"
                    f"{wanted['TargetPrefix']} turned back on")
    if not done:
        return _result("skipped", f"already restored: bucket {bucket} blocks public access and "
                                  "logs its access", bucket, finding_id)
    result = _result("restored", "; ".join(done), bucket, finding_id)
    result["restored"] = done
    result["message_id"] = _client("sns").publish(
        TopicArn=settings["TOPIC_ARN"], Subject=SUBJECT,
        Message=_message(event, detail, bucket, done)).get("MessageId")
    return result


def _public_access_block(s3: Any, bucket: str) -> dict[str, bool]:
    try:
        found = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except ClientError as exc:
        if _code(exc) == "NoSuchPublicAccessBlockConfiguration":
            return {}
        raise
    return {k: bool(found.get(k)) for k in BLOCK_ALL}


def _message(event: dict[str, Any], detail: dict[str, Any], bucket: str,
             done: list[str]) -> str:
    region = detail.get("region") or event.get("region") or ""
    account = detail.get("accountId") or event.get("account")
    call = _dig(detail, "service", "action", "awsApiCallAction") or {}
    keys = _dig(detail, "resource", "accessKeyDetails") or {}
    who = keys.get("userName") or "an unknown principal"
    remote_ip = _dig(call, "remoteIpDetails", "ipAddressV4")
    lines = [
        f"GuardDuty finding {detail.get('id')} ({detail.get('type')}, severity "
        f"{detail.get('severity', 'unknown')}) in account {account}, region {region}.",
        f"{who} (access key {keys.get('accessKeyId') or 'unknown'}) called "
        f"{call.get('api') or 'an S3 API'} on bucket {bucket}"
        + (f" from {remote_ip}" if remote_ip else "") + ".",
        "",
        f"What the automated response did at {datetime.now(timezone.utc).strftime(TIME_FORMAT)}:",
        *[f"- {item}" for item in done],
        "",
        "What to do next:",
        f"1. Investigate: review CloudTrail and the access logs for what was read from or "
        f"written to {bucket} while its protections were off.",
        f"2. Find out how {who}'s credentials were used from there, and disable them if they "
        "leaked.",
        "3. Consider an account-level Block Public Access setting, so a bucket's own cannot be "
        "turned off alone.",
    ]
    return "\n".join(lines) + "\n"


def _is_sample(detail: dict[str, Any]) -> bool:
    info = _dig(detail, "service", "additionalInfo")
    if not isinstance(info, dict):
        return False
    if isinstance(info.get("value"), str):  # GetFindings' {"value": json, "type"} wrapping
        try:
            inner = json.loads(info["value"])
        except ValueError:
            inner = None
        if isinstance(inner, dict):
            info = {**info, **inner}
    sample = info.get("sample")
    return sample is True or (isinstance(sample, str) and sample.strip().lower() == "true")


def _result(action: str, reason: str, bucket: Any, finding_id: Any) -> dict[str, Any]:
    return {"action": action, "reason": reason,
            "bucket": bucket if isinstance(bucket, str) else None, "restored": [],
            "finding_id": finding_id if isinstance(finding_id, str) else None,
            "message_id": None}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None
