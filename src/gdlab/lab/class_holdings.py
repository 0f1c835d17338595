"""What a class's GuardDuty administrator account holds for classes, by name: the class's
threat list and bucket, the organization's designated administrators, and which classes
stand in the account now (one at a time: see `other_standing`)."""

from __future__ import annotations

from typing import Any

from gdlab.lab.awsutil import error_code
from gdlab.lab.steps import CLASS_TAG

BUCKET_PREFIX = "gdlab-cls-"


def list_name(class_name: str) -> str:
    return f"gdlab-class-{class_name}"


def list_bucket(class_name: str, account: str, region: str) -> str:
    # Global names: the class, account and region make it unique (at most 62 characters).
    return f"{BUCKET_PREFIX}{class_name}-{account}-{region}"


def designated(client: Any) -> list[str]:
    """The organization's enabled GuardDuty or Security Hub administrators in the client's
    region (asked of the management account)."""
    guardduty = client.meta.service_model.service_name == "guardduty"
    id_key, status_key = ("AdminAccountId", "AdminStatus") if guardduty else ("AccountId",
                                                                             "Status")
    return [a[id_key] for page in client.get_paginator(
        "list_organization_admin_accounts").paginate() for a in page["AdminAccounts"]
        if a.get(status_key, "ENABLED") == "ENABLED"]


def other_standing(s3: Any, class_name: str, account: str) -> tuple[str, str] | None:
    """Another class standing in the administrator account, with its bucket there (made
    first, removed last), or None; of several, the first by name. Such a class still holds
    the designation, members and lists its journal names. A second class there would share
    them without either knowing, and the first one torn down would take them from the
    other's labs, so a class waits for the account to be free. A class is told by its
    bucket's tag (names may hold hyphens)."""
    from botocore.exceptions import ClientError

    found: list[tuple[str, str]] = []
    pages = s3.get_paginator("list_buckets").paginate(Prefix=BUCKET_PREFIX)
    for name in (b["Name"] for page in pages for b in page.get("Buckets", [])):
        if f"-{account}-" not in name:
            continue
        try:
            tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=name)["TagSet"]}
        except ClientError as exc:
            if error_code(exc) in ("NoSuchBucket", "NoSuchTagSet"):
                continue  # gone meanwhile, or not a class's (every class bucket is tagged)
            raise
        owner = tags.get(CLASS_TAG)
        if owner and owner != class_name and name.startswith(f"{BUCKET_PREFIX}{owner}-"):
            found.append((owner, name))
    return min(found) if found else None
