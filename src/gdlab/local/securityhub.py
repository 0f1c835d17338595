"""Security Hub for the local cloud: moto's backend made to behave like AWS where the lab
looks — enabling twice is a conflict, a disabled hub refuses work, GetFindings honours its
Filters, imported findings get the fields Security Hub adds, and the hub can be tagged."""

from __future__ import annotations

import copy
import threading
import types
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

from moto.core.base_backend import BackendDict
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult, EmptyResult
from moto.securityhub import models as sh_models
from moto.securityhub import responses as sh_responses
from moto.securityhub import urls as sh_urls
from moto.securityhub.models import Finding, SecurityHubBackend
from moto.securityhub.responses import SecurityHubResponse

REQUIRED = ("SchemaVersion", "Id", "ProductArn", "GeneratorId", "AwsAccountId", "CreatedAt",
            "UpdatedAt", "Title", "Description", "Resources")

# Filter name -> path in an ASFF finding ("[]" flattens a list).
STRING_FIELDS = {
    "Id": "Id", "ProductArn": "ProductArn", "GeneratorId": "GeneratorId",
    "AwsAccountId": "AwsAccountId", "Region": "Region", "Type": "Types[]",
    "Title": "Title", "Description": "Description", "ProductName": "ProductName",
    "CompanyName": "CompanyName", "SeverityLabel": "Severity.Label",
    "RecordState": "RecordState", "WorkflowStatus": "Workflow.Status",
    "WorkflowState": "WorkflowState", "ComplianceStatus": "Compliance.Status",
    "VerificationState": "VerificationState", "ResourceId": "Resources[].Id",
    "ResourceType": "Resources[].Type", "ResourceRegion": "Resources[].Region",
    "ResourcePartition": "Resources[].Partition", "SourceUrl": "SourceUrl",
    "NetworkDirection": "Network.Direction", "ResourceAwsEc2InstanceType":
    "Resources[].Details.AwsEc2Instance.Type", "ResourceAwsEc2InstanceVpcId":
    "Resources[].Details.AwsEc2Instance.VpcId", "ResourceAwsEc2InstanceSubnetId":
    "Resources[].Details.AwsEc2Instance.SubnetId", "ResourceAwsEc2InstanceImageId":
    "Resources[].Details.AwsEc2Instance.ImageId",
}
NUMBER_FIELDS = {"SeverityNormalized": "Severity.Normalized", "SeverityProduct":
                 "Severity.Product", "Confidence": "Confidence", "Criticality": "Criticality"}
DATE_FIELDS = {"CreatedAt": "CreatedAt", "UpdatedAt": "UpdatedAt",
               "FirstObservedAt": "FirstObservedAt", "LastObservedAt": "LastObservedAt"}
MAP_FIELDS = {"ProductFields": "ProductFields", "ResourceTags": "Resources[].Tags",
              "UserDefinedFields": "UserDefinedFields"}


