"""The detector's findings: storage, repeats, the on_new_finding hooks, listing and
archiving. Mixed into the GuardDuty backend (statistics live in statistics.py)."""

from __future__ import annotations

import copy
from typing import Any

from gdlab.local.guardduty.common import BadRequest, detector_arn, log, now_iso
from gdlab.local.guardduty.criteria import matches, sort_findings
from gdlab.local.guardduty.samples import SAMPLE_SEVERITY, sample_finding


class FindingsMixin:
    """Findings of the backend's detectors (self.findings: detector -> id -> finding)."""

    # --- findings ---------------------------------------------------------------------
    def _complete(self, detector_id: str, finding: dict[str, Any]) -> dict[str, Any]:
        stamp = now_iso()
        finding.setdefault("AccountId", self.account_id)
        finding.setdefault("Region", self.region_name)
        finding.setdefault("Partition", self.partition)
        finding.setdefault("SchemaVersion", "2.0")
        finding.setdefault(
            "Arn", f"{detector_arn(self, detector_id)}/finding/{finding['Id']}"
        )
        finding.setdefault("CreatedAt", stamp)
        finding.setdefault("UpdatedAt", finding["CreatedAt"])
        finding.setdefault("Severity", 5.0)
        finding.setdefault("Resource", {})
        service = finding.setdefault("Service", {})
        service.setdefault("ServiceName", "guardduty")
        service.setdefault("DetectorId", detector_id)
        service.setdefault("Archived", False)
        service.setdefault("Count", 1)
        service.setdefault("EventFirstSeen", finding["CreatedAt"])
        service.setdefault("EventLastSeen", finding["UpdatedAt"])
        return finding

    def upsert_finding(self, detector_id: str, finding: dict[str, Any]) -> tuple[dict, bool]:
        """Store a new finding, or add the repeat's Count to the stored one. Returns a copy
        of what is stored and whether it was new; hooks run for new findings only."""
        if not finding.get("Id"):
            raise ValueError("a finding needs an Id")
        with self.lock:
            store = self._findings(detector_id)
            existing = store.get(finding["Id"])
            if existing is not None:
                service = finding.get("Service") or {}
                stored_service = existing.setdefault("Service", {})
                stored_service["Count"] = int(stored_service.get("Count", 1)) + int(
                    service.get("Count", 1)
                )
                stamp = now_iso()
                stored_service["EventLastSeen"] = service.get("EventLastSeen") or stamp
                existing["UpdatedAt"] = finding.get("UpdatedAt") or stamp
                return copy.deepcopy(existing), False
            stored = self._complete(detector_id, copy.deepcopy(finding))
            store[stored["Id"]] = stored
            result = copy.deepcopy(stored)
        self._announce(detector_id, result)
        return copy.deepcopy(result), True

    def _announce(self, detector_id: str, finding: dict[str, Any]) -> None:
        for hook in list(self.on_new_finding):
            try:
                hook(self, detector_id, copy.deepcopy(finding))
            except Exception:  # noqa: BLE001 - a subscriber's failure must not fail the API
                log.exception("on_new_finding hook %r failed", hook)

    def findings_for(self, detector_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(f) for f in self._findings(detector_id).values()]

    def finding_count(self) -> int:
        with self.lock:
            return sum(len(store) for store in self.findings.values())

    def list_findings(self, detector_id: str, criteria: dict[str, Any] | None,
                      sort: dict[str, Any] | None, max_results: int | None,
                      next_token: str | None) -> tuple[list[str], str]:
        max_results = 50 if max_results is None else int(max_results)
        if not 1 <= max_results <= 50:
            raise BadRequest("The request is rejected because maxResults must be between "
                             "1 and 50.")
        try:
            start = int(next_token) if next_token else 0
        except ValueError:
            raise BadRequest("The request is rejected because the nextToken is invalid.") from None
        with self.lock:
            found = [f for f in self._findings(detector_id).values()
                     if matches(f, (criteria or {}).get("Criterion") or {})]
            ids = [f["Id"] for f in sort_findings(found, sort)]
        page = ids[start:start + max_results]
        token = str(start + max_results) if start + max_results < len(ids) else ""
        return page, token

    def get_findings(self, detector_id: str, finding_ids: list[str],
                     sort: dict[str, Any] | None) -> list[dict[str, Any]]:
        if len(finding_ids) > 50:
            raise BadRequest("The request is rejected because findingIds has more than 50 "
                             "items.")
        with self.lock:
            store = self._findings(detector_id)
            found = [copy.deepcopy(store[i]) for i in finding_ids if i in store]
        return sort_findings(found, sort)

    def set_archived(self, detector_id: str, finding_ids: list[str], archived: bool) -> None:
        with self.lock:
            store = self._findings(detector_id)
            for finding_id in finding_ids:
                if finding_id in store:
                    store[finding_id].setdefault("Service", {})["Archived"] = archived

    def create_sample_findings(self, detector_id: str, finding_types: list[str] | None) -> int:
        self.get_detector(detector_id)
        types_ = finding_types or list(SAMPLE_SEVERITY)
        for finding_type in types_:
            self.upsert_finding(detector_id, sample_finding(self, detector_id, finding_type))
        return len(types_)

