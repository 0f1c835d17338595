"""The detector's findings: storage, repeats, the on_new_finding hooks, listing and
archiving. Mixed into the GuardDuty backend (statistics live in statistics.py)."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

from gdlab.local import clock
from gdlab.local.guardduty.common import BadRequest, detector_arn, iso_to_ms, log, now_iso
from gdlab.local.guardduty.criteria import criterion_of, matches, sort_findings
from gdlab.local.guardduty.samples import SAMPLE_SEVERITY, sample_finding

# AWS seconds between two publications of a finding, per FindingPublishingFrequency.
PUBLISHING_SECONDS = {"FIFTEEN_MINUTES": 15 * 60, "ONE_HOUR": 60 * 60,
                      "SIX_HOURS": 6 * 60 * 60}


def not_after_now(value: str) -> str:
    """An ISO stamp, or now if it is later than now: GuardDuty reports what was seen."""
    stamp = iso_to_ms(value)
    return now_iso() if stamp is None or stamp > time.time() * 1000 else value


class FindingsMixin:
    """Findings of the backend's detectors (self.findings: detector -> id -> finding).

    For publishing updates the backend keeps ``published_at`` ((detector, finding) ->
    time.monotonic() of its last announcement), ``pending_updates`` (repeats not yet
    announced) and ``publish_timer`` / ``publish_timer_at``."""

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
        of what is stored and whether it was new.

        A new finding is announced at once, unless a suppression rule archives it; a
        repeat is announced later, per the detector's FindingPublishingFrequency (see
        ``publish_due``)."""
        if not finding.get("Id"):
            raise ValueError("a finding needs an Id")
        announce = None
        with self.lock:
            store = self._findings(detector_id)
            existing = store.get(finding["Id"])
            if existing is not None:
                self._add_repeat(existing, finding)
                if not existing["Service"].get("Archived"):
                    self.pending_updates.add((detector_id, existing["Id"]))
                result, new = copy.deepcopy(existing), False
            else:
                stored = self._complete(detector_id, copy.deepcopy(finding))
                service = stored["Service"]
                for key in ("EventFirstSeen", "EventLastSeen"):
                    service[key] = not_after_now(service[key])
                # Suppression rules: "The finding types that match this criteria are
                # automatically archived ... the suppressed findings are not sent to any of
                # the AWS services with which you may integrate" (GuardDuty user guide,
                # "Creating suppression rules in GuardDuty").
                if self._suppressed(detector_id, stored):
                    service["Archived"] = True
                else:
                    self.published_at[(detector_id, stored["Id"])] = time.monotonic()
                    announce = stored
                store[stored["Id"]] = stored
                result, new = copy.deepcopy(stored), True
        if announce is not None:
            self._announce(detector_id, copy.deepcopy(announce))
        self.publish_due()
        return result, new

    @staticmethod
    def _add_repeat(existing: dict[str, Any], finding: dict[str, Any]) -> None:
        """GuardDuty's repeat of a finding: Count grows, EventLastSeen and UpdatedAt move
        on. Neither is ever later than now (a flow record may end after it is analyzed)."""
        service = finding.get("Service") or {}
        stored = existing.setdefault("Service", {})
        stored["Count"] = int(stored.get("Count", 1)) + int(service.get("Count", 1))
        stamp = now_iso()
        seen = not_after_now(service.get("EventLastSeen") or stamp)
        stored["EventLastSeen"] = max(seen, stored.get("EventLastSeen") or seen,
                                      key=lambda v: iso_to_ms(v) or 0)
        existing["UpdatedAt"] = not_after_now(finding.get("UpdatedAt") or stamp)

    def _suppressed(self, detector_id: str, finding: dict[str, Any]) -> bool:
        """Whether one of the detector's filters with Action ARCHIVE matches the finding."""
        lookup = getattr(self, "filters_for", None)
        filters = lookup(detector_id) if callable(lookup) else \
            self.get_detector(detector_id).filters.values()
        for rule in filters:
            # filters_for gives GetFilter's views (dicts); moto keeps Filter objects
            if isinstance(rule, dict):
                action, criteria = rule.get("Action"), rule.get("FindingCriteria")
            else:
                action, criteria = rule.action, rule.finding_criteria
            if str(action or "").upper() == "ARCHIVE" and \
                    matches(finding, criterion_of(criteria)):
                return True
        return False

    # --- publishing updates ------------------------------------------------------------
    def publish_due(self) -> int:
        """Announce every pending update whose finding was last published at least one
        FindingPublishingFrequency ago; returns how many went out.

        GuardDuty notifies a new finding within minutes and, "for every finding with a
        unique finding ID, aggregates all subsequent occurrences" over the detector's
        FindingPublishingFrequency into one event: SIX_HOURS unless set, or
        FIFTEEN_MINUTES / ONE_HOUR (GuardDuty user guide, guardduty_findings_cloudwatch,
        "Notifications for subsequent finding occurrences"; CreateDetector: "how
        frequently updated findings are exported"). The local cloud waits that interval through
        ``clock.local_seconds``: 15 AWS minutes are 15 local seconds at the default
        SCALE of 60, and the frequency is read at each pass, so an UpdateDetector applies
        to the next update. The update goes to the same hooks as a new finding, so
        EventBridge rules fire again and Security Hub's copy takes the new Count.

        It runs lazily, on every upsert (each analyzer pass), and from one timer per
        backend armed for the earliest pending update: the lazy pass keeps the order of
        events with the activity, the timer publishes the last update of activity that
        stopped, which AWS would also send."""
        now = time.monotonic()
        due: list[tuple[str, dict[str, Any]]] = []
        next_at: float | None = None
        with self.lock:
            for key in sorted(self.pending_updates):
                detector_id, finding_id = key
                finding = self.findings.get(detector_id, {}).get(finding_id)
                if finding is None or detector_id not in self.detectors or \
                        finding["Service"].get("Archived"):
                    self.pending_updates.discard(key)
                    continue
                at = self.published_at.get(key, 0.0) + self._publishing_period(detector_id)
                if at <= now:
                    self.pending_updates.discard(key)
                    self.published_at[key] = now
                    due.append((detector_id, copy.deepcopy(finding)))
                elif next_at is None or at < next_at:
                    next_at = at
            self._arm(next_at)
        for detector_id, finding in due:
            self._announce(detector_id, finding)
        return len(due)

    def _publishing_period(self, detector_id: str) -> float:
        frequency = getattr(self.detectors[detector_id], "finding_publish_freq", None)
        return clock.local_seconds(PUBLISHING_SECONDS.get(str(frequency),
                                                          PUBLISHING_SECONDS["SIX_HOURS"]))

    def _arm(self, at: float | None) -> None:
        """One timer for the earliest pending update (called under self.lock)."""
        timer = self.publish_timer
        # A timer that is already firing (its time has come) cannot stand for a later one.
        if timer is not None and timer.is_alive() and at is not None and \
                time.monotonic() < self.publish_timer_at <= at:
            return
        if timer is not None:
            timer.cancel()
        self.publish_timer = None
        if at is None:
            return
        timer = threading.Timer(max(0.0, at - time.monotonic()), self.publish_due)
        timer.daemon = True
        self.publish_timer, self.publish_timer_at = timer, at
        timer.start()

    def stop_publishing(self) -> None:
        with self.lock:
            if self.publish_timer is not None:
                self.publish_timer.cancel()
            self.publish_timer = None
            self.pending_updates.clear()

    def _announce(self, detector_id: str, finding: dict[str, Any]) -> None:
        for hook in list(self.on_new_finding):
            try:
                hook(self, detector_id, copy.deepcopy(finding))
            except Exception:  # noqa: BLE001 - a subscriber's failure must not fail the API
                log.exception("on_new_finding hook %r failed", hook)

    def visible_findings(self, detector_id: str) -> list[dict[str, Any]]:
        """Copies of the findings the detector's account sees: its own and, for a GuardDuty
        administrator, every associated member's of the region, each with its AccountId
        (organization.py's member_detectors)."""
        with self.lock:
            found = [copy.deepcopy(f) for f in self._findings(detector_id).values()]
        for peer, peer_detector in self.member_detectors(detector_id):
            with peer.lock:
                found.extend(copy.deepcopy(f)
                             for f in peer.findings.get(peer_detector, {}).values())
        return found

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
        found = [f for f in self.visible_findings(detector_id)
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
        by_id = {f["Id"]: f for f in self.visible_findings(detector_id)}
        found = [by_id[i] for i in finding_ids if i in by_id]
        return sort_findings(found, sort)

    def set_archived(self, detector_id: str, finding_ids: list[str], archived: bool) -> None:
        with self.lock:
            stores = [self._findings(detector_id)]
        for peer, peer_detector in self.member_detectors(detector_id):
            with peer.lock:
                stores.append(peer.findings.get(peer_detector, {}))
        for store in stores:
            for finding_id in finding_ids:
                if finding_id in store:
                    store[finding_id].setdefault("Service", {})["Archived"] = archived

    def create_sample_findings(self, detector_id: str, finding_types: list[str] | None) -> int:
        self.get_detector(detector_id)
        types_ = finding_types or list(SAMPLE_SEVERITY)
        for finding_type in types_:
            self.upsert_finding(detector_id, sample_finding(self, detector_id, finding_type))
        return len(types_)

