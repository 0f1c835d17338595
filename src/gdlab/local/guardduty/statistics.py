"""GetFindingsStatistics over the detector's findings. Mixed into the GuardDuty backend.

Follows https://docs.aws.amazon.com/guardduty/latest/APIReference/API_GetFindingsStatistics.html:
either findingStatisticTypes (COUNT_BY_SEVERITY) or groupBy, never both; orderBy (default
DESC, by TotalFindings) and maxResults (1-100, default 25) only with groupBy."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from gdlab.local.guardduty.common import BadRequest, iso_to_ms
from gdlab.local.guardduty.criteria import matches

DEFAULT_GROUPED_RESULTS = 25
MAX_GROUPED_RESULTS = 100

# Resource.ResourceType -> (details member, id member) naming the resource a finding is about.
_RESOURCE_IDS: dict[str, tuple[str, str]] = {
    "Instance": ("InstanceDetails", "InstanceId"),
    "AccessKey": ("AccessKeyDetails", "AccessKeyId"),
    "EKSCluster": ("EksClusterDetails", "Name"),
    "KubernetesCluster": ("EksClusterDetails", "Name"),
    "ECSCluster": ("EcsClusterDetails", "Name"),
    "Container": ("ContainerDetails", "Id"),
    "Lambda": ("LambdaDetails", "FunctionArn"),
    "RDSDBInstance": ("RdsDbInstanceDetails", "DbInstanceIdentifier"),
}


def _stamp(finding: dict[str, Any]) -> float:
    return iso_to_ms(finding.get("UpdatedAt")) or 0.0


def _last(items: list[dict[str, Any]]) -> datetime:
    return datetime.fromtimestamp(max(_stamp(f) for f in items) / 1000, tz=timezone.utc)


def _day(finding: dict[str, Any]) -> datetime:
    moment = datetime.fromtimestamp(_stamp(finding) / 1000, tz=timezone.utc)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _resource(finding: dict[str, Any]) -> tuple[str, str]:
    resource = finding.get("Resource") or {}
    kind = resource.get("ResourceType") or ""
    details_key, id_key = _RESOURCE_IDS.get(kind, ("", ""))
    if kind == "S3Bucket":  # a list of buckets; the first is the one acted on
        bucket = (resource.get("S3BucketDetails") or [{}])[0]
        return kind, str(bucket.get("Arn") or bucket.get("Name") or "")
    details = resource.get(details_key) or {}
    return kind, str(details.get(id_key) or "")


def _rows(found: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any],
          describe: Callable[[Any], dict[str, Any]]) -> list[dict[str, Any]]:
    buckets: dict[Any, list[dict[str, Any]]] = {}
    for finding in found:
        buckets.setdefault(key(finding), []).append(finding)
    rows = []
    for bucket_key, items in buckets.items():
        row = {k: v for k, v in describe(bucket_key).items() if v not in (None, "")}
        row.update(TotalFindings=len(items), LastGeneratedAt=_last(items))
        rows.append(row)
    return rows


def _grouped_rows(found: list[dict[str, Any]], group_by: str,
                  account_id: str) -> tuple[str, list[dict[str, Any]]]:
    if group_by == "SEVERITY":
        return "GroupedBySeverity", _rows(found, lambda f: float(f.get("Severity", 0)),
                                          lambda k: {"Severity": k})
    if group_by == "FINDING_TYPE":
        return "GroupedByFindingType", _rows(found, lambda f: f.get("Type", ""),
                                             lambda k: {"FindingType": k})
    if group_by == "ACCOUNT":
        return "GroupedByAccount", _rows(found, lambda f: f.get("AccountId") or account_id,
                                         lambda k: {"AccountId": k})
    if group_by == "RESOURCE":
        return "GroupedByResource", _rows(
            found, lambda f: (f.get("AccountId") or account_id, *_resource(f)),
            lambda k: {"AccountId": k[0], "ResourceType": k[1], "ResourceId": k[2]})
    if group_by == "DATE":
        # DateStatistics counts "the findings generated per severity level on each date"
        # (API_DateStatistics), so a row is one (day, severity) pair.
        return "GroupedByDate", _rows(
            found, lambda f: (_day(f), float(f.get("Severity", 0))),
            lambda k: {"Date": k[0], "Severity": k[1]})
    raise BadRequest(f"The request is rejected because the groupBy value {group_by} is "
                     "invalid. Valid values: ACCOUNT, DATE, FINDING_TYPE, RESOURCE, SEVERITY.")


class StatisticsMixin:
    """Finding statistics of the backend's detectors (reads self.visible_findings)."""

    def findings_statistics(self, detector_id: str, types_: list[str] | None,
                            criteria: dict[str, Any] | None, group_by: str | None,
                            order_by: str | None, max_results: int | None) -> dict[str, Any]:
        if bool(types_) == bool(group_by):
            raise BadRequest("The request is rejected because you must provide either "
                             "findingStatisticTypes or groupBy, and not both.")
        if not group_by and (order_by is not None or max_results is not None):
            raise BadRequest("The request is rejected because maxResults and orderBy can "
                             "only be used with groupBy.")
        found = [f for f in self.visible_findings(detector_id)
                 if matches(f, (criteria or {}).get("Criterion") or {})]
        if types_:
            unknown = [t for t in types_ if t != "COUNT_BY_SEVERITY"]
            if unknown:
                raise BadRequest(f"The request is rejected because the finding statistic "
                                 f"type {unknown[0]} is invalid.")
            counts: dict[str, int] = {}
            for finding in found:
                key = str(float(finding.get("Severity", 0)))
                counts[key] = counts.get(key, 0) + 1
            return {"CountBySeverity": counts}
        return self._grouped(found, str(group_by), order_by, max_results)

    def _grouped(self, found: list[dict[str, Any]], group_by: str, order_by: str | None,
                 max_results: int | None) -> dict[str, Any]:
        order = order_by or "DESC"
        if order not in ("ASC", "DESC"):
            raise BadRequest(f"The request is rejected because the orderBy value {order} is "
                             "invalid. Valid values: ASC, DESC.")
        limit = DEFAULT_GROUPED_RESULTS if max_results is None else int(max_results)
        if not 1 <= limit <= MAX_GROUPED_RESULTS:
            raise BadRequest("The request is rejected because maxResults must be between 1 "
                             f"and {MAX_GROUPED_RESULTS}.")
        name, rows = _grouped_rows(found, group_by, self.account_id)
        # Ties keep a stable order: the newest group first, so a page is deterministic.
        rows.sort(key=lambda r: r["LastGeneratedAt"], reverse=True)
        rows.sort(key=lambda r: r["TotalFindings"], reverse=order == "DESC")
        return {name: rows[:limit]}
