"""The IAM action AWS authorizes for a bucket-level S3 request (Service Authorization
Reference, "Actions defined by Amazon S3"; the Permissions of each operation in the S3 API
reference).

moto's S3 hook names requests by IAM action, but its map looks up sub-resources by names the
query does not use (``public_access_block`` for ``publicAccessBlock``) or lacks them
(encryption, ownershipControls, replication...), and then falls back to CreateBucket,
DeleteBucket or ListBucket: a role allowed s3:CreateBucket could open a bucket's public
access block. A bucket-level request is named here as CloudTrail names it (s3_trail), and
that name mapped to the action IAM checks. Object-level requests, listings and POSTs keep
moto's action, which is the IAM one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from gdlab.local.s3_trail import BUCKET_SUBRESOURCES, event_name

# CloudTrail eventName -> IAM action, where they differ. A Delete of most configurations is
# authorized as their Put.
_IAM_NAMES = {
    "HeadBucket": "ListBucket",
    "GetBucketCors": "GetBucketCORS",
    "PutBucketCors": "PutBucketCORS",
    "DeleteBucketCors": "PutBucketCORS",
    "GetBucketEncryption": "GetEncryptionConfiguration",
    "PutBucketEncryption": "PutEncryptionConfiguration",
    "DeleteBucketEncryption": "PutEncryptionConfiguration",
    "GetBucketLifecycle": "GetLifecycleConfiguration",
    "PutBucketLifecycle": "PutLifecycleConfiguration",
    "DeleteBucketLifecycle": "PutLifecycleConfiguration",
    "DeleteBucketOwnershipControls": "PutBucketOwnershipControls",
    "DeleteBucketPublicAccessBlock": "PutBucketPublicAccessBlock",
    "GetBucketReplication": "GetReplicationConfiguration",
    "PutBucketReplication": "PutReplicationConfiguration",
    "DeleteBucketReplication": "PutReplicationConfiguration",
    "DeleteBucketTagging": "PutBucketTagging",
    "GetBucketAccelerateConfiguration": "GetAccelerateConfiguration",
    "PutBucketAccelerateConfiguration": "PutAccelerateConfiguration",
}
# The CloudTrail names of bucket sub-resource calls, the only ones named here.
_SUBRESOURCE_EVENTS = {name for names in BUCKET_SUBRESOURCES.values() for name in names
                       if name} | {"HeadBucket"}


def bucket_action(method: str, query: dict[str, Any]) -> str | None:
    """The IAM operation (no "s3:") of a bucket-level request with this method and query;
    None when it is not a sub-resource call (moto's action stands)."""
    name, _ = event_name(method, "bucket", "", query, {})
    if name not in _SUBRESOURCE_EVENTS:
        return None
    return _IAM_NAMES.get(name, name)


def operation(response: Any, bucket_name: str | None, key_name: str | None) -> str:
    """The IAM operation of moto's S3 request at its authorization hook."""
    moto_action = str(response._get_action())
    if not bucket_name or key_name:
        return moto_action
    # The URL's own query: moto puts the headers in querystring when the URL has none.
    parsed = getattr(response, "parsed_url", None)
    query = parse_qs(getattr(parsed, "query", "") or "", keep_blank_values=True)
    return bucket_action(str(getattr(response, "method", "") or ""), query) or moto_action
