"""Organizations and cross-account roles as AWS has them, where moto stops short.

- An account that Organizations creates comes with the role OrganizationAccountAccessRole,
  trusted by the management account and holding AdministratorAccess (Organizations User
  Guide, "Accessing member accounts": "When you create a member account ... AWS
  Organizations automatically creates an IAM role ... named OrganizationAccountAccessRole
  ... grants full administrative permissions ... configured to grant that access to the
  management account"). moto creates the role with no policy: a class's AssumeRole then
  can do nothing.
- ListAccounts and ListAccountsForParent outside an organization are refused with
  AWSOrganizationsNotInUseException, as AWS refuses them (moto answers an empty list).
- STS AssumeRole is refused, as AWS refuses it, when the role does not exist or its trust
  policy does not name the caller (moto issues credentials for any role ARN, so a target
  whose role is missing would look reachable).
- Designating a GuardDuty or Security Hub delegated administrator "enables GuardDuty as a
  trusted service in AWS Organizations" and registers the account as the service's
  delegated administrator there (GuardDuty User Guide, organizations_permissions; Security
  Hub User Guide, designate-orgs-admin-account); removing it in the service does not
  deregister it ("To de-register ... run DeregisterDelegatedAdministrator",
  change-guardduty-delegated-admin). moto's list of services that take a delegated
  administrator lacks Security Hub, which Organizations' integrated-services list has."""

from __future__ import annotations

import json
from typing import Any

ORG_ROLE = "OrganizationAccountAccessRole"
ADMINISTRATOR_ACCESS = "arn:aws:iam::aws:policy/AdministratorAccess"


def trust_of(management_account: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{management_account}:root"},
        "Action": "sts:AssumeRole"}]})


def grant_access_role(account: str, management_account: str, role_name: str = ORG_ROLE) -> None:
    """The role Organizations makes in an account it creates, with its AdministratorAccess
    (moto makes the role with no policy; it is made here if moto did not)."""
    from moto.iam.models import iam_backends

    backend = iam_backends[account]["global"]
    role = next((r for r in backend.roles.values() if r.name == role_name), None)
    if role is None:
        role = backend.create_role(
            role_name=role_name, assume_role_policy_document=trust_of(management_account),
            path="/", permissions_boundary=None, description="", tags=[],
            max_session_duration="3600")
    if ADMINISTRATOR_ACCESS not in role.managed_policies:
        backend.attach_role_policy(ADMINISTRATOR_ACCESS, role_name)


def delegate(management_account: str, admin_account: str, service_principal: str) -> None:
    """What a service's EnableOrganizationAdminAccount does in Organizations: trusted access
    for the service, and the account registered as its delegated administrator (one per
    service: another account already registered is refused by the caller's service)."""
    from moto.organizations.models import organizations_backends

    org = organizations_backends[management_account]["aws"]
    org.enable_aws_service_access(ServicePrincipal=service_principal)
    registered = [a.account.id for a in org.admins if service_principal in a.services]
    if admin_account not in registered:
        org.register_delegated_administrator(AccountId=admin_account,
                                             ServicePrincipal=service_principal)


def delegated_elsewhere(management_account: str, admin_account: str,
                        service_principal: str) -> str | None:
    """Another account Organizations has registered as the service's delegated
    administrator, if any."""
    from moto.organizations.models import organizations_backends

    org = organizations_backends[management_account]["aws"]
    return next((a.account.id for a in org.admins if service_principal in a.services
                 and a.account.id != admin_account), None)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _action_matches(pattern: str, action: str = "sts:assumerole") -> bool:
    pattern = pattern.lower()
    return pattern in ("*", "sts:*") or pattern == action


def trusts(document: Any, caller_account: str, caller_arns: set[str]) -> bool:
    """Whether a role's trust policy allows this AWS principal to call sts:AssumeRole: the
    account (its id or its root), or the caller's own ARN, named in an Allow, and no Deny."""
    try:
        policy = json.loads(document) if isinstance(document, str) else document
    except ValueError:
        return False
    named = {caller_account, f"arn:aws:iam::{caller_account}:root", *caller_arns}
    allowed = False
    for statement in _as_list((policy or {}).get("Statement") or []):
        if not isinstance(statement, dict):
            continue
        if not any(_action_matches(str(a)) for a in _as_list(statement.get("Action") or [])):
            continue
        principal = statement.get("Principal")
        values = ["*"] if principal == "*" else _as_list(
            (principal or {}).get("AWS") if isinstance(principal, dict) else [])
        if not any(str(v) == "*" or str(v) in named for v in values):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


