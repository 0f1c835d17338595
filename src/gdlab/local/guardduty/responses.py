"""GuardDuty's HTTP layer: moto's responses plus gdlab's operations, parsed and serialized
with botocore's GuardDuty model."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from moto.core.responses import ActionResult, EmptyResult
from moto.guardduty.responses import GuardDutyResponse

from gdlab.local.guardduty.models import GdlabGuardDutyBackend, guardduty_backends


def _page(key: str, items: Any, token: str | None) -> dict[str, Any]:
    """One page of a List call: its items, and NextToken only when there is a next page."""
    return {key: items, **({"NextToken": token} if token else {})}


class GdlabGuardDutyResponse(GuardDutyResponse):
    """moto's GuardDuty responses plus the operations above, parsed with botocore's model."""

    @property
    def guardduty_backend(self) -> GdlabGuardDutyBackend:
        backend = guardduty_backends[self.current_account][self.region]
        if getattr(self, "_enrolled", None) is not backend:
            # An organization account the administrator auto-enables is enrolled by its
            # own first call too (organization.py); once per request.
            self._enrolled = backend
            backend.administrator_id()
        return backend

    def _params(self) -> dict[str, Any]:
        self.parse_parameters(self.normalized_request)
        params = dict(self.params)
        params.update(self.uri_match)
        return params

    # threat intel sets and IP sets share one implementation
    def _create(self, kind: str, out_key: str) -> ActionResult:
        p = self._params()
        intel = self.guardduty_backend.create_set(
            kind, p["DetectorId"], p.get("Name"), p.get("Format"), p.get("Location"),
            p.get("Activate", False), p.get("Tags"),
        )
        return ActionResult({out_key: intel.id})

    def _get(self, kind: str, id_key: str) -> ActionResult:
        p = self._params()
        backend = self.guardduty_backend
        intel = backend.get_set(kind, p["DetectorId"], p[id_key])
        return ActionResult({"Name": intel.name, "Format": intel.format,
                             "Location": intel.location, "Status": backend.set_status(intel),
                             "Tags": intel.tags})

    def _list(self, kind: str, out_key: str) -> ActionResult:
        p = self._params()
        ids = [s.id for s in self.guardduty_backend.list_sets(kind, p["DetectorId"])]
        start = int(p.get("NextToken") or 0)
        size = int(p.get("MaxResults") or 50)
        page = ids[start:start + size]
        result: dict[str, Any] = {out_key: page}
        if start + size < len(ids):
            result["NextToken"] = str(start + size)
        return ActionResult(result)

    def _update(self, kind: str, id_key: str) -> EmptyResult:
        p = self._params()
        self.guardduty_backend.update_set(kind, p["DetectorId"], p[id_key], p.get("Name"),
                                          p.get("Location"), p.get("Activate"))
        return EmptyResult()

    def _delete(self, kind: str, id_key: str) -> EmptyResult:
        p = self._params()
        self.guardduty_backend.delete_set(kind, p["DetectorId"], p[id_key])
        return EmptyResult()

    def create_threat_intel_set(self) -> ActionResult:
        return self._create("threatintelset", "ThreatIntelSetId")

    def get_threat_intel_set(self) -> ActionResult:
        return self._get("threatintelset", "ThreatIntelSetId")

    def list_threat_intel_sets(self) -> ActionResult:
        return self._list("threatintelset", "ThreatIntelSetIds")

    def update_threat_intel_set(self) -> EmptyResult:
        return self._update("threatintelset", "ThreatIntelSetId")

    def delete_threat_intel_set(self) -> EmptyResult:
        return self._delete("threatintelset", "ThreatIntelSetId")

    def create_ip_set(self) -> ActionResult:
        return self._create("ipset", "IpSetId")

    def get_ip_set(self) -> ActionResult:
        return self._get("ipset", "IpSetId")

    def list_ip_sets(self) -> ActionResult:
        return self._list("ipset", "IpSetIds")

    def update_ip_set(self) -> EmptyResult:
        return self._update("ipset", "IpSetId")

    def delete_ip_set(self) -> EmptyResult:
        return self._delete("ipset", "IpSetId")

    # findings
    def list_findings(self) -> ActionResult:
        p = self._params()
        ids, token = self.guardduty_backend.list_findings(
            p["DetectorId"], p.get("FindingCriteria"), p.get("SortCriteria"),
            p.get("MaxResults"), p.get("NextToken"),
        )
        result: dict[str, Any] = {"FindingIds": ids}
        if token:
            result["NextToken"] = token
        return ActionResult(result)

    def get_findings(self) -> ActionResult:
        p = self._params()
        findings = self.guardduty_backend.get_findings(
            p["DetectorId"], p.get("FindingIds") or [], p.get("SortCriteria")
        )
        return ActionResult({"Findings": findings})

    def archive_findings(self) -> EmptyResult:
        p = self._params()
        self.guardduty_backend.set_archived(p["DetectorId"], p.get("FindingIds") or [], True)
        return EmptyResult()

    def unarchive_findings(self) -> EmptyResult:
        p = self._params()
        self.guardduty_backend.set_archived(p["DetectorId"], p.get("FindingIds") or [], False)
        return EmptyResult()

    def get_findings_statistics(self) -> ActionResult:
        p = self._params()
        stats = self.guardduty_backend.findings_statistics(
            p["DetectorId"], p.get("FindingStatisticTypes"), p.get("FindingCriteria"),
            p.get("GroupBy"), p.get("OrderBy"), p.get("MaxResults"),
        )
        return ActionResult({"FindingStatistics": stats})

    def update_findings_feedback(self) -> EmptyResult:
        p = self._params()
        self.guardduty_backend.update_findings_feedback(
            p["DetectorId"], p.get("FindingIds") or [], p.get("Feedback"), p.get("Comments"))
        return EmptyResult()

    def create_sample_findings(self) -> EmptyResult:
        p = self._params()
        self.guardduty_backend.create_sample_findings(p["DetectorId"], p.get("FindingTypes"))
        return EmptyResult()

    # filters: moto's CreateFilter drops Tags and its GetFilter sends absent members as null
    def create_filter(self) -> ActionResult:
        p = self._params()
        self.guardduty_backend.create_filter(
            p["DetectorId"], p.get("Name"), p.get("Action"), p.get("Description"),
            p.get("FindingCriteria"), p.get("Rank"), p.get("Tags"),
        )
        return ActionResult({"Name": p.get("Name")})

    def get_filter(self) -> ActionResult:
        p = self._params()
        return ActionResult(self.guardduty_backend.filter_view(
            p["DetectorId"], unquote(p["FilterName"])))

    def list_filters(self) -> ActionResult:
        p = self._params()
        names, token = self.guardduty_backend.list_filters(
            p["DetectorId"], p.get("MaxResults"), p.get("NextToken"))
        return ActionResult(_page("FilterNames", names, token))

    # administrator and members (organization.py says what AWS does and what we do)
    def enable_organization_admin_account(self) -> EmptyResult:
        p = self._params()
        self.guardduty_backend.enable_organization_admin_account(p.get("AdminAccountId"))
        return EmptyResult()

    def list_organization_admin_accounts(self) -> ActionResult:
        p = self._params()
        admins, token = self.guardduty_backend.list_organization_admin_accounts(
            p.get("MaxResults"), p.get("NextToken"))
        return ActionResult(_page("AdminAccounts", admins, token))

    def disable_organization_admin_account(self) -> EmptyResult:
        p = self._params()
        self.guardduty_backend.disable_organization_admin_account(p.get("AdminAccountId"))
        return EmptyResult()

    def update_organization_configuration(self) -> EmptyResult:
        p = self._params()
        self.guardduty_backend.update_organization_configuration(
            p["DetectorId"], p.get("AutoEnable"), p.get("DataSources"), p.get("Features"),
            p.get("AutoEnableOrganizationMembers"))
        return EmptyResult()

    def describe_organization_configuration(self) -> ActionResult:
        p = self._params()
        return ActionResult(
            self.guardduty_backend.describe_organization_configuration(p["DetectorId"]))

    def create_members(self) -> ActionResult:
        p = self._params()
        unprocessed = self.guardduty_backend.create_members(p["DetectorId"],
                                                            p.get("AccountDetails") or [])
        return ActionResult({"UnprocessedAccounts": unprocessed})

    def list_members(self) -> ActionResult:
        p = self._params()
        members, token = self.guardduty_backend.list_members(
            p["DetectorId"], p.get("MaxResults"), p.get("NextToken"), p.get("OnlyAssociated"))
        return ActionResult(_page("Members", members, token))

    def get_members(self) -> ActionResult:
        p = self._params()
        members, unprocessed = self.guardduty_backend.get_members(
            p["DetectorId"], p.get("AccountIds") or [])
        return ActionResult({"Members": members, "UnprocessedAccounts": unprocessed})

    def delete_members(self) -> ActionResult:
        p = self._params()
        return ActionResult({"UnprocessedAccounts": self.guardduty_backend.delete_members(
            p["DetectorId"], p.get("AccountIds") or [])})

    def disassociate_members(self) -> ActionResult:
        p = self._params()
        return ActionResult({"UnprocessedAccounts": self.guardduty_backend.disassociate_members(
            p["DetectorId"], p.get("AccountIds") or [])})

    def get_administrator_account(self) -> ActionResult:
        p = self._params()
        found = self.guardduty_backend.administrator_account(p["DetectorId"])
        return ActionResult({"Administrator": found} if found else {})

    def get_master_account(self) -> ActionResult:
        # GetMasterAccount is the deprecated name of GetAdministratorAccount.
        p = self._params()
        found = self.guardduty_backend.administrator_account(p["DetectorId"])
        return ActionResult({"Master": found} if found else {})

    def list_publishing_destinations(self) -> ActionResult:
        p = self._params()
        found, token = self.guardduty_backend.publishing_destinations(
            p["DetectorId"], p.get("MaxResults"), p.get("NextToken"))
        return ActionResult(_page("Destinations", found, token))

    def get_usage_statistics(self) -> ActionResult:
        p = self._params()
        stats, token = self.guardduty_backend.usage_statistics(
            p["DetectorId"], p.get("UsageStatisticType"), p.get("UsageCriteria"),
            p.get("Unit"), p.get("MaxResults"), p.get("NextToken"),
        )
        return ActionResult(_page("UsageStatistics", stats, token))

    def list_coverage(self) -> ActionResult:
        p = self._params()
        resources, token = self.guardduty_backend.coverage(
            p["DetectorId"], p.get("MaxResults"), p.get("NextToken"))
        return ActionResult(_page("Resources", resources, token))

    # tags
    def tag_resource(self) -> ActionResult:
        p = self._params()
        self.guardduty_backend.tag_resource(unquote(p["ResourceArn"]), p.get("Tags") or {})
        return EmptyResult()

    def untag_resource(self) -> ActionResult:
        p = self._params()
        self.guardduty_backend.untag_resource(unquote(p["ResourceArn"]), p.get("TagKeys"))
        return EmptyResult()

    def list_tags_for_resource(self) -> ActionResult:
        p = self._params()
        tags = self.guardduty_backend.list_tags_for_resource(unquote(p["ResourceArn"]))
        return ActionResult({"Tags": tags})


