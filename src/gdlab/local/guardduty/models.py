"""moto's GuardDuty backend extended by gdlab: the one-detector-per-region rule, threat
lists and trusted IP lists, findings (see findings.py) and tags."""

from __future__ import annotations

import ipaddress
import threading
import time
from datetime import datetime, timezone
from typing import Any

from moto.core.base_backend import BackendDict
from moto.guardduty.models import Detector, GuardDutyBackend

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
from gdlab.local.guardduty.organization import OrganizationMixin
from gdlab.local.guardduty.statistics import StatisticsMixin
from gdlab.local.guardduty.triage import TriageMixin

# What a new detector runs (CreateDetector, AWS API reference): "All data sources are
# enabled in a new detector by default. When you don't specify any features, with an
# exception to RUNTIME_MONITORING, all the optional features are enabled by default";
# features a request leaves out keep that default. Names are botocore's
# DetectorFeatureResult; EKS_RUNTIME_MONITORING is the older form RUNTIME_MONITORING
# includes (the two cannot both be on), so it starts off too.
FEATURES = ("CLOUD_TRAIL", "DNS_LOGS", "FLOW_LOGS", "S3_DATA_EVENTS", "EKS_AUDIT_LOGS",
            "EBS_MALWARE_PROTECTION", "RDS_LOGIN_EVENTS", "EKS_RUNTIME_MONITORING",
            "LAMBDA_NETWORK_LOGS", "RUNTIME_MONITORING")
OFF_BY_DEFAULT = {"EKS_RUNTIME_MONITORING", "RUNTIME_MONITORING"}
# The agents GuardDuty may manage for runtime monitoring (FeatureAdditionalConfiguration).
ADDITIONAL = {"EKS_RUNTIME_MONITORING": ("EKS_ADDON_MANAGEMENT",),
              "RUNTIME_MONITORING": ("EKS_ADDON_MANAGEMENT", "ECS_FARGATE_AGENT_MANAGEMENT",
                                     "EC2_AGENT_MANAGEMENT")}
# The deprecated DataSources each stand for one feature (wire names, as moto keeps them).
DATA_SOURCE_FEATURES = ((("s3Logs",), "S3_DATA_EVENTS"),
                        (("kubernetes", "auditLogs"), "EKS_AUDIT_LOGS"),
                        (("malwareProtection", "scanEc2InstanceWithFindings", "ebsVolumes"),
                         "EBS_MALWARE_PROTECTION"))


