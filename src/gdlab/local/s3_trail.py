"""What CloudTrail writes for an S3 request: its eventName, whether it is a data event, its
requestParameters and resources.

moto names S3 requests by IAM action (ListBucket, GetPublicAccessBlock, CreateBucket for any
unknown PUT), not as CloudTrail does, so the name is worked out from the request itself:
method, bucket, key, sub-resource and headers, following the S3 API reference's operations.
Object-level operations and the object listings (ListObjects, also for ListObjectsV2
requests, with ``list-type`` "2" in requestParameters) are data events ("Amazon S3 data
events in CloudTrail", S3 user guide); bucket-level ones are management events.
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import parse_qs, urlparse
from xml.etree import ElementTree

# Bucket sub-resource -> CloudTrail eventName for GET, PUT, DELETE.
BUCKET_SUBRESOURCES: dict[str, tuple[str | None, str | None, str | None]] = {
    "acl": ("GetBucketAcl", "PutBucketAcl", None),
    "cors": ("GetBucketCors", "PutBucketCors", "DeleteBucketCors"),
    "encryption": ("GetBucketEncryption", "PutBucketEncryption", "DeleteBucketEncryption"),
    "lifecycle": ("GetBucketLifecycle", "PutBucketLifecycle", "DeleteBucketLifecycle"),
    "location": ("GetBucketLocation", None, None),
    "logging": ("GetBucketLogging", "PutBucketLogging", None),
    "notification": ("GetBucketNotification", "PutBucketNotification", None),
    "object-lock": ("GetBucketObjectLockConfiguration", "PutBucketObjectLockConfiguration",
                    None),
    "ownershipControls": ("GetBucketOwnershipControls", "PutBucketOwnershipControls",
                          "DeleteBucketOwnershipControls"),
    "policy": ("GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy"),
    "policyStatus": ("GetBucketPolicyStatus", None, None),
    "publicAccessBlock": ("GetBucketPublicAccessBlock", "PutBucketPublicAccessBlock",
                          "DeleteBucketPublicAccessBlock"),
    "replication": ("GetBucketReplication", "PutBucketReplication",
                    "DeleteBucketReplication"),
    "requestPayment": ("GetBucketRequestPayment", "PutBucketRequestPayment", None),
    "tagging": ("GetBucketTagging", "PutBucketTagging", "DeleteBucketTagging"),
    "versioning": ("GetBucketVersioning", "PutBucketVersioning", None),
    "website": ("GetBucketWebsite", "PutBucketWebsite", "DeleteBucketWebsite"),
    "accelerate": ("GetBucketAccelerateConfiguration", "PutBucketAccelerateConfiguration",
                   None),
}
# Bucket-level calls that CloudTrail logs as data events.
BUCKET_DATA = {"uploads": "ListMultipartUploads", "versions": "ListObjectVersions"}
OBJECT_GET = {"acl": "GetObjectAcl", "tagging": "GetObjectTagging", "uploadId": "ListParts",
              "attributes": "GetObjectAttributes", "retention": "GetObjectRetention",
              "legal-hold": "GetObjectLegalHold", "torrent": "GetObjectTorrent"}
OBJECT_PUT = {"acl": "PutObjectAcl", "tagging": "PutObjectTagging",
              "retention": "PutObjectRetention", "legal-hold": "PutObjectLegalHold"}
OBJECT_POST = {"uploads": "CreateMultipartUpload", "uploadId": "CompleteMultipartUpload",
               "restore": "RestoreObject", "select": "SelectObjectContent"}
# Request bodies CloudTrail copies into requestParameters, by sub-resource.
BODY_PARAMETERS = {"publicAccessBlock": "PublicAccessBlockConfiguration",
                   "logging": "BucketLoggingStatus"}


def event_name(method: str, bucket: str, key: str, query: dict[str, Any],
               headers: dict[str, str]) -> tuple[str, bool]:
    """(CloudTrail eventName, whether it is a data event) of one S3 request."""
    method = method.upper()
    if not bucket:
        return "ListBuckets", False
    if key:
        return _object_event(method, query, headers), True
    if method == "HEAD":
        return "HeadBucket", False
    if method == "POST" and "delete" in query:
        return "DeleteObjects", True
    index = {"GET": 0, "PUT": 1, "DELETE": 2}.get(method)
    for name, names in BUCKET_SUBRESOURCES.items():
        if name in query and index is not None and names[index]:
            return str(names[index]), False
    if method == "GET":
        for name, event in BUCKET_DATA.items():
            if name in query:
                return event, True
        return "ListObjects", True
    return {"PUT": "CreateBucket", "DELETE": "DeleteBucket"}.get(method, "PostObject"), \
        method == "POST"


def _object_event(method: str, query: dict[str, Any], headers: dict[str, str]) -> str:
    copied = any(h.lower() == "x-amz-copy-source" for h in headers)
    if method == "HEAD":
        return "HeadObject"
    if method == "GET":
        return next((e for q, e in OBJECT_GET.items() if q in query), "GetObject")
    if method == "PUT":
        if "partNumber" in query and "uploadId" in query:
            return "UploadPartCopy" if copied else "UploadPart"
        found = next((e for q, e in OBJECT_PUT.items() if q in query), None)
        return found or ("CopyObject" if copied else "PutObject")
    if method == "DELETE":
        if "uploadId" in query:
            return "AbortMultipartUpload"
        return "DeleteObjectTagging" if "tagging" in query else "DeleteObject"
    return next((e for q, e in OBJECT_POST.items() if q in query), "PostObject")


def _xml(body: bytes) -> Any:
    """An XML body as CloudTrail writes it in requestParameters: elements as keys, "true" /
    "false" as booleans, the namespace as "xmlns"."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return None

    def convert(node: Any) -> Any:
        children = list(node)
        if not children:
            text = (node.text or "").strip()
            return {"true": True, "false": False}.get(text.lower(), text)
        return {child.tag.split("}")[-1]: convert(child) for child in children}

    value = convert(root)
    value = value if isinstance(value, dict) else {}
    if root.tag.startswith("{"):
        value = {"xmlns": root.tag[1:].split("}")[0], **value}
    return value


