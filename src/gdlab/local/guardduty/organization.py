"""GuardDuty's administrator and members through AWS Organizations. Mixed into the backend.

State lives in the backends of one region (GuardDuty's organization settings are regional):
- the management account's backend names the delegated administrator (``org_admin``);
- the administrator's backend holds its members (``members``: account -> GetMembers' Member)
  and the organization configuration (``org_config``);
- a member's backend names its administrator (``administrator``).

What AWS documents and the local cloud does:
- EnableOrganizationAdminAccount / ListOrganizationAdminAccounts /
  DisableOrganizationAdminAccount run in the organization's management account only; the
  administrator must be an account of the organization, one per organization. Designating
  it enables GuardDuty in that account when it has no detector.
- CreateMembers by the delegated administrator of organization accounts "will enable
  GuardDuty in the added member accounts" (API_CreateMembers): each is a member at once,
  RelationshipStatus "Enabled" (no invitation to accept), and gets a detector if it had none
  (with the administrator's FindingPublishingFrequency). An account outside the
  organization is recorded "Created"; invitations (InviteMembers) are not offered.
- UpdateOrganizationConfiguration's AutoEnableOrganizationMembers (or the deprecated
  AutoEnable: true is NEW): ALL enrols every account of the organization, existing and new;
  NEW the accounts that join after the setting. Enrolment is what CreateMembers does,
  detector included. The local cloud enrols lazily: whenever the administrator's members,
  findings or lists are looked at, and whenever the account itself calls GuardDuty.
- Members cannot manage threat lists or trusted IP lists: "only the GuardDuty administrator
  account can manage lists, which automatically apply to member accounts" (GuardDuty user
  guide, guardduty-lists-prerequisites). The administrator's ACTIVE lists of the region join
  the member's own in ``threat_entries`` / ``trusted_entries``.
- The administrator's ListFindings / GetFindings / GetFindingsStatistics / Archive see every
  associated member's findings of the region (``member_detectors``); a member sees its own.
"""

from __future__ import annotations

from datetime import timezone
from typing import Any

from gdlab.local.guardduty.common import BadRequest, now_iso
from gdlab.local.guardduty.triage import paginate

AUTO_ENABLE = ("NEW", "ALL", "NONE")
MAX_MEMBER_RESULTS = 50
MAX_ACCOUNT_DETAILS = 50
ENABLED = "Enabled"
MEMBER_REFUSAL = ("The request is rejected because the current account cannot {verb} a "
                  "{label} because it is a member account; only the administrator account "
                  "can manage lists.")


def organization_of(account_id: str) -> tuple[str, str, dict[str, Any]] | None:
    """(management account, organization id, account id -> moto's account) of the
    organization the account belongs to, or None."""
    from moto.organizations.models import organizations_backends

    management = None
    if organizations_backends[account_id]["aws"].org is not None:
        management = account_id
    elif account_id in organizations_backends.master_accounts:
        management = organizations_backends.master_accounts[account_id][0]
    if management is None:
        return None
    org_backend = organizations_backends[management]["aws"]
    if org_backend.org is None:
        return None
    return management, org_backend.org.id, {a.id: a for a in org_backend.accounts}


def _peer(account_id: str, region: str) -> Any:
    from gdlab.local.guardduty.models import guardduty_backends

    return guardduty_backends[account_id][region]


