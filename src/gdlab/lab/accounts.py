"""The accounts a class reaches: an organization's accounts (AWS Organizations), a role
assumed in each (STS), new member accounts for the local cloud's organization."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from gdlab.cloud import Cloud
from gdlab.errors import ConfigError, GdlabError, UsageError


class TargetUnreachable(GdlabError):
    """The role of a class cannot be assumed in one of its accounts: that target is skipped."""


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _message(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Message", "")) or str(exc)


def organization_accounts(cloud: Cloud, ou: str | None = None) -> list[str]:
    """The ACTIVE accounts of the caller's organization (or of one organizational unit,
    directly under it), without the caller's own account: the management account runs no
    student's lab."""
    from botocore.exceptions import ClientError

    org = cloud.client("organizations")
    try:
        if ou:
            pages = org.get_paginator("list_accounts_for_parent").paginate(ParentId=ou)
        else:
            pages = org.get_paginator("list_accounts").paginate()
        found = [a for page in pages for a in page["Accounts"]]
    except ClientError as exc:
        code = _code(exc)
        if code == "AWSOrganizationsNotInUseException":
            raise ConfigError(f"account {cloud.account} is not in an organization",
                              "pass --accounts, or create one (on the local cloud: gdlab "
                              "local org create --accounts 3)") from None
        if code in ("ParentNotFoundException", "InvalidInputException"):
            raise UsageError(f"no organizational unit '{ou}' in this organization",
                             "give an OU id such as ou-ab12-34cd5678 (aws organizations "
                             "list-organizational-units-for-parent)") from None
        if code == "AccessDeniedException":
            raise ConfigError(f"account {cloud.account} may not list the organization's "
                              f"accounts ({_message(exc)})",
                              "run from the management account or a delegated "
                              "administrator, or pass --accounts") from None
        raise
    own = cloud.account
    return sorted(a["Id"] for a in found if a.get("Status", "ACTIVE") == "ACTIVE"
                  and a["Id"] != own)


# What AssumeRole grants: an hour, the most AWS allows when the caller is itself a role
# (role chaining). A class on AWS outlasts it, so the credentials renew themselves.
ROLE_SECONDS = 3600


def assume(cloud: Cloud, account: str, role: str, session: str) -> Any:
    """Credentials of `role` in `account` for this class's session, or TargetUnreachable in
    one line (the role is missing, does not trust the caller, or the caller may not). The
    role is assumed once now, so a target that cannot be reached is known before its work
    starts, and again whenever botocore finds the credentials near their expiry (15 minutes
    before it), so labs that run longer than the role's hour keep their access; a renewal
    that fails is the AWS error of the call that needed it."""
    from botocore.credentials import RefreshableCredentials
    from botocore.exceptions import ClientError

    arn = f"arn:{cloud.partition()}:iam::{account}:role/{role}"

    def issue() -> dict[str, str]:
        issued = cloud.client("sts").assume_role(RoleArn=arn, RoleSessionName=session,
                                                 DurationSeconds=ROLE_SECONDS)["Credentials"]
        return {"access_key": issued["AccessKeyId"],
                "secret_key": issued["SecretAccessKey"],
                "token": issued["SessionToken"],
                "expiry_time": issued["Expiration"].isoformat()}

    try:
        first = issue()
    except ClientError as exc:
        raise TargetUnreachable(
            f"account {account}: cannot assume {role} ({_code(exc) or 'error'}: "
            f"{_message(exc)})",
            f"create the role in {account} trusted by {cloud.account}, or pass --role") from None
    return RefreshableCredentials.create_from_metadata(first, issue, "assume-role")


def reach(cloud: Cloud, account: str, region: str, credentials: Any) -> Cloud:
    """A cloud in `account` and `region`: the caller's own credentials in its own account,
    else the assumed role's."""
    settings = replace(cloud.settings, region=region, credentials=credentials)
    return Cloud(settings)


def create_member_accounts(cloud: Cloud, count: int, wait_seconds: float = 60.0) -> list[dict]:
    """`count` new accounts in the caller's organization (created, FeatureSet ALL, if there
    is none), each once its creation SUCCEEDED: [{Id, Name, Email}]."""
    from botocore.exceptions import ClientError

    org = cloud.client("organizations")
    try:
        org.describe_organization()
    except ClientError as exc:
        if _code(exc) != "AWSOrganizationsNotInUseException":
            raise
        org.create_organization(FeatureSet="ALL")
    existing = [a for page in org.get_paginator("list_accounts").paginate()
                for a in page["Accounts"]]
    start = len(existing)
    made = []
    for n in range(start, start + count):
        name = f"gdlab-member-{n}"
        request = org.create_account(Email=f"{name}@example.com", AccountName=name)
        status = request["CreateAccountStatus"]
        deadline = time.monotonic() + wait_seconds
        while status["State"] == "IN_PROGRESS" and time.monotonic() < deadline:
            time.sleep(1.0)  # AWS creates an account in minutes; the local cloud at once
            status = org.describe_create_account_status(
                CreateAccountRequestId=status["Id"])["CreateAccountStatus"]
        if status["State"] != "SUCCEEDED":
            raise ConfigError(f"account {name} was not created ({status['State']}: "
                              f"{status.get('FailureReason', 'no reason given')})")
        made.append({"Id": status["AccountId"], "Name": name, "Email": f"{name}@example.com"})
    return made

