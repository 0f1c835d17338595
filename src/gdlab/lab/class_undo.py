"""How a class with a GuardDuty administrator undoes each kind of change it journaled
(class_admin.py). An entry without an id was journaled before its call only because the
thing was not there then: whatever is there now is the class's."""

from __future__ import annotations

from typing import Any

from gdlab.errors import StepFailed
from gdlab.lab.awsutil import error_code
from gdlab.lab.class_holdings import designated, list_bucket
from gdlab.lab.steps.detection import empty_and_delete_bucket


class Undoing:
    """Mixed into class_admin.Administrator (cloud, management, record, account, home)."""

    def _undo_threat_intel_set(self, entry: dict[str, Any]) -> None:
        gd = self.cloud(entry["region"]).client("guardduty")
        detectors = gd.list_detectors()["DetectorIds"]
        if not detectors:
            return  # a set goes with its detector
        set_id = self._set_id(gd, detectors[0])
        if set_id:
            gd.delete_threat_intel_set(DetectorId=detectors[0], ThreatIntelSetId=set_id)

    def _undo_list_bucket(self, entry: dict[str, Any]) -> None:
        # Only the class's own name is ever emptied, whatever the journal says.
        empty_and_delete_bucket(self.cloud(entry["region"]).client("s3"),
                                list_bucket(self.record.name, self.account, entry["region"]))

    def _undo_sh_aggregator(self, entry: dict[str, Any]) -> None:
        hub = self.cloud(entry["region"]).client("securityhub")
        for found in hub.list_finding_aggregators()["FindingAggregators"]:
            arn = found["FindingAggregatorArn"]
            if entry["id"] in (None, arn):
                hub.delete_finding_aggregator(FindingAggregatorArn=arn)

    def _undo_sh_members(self, entry: dict[str, Any]) -> None:
        hub = self.cloud(entry["region"]).client("securityhub")
        try:
            hub.disassociate_members(AccountIds=list(entry.get("accounts") or []))
        except Exception as exc:  # noqa: BLE001 - its hub is off: it has no members
            if error_code(exc) != "InvalidAccessException":
                raise

    def _undo_sh_admin(self, entry: dict[str, Any]) -> None:
        self._undesignate(entry["region"], "securityhub")

    def _undesignate(self, region: str, service: str) -> None:
        """The management account removes the administrator it designated in the region."""
        managing = self.management(region).client(service)
        if self.account in designated(managing):
            managing.disable_organization_admin_account(AdminAccountId=self.account)

    def _undo_sh_hub(self, entry: dict[str, Any]) -> None:
        hub = self.cloud(entry["region"], entry["account"]).client("securityhub")
        try:
            hub.disable_security_hub()
        except Exception as exc:  # noqa: BLE001 - off already
            if error_code(exc) not in ("InvalidAccessException", "ResourceNotFoundException"):
                raise

    def _undo_gd_members(self, entry: dict[str, Any]) -> None:
        gd = self.cloud(entry["region"]).client("guardduty")
        detectors = gd.list_detectors()["DetectorIds"]
        if not detectors:
            return  # an administrator without a detector has no members
        listed = {m["AccountId"] for page in gd.get_paginator("list_members").paginate(
            DetectorId=detectors[0], OnlyAssociated="false") for m in page["Members"]}
        members = sorted(set(entry.get("accounts") or []) & listed)
        for call in (gd.disassociate_members, gd.delete_members):
            if not members:
                return
            left = call(DetectorId=detectors[0], AccountIds=members).get(
                "UnprocessedAccounts", [])
            if left:
                raise StepFailed(f"GuardDuty kept {left[0]['AccountId']} as a member: "
                                 f"{left[0].get('Result')}")

    def _undo_gd_admin(self, entry: dict[str, Any]) -> None:
        self._undesignate(entry["region"], "guardduty")

    def _undo_gd_detector(self, entry: dict[str, Any]) -> None:
        gd = self.cloud(entry["region"], entry["account"]).client("guardduty")
        for detector in gd.list_detectors()["DetectorIds"]:
            if entry["id"] in (None, detector):
                gd.delete_detector(DetectorId=detector)

    def _undo_org_delegation(self, entry: dict[str, Any]) -> None:
        org = self.room.base.client("organizations")
        registered = {a["Id"] for page in org.get_paginator(
            "list_delegated_administrators").paginate(ServicePrincipal=entry["service"])
            for a in page["DelegatedAdministrators"]}
        if self.account in registered:
            org.deregister_delegated_administrator(AccountId=self.account,
                                                   ServicePrincipal=entry["service"])

    def _undo_org_access(self, entry: dict[str, Any]) -> None:
        org = self.room.base.client("organizations")
        trusted = {s["ServicePrincipal"] for page in org.get_paginator(
            "list_aws_service_access_for_organization").paginate()
            for s in page["EnabledServicePrincipals"]}
        if entry["service"] in trusted:
            org.disable_aws_service_access(ServicePrincipal=entry["service"])