def _caller_arns(caller: Any) -> set[str]:
    """The caller's ARN, and for a role session the role's own ARN (a trust policy names
    the role, not the session)."""
    arns = {caller.arn}
    parts = caller.arn.split(":")
    if len(parts) == 6 and parts[5].startswith("assumed-role/"):
        role = parts[5].split("/")[1]
        arns.add(f"arn:aws:iam::{parts[4]}:role/{role}")
    return arns


def refused(caller_arn: str, role_arn: str) -> Any:
    import uuid

    from gdlab.local.policy_errors import XmlRefusal, _error_response

    text = (f"User: {caller_arn} is not authorized to perform: sts:AssumeRole on resource: "
            f"{role_arn}")
    return XmlRefusal("AccessDenied", text, _error_response(
        "AccessDenied", text, str(uuid.uuid4()), "https://sts.amazonaws.com/doc/2011-06-15/"))


def check_assume_role(role_arn: str) -> None:
    """Raise AWS's AccessDenied unless the role exists and trusts the request's caller.
    Requests the cloud makes itself (no caller: Lambda and EC2 sessions) are not checked."""
    from moto.iam.models import iam_backends

    from gdlab.local.auth import current_caller

    caller = current_caller.get()
    if caller is None:
        return
    parts = str(role_arn or "").split(":")
    if len(parts) != 6 or not parts[5].startswith("role/"):
        return  # moto's own validation answers a malformed ARN
    account, name = parts[4], parts[5].rsplit("/", 1)[-1]
    role = next((r for r in iam_backends[account]["global"].roles.values() if r.name == name),
                None)
    if role is None or not trusts(role.assume_role_policy_document, caller.account,
                                  _caller_arns(caller)):
        raise refused(caller.arn, role_arn)


def install() -> None:
    from moto.organizations.models import OrganizationsBackend
    from moto.sts.responses import TokenResponse

    from gdlab.local import patches

    def with_role(original: Any) -> Any:
        def create_account(self: Any, **kwargs: Any) -> dict[str, Any]:
            status = original(self, **kwargs)
            grant_access_role(status["CreateAccountStatus"]["AccountId"], self.account_id,
                              kwargs.get("RoleName") or ORG_ROLE)
            return status

        return create_account

    patches.wrap(OrganizationsBackend, "create_account",
                 "an account Organizations creates has OrganizationAccountAccessRole",
                 with_role)

    def checked(original: Any) -> Any:
        def assume_role(self: Any) -> Any:
            check_assume_role(self._get_param("RoleArn"))
            return original(self)

        return assume_role

    def in_organization(original: Any) -> Any:
        def listing(self: Any, *args: Any, **kwargs: Any) -> Any:
            from moto.organizations.exceptions import AWSOrganizationsNotInUseException

            if self.org is None:
                raise AWSOrganizationsNotInUseException
            return original(self, *args, **kwargs)

        return listing

    for name in ("list_accounts", "list_accounts_for_parent"):
        patches.wrap(OrganizationsBackend, name,
                     "an account outside an organization has no accounts to list",
                     in_organization)

    patches.wrap(TokenResponse, "assume_role",
                 "AssumeRole needs the role to exist and to trust the caller", checked)

    from moto.organizations.models import FakeDelegatedAdministrator

    def with_security_hub(original: Any) -> Any:
        check = original.__func__

        def supported_service(service_principal: str) -> bool:
            return service_principal == "securityhub.amazonaws.com" or check(service_principal)

        return staticmethod(supported_service)

    patches.wrap(FakeDelegatedAdministrator, "supported_service",
                 "Security Hub takes a delegated administrator (Organizations' list of "
                 "integrated services)", with_security_hub)