class HubError(ServiceException):
    """A Security Hub error answered with AWS's code and message."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def values_at(finding: dict[str, Any], path: str) -> list[Any]:
    values: list[Any] = [finding]
    for part in path.split("."):
        many = part.endswith("[]")
        key = part[:-2] if many else part
        found: list[Any] = []
        for value in values:
            if isinstance(value, dict) and key in value:
                item = value[key]
                if many and isinstance(item, list):
                    found.extend(item)
                else:
                    found.append(item)
        values = found
    return [v for v in values if v is not None]


def _string_test(comparison: str, actual: str, wanted: str) -> bool:
    if comparison in ("EQUALS", "NOT_EQUALS"):
        return actual == wanted
    if comparison in ("PREFIX", "PREFIX_NOT_EQUALS"):
        return actual.startswith(wanted)
    if comparison in ("CONTAINS", "NOT_CONTAINS"):
        return wanted in actual
    if comparison == "CONTAINS_WORD":
        return wanted in actual.split()
    raise HubError("InvalidInputException", f"Invalid comparison {comparison}")


def _string_filters(actuals: list[str], filters: list[dict[str, Any]]) -> bool:
    """AWS semantics: positive comparisons on one field are ORed, negative ones ANDed."""
    positive = [f for f in filters if not f.get("Comparison", "EQUALS").startswith(
        ("NOT_", "PREFIX_NOT"))]
    negative = [f for f in filters if f not in positive]
    for flt in negative:
        comparison = flt.get("Comparison")
        if any(_string_test(comparison, str(a), str(flt.get("Value"))) for a in actuals):
            return False
    if positive:
        return any(
            _string_test(flt.get("Comparison", "EQUALS"), str(a), str(flt.get("Value")))
            for flt in positive for a in actuals
        )
    return True


def _parse_date(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _date_filter(actuals: list[Any], flt: dict[str, Any]) -> bool:
    start, end = _parse_date(flt.get("Start")), _parse_date(flt.get("End"))
    if flt.get("DateRange"):
        from datetime import timedelta

        end = datetime.now(timezone.utc)
        start = end - timedelta(days=int(flt["DateRange"].get("Value", 0)))
    for actual in actuals:
        stamp = _parse_date(actual)
        if stamp is None:
            continue
        if (start is None or stamp >= start) and (end is None or stamp <= end):
            return True
    return False


def _number_filter(actuals: list[Any], flt: dict[str, Any]) -> bool:
    for actual in actuals:
        try:
            n = float(actual)
        except (TypeError, ValueError):
            continue
        checks = [("Gte", n.__ge__), ("Lte", n.__le__), ("Eq", n.__eq__), ("Gt", n.__gt__),
                  ("Lt", n.__lt__)]
        if all(test(float(flt[k])) for k, test in checks if flt.get(k) is not None):
            return True
    return False


def _map_filter(maps: list[Any], flt: dict[str, Any]) -> bool:
    key, value = flt.get("Key"), str(flt.get("Value", ""))
    comparison = flt.get("Comparison", "EQUALS")
    actuals = [str(m[key]) for m in maps if isinstance(m, dict) and key in m]
    hit = any(_string_test(comparison, a, value) for a in actuals)
    return not hit if comparison.startswith("NOT_") else hit


def matches(finding: dict[str, Any], filters: dict[str, Any] | None) -> bool:
    for name, flts in (filters or {}).items():
        if not flts:
            continue
        if name in STRING_FIELDS:
            actuals = [str(v) for v in values_at(finding, STRING_FIELDS[name])]
            if not _string_filters(actuals, flts):
                return False
        elif name in NUMBER_FIELDS:
            actuals = values_at(finding, NUMBER_FIELDS[name])
            if not all(_number_filter(actuals, f) for f in flts):
                return False
        elif name in DATE_FIELDS:
            actuals = values_at(finding, DATE_FIELDS[name])
            if not all(_date_filter(actuals, f) for f in flts):
                return False
        elif name in MAP_FIELDS:
            maps = values_at(finding, MAP_FIELDS[name])
            if not all(_map_filter(maps, f) for f in flts):
                return False
        else:
            raise HubError("InvalidInputException",
                           f"The local cloud does not filter findings by {name}")
    return True


def product_names(product_arn: str) -> tuple[str, str]:
    """(ProductName, CompanyName) as Security Hub derives them from the product ARN."""
    tail = product_arn.split(":product/", 1)[-1].split("/")
    if len(tail) == 2 and tail[0] == "aws":
        known = {"guardduty": "GuardDuty", "inspector": "Inspector", "macie": "Macie",
                 "securityhub": "Security Hub", "access-analyzer": "IAM Access Analyzer"}
        return known.get(tail[1], tail[1]), "AWS"
    if len(tail) == 2 and tail[1] == "default":
        return "Default", "Personal"
    return (tail[-1], tail[0]) if len(tail) == 2 else (product_arn, "Unknown")


class GdlabSecurityHubBackend(SecurityHubBackend):
    def __init__(self, region_name: str, account_id: str):
        super().__init__(region_name, account_id)
        self.lock = threading.RLock()
        self.tags: dict[str, str] = {}

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
            return {}

    def disable_security_hub(self) -> dict[str, Any]:
        with self.lock:
            self._require_enabled()
            self.enabled = False
            self.enabled_at = None
            self.findings = []
            self.tags = {}
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
        with self.lock:
            found = [copy.deepcopy(f.data) for f in self.findings if matches(f.data, filters)]
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
                record = copy.deepcopy(data)
                product, company = product_names(record["ProductArn"])
                record.setdefault("ProductName", product)
                record.setdefault("CompanyName", company)
                record.setdefault("Region", self.region_name)
                record["ProcessedAt"] = now_iso()
                existing = by_id.get(record["Id"])
                if existing is not None:
                    # Workflow belongs to the customer once set; providers update the rest.
                    for key in ("Workflow", "WorkflowState", "Note", "RecordState"):
                        if key in existing.data and key not in data:
                            record[key] = existing.data[key]
                    existing.data = record
                else:
                    record.setdefault("RecordState", "ACTIVE")
                    record.setdefault("Workflow", {"Status": "NEW"})
                    record.setdefault("WorkflowState", "NEW")
                    finding = Finding(record["Id"], record)
                    self.findings.append(finding)
                    by_id[record["Id"]] = finding
                success += 1
        return len(failed), success, failed


class GdlabSecurityHubResponse(SecurityHubResponse):
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
               "{0}/tags/(?P<resource_arn>.+)$": _dispatch},
)

securityhub_backends: BackendDict[GdlabSecurityHubBackend] = BackendDict(
    GdlabSecurityHubBackend, "securityhub"
)


def install() -> None:
    """Point every lookup of moto's Security Hub backends at ours. Idempotent."""
    import moto.securityhub as sh_package

    sh_models.securityhub_backends = securityhub_backends
    sh_package.securityhub_backends = securityhub_backends
    sh_responses.securityhub_backends = securityhub_backends


def backend(account_id: str, region: str) -> GdlabSecurityHubBackend:
    return securityhub_backends[account_id][region]
