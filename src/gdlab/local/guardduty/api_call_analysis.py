"""GuardDuty's analysis of the local trail for IAM-user keys called from listed addresses and
for S3 buckets whose protections are turned off.

From the GuardDuty user guide ("IAM finding types", "S3 Protection finding types"):

- ``UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom`` (Medium): "An API was invoked from
  an IP address on a custom threat list"; CloudTrail management events. Raised here for
  calls of services other than S3 (S3 has its own types, below).
- ``Discovery:S3/MaliciousIPCaller.Custom`` (High): "An S3 API was invoked from an IP address
  on a custom threat list", APIs that discover resources "such as GetObjectAcl or
  ListObjects" (GetObject and the other reads count here too). Resource type "S3Bucket" for
  S3 data events, which GuardDuty reads only with S3 Protection (the detector's
  S3_DATA_EVENTS feature) on; "AccessKey" for management events (ListBuckets).
- ``Policy:S3/BucketBlockPublicAccessDisabled`` (Low): Block Public Access was turned off for
  a bucket (DeleteBucketPublicAccessBlock, or a PutBucketPublicAccessBlock setting all four
  to false).
- ``Stealth:S3/ServerAccessLoggingDisabled`` (Low): server access logging was turned off
  (PutBucketLogging with no LoggingEnabled).

The first two need a record signed with an IAM user's access key (instance role sessions
are credentials_analysis.py's) from a public address on an ACTIVE threat list of an enabled
detector in the region; the last two are raised whoever made the call, for calls that
succeeded. No finding for an address on a trusted IP list. One finding per (type, principal,
bucket, remote address); repeats go through ``FindingsMixin.upsert_finding``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from typing import Any

from gdlab.local.guardduty.credentials_analysis import _iso_ms

log = logging.getLogger("gdlab.local.guardduty")

IAM_CUSTOM = "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom"
S3_DISCOVERY = "Discovery:S3/MaliciousIPCaller.Custom"
BPA_DISABLED = "Policy:S3/BucketBlockPublicAccessDisabled"
LOGGING_DISABLED = "Stealth:S3/ServerAccessLoggingDisabled"
SEVERITY = {IAM_CUSTOM: 5.0, S3_DISCOVERY: 8.0, BPA_DISABLED: 2.0, LOGGING_DISABLED: 2.0}
S3_SOURCE = "s3.amazonaws.com"
# S3 calls that read or list what a bucket holds or how it is set up.
S3_DISCOVERY_APIS = frozenset({
    "ListBuckets", "ListObjects", "ListObjectVersions", "ListMultipartUploads", "ListParts",
    "HeadBucket", "HeadObject", "GetObject", "GetObjectAcl", "GetObjectTagging",
    "GetObjectAttributes", "GetBucketAcl", "GetBucketLocation", "GetBucketPolicy",
    "GetBucketPolicyStatus", "GetBucketPublicAccessBlock", "GetBucketLogging",
    "GetBucketTagging", "GetBucketVersioning", "GetBucketEncryption", "GetBucketCors",
    "GetBucketWebsite", "GetBucketLifecycle", "GetBucketNotification",
    "GetBucketReplication", "GetBucketOwnershipControls",
})
BPA_SETTINGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy",
                "RestrictPublicBuckets")


def protection_turned_off(record: dict[str, Any]) -> str | None:
    """The Policy/Stealth type a succeeded S3 call raises, if any."""
    if record.get("eventSource") != S3_SOURCE or record.get("errorCode"):
        return None
    name = record.get("eventName")
    parameters = record.get("requestParameters") or {}
    if name == "DeleteBucketPublicAccessBlock":
        return BPA_DISABLED
    if name == "PutBucketPublicAccessBlock":
        config = parameters.get("PublicAccessBlockConfiguration")
        if isinstance(config, dict) and not any(config.get(s) is True for s in BPA_SETTINGS):
            return BPA_DISABLED
    if name == "PutBucketLogging":
        status = parameters.get("BucketLoggingStatus")
        if isinstance(status, dict) and not status.get("LoggingEnabled"):
            return LOGGING_DISABLED
    return None


def access_key_details(identity: dict[str, Any]) -> dict[str, str]:
    kind = str(identity.get("type") or "")
    if kind == "AssumedRole":
        name = str(((identity.get("sessionContext") or {}).get("sessionIssuer") or {})
                   .get("userName") or "")
    elif kind == "Root":
        name = "Root"
    else:
        name = str(identity.get("userName") or "")
    return {"AccessKeyId": str(identity.get("accessKeyId") or ""),
            "PrincipalId": str(identity.get("principalId") or ""),
            "UserName": name, "UserType": kind}


def _block(config: Any) -> dict[str, bool]:
    return {"IgnorePublicAcls": bool(getattr(config, "ignore_public_acls", False)),
            "RestrictPublicBuckets": bool(getattr(config, "restrict_public_buckets", False)),
            "BlockPublicAcls": bool(getattr(config, "block_public_acls", False)),
            "BlockPublicPolicy": bool(getattr(config, "block_public_policy", False))}


def _policy_public(policy: Any) -> tuple[bool, bool]:
    """(allows public read, allows public write) of a bucket policy: an Allow to "*"."""
    try:
        document = json.loads(policy) if policy else {}
    except (TypeError, ValueError):
        return False, False
    read = write = False
    statements = document.get("Statement") or []
    for statement in statements if isinstance(statements, list) else [statements]:
        principal = statement.get("Principal")
        if statement.get("Effect") != "Allow" or principal not in ("*", {"AWS": "*"}):
            continue
        actions = statement.get("Action") or []
        for action in actions if isinstance(actions, list) else [actions]:
            verb = str(action).split(":")[-1]
            read = read or verb == "*" or verb.startswith(("Get", "List"))
            write = write or verb == "*" or verb.startswith(("Put", "Delete"))
    return read, write


def bucket_details(account: str, name: str) -> list[dict[str, Any]]:
    """Resource.S3BucketDetails of a bucket, as GuardDuty describes it; [] if it is gone."""
    from moto.s3.models import OWNER, s3_backends

    s3 = s3_backends[account]["aws"]
    bucket = s3.buckets.get(name)
    if bucket is None:
        return []
    tags = s3.tagger.list_tags_for_resource(bucket.arn).get("Tags", [])
    rule = ((bucket.encryption or {}).get("Rule") or {}).get(
        "ApplyServerSideEncryptionByDefault") or {}
    encryption = {"EncryptionType": str(rule.get("SSEAlgorithm") or "AES256")}
    if rule.get("KMSMasterKeyID"):
        encryption["KmsMasterKeyArn"] = str(rule["KMSMasterKeyID"])
    bucket_block = _block(bucket.public_access_block)
    account_block = _block(getattr(s3, "public_access_block", None))
    acl_read = bool(bucket.acl is not None and bucket.acl.public_read)
    policy_read, policy_write = _policy_public(bucket.policy)
    blocked_acl = bucket_block["IgnorePublicAcls"] or account_block["IgnorePublicAcls"]
    blocked_policy = bucket_block["RestrictPublicBuckets"] or \
        account_block["RestrictPublicBuckets"]
    public = (acl_read and not blocked_acl) or \
        ((policy_read or policy_write) and not blocked_policy)
    return [{
        "Arn": bucket.arn,
        "Name": bucket.name,
        "Type": "Destination",
        "CreatedAt": bucket.creation_date.timestamp(),
        "Owner": {"Id": OWNER},
        "Tags": [{"Key": t["Key"], "Value": t["Value"]} for t in tags],
        "DefaultServerSideEncryption": encryption,
        "PublicAccess": {
            "PermissionConfiguration": {
                "BucketLevelPermissions": {
                    "AccessControlList": {"AllowsPublicReadAccess": acl_read,
                                          "AllowsPublicWriteAccess": False},
                    "BucketPolicy": {"AllowsPublicReadAccess": policy_read,
                                     "AllowsPublicWriteAccess": policy_write},
                    "BlockPublicAccess": bucket_block,
                },
                "AccountLevelPermissions": {"BlockPublicAccess": account_block},
            },
            "EffectivePermission": "PUBLIC" if public else "NOT_PUBLIC",
        },
    }]


def _texts(finding_type: str, api: str, user: str, source: str, bucket: str,
           list_name: str | None) -> tuple[str, str]:
    if finding_type == IAM_CUSTOM:
        return (f"API {api} was invoked from an IP address on a custom threat list.",
                f"API {api} was invoked by {user} from IP address {source} on the custom "
                f"threat list {list_name}.")
    if finding_type == S3_DISCOVERY:
        target = f" on S3 bucket {bucket}" if bucket else ""
        return (f"S3 API {api} was invoked from an IP address on a custom threat list.",
                f"S3 API {api} was invoked{target} by {user} from IP address {source} on "
                f"the custom threat list {list_name}.")
    if finding_type == BPA_DISABLED:
        return (f"Amazon S3 Block Public Access was disabled for S3 bucket {bucket}.",
                f"Amazon S3 Block Public Access was disabled for S3 bucket {bucket} by "
                f"{user} calling {api}. This may make the bucket publicly accessible.")
    return (f"Server access logging was disabled for S3 bucket {bucket}.",
            f"Server access logging was disabled for S3 bucket {bucket} by {user} calling "
            f"{api}. Requests to the bucket are no longer logged.")


def build_finding(gd: Any, detector_id: str, finding_type: str, record: dict[str, Any],
                  list_name: str | None, bucket: str) -> dict[str, Any]:
    from moto.ec2.models import ec2_backends

    from gdlab.local.analyzer import finding_id, remote_details
    from gdlab.local.guardduty.common import now_iso

    account, region = gd.account_id, gd.region_name
    source = str(record.get("sourceIPAddress") or "")
    identity = record.get("userIdentity") or {}
    key = access_key_details(identity)
    fid = finding_id(account, region, detector_id, finding_type,
                     f"{key['PrincipalId']}/{bucket}", source)
    seen = _iso_ms(str(record.get("eventTime")))
    analysed = max(now_iso(), seen)
    api = str(record.get("eventName"))
    remote = remote_details(ec2_backends[account][region], source) if \
        _is_ip(source) else None
    call: dict[str, Any] = {"Api": api, "ServiceName": str(record.get("eventSource")),
                            "CallerType": "Remote IP"}
    if remote is not None:
        call["RemoteIpDetails"] = remote
    if record.get("errorCode"):
        call["ErrorCode"] = str(record["errorCode"])
    if record.get("userAgent"):
        call["UserAgent"] = str(record["userAgent"])
    resource: dict[str, Any] = {"ResourceType": "AccessKey", "AccessKeyDetails": key}
    details = bucket_details(account, bucket) if bucket else []
    if details:
        resource = {"ResourceType": "S3Bucket", "AccessKeyDetails": key,
                    "S3BucketDetails": details}
    title, description = _texts(finding_type, api, key["UserName"] or key["UserType"],
                                source, bucket, list_name)
    service: dict[str, Any] = {
        "ServiceName": "guardduty",
        "DetectorId": detector_id,
        "Action": {"ActionType": "AWS_API_CALL", "AwsApiCallAction": call},
        "ResourceRole": "TARGET",
        "Count": 1,
        "EventFirstSeen": seen,
        "EventLastSeen": seen,
        "Archived": False,
    }
    if list_name is not None:
        service["Evidence"] = {"ThreatIntelligenceDetails": [
            {"ThreatListName": list_name, "ThreatNames": []}]}
        service["AdditionalInfo"] = {"Value": json.dumps({"threatListName": list_name}),
                                     "Type": "default"}
    else:
        service["AdditionalInfo"] = {"Value": "{}", "Type": "default"}
    return {"Id": fid, "Type": finding_type, "Severity": SEVERITY[finding_type],
            "CreatedAt": analysed, "UpdatedAt": analysed, "Title": title,
            "Description": description, "Resource": resource, "Service": service}


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _bucket_of(record: dict[str, Any]) -> str:
    if record.get("eventSource") != S3_SOURCE:
        return ""
    return str((record.get("requestParameters") or {}).get("bucketName") or "")


def _listed_type(record: dict[str, Any], detector: Any) -> str | None:
    """The custom-threat-list type for a listed caller's record, if GuardDuty reads it."""
    if (record.get("userIdentity") or {}).get("type") != "IAMUser":
        return None
    if record.get("eventSource") == S3_SOURCE:
        if record.get("eventName") not in S3_DISCOVERY_APIS:
            return None
        if record.get("managementEvent") is False and \
                _feature(detector, "S3_DATA_EVENTS") != "ENABLED":
            return None  # S3 data events are read only with S3 Protection on
        return S3_DISCOVERY
    return IAM_CUSTOM if record.get("managementEvent", True) else None


