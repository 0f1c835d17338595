"""Security Hub for the local cloud: moto's backend made to behave like AWS where the lab
looks — enabling twice is a conflict, a disabled hub refuses work, GetFindings honours its
Filters, imported findings get the fields Security Hub adds, and the hub can be tagged."""

from __future__ import annotations

import copy
import threading
import types
from typing import Any
from urllib.parse import unquote

from moto.core.base_backend import BackendDict
from moto.core.responses import ActionResult, EmptyResult
from moto.securityhub import models as sh_models
from moto.securityhub import responses as sh_responses
from moto.securityhub import urls as sh_urls
from moto.securityhub.models import Finding, SecurityHubBackend
from moto.securityhub.responses import SecurityHubResponse

from gdlab.local.securityhub_aggregator import (
    AGGREGATOR_URL_PATHS,
    AggregatorBackendMixin,
    AggregatorResponseMixin,
)
from gdlab.local.securityhub_filters import (  # noqa: F401 - matches is part of this API
    DATE_FIELDS,
    NUMBER_FIELDS,
    STRING_FIELDS,
    HubError,
    matches,
    now_iso,
    parse_date,
    values_at,
)
from gdlab.local.securityhub_organization import (
    ORGANIZATION_URL_PATHS,
    OrganizationBackendMixin,
    OrganizationResponseMixin,
)
from gdlab.local.securityhub_triage import (
    CUSTOMER_FIELDS,
    PROVIDER_OVERRIDABLE,
    TRIAGE_URL_PATHS,
    TriageBackendMixin,
    TriageResponseMixin,
)

REQUIRED = ("SchemaVersion", "Id", "ProductArn", "GeneratorId", "AwsAccountId", "CreatedAt",
            "UpdatedAt", "Title", "Description", "Resources")


def product_names(product_arn: str) -> tuple[str, str]:
    """(ProductName, CompanyName) as Security Hub derives them from the product ARN."""
    tail = product_arn.split(":product/", 1)[-1].split("/")
    if len(tail) == 2 and tail[0] == "aws":
        # Company as AWS's own integrations report it (GuardDuty's sample finding: "Amazon").
        known = {"guardduty": ("GuardDuty", "Amazon"), "inspector": ("Inspector", "Amazon"),
                 "macie": ("Macie", "Amazon"), "securityhub": ("Security Hub", "AWS"),
                 "access-analyzer": ("IAM Access Analyzer", "AWS")}
        return known.get(tail[1], (tail[1], "AWS"))
    if len(tail) == 2 and tail[1] == "default":
        return "Default", "Personal"
    return (tail[-1], tail[0]) if len(tail) == 2 else (product_arn, "Unknown")


