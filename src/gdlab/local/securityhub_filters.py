"""Security Hub's finding filters (AwsSecurityFindingFilters) evaluated as AWS does, and the
error type every local Security Hub operation raises."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from moto.core.exceptions import ServiceException

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


def parse_date(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _date_filter(actuals: list[Any], flt: dict[str, Any]) -> bool:
    start, end = parse_date(flt.get("Start")), parse_date(flt.get("End"))
    if flt.get("DateRange"):
        from datetime import timedelta

        end = datetime.now(timezone.utc)
        start = end - timedelta(days=int(flt["DateRange"].get("Value", 0)))
    for actual in actuals:
        stamp = parse_date(actual)
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