def _feature(detector: Any, name: str) -> str:
    try:
        return str(detector.status_of(name))
    except (AttributeError, KeyError):
        return "ENABLED"


def analyze(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Judge one trail record; returns the findings stored for it (new or updated)."""
    from gdlab.local.analyzer import publicly_routable
    from gdlab.local.guardduty.models import backend

    identity = record.get("userIdentity") or {}
    account = str(record.get("recipientAccountId") or identity.get("accountId") or "")
    region = str(record.get("awsRegion") or "")
    if not account or not region:
        return []
    turned_off = protection_turned_off(record)
    source = str(record.get("sourceIPAddress") or "")
    routable = publicly_routable(source)
    if turned_off is None and (not routable or identity.get("type") != "IAMUser"):
        return []
    gd = backend(account, region)
    ip = ipaddress.ip_address(source) if _is_ip(source) else None
    bucket = _bucket_of(record)
    stored = []
    for detector_id, detector in list(gd.detectors.items()):
        if not getattr(detector, "enabled", True):
            continue
        if ip is not None and any(ip in net for net in gd.trusted_entries(detector_id)):
            continue
        raised: list[tuple[str, str | None]] = []
        listed_type = _listed_type(record, detector) if routable else None
        if listed_type is not None:
            listed = next((name for net, _set_id, name in gd.threat_entries(detector_id)
                           if ip in net), None)
            if listed is not None:
                raised.append((listed_type, listed))
        if turned_off is not None and bucket:
            raised.append((turned_off, None))
        for finding_type, list_name in raised:
            # S3Bucket for data events and the bucket's own settings; else AccessKey.
            on_bucket = finding_type in (BPA_DISABLED, LOGGING_DISABLED) or (
                finding_type == S3_DISCOVERY and record.get("managementEvent") is False)
            finding = build_finding(gd, detector_id, finding_type, record, list_name,
                                    bucket if on_bucket else "")
            result, new = gd.upsert_finding(detector_id, finding)
            if new:
                log.info("%s: %s from %s", finding_type, record.get("eventName"), source)
            stored.append(result)
    return stored