class GdlabSecurityHubBackend(AggregatorBackendMixin, OrganizationBackendMixin,
                              TriageBackendMixin, SecurityHubBackend):
    def __init__(self, region_name: str, account_id: str):
        super().__init__(region_name, account_id)
        self.lock = threading.RLock()
        self.tags: dict[str, str] = {}
        self._triage_state()
        self._aggregator_state()

    def member_accounts(self) -> list[str]:
        """The enabled members of this account when it is the organization's Security Hub
        administrator (moto keeps the designation and CreateMembers' members)."""
        try:
            admin = self._get_org_config().get("admin_account_id")
        except Exception:  # noqa: BLE001 - no organization: no members
            return []
        if admin != self.account_id:
            return []
        with self.lock:
            return [a for a, m in self.members.items() if m.get("MemberStatus") == "ENABLED"]

    def visible_sources(self) -> list[GdlabSecurityHubBackend]:
        """The backends whose findings GetFindings here returns: this one; the Regions an
        aggregator here links (securityhub_aggregator.py); for the administrator, its
        members' hubs in those Regions as well, as Security Hub shows an administrator
        its members' findings."""
        sources = [self]
        for account in [self.account_id, *self.member_accounts()]:
            for region, peer in list(securityhub_backends[account].items()):
                if peer is not self and peer.enabled and (
                        region == self.region_name or self.links(region)):
                    sources.append(peer)
        return sources

    def peers(self) -> dict[str, GdlabSecurityHubBackend]:
        """This account's backends by Region (those the local cloud has made)."""
        return dict(list(securityhub_backends[self.account_id].items()))

    @property
    def _url_module(self) -> Any:
        return URL_MODULE

    @property
    def hub_arn(self) -> str:
        return f"arn:{self.partition}:securityhub:{self.region_name}:{self.account_id}:hub/default"

    def _require_enabled(self) -> None:
        if not self.enabled:
            raise HubError("InvalidAccessException",
                           f"Account {self.account_id} is not subscribed to AWS Security Hub")

    def enable_security_hub(self, enable_default_standards: bool = True,
                            tags: dict[str, str] | None = None) -> dict[str, Any]:
        with self.lock:
            if self.enabled:
                raise HubError("ResourceConflictException",
                               f"Account {self.account_id} is already subscribed to "
                               "Security Hub")
            self.enabled = True
            self.enabled_at = now_iso()
            self.tags = dict(tags or {})
            self._enable_default_standards(enable_default_standards is not False)
            return {}

    def disable_security_hub(self) -> dict[str, Any]:
        with self.lock:
            self._require_enabled()
            self.enabled = False
            self.enabled_at = None
            self.findings = []
            self.tags = {}
            self._triage_state()
            return {}

    def describe_hub(self, hub_arn: str | None = None) -> dict[str, Any]:
        self._require_enabled()
        if hub_arn and hub_arn != self.hub_arn:
            raise HubError("ResourceNotFoundException",
                           f"The request was rejected because no hub was found with ARN "
                           f"{hub_arn}.")
        return {"HubArn": self.hub_arn, "SubscribedAt": self.enabled_at,
                "AutoEnableControls": True, "ControlFindingGenerator": "SECURITY_CONTROL"}

    def _hub_tags(self, arn: str) -> dict[str, str]:
        if arn != self.hub_arn or not self.enabled:
            raise HubError("ResourceNotFoundException",
                           f"The request was rejected because no resource was found with "
                           f"ARN {arn}.")
        return self.tags

    def list_tags(self, arn: str) -> dict[str, str]:
        with self.lock:
            return dict(self._hub_tags(arn))

    def tag(self, arn: str, tags: dict[str, str]) -> None:
        with self.lock:
            self._hub_tags(arn).update(tags or {})

    def untag(self, arn: str, keys: list[str]) -> None:
        with self.lock:
            tags = self._hub_tags(arn)
            for key in keys or []:
                tags.pop(key, None)

    def find(self, filters: dict[str, Any] | None, sort: list[dict[str, str]] | None,
             max_results: int | None, next_token: str | None) -> tuple[list[dict], str | None]:
        self._require_enabled()
        size = 100 if max_results is None else int(max_results)
        if not 1 <= size <= 100:
            raise HubError("InvalidInputException",
                           "MaxResults must be a number between 1 and 100")
        try:
            start = int(next_token) if next_token else 0
        except ValueError:
            raise HubError("InvalidInputException", "Invalid NextToken") from None
        found = []
        for source in self.visible_sources():
            with source.lock:
                found.extend(copy.deepcopy(f.data) for f in source.findings
                             if matches(f.data, filters))
        for criterion in reversed(sort or []):
            field = criterion.get("Field", "")
            path = {**STRING_FIELDS, **NUMBER_FIELDS, **DATE_FIELDS}.get(field, field)
            found.sort(key=lambda f, p=path: str(next(iter(values_at(f, p)), "")),
                       reverse=str(criterion.get("SortOrder", "asc")).lower() == "desc")
        page = found[start:start + size]
        return page, (str(start + size) if start + size < len(found) else None)

    def batch_import_findings(
        self, findings: list[dict[str, Any]]
    ) -> tuple[int, int, list[dict[str, Any]]]:
        self._require_enabled()
        failed: list[dict[str, Any]] = []
        success = 0
        with self.lock:
            by_id = {f.id: f for f in self.findings}
            for data in findings:
                missing = [k for k in REQUIRED if data.get(k) in (None, "", [])]
                if missing:
                    failed.append({"Id": data.get("Id", ""), "ErrorCode": "InvalidInput",
                                   "ErrorMessage": f"Finding is missing {', '.join(missing)}"})
                    continue
                if data["AwsAccountId"] != self.account_id:
                    failed.append({"Id": data["Id"], "ErrorCode": "AccessDeniedException",
                                   "ErrorMessage": "Finding belongs to another account"})
                    continue
                record = self._completed(copy.deepcopy(data))
                existing = by_id.get(record["Id"])
                if existing is None:
                    record.setdefault("RecordState", "ACTIVE")
                    record.setdefault("Workflow", {"Status": "NEW"})
                    record.setdefault("WorkflowState", "NEW")
                    finding = Finding(record["Id"], record)
                    finding.customer_fields = set()
                    self.findings.append(finding)
                    by_id[record["Id"]] = finding
                elif _later(record["UpdatedAt"], existing.data.get("UpdatedAt")):
                    existing.data = _provider_update(existing, record)
                # else: an update not later than the stored one is ignored (BatchImportFindings
                # for finding providers: UpdatedAt must be later for an update to apply).
                success += 1
        return len(failed), success, failed


    def _completed(self, record: dict[str, Any]) -> dict[str, Any]:
        """The fields Security Hub adds to every imported finding, whatever its product."""
        product, company = product_names(record["ProductArn"])
        record.setdefault("ProductName", product)
        record.setdefault("CompanyName", company)
        record.setdefault("Region", self.region_name)
        record["ProcessedAt"] = now_iso()
        fields = dict(record.get("ProductFields") or {})
        fields.update({"aws/securityhub/FindingId": f"{record['ProductArn']}/{record['Id']}",
                       "aws/securityhub/ProductName": record["ProductName"],
                       "aws/securityhub/CompanyName": record["CompanyName"]})
        record["ProductFields"] = fields
        provided = record.get("FindingProviderFields") or {}
        for name in PROVIDER_OVERRIDABLE:
            if name not in record and name in provided:
                record[name] = copy.deepcopy(provided[name])
        return record