def details(response: Any, request: Any, full_url: str, key_level: bool) -> dict[str, Any]:
    """eventName, managementEvent and requestParameters (bucketName, Host, key, the query's
    sub-resources and the bodies BODY_PARAMETERS names) of moto's S3 request."""
    url = urlparse(full_url)
    query = {k: v[0] if v else "" for k, v in
             parse_qs(url.query, keep_blank_values=True).items()}
    headers = {str(k): str(v) for k, v in dict(getattr(request, "headers", {}) or {}).items()}
    bucket = key = ""
    # A name moto cannot parse leaves the plain request.
    with contextlib.suppress(Exception):
        bucket = str(response.parse_bucket_name_from_url(request, full_url) or "")
        if key_level:
            key = str(response.parse_key_name() or "")
    name, data = event_name(str(request.method), bucket, key, query, headers)
    parameters: dict[str, Any] = {}
    if bucket:
        parameters["bucketName"] = bucket
    parameters["Host"] = url.netloc
    if key:
        parameters["key"] = key
    parameters.update(query)
    body = getattr(response, "body", None)
    for subresource, element in BODY_PARAMETERS.items():
        if subresource in query and request.method.upper() == "PUT" and body:
            parsed = _xml(body if isinstance(body, bytes) else str(body).encode())
            if parsed is not None:
                parameters[element] = parsed
    return {"eventName": name, "managementEvent": not data, "requestParameters": parameters,
            "resources": resources(bucket, key)}


def resources(bucket: str, key: str) -> list[dict[str, str]]:
    found = []
    if key:
        found.append({"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"})
    if bucket:
        found.append({"type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"})
    return found
