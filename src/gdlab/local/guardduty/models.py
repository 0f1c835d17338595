"""moto's GuardDuty backend extended by gdlab: the one-detector-per-region rule, threat
lists and trusted IP lists, findings (see findings.py) and tags."""

from __future__ import annotations

import ipaddress
import threading
from typing import Any

from moto.core.base_backend import BackendDict
from moto.guardduty.models import GuardDutyBackend

from gdlab.local.guardduty.account import AccountMixin
from gdlab.local.guardduty.common import (
    FORMATS,
    MAX_IP_SETS,
    MAX_THREAT_INTEL_SETS,
    BadRequest,
    on_new_finding,
)
from gdlab.local.guardduty.findings import FindingsMixin
from gdlab.local.guardduty.intel import IntelSet, parse_location
from gdlab.local.guardduty.statistics import StatisticsMixin
from gdlab.local.guardduty.triage import TriageMixin


class GdlabGuardDutyBackend(FindingsMixin, StatisticsMixin, TriageMixin, AccountMixin,
                            GuardDutyBackend):
    """moto's GuardDuty plus what the lab uses. One instance per account and region."""

    on_new_finding = on_new_finding

    def __init__(self, region_name: str, account_id: str):
        super().__init__(region_name, account_id)
        self.lock = threading.RLock()
        self.sets: dict[str, dict[str, IntelSet]] = {}  # detector id -> set id -> set
        self.findings: dict[str, dict[str, dict[str, Any]]] = {}  # detector -> id -> finding

    # moto builds its routes from the backend's url module; ours adds the new paths.
    @property
    def _url_module(self) -> Any:
        from gdlab.local.guardduty.urls import URL_MODULE  # urls imports this module

        return URL_MODULE

    # --- detectors -------------------------------------------------------------------
    def create_detector(self, enable: bool, finding_publishing_frequency: str,
                        data_sources: dict[str, Any], tags: dict[str, str],
                        features: list[dict[str, Any]]) -> str:
        with self.lock:
            if self.detectors:
                raise BadRequest("The request is rejected because a detector already exists "
                                 "for the current account.")
            detector_id = super().create_detector(
                enable, finding_publishing_frequency, data_sources, tags, features
            )
            self.sets[detector_id] = {}
            self.findings[detector_id] = {}
            return detector_id

    def delete_detector(self, detector_id: str) -> None:
        with self.lock:
            self.get_detector(detector_id)
            super().delete_detector(detector_id)
            self.sets.pop(detector_id, None)
            self.findings.pop(detector_id, None)

    def _sets(self, detector_id: str) -> dict[str, IntelSet]:
        self.get_detector(detector_id)
        return self.sets.setdefault(detector_id, {})

    def _findings(self, detector_id: str) -> dict[str, dict[str, Any]]:
        self.get_detector(detector_id)
        return self.findings.setdefault(detector_id, {})

    # --- threat intel sets and IP sets -------------------------------------------------
    def create_set(self, kind: str, detector_id: str, name: str, fmt: str, location: str,
                   activate: bool, tags: dict[str, str] | None) -> IntelSet:
        with self.lock:
            sets = self._sets(detector_id)
            if fmt not in FORMATS:
                raise BadRequest(f"The request is rejected because the format {fmt} is "
                                 f"invalid. Valid values: {', '.join(FORMATS)}.")
            if not name or not location:
                raise BadRequest("The request is rejected because a required parameter "
                                 "(name or location) is missing.")
            try:
                parse_location(location)
            except ValueError:
                raise BadRequest(f"The request is rejected because the location {location} "
                                 "is not a valid S3 object URL.") from None
            same = [s for s in sets.values() if s.kind == kind]
            limit = MAX_THREAT_INTEL_SETS if kind == "threatintelset" else MAX_IP_SETS
            label = "ThreatIntelSets" if kind == "threatintelset" else "IPSets"
            if len(same) >= limit:
                raise BadRequest(f"The request is rejected because the number of {label} "
                                 f"for the detector exceeds the limit of {limit}.")
            if any(s.name == name for s in same):
                raise BadRequest(f"The request is rejected because a {label[:-1]} named "
                                 f"{name} already exists.")
            intel = IntelSet(kind, detector_id, name, fmt, location, bool(activate), tags)
            sets[intel.id] = intel
            return intel

    def get_set(self, kind: str, detector_id: str, set_id: str) -> IntelSet:
        intel = self._sets(detector_id).get(set_id)
        if intel is None or intel.kind != kind:
            label = "ThreatIntelSet" if kind == "threatintelset" else "IPSet"
            raise BadRequest(f"The request is rejected because the input {label} id "
                             f"{set_id} does not exist.")
        return intel

    def list_sets(self, kind: str, detector_id: str) -> list[IntelSet]:
        return [s for s in self._sets(detector_id).values() if s.kind == kind]

    def update_set(self, kind: str, detector_id: str, set_id: str, name: str | None,
                   location: str | None, activate: bool | None) -> None:
        with self.lock:
            intel = self.get_set(kind, detector_id, set_id)
            if name:
                intel.name = name
            reload = False
            if location and location != intel.location:
                try:
                    parse_location(location)
                except ValueError:
                    raise BadRequest(f"The request is rejected because the location "
                                     f"{location} is not a valid S3 object URL.") from None
                intel.location = location
                reload = True
            if activate is not None:
                intel.set_active(bool(activate))
            elif reload and intel.activated_at is not None:
                intel.set_active(True)  # a new file is read through a fresh activation

    def delete_set(self, kind: str, detector_id: str, set_id: str) -> None:
        with self.lock:
            self.get_set(kind, detector_id, set_id)
            self._sets(detector_id).pop(set_id, None)

    def set_status(self, intel: IntelSet) -> str:
        return intel.status(self.account_id, self.partition)

    # --- what the analyzer reads --------------------------------------------------------
    def threat_entries(
        self, detector_id: str
    ) -> list[tuple[ipaddress.IPv4Network, str, str]]:
        with self.lock:
            entries = []
            for intel in self.list_sets("threatintelset", detector_id):
                if self.set_status(intel) == "ACTIVE":
                    entries.extend((net, intel.id, intel.name) for net in intel.entries)
            return entries

    def trusted_entries(self, detector_id: str) -> list[ipaddress.IPv4Network]:
        with self.lock:
            entries: list[ipaddress.IPv4Network] = []
            for intel in self.list_sets("ipset", detector_id):
                if self.set_status(intel) == "ACTIVE":
                    entries.extend(intel.entries)
            return entries

    # --- tags -------------------------------------------------------------------------
    def _tagged(self, arn: str) -> dict[str, str]:
        prefix = f"arn:{self.partition}:guardduty:{self.region_name}:{self.account_id}:detector/"
        if not arn.startswith(prefix):
            raise BadRequest(f"The request is rejected because the resource {arn} is not "
                             "owned by the current account or does not exist.")
        parts = arn[len(prefix):].split("/")
        detector = self.get_detector(parts[0])
        if len(parts) == 1:
            return detector.tags
        if len(parts) == 3 and parts[1] in ("threatintelset", "ipset"):
            return self.get_set(parts[1], parts[0], parts[2]).tags
        raise BadRequest(f"The request is rejected because the resource {arn} cannot be "
                         "tagged.")

    def tag_resource(self, arn: str, tags: dict[str, str]) -> None:
        with self.lock:
            self._tagged(arn).update(tags or {})

    def untag_resource(self, arn: str, keys: list[str]) -> None:
        with self.lock:
            tags = self._tagged(arn)
            for key in keys or []:
                tags.pop(key, None)

    def list_tags_for_resource(self, arn: str) -> dict[str, str]:
        with self.lock:
            return dict(self._tagged(arn))



guardduty_backends: BackendDict[GdlabGuardDutyBackend] = BackendDict(
    GdlabGuardDutyBackend, "guardduty"
)



def backend(account_id: str, region: str) -> GdlabGuardDutyBackend:
    return guardduty_backends[account_id][region]


def all_backends() -> list[GdlabGuardDutyBackend]:
    return [b for _, _, b in guardduty_backends.iter_backends()]  # type: ignore[misc]