def _later(new: Any, old: Any) -> bool:
    new_at, old_at = parse_date(new), parse_date(old)
    return old_at is None or (new_at is not None and new_at > old_at)


def _provider_update(existing: Finding, record: dict[str, Any]) -> dict[str, Any]:
    """A provider's re-import of a finding: its fields replace the stored ones, except what
    customers own (BatchImportFindings API reference) and when the finding was created."""
    old = existing.data
    for name in ("CreatedAt", "FirstObservedAt"):
        if name in old:
            record[name] = old[name]
    for name in CUSTOMER_FIELDS:
        record.pop(name, None)
        if name in old:
            record[name] = copy.deepcopy(old[name])
    for name in getattr(existing, "customer_fields", set()) & set(PROVIDER_OVERRIDABLE):
        record[name] = copy.deepcopy(old[name])
    record.setdefault("RecordState", old.get("RecordState", "ACTIVE"))
    # Workflow.Status: NOTIFIED or RESOLVED goes back to NEW when the record state changes
    # from ARCHIVED to ACTIVE (ASFF Workflow).
    reactivated = old.get("RecordState") == "ARCHIVED" and record["RecordState"] == "ACTIVE"
    if reactivated and record.get("Workflow", {}).get("Status") in ("NOTIFIED", "RESOLVED"):
        record["Workflow"], record["WorkflowState"] = {"Status": "NEW"}, "NEW"
    return record


class GdlabSecurityHubResponse(AggregatorResponseMixin, OrganizationResponseMixin,
                               TriageResponseMixin, SecurityHubResponse):
    @property
    def securityhub_backend(self) -> GdlabSecurityHubBackend:
        return securityhub_backends[self.current_account][self.region]

    def _params(self) -> dict[str, Any]:
        self.parse_parameters(self.normalized_request)
        params = dict(self.params)
        params.update(self.uri_match)
        return params

    def describe_hub(self) -> ActionResult:
        p = self._params()
        return ActionResult(self.securityhub_backend.describe_hub(hub_arn=p.get("HubArn")))

    def get_findings(self) -> ActionResult:
        p = self._params()
        findings, token = self.securityhub_backend.find(
            p.get("Filters"), p.get("SortCriteria"), p.get("MaxResults"), p.get("NextToken")
        )
        result: dict[str, Any] = {"Findings": findings}
        if token:
            result["NextToken"] = token
        return ActionResult(result)

    def list_tags_for_resource(self) -> ActionResult:
        p = self._params()
        return ActionResult({"Tags": self.securityhub_backend.list_tags(
            unquote(p["ResourceArn"]))})

    def tag_resource(self) -> EmptyResult:
        p = self._params()
        self.securityhub_backend.tag(unquote(p["ResourceArn"]), p.get("Tags") or {})
        return EmptyResult()

    def untag_resource(self) -> EmptyResult:
        p = self._params()
        self.securityhub_backend.untag(unquote(p["ResourceArn"]), p.get("TagKeys") or [])
        return EmptyResult()


_dispatch = GdlabSecurityHubResponse.dispatch
URL_MODULE = types.SimpleNamespace(
    url_bases=list(sh_urls.url_bases),
    url_paths={**{path: _dispatch for path in sh_urls.url_paths},
               "{0}/tags/(?P<resource_arn>.+)$": _dispatch,
               **{path: _dispatch for path in TRIAGE_URL_PATHS},
               **{path: _dispatch for path in AGGREGATOR_URL_PATHS},
               **{path: _dispatch for path in ORGANIZATION_URL_PATHS}},
)

securityhub_backends: BackendDict[GdlabSecurityHubBackend] = BackendDict(
    GdlabSecurityHubBackend, "securityhub"
)


def install() -> None:
    """Point every lookup of moto's Security Hub backends at ours. Idempotent."""
    import moto.securityhub as sh_package

    from gdlab.local import patches

    for owner in (sh_models, sh_package, sh_responses):
        patches.patch(owner, "securityhub_backends", securityhub_backends,
                      "Security Hub's backends are gdlab's (ASFF imports, filters, triage)")


def backend(account_id: str, region: str) -> GdlabSecurityHubBackend:
    return securityhub_backends[account_id][region]
