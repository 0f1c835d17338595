"""What the local cloud does as it starts: it primes moto's backends with read-only requests
signed with its own key, so a lab's first calls do not pay for moto's lazy start-up, and
hands the memory loading moto freed back to the system. Also the signer those requests
(and gdlab's own-route client) use."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gdlab.local.credentials import LocalCredentials

# Read-only requests that make moto build, once, what a lab's first calls would otherwise wait
# for: its per-service apps, the account's backends, SSM's public parameters. Sent as raw
# HTTP (moto reads the service and region from the credential scope) so the server does not
# load a second copy of botocore's service models for clients of its own.
QUERY = "application/x-www-form-urlencoded"
AMZ_JSON = "application/x-amz-json-1.1"
WARM_REQUESTS: list[tuple[str, str, str, dict[str, str], str]] = [
    # service, method, path, extra headers, body
    ("sts", "POST", "/", {"Content-Type": QUERY},
     "Action=GetCallerIdentity&Version=2011-06-15"),
    ("ec2", "POST", "/", {"Content-Type": QUERY},
     "Action=DescribeInstanceTypeOfferings&Version=2016-11-15"
     "&LocationType=availability-zone"),
    ("ssm", "POST", "/", {"Content-Type": AMZ_JSON, "X-Amz-Target": "AmazonSSM.GetParameter"},
     '{"Name": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"}'),
    ("iam", "POST", "/", {"Content-Type": QUERY}, "Action=ListRoles&Version=2010-05-08"),
    ("s3", "GET", "/", {}, ""),
    ("guardduty", "GET", "/detector", {}, ""),
    ("securityhub", "GET", "/accounts", {}, ""),
    ("sns", "POST", "/", {"Content-Type": QUERY}, "Action=ListTopics&Version=2010-03-31"),
    ("logs", "POST", "/",
     {"Content-Type": AMZ_JSON, "X-Amz-Target": "Logs_20140328.DescribeLogGroups"}, "{}"),
    ("lambda", "GET", "/2015-03-31/functions/", {}, ""),
    ("events", "POST", "/", {"Content-Type": AMZ_JSON, "X-Amz-Target": "AWSEvents.ListRules"},
     "{}"),
    ("monitoring", "POST", "/", {"Content-Type": QUERY},
     "Action=ListMetrics&Version=2010-08-01"),
]


def warm(endpoint: str, region: str, credentials: LocalCredentials) -> None:
    """Prime the backends in the background so the first lab does not pay for moto's lazy
    start-up (seconds, one time per server). Errors only mean a colder start."""
    import urllib.error
    import urllib.request

    for service, method, path, headers, body in WARM_REQUESTS:
        request = urllib.request.Request(
            endpoint + path, data=body.encode() if body else None, method=method,
            headers=sign(credentials, service, region, method, endpoint + path, headers,
                         body.encode()))
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
        except (urllib.error.URLError, OSError):  # a 4xx (Security Hub not enabled) is fine
            continue
    release_memory()


def sign(credentials: LocalCredentials, service: str, region: str, method: str, url: str,
         headers: dict[str, str], body: bytes) -> dict[str, str]:
    """The headers of a SigV4-signed request (botocore's signer, without service models)."""
    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    signer = S3SigV4Auth if service == "s3" else SigV4Auth
    signer(Credentials(credentials.access_key_id, credentials.secret_access_key), service,
           region).add_auth(request)
    return dict(request.headers.items())


def release_memory() -> None:
    """Loading moto parses megabytes of JSON once; hand the freed heap back to the system so
    an idle local cloud stays small."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    libc = ctypes.util.find_library("c")
    if libc:
        with contextlib.suppress(OSError, AttributeError):  # glibc only; else nothing to do
            ctypes.CDLL(libc).malloc_trim(0)