class OrganizationMixin:
    """Administrator and member answers (the host provides lock, detectors, account_id,
    region_name, create_detector, get_detector, list_sets, set_status)."""

    def _org_state(self) -> None:
        self.org_admin: str | None = None
        self.members: dict[str, dict[str, Any]] = {}
        self.administrator: dict[str, Any] | None = None
        self.org_config: dict[str, Any] = {"AutoEnableOrganizationMembers": "NONE",
                                           "Since": 0.0, "DataSources": {}, "Features": []}

    # --- who is who --------------------------------------------------------------------
    def _management(self) -> tuple[str, str, dict[str, Any]]:
        org = organization_of(self.account_id)
        if org is None:
            raise BadRequest("The request is rejected because the current account is not "
                             "part of an organization in AWS Organizations.")
        if org[0] != self.account_id:
            raise BadRequest("The request is rejected because the current account is not "
                             "the management account of the organization.")
        return org

    def delegated_admin(self) -> str | None:
        """The organization's GuardDuty administrator in this region, if any."""
        org = organization_of(self.account_id)
        if org is None:
            return None
        return _peer(org[0], self.region_name).org_admin

    def _require_admin(self) -> None:
        if self.delegated_admin() != self.account_id:
            raise BadRequest("The request is rejected because the current account is not "
                             "the GuardDuty delegated administrator account of the "
                             "organization.")

    def administrator_id(self) -> str | None:
        """The administrator this account is an associated member of, in this region."""
        admin = self.delegated_admin()
        if admin and admin != self.account_id:
            _peer(admin, self.region_name).enrol_organization()
        with self.lock:
            found = self.administrator
            return found["AccountId"] if found else None

    # --- the management account ---------------------------------------------------------
    def enable_organization_admin_account(self, admin_account_id: str) -> None:
        from gdlab.local.organizations import delegate, delegated_elsewhere

        management, org_id, accounts = self._management()
        if admin_account_id not in accounts:
            raise BadRequest(f"The request is rejected because the account {admin_account_id} "
                             f"is not a member of the organization {org_id}.")
        other = delegated_elsewhere(management, admin_account_id, "guardduty.amazonaws.com")
        if other:
            raise BadRequest("The request is rejected because the organization already has a "
                             f"delegated administrator account ({other}).")
        with self.lock:
            if self.org_admin and self.org_admin != admin_account_id:
                raise BadRequest("The request is rejected because the organization already "
                                 f"has a delegated administrator account ({self.org_admin}).")
            self.org_admin = admin_account_id
        delegate(management, admin_account_id, "guardduty.amazonaws.com")
        admin = _peer(admin_account_id, self.region_name)
        if not admin.detectors:
            admin.create_detector(True, "SIX_HOURS", {}, {}, [])

    def list_organization_admin_accounts(self, max_results: int | None = None,
                                         next_token: str | None = None
                                         ) -> tuple[list[dict[str, Any]], str]:
        self._management()
        admins = [{"AdminAccountId": self.org_admin, "AdminStatus": "ENABLED"}] \
            if self.org_admin else []
        return paginate(admins, max_results, next_token, MAX_MEMBER_RESULTS)

    def disable_organization_admin_account(self, admin_account_id: str) -> None:
        self._management()
        with self.lock:
            if self.org_admin != admin_account_id:
                raise BadRequest(f"The request is rejected because the account "
                                 f"{admin_account_id} is not the delegated administrator "
                                 "account of the organization.")
            self.org_admin = None
        # Removing the administrator ends its members' association; GuardDuty stays on.
        admin = _peer(admin_account_id, self.region_name)
        with admin.lock:
            members = list(admin.members)
            admin.members.clear()
            admin.org_config = {"AutoEnableOrganizationMembers": "NONE", "Since": 0.0,
                                "DataSources": {}, "Features": []}
        for account in members:
            peer = _peer(account, self.region_name)
            with peer.lock:
                peer.administrator = None

    # --- the administrator --------------------------------------------------------------
    def update_organization_configuration(self, detector_id: str, auto_enable: bool | None,
                                          data_sources: dict[str, Any] | None,
                                          features: list[dict[str, Any]] | None,
                                          members: str | None) -> None:
        import time

        self.get_detector(detector_id)
        self._require_admin()
        if auto_enable is not None and members is not None:
            raise BadRequest("The request is rejected because you must provide either "
                             "autoEnable or autoEnableOrganizationMembers, and not both.")
        if members is not None and members not in AUTO_ENABLE:
            raise BadRequest(f"The request is rejected because autoEnableOrganizationMembers "
                             f"{members} is invalid. Valid values: {', '.join(AUTO_ENABLE)}.")
        if auto_enable is not None:
            members = "NEW" if auto_enable else "NONE"
        with self.lock:
            config = self.org_config
            if members is not None and members != config["AutoEnableOrganizationMembers"]:
                config["AutoEnableOrganizationMembers"] = members
                config["Since"] = time.time()
            if data_sources is not None:
                config["DataSources"] = data_sources
            if features is not None:
                config["Features"] = features
        self.enrol_organization()

    def describe_organization_configuration(self, detector_id: str) -> dict[str, Any]:
        self.get_detector(detector_id)
        self._require_admin()
        with self.lock:
            config = self.org_config
            mode = config["AutoEnableOrganizationMembers"]
            sources = config["DataSources"] or {}

            def on(*path: str) -> bool:
                node: Any = sources
                for key in path:
                    node = node.get(key) if isinstance(node, dict) else None
                return bool(node)

            features = [{k: v for k, v in (("Name", f.get("Name")),
                                           ("AutoEnable", f.get("AutoEnable")),
                                           ("AdditionalConfiguration",
                                            f.get("AdditionalConfiguration"))) if v}
                        for f in config["Features"]]
            return {
                "AutoEnable": mode != "NONE",
                "AutoEnableOrganizationMembers": mode,
                "MemberAccountLimitReached": False,
                "DataSources": {
                    "S3Logs": {"AutoEnable": on("S3Logs", "AutoEnable")},
                    "Kubernetes": {"AuditLogs": {
                        "AutoEnable": on("Kubernetes", "AuditLogs", "AutoEnable")}},
                    "MalwareProtection": {"ScanEc2InstanceWithFindings": {"EbsVolumes": {
                        "AutoEnable": on("MalwareProtection", "ScanEc2InstanceWithFindings",
                                         "EbsVolumes", "AutoEnable")}}},
                },
                "Features": features,
            }

    def enrol_organization(self) -> None:
        """Auto-enable: make the organization's accounts members as the configuration says
        (ALL: every account; NEW: accounts that joined after the setting)."""
        if self.delegated_admin() != self.account_id:
            return
        org = organization_of(self.account_id)
        if org is None:
            return
        with self.lock:
            mode = self.org_config["AutoEnableOrganizationMembers"]
            since = self.org_config["Since"]
            known = set(self.members)
        if mode == "NONE":
            return
        due = []
        for account_id, account in org[2].items():
            if account_id == self.account_id or account_id in known:
                continue
            joined = getattr(account, "create_time", None)
            if joined is not None and joined.tzinfo is None:
                joined = joined.replace(tzinfo=timezone.utc)  # moto keeps naive UTC
            if mode == "NEW" and (joined is None or joined.timestamp() < since):
                continue
            due.append({"AccountId": account_id, "Email": getattr(account, "email", "")})
        if due:
            self._add_members(due, org)

    def create_members(self, detector_id: str,
                       details: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.get_detector(detector_id)
        if not 1 <= len(details or []) <= MAX_ACCOUNT_DETAILS:
            raise BadRequest("The request is rejected because accountDetails must have "
                             f"between 1 and {MAX_ACCOUNT_DETAILS} items.")
        if self.administrator_id():
            raise BadRequest("The request is rejected because the current account cannot "
                             "create members because it is already a member of another "
                             "administrator account.")
        return self._add_members(details, organization_of(self.account_id))

    def _add_members(self, details: list[dict[str, Any]],
                     org: tuple[str, str, dict[str, Any]] | None) -> list[dict[str, Any]]:
        unprocessed = []
        is_admin = self.delegated_admin() == self.account_id
        frequency = next((getattr(d, "finding_publish_freq", "SIX_HOURS")
                          for d in self.detectors.values()), "SIX_HOURS")
        for detail in details:
            account_id = str(detail.get("AccountId") or "")
            if account_id == self.account_id:
                unprocessed.append({"AccountId": account_id, "Result": (
                    "The request is rejected because an account cannot become a member of "
                    "itself.")})
                continue
            with self.lock:
                existing = self.members.get(account_id)
            if existing is not None and existing["RelationshipStatus"] == ENABLED:
                unprocessed.append({"AccountId": account_id, "Result": (
                    "The request is rejected because the given account ID is already a "
                    "member or associated member of the current account.")})
                continue
            peer = _peer(account_id, self.region_name)
            with peer.lock:
                other = peer.administrator
            if other and other["AccountId"] != self.account_id:
                unprocessed.append({"AccountId": account_id, "Result": (
                    "The request is rejected because the given account ID is already a "
                    "member of another administrator account.")})
                continue
            stamp = now_iso()
            in_org = is_admin and org is not None and account_id in org[2]
            member_detector = None
            if in_org:
                if not peer.detectors:
                    peer.create_detector(True, frequency, {}, {}, [])
                member_detector = next(iter(peer.detectors))
                with peer.lock:
                    peer.administrator = {"AccountId": self.account_id,
                                          "RelationshipStatus": ENABLED, "InvitedAt": stamp}
            record = {"AccountId": account_id, "MasterId": self.account_id,
                      "AdministratorId": self.account_id,
                      "Email": str(detail.get("Email") or ""),
                      "RelationshipStatus": ENABLED if in_org else "Created",
                      "UpdatedAt": stamp}
            if member_detector:
                record["DetectorId"] = member_detector
                record["InvitedAt"] = stamp
            with self.lock:
                self.members[account_id] = record
        return unprocessed

    def list_members(self, detector_id: str, max_results: int | None = None,
                     next_token: str | None = None,
                     only_associated: str | None = None) -> tuple[list[dict[str, Any]], str]:
        self.get_detector(detector_id)
        self.enrol_organization()
        with self.lock:
            found = [dict(m) for m in self.members.values()
                     if str(only_associated or "true").lower() == "false"
                     or m["RelationshipStatus"] == ENABLED]
        return paginate(found, max_results, next_token, MAX_MEMBER_RESULTS)

    def get_members(self, detector_id: str,
                    account_ids: list[str]) -> tuple[list[dict[str, Any]], list[dict]]:
        self.get_detector(detector_id)
        self.enrol_organization()
        found, unprocessed = [], []
        with self.lock:
            for account_id in account_ids or []:
                if account_id in self.members:
                    found.append(dict(self.members[account_id]))
                else:
                    unprocessed.append({"AccountId": account_id, "Result": (
                        "The request is rejected because the input account ID is not a "
                        "member of the current account.")})
        return found, unprocessed

    def _end_association(self, account_id: str) -> None:
        peer = _peer(account_id, self.region_name)
        with peer.lock:
            if peer.administrator and peer.administrator["AccountId"] == self.account_id:
                peer.administrator = None

    def _refuse_under_all(self, account_id: str) -> str | None:
        with self.lock:
            mode = self.org_config["AutoEnableOrganizationMembers"]
        org = organization_of(self.account_id)
        if mode == "ALL" and org is not None and account_id in org[2]:
            return ("The request is rejected because autoEnableOrganizationMembers is ALL: "
                    "an account of the organization cannot leave it as a member.")
        return None

    def _removing(self, detector_id: str, account_ids: list[str]
                  ) -> tuple[list[str], list[dict]]:
        """The members that may leave, and the unprocessed accounts with AWS's reasons."""
        self.get_detector(detector_id)
        leaving, unprocessed = [], []
        for account_id in account_ids or []:
            with self.lock:
                known = account_id in self.members
            refusal = self._refuse_under_all(account_id)
            if not known or refusal:
                unprocessed.append({"AccountId": account_id, "Result": refusal or (
                    "The request is rejected because the input account ID is not a member "
                    "of the current account.")})
                continue
            self._end_association(account_id)
            leaving.append(account_id)
        return leaving, unprocessed

    def disassociate_members(self, detector_id: str, account_ids: list[str]) -> list[dict]:
        leaving, unprocessed = self._removing(detector_id, account_ids)
        with self.lock:
            for record in filter(None, map(self.members.get, leaving)):
                record["RelationshipStatus"] = "Removed"
                record["UpdatedAt"] = now_iso()
        return unprocessed

    def delete_members(self, detector_id: str, account_ids: list[str]) -> list[dict]:
        leaving, unprocessed = self._removing(detector_id, account_ids)
        with self.lock:
            for account_id in leaving:
                self.members.pop(account_id, None)
        return unprocessed

    # --- the member ---------------------------------------------------------------------
    def administrator_account(self, detector_id: str) -> dict[str, Any] | None:
        """The administrator this account is an associated member of, or None (AWS answers
        an account with no administrator with success and no content)."""
        self.get_detector(detector_id)
        if self.administrator_id() is None:
            return None
        with self.lock:
            return dict(self.administrator) if self.administrator else None

    def refuse_if_member(self, kind: str, verb: str) -> None:
        if self.administrator_id() is not None:
            label = "ThreatIntelSet" if kind == "threatintelset" else "IPSet"
            raise BadRequest(MEMBER_REFUSAL.format(verb=verb, label=label))

    def administrator_sets(self, kind: str) -> list[tuple[Any, Any]]:
        """(administrator backend, set) of the administrator's lists of this kind in this
        region, for a member; [] otherwise."""
        admin_id = self.administrator_id()
        if admin_id is None:
            return []
        admin = _peer(admin_id, self.region_name)
        with admin.lock:
            return [(admin, intel) for detector_id in list(admin.detectors)
                    for intel in admin.list_sets(kind, detector_id)]

    def member_detectors(self, detector_id: str) -> list[tuple[Any, str]]:
        """(member backend, member detector) of every associated member in this region,
        for the administrator's detector; [] for anyone else."""
        if self.delegated_admin() != self.account_id and not self.members:
            return []
        self.enrol_organization()
        with self.lock:
            accounts = [a for a, m in self.members.items()
                        if m["RelationshipStatus"] == ENABLED]
        found = []
        for account_id in accounts:
            peer = _peer(account_id, self.region_name)
            with peer.lock:
                found.extend((peer, d) for d in peer.detectors)
        return found
