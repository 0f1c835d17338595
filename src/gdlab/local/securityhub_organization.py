"""The rest of Security Hub's delegated administrator for the local cloud: what undoes
moto's EnableOrganizationAdminAccount and CreateMembers, so a class leaves its organization
as it found it.

moto keeps one organization configuration per organization (its admin_account_id) and the
administrator's members per Region backend. What AWS documents and the local cloud does:
- EnableOrganizationAdminAccount also registers the account as Security Hub's delegated
  administrator in Organizations, with trusted access ("Security Hub calls Organizations to
  make that account the delegated administrator", designate-orgs-admin-account);
  DisableOrganizationAdminAccount leaves that registration (organizations.py).
- ListOrganizationAdminAccounts and DisableOrganizationAdminAccount "can only be called by
  the organization management account"; disabling an account that is not the administrator
  is an InvalidInputException.
- DisassociateMembers "can be used to disassociate both accounts that are managed using
  Organizations and accounts that were invited manually": the account is no longer among the
  administrator's members, and the administrator stops seeing its findings.
- DeleteMembers "can't be invoked to delete accounts that belong to an AWS Organizations
  organization" (they are disassociated instead); invited accounts are deleted.
"""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult, EmptyResult

from gdlab.local.securityhub_filters import HubError

ORGANIZATION_URL_PATHS = [
    "{0}/organization/admin$",
    "{0}/organization/admin/disable$",
    "{0}/members/disassociate$",
    "{0}/members/delete$",
]


def _denied() -> HubError:
    return HubError("AccessDeniedException",
                    "The request was rejected because you don't have sufficient permissions "
                    "to perform this operation. The security token included in the request "
                    "is for an account that isn't authorized to perform this operation.")


class OrganizationBackendMixin:
    """Backend half; the host is moto's SecurityHubBackend (org_backend, members,
    _get_org_config) with a lock."""

    def _as_management(self) -> dict[str, Any]:
        from moto.organizations.exceptions import AWSOrganizationsNotInUseException

        try:
            org = self.org_backend.describe_organization()["Organization"]
        except Exception:  # noqa: BLE001 - moto raises its own client errors
            raise AWSOrganizationsNotInUseException() from None
        if org["MasterAccountId"] != self.account_id:
            raise _denied()
        return self._get_org_config()

    def enable_organization_admin_account(self, admin_account_id: str) -> None:
        from gdlab.local.organizations import delegate

        super().enable_organization_admin_account(admin_account_id)  # type: ignore[misc]
        delegate(self.account_id, admin_account_id, "securityhub.amazonaws.com")

    def list_organization_admin_accounts(self) -> list[dict[str, str]]:
        admin = self._as_management().get("admin_account_id")
        return [{"AccountId": admin, "Status": "ENABLED"}] if admin else []

    def disable_organization_admin_account(self, admin_account_id: str) -> None:
        config = self._as_management()
        if config.get("admin_account_id") != admin_account_id:
            raise HubError("InvalidInputException",
                           f"The request was rejected because the account {admin_account_id} "
                           "is not the Security Hub administrator account of the "
                           "organization.")
        config["admin_account_id"] = None

    def _organization_accounts(self) -> set[str]:
        from gdlab.local.guardduty.organization import organization_of

        found = organization_of(self.account_id)  # kept by the management account's backend
        return set(found[2]) if found else set()

    def disassociate_members(self, account_ids: list[str]) -> None:
        with self.lock:
            for account in account_ids:
                self.members.pop(account, None)

    def delete_members(self, account_ids: list[str]) -> list[dict[str, str]]:
        in_organization = self._organization_accounts()
        unprocessed = []
        with self.lock:
            for account in account_ids:
                if account in in_organization and account in self.members:
                    unprocessed.append({
                        "AccountId": account,
                        "ProcessingResult": "Operation failed because the account is an "
                                            "organization member account; disassociate it "
                                            "instead"})
                elif self.members.pop(account, None) is None:
                    unprocessed.append({"AccountId": account,
                                        "ProcessingResult": f"Account {account} is not a "
                                                            "member"})
        return unprocessed


class OrganizationResponseMixin:
    """Response half; the host class provides securityhub_backend and _params()."""

    def list_organization_admin_accounts(self) -> ActionResult:
        self._params()
        return ActionResult(
            {"AdminAccounts": self.securityhub_backend.list_organization_admin_accounts()})

    def disable_organization_admin_account(self) -> EmptyResult:
        p = self._params()
        self.securityhub_backend.disable_organization_admin_account(p.get("AdminAccountId"))
        return EmptyResult()

    def disassociate_members(self) -> EmptyResult:
        p = self._params()
        self.securityhub_backend.disassociate_members(list(p.get("AccountIds") or []))
        return EmptyResult()

    def delete_members(self) -> ActionResult:
        p = self._params()
        return ActionResult({"UnprocessedAccounts": self.securityhub_backend.delete_members(
            list(p.get("AccountIds") or []))})