class GdlabDetector(Detector):
    """moto's detector with the data sources and features AWS reports for it: defaults of
    a new detector, then what CreateDetector and UpdateDetector set (DataSources or
    Features, whichever the request gives)."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        stamp = time.time()
        self.feature_state: dict[str, dict[str, Any]] = {
            name: {"status": "DISABLED" if name in OFF_BY_DEFAULT else "ENABLED",
                   "updatedAt": stamp,
                   "additional": {extra: {"status": "DISABLED", "updatedAt": stamp}
                                  for extra in ADDITIONAL.get(name, ())}}
            for name in FEATURES
        }
        self.apply(kwargs.get("datasources"), kwargs.get("features"))

    def apply(self, data_sources: dict[str, Any] | None,
              features: list[dict[str, Any]] | None) -> None:
        stamp = time.time()
        for path, name in DATA_SOURCE_FEATURES:
            node: Any = data_sources or {}
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            if isinstance(node, dict) and node.get("enable") is not None:
                self._set(self.feature_state[name], bool(node["enable"]), stamp)
        for feature in features or []:
            state = self.feature_state.get(str(feature.get("name")))
            if state is None:
                continue
            if feature.get("status"):
                self._set(state, feature["status"] == "ENABLED", stamp)
            for extra in feature.get("additionalConfiguration") or []:
                inner = state["additional"].get(str(extra.get("name")))
                if inner is not None and extra.get("status"):
                    self._set(inner, extra["status"] == "ENABLED", stamp)

    @staticmethod
    def _set(state: dict[str, Any], enabled: bool, stamp: float) -> None:
        state["status"] = "ENABLED" if enabled else "DISABLED"
        state["updatedAt"] = stamp

    def update(self, enable: bool, finding_publishing_frequency: str,
               data_sources: dict[str, Any], features: list[dict[str, Any]]) -> None:
        super().update(enable, finding_publishing_frequency, data_sources, features)
        self.apply(data_sources, features)
        self.updated_at = datetime.now(timezone.utc)

    def status_of(self, name: str) -> str:
        return self.feature_state[name]["status"]

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        body["dataSources"] = {
            "cloudTrail": {"status": self.status_of("CLOUD_TRAIL")},
            "dnsLogs": {"status": self.status_of("DNS_LOGS")},
            "flowLogs": {"status": self.status_of("FLOW_LOGS")},
            "s3Logs": {"status": self.status_of("S3_DATA_EVENTS")},
            "kubernetes": {"auditLogs": {"status": self.status_of("EKS_AUDIT_LOGS")}},
            "malwareProtection": {
                "scanEc2InstanceWithFindings": {
                    "ebsVolumes": {"status": self.status_of("EBS_MALWARE_PROTECTION")}},
                "serviceRole": self.service_role.replace(
                    "guardduty.amazonaws.com/AWSServiceRoleForAmazonGuardDuty",
                    "malware-protection.guardduty.amazonaws.com/"
                    "AWSServiceRoleForAmazonGuardDutyMalwareProtection"),
            },
        }
        features = []
        for name, state in self.feature_state.items():
            feature: dict[str, Any] = {"name": name, "status": state["status"],
                                       "updatedAt": round(state["updatedAt"], 3)}
            if state["additional"]:
                feature["additionalConfiguration"] = [
                    {"name": extra, "status": inner["status"],
                     "updatedAt": round(inner["updatedAt"], 3)}
                    for extra, inner in state["additional"].items()]
            features.append(feature)
        body["features"] = features
        return body


class GdlabGuardDutyBackend(FindingsMixin, StatisticsMixin, TriageMixin, OrganizationMixin,
                            AccountMixin, GuardDutyBackend):
    """moto's GuardDuty plus what the lab uses. One instance per account and region."""

    on_new_finding = on_new_finding

    def __init__(self, region_name: str, account_id: str):
        super().__init__(region_name, account_id)
        self.lock = threading.RLock()
        self.sets: dict[str, dict[str, IntelSet]] = {}  # detector id -> set id -> set
        self.findings: dict[str, dict[str, dict[str, Any]]] = {}  # detector -> id -> finding
        self.published_at: dict[tuple[str, str], float] = {}  # see FindingsMixin
        self.pending_updates: set[tuple[str, str]] = set()
        self.publish_timer: threading.Timer | None = None
        self.publish_timer_at = 0.0
        self._org_state()

    def reset(self) -> None:
        self.stop_publishing()  # no update of forgotten findings goes out later
        super().reset()

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
            # moto's own create_detector, with gdlab's detector (moto's fallback frequency).
            if finding_publishing_frequency not in ("FIFTEEN_MINUTES", "ONE_HOUR",
                                                    "SIX_HOURS"):
                finding_publishing_frequency = "SIX_HOURS"
            detector = GdlabDetector(
                account_id=self.account_id, region_name=self.region_name,
                created_at=datetime.now(timezone.utc),
                finding_publish_freq=finding_publishing_frequency, enabled=enable,
                datasources=data_sources, tags=tags, features=features,
            )
            self.detectors[detector.id] = detector
            detector_id = detector.id
            self.sets[detector_id] = {}
            self.findings[detector_id] = {}
            return detector_id

    def update_detector(self, detector_id: str, enable: bool,
                        finding_publishing_frequency: str, data_sources: dict[str, Any],
                        features: list[dict[str, Any]]) -> None:
        with self.lock:
            super().update_detector(detector_id, enable, finding_publishing_frequency,
                                    data_sources, features)
        self.publish_due()  # a new FindingPublishingFrequency moves the pending updates

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
        self.refuse_if_member(kind, "create")
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
        self.refuse_if_member(kind, "update")
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
        self.refuse_if_member(kind, "delete")
        with self.lock:
            self.get_set(kind, detector_id, set_id)
            self._sets(detector_id).pop(set_id, None)

    def set_status(self, intel: IntelSet) -> str:
        return intel.status(self.account_id, self.partition)

    # --- what the analyzer reads --------------------------------------------------------
    # A member's lists are its own plus its administrator's of the region (organization.py).
    def threat_entries(
        self, detector_id: str
    ) -> list[tuple[ipaddress.IPv4Network, str, str]]:
        entries = []
        with self.lock:
            for intel in self.list_sets("threatintelset", detector_id):
                if self.set_status(intel) == "ACTIVE":
                    entries.extend((net, intel.id, intel.name) for net in intel.entries)
        for admin, intel in self.administrator_sets("threatintelset"):
            with admin.lock:
                if admin.set_status(intel) == "ACTIVE":
                    entries.extend((net, intel.id, intel.name) for net in intel.entries)
        return entries

    def trusted_entries(self, detector_id: str) -> list[ipaddress.IPv4Network]:
        entries: list[ipaddress.IPv4Network] = []
        with self.lock:
            for intel in self.list_sets("ipset", detector_id):
                if self.set_status(intel) == "ACTIVE":
                    entries.extend(intel.entries)
        for admin, intel in self.administrator_sets("ipset"):
            with admin.lock:
                if admin.set_status(intel) == "ACTIVE":
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
