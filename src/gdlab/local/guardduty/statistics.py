"""GetFindingsStatistics over the detector's findings. Mixed into the GuardDuty backend."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from gdlab.local.guardduty.common import BadRequest, iso_to_ms
from gdlab.local.guardduty.criteria import matches


class StatisticsMixin:
    """Finding statistics of the backend's detectors (reads self._findings)."""

    def findings_statistics(self, detector_id: str, types_: list[str] | None,
                            criteria: dict[str, Any] | None, group_by: str | None,
                            order_by: str | None, max_results: int | None) -> dict[str, Any]:
        with self.lock:
            found = [f for f in self._findings(detector_id).values()
                     if matches(f, (criteria or {}).get("Criterion") or {})]
        stats: dict[str, Any] = {}
        if types_:
            unknown = [t for t in types_ if t != "COUNT_BY_SEVERITY"]
            if unknown:
                raise BadRequest(f"The request is rejected because the finding statistic "
                                 f"type {unknown[0]} is invalid.")
            counts: dict[str, int] = {}
            for finding in found:
                key = str(float(finding.get("Severity", 0)))
                counts[key] = counts.get(key, 0) + 1
            stats["CountBySeverity"] = counts
        if group_by:
            stats.update(self._grouped(found, group_by, order_by, max_results))
        if not types_ and not group_by:
            raise BadRequest("The request is rejected because either findingStatisticTypes "
                             "or groupBy must be given.")
        return stats

    @staticmethod
    def _grouped(found: list[dict[str, Any]], group_by: str, order_by: str | None,
                 max_results: int | None) -> dict[str, Any]:
        def last(items: list[dict[str, Any]]) -> datetime:
            stamp = max(iso_to_ms(f.get("UpdatedAt")) or 0 for f in items)
            return datetime.fromtimestamp(stamp / 1000, tz=timezone.utc)

        buckets: dict[Any, list[dict[str, Any]]] = {}
        if group_by == "SEVERITY":
            for f in found:
                buckets.setdefault(float(f.get("Severity", 0)), []).append(f)
            rows = [{"Severity": k, "TotalFindings": len(v), "LastGeneratedAt": last(v)}
                    for k, v in buckets.items()]
            name = "GroupedBySeverity"
        elif group_by == "FINDING_TYPE":
            for f in found:
                buckets.setdefault(f.get("Type", ""), []).append(f)
            rows = [{"FindingType": k, "TotalFindings": len(v), "LastGeneratedAt": last(v)}
                    for k, v in buckets.items()]
            name = "GroupedByFindingType"
        else:
            raise BadRequest(f"The request is rejected because the local cloud does not "
                             f"group finding statistics by {group_by}.")
        rows.sort(key=lambda r: r["TotalFindings"], reverse=(order_by or "DESC") == "DESC")
        return {name: rows[: max_results or 100]}
