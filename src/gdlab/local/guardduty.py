"""GuardDuty for the local cloud: moto's backend plus threat lists, trusted IP lists, findings,
sample findings and the one-detector-per-region rule.

Requests are parsed and answers serialized with botocore's own GuardDuty model (through moto's
parser and serializer), so the wire shapes are AWS's. Findings are stored in GetFindings'
PascalCase shape; the analyzer feeds them in with `upsert_finding`."""

from __future__ import annotations

import copy
import ipaddress
import logging
import os
import re
import threading
import time
import types
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote, urlparse

from moto.core.base_backend import BackendDict
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult, EmptyResult
from moto.guardduty import models as gd_models
from moto.guardduty import responses as gd_responses
from moto.guardduty import urls as gd_urls
from moto.guardduty.models import GuardDutyBackend
from moto.guardduty.responses import GuardDutyResponse

log = logging.getLogger("gdlab.local.guardduty")

MAX_THREAT_INTEL_SETS = 6
MAX_IP_SETS = 1  # AWS allows one trusted IP list per account and region
FORMATS = ("TXT", "STIX", "OTX_CSV", "ALIEN_VAULT", "PROOF_POINT", "FIRE_EYE")
DEFAULT_ACTIVATION_SECONDS = 0.3
SAMPLE_INSTANCE = "i-99999999"

# Called as hook(backend, detector_id, finding) for every new finding (samples included),
# never for an update of an existing one. Other parts of the local cloud append here.
on_new_finding: list[Callable[[Any, str, dict[str, Any]], None]] = []


class BadRequest(ServiceException):
    code = "BadRequestException"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_to_ms(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000
    except ValueError:
        return None


def activation_delay() -> float:
    try:
        return max(0.0, float(os.environ.get("GDLAB_LOCAL_ACTIVATION_SECONDS", "")))
    except ValueError:
        return DEFAULT_ACTIVATION_SECONDS


def parse_location(location: str) -> tuple[str, str]:
    """(bucket, key) of an S3 location in any of the forms GuardDuty accepts."""
    if location.startswith("s3://"):
        bucket, _, key = location[5:].partition("/")
        if bucket and key:
            return bucket, key
        raise ValueError(f"no object key in {location}")
    url = urlparse(location)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise ValueError(f"not an S3 location: {location}")
    host = url.hostname or ""
    path = unquote(url.path.lstrip("/"))
    # Virtual-hosted style: bucket.s3.amazonaws.com, bucket.s3.<region>.amazonaws.com,
    # bucket.s3-<region>.amazonaws.com
    match = re.match(r"^(?P<bucket>.+)\.s3[.-]([a-z0-9-]+\.)?amazonaws\.com$", host)
    if match and path:
        return match.group("bucket"), path
    # Path style on any other host: s3.amazonaws.com, s3.<region>.amazonaws.com, the local
    # cloud's own endpoint.
    bucket, _, key = path.partition("/")
    if bucket and key:
        return bucket, key
    raise ValueError(f"no bucket and key in {location}")


def parse_txt_list(text: str) -> list[ipaddress.IPv4Network]:
    """One IPv4 address or CIDR per line; '#' comments and blank lines are skipped."""
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            network = ipaddress.ip_network(line, strict=False)
        except ValueError:
            raise ValueError(f"line {number}: '{line}' is not an IPv4 address or CIDR") from None
        if not isinstance(network, ipaddress.IPv4Network):
            raise ValueError(f"line {number}: '{line}' is IPv6, which GuardDuty lists ignore")
        entries.append(network)
    return entries


class IntelSet:
    """A ThreatIntelSet or an IPSet. Status is computed from timestamps on each read."""

    def __init__(self, kind: str, detector_id: str, name: str, fmt: str, location: str,
                 activate: bool, tags: dict[str, str] | None):
        self.kind = kind  # "threatintelset" or "ipset"
        self.id = uuid.uuid4().hex
        self.detector_id = detector_id
        self.name = name
        self.format = fmt
        self.location = location
        self.tags = dict(tags or {})
        self.activated_at: float | None = None
        self.delay = 0.0
        self.error: str | None = None  # why the list is in ERROR (GetThreatIntelSet has no field)
        self.entries: list[ipaddress.IPv4Network] = []
        self._loaded = False
        self.set_active(activate)

    def set_active(self, activate: bool) -> None:
        self.activated_at = time.monotonic() if activate else None
        self.delay = activation_delay()
        self._loaded = False
        self.error = None
        self.entries = []

    def status(self, account_id: str, partition: str) -> str:
        if self.activated_at is None:
            return "INACTIVE"
        if time.monotonic() < self.activated_at + self.delay:
            return "ACTIVATING"
        if not self._loaded:
            self._load(account_id, partition)
        return "ERROR" if self.error else "ACTIVE"

    def _load(self, account_id: str, partition: str) -> None:
        self._loaded = True
        try:
            if self.format != "TXT":
                raise ValueError(f"the local cloud reads only TXT lists, not {self.format}")
            bucket, key = parse_location(self.location)
            from moto.s3.models import s3_backends

            s3 = s3_backends[account_id][partition]
            if bucket not in s3.buckets:
                raise ValueError(f"bucket {bucket} does not exist")
            obj = s3.get_object(bucket, key)
            if obj is None:
                raise ValueError(f"object s3://{bucket}/{key} does not exist")
            self.entries = parse_txt_list(obj.value.decode("utf-8", errors="replace"))
        except ValueError as exc:
            self.error = str(exc)
            self.entries = []
            log.info("%s %s is in ERROR: %s", self.kind, self.id, self.error)


def _detector_arn(backend: Any, detector_id: str) -> str:
    return f"arn:{backend.partition}:guardduty:{backend.region_name}:{backend.account_id}" \
           f":detector/{detector_id}"


def _get_path(finding: dict[str, Any], path: str) -> list[Any]:
    """Values at a FindingCriteria path ('resource.instanceDetails.instanceId') of a
    PascalCase finding; lists on the way are flattened."""
    values: list[Any] = [finding]
    for part in path.split("."):
        key = part[:1].upper() + part[1:]
        found: list[Any] = []
        for value in values:
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, dict) and key in item:
                    found.append(item[key])
        values = found
    flat: list[Any] = []
    for value in values:
        flat.extend(value if isinstance(value, list) else [value])
    return flat


TIME_FIELDS = {"updatedAt", "createdAt", "service.eventFirstSeen", "service.eventLastSeen"}


def _as_number(field: str, value: Any) -> float | None:
    if field in TIME_FIELDS:
        return iso_to_ms(value)
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _equal(field: str, actual: Any, wanted: str) -> bool:
    if _text(actual).lower() == str(wanted).lower() and isinstance(actual, bool):
        return True
    if _text(actual) == str(wanted):
        return True
    a, w = _as_number(field, actual), _as_number(field, wanted)
    return a is not None and w is not None and a == w


COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    "Gt": float.__gt__, "GreaterThan": float.__gt__,
    "Gte": float.__ge__, "GreaterThanOrEqual": float.__ge__,
    "Lt": float.__lt__, "LessThan": float.__lt__,
    "Lte": float.__le__, "LessThanOrEqual": float.__le__,
}


def _matches(finding: dict[str, Any], criteria: dict[str, Any]) -> bool:
    for field, condition in (criteria or {}).items():
        values = _get_path(finding, field)
        for op, operand in (condition or {}).items():
            if operand is None:
                continue
            if op in ("Eq", "Equals"):
                if not any(_equal(field, v, w) for v in values for w in operand):
                    return False
            elif op in ("Neq", "NotEquals"):
                if any(_equal(field, v, w) for v in values for w in operand):
                    return False
            elif op in ("Matches", "NotMatches"):
                hit = any(_wildcard(w, _text(v)) for v in values for w in operand)
                if hit != (op == "Matches"):
                    return False
            else:
                numbers = [n for n in (_as_number(field, v) for v in values) if n is not None]
                test = COMPARATORS.get(op)
                if test is None:
                    raise BadRequest(f"The request is rejected because the condition {op} is "
                                     "not supported by the local cloud.")
                if not any(test(n, float(operand)) for n in numbers):
                    return False
    return True


def _wildcard(pattern: str, value: str) -> bool:
    regex = "^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$"
    return re.match(regex, value) is not None


def _sort(findings: list[dict[str, Any]], sort: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not sort or not sort.get("AttributeName"):
        return findings
    field = sort["AttributeName"]
    reverse = str(sort.get("OrderBy", "ASC")).upper() == "DESC"

    def key(finding: dict[str, Any]) -> tuple[int, Any]:
        values = _get_path(finding, field)
        if not values:
            return (1, "")
        number = _as_number(field, values[0])
        return (0, number) if number is not None else (0, _text(values[0]))

    try:
        return sorted(findings, key=key, reverse=reverse)
    except TypeError:  # numbers and text mixed under one attribute: sort as text
        return sorted(findings, key=lambda f: _text(_get_path(f, field)), reverse=reverse)


class GdlabGuardDutyBackend(GuardDutyBackend):
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

    # --- findings ---------------------------------------------------------------------
    def _complete(self, detector_id: str, finding: dict[str, Any]) -> dict[str, Any]:
        stamp = now_iso()
        finding.setdefault("AccountId", self.account_id)
        finding.setdefault("Region", self.region_name)
        finding.setdefault("Partition", self.partition)
        finding.setdefault("SchemaVersion", "2.0")
        finding.setdefault(
            "Arn", f"{_detector_arn(self, detector_id)}/finding/{finding['Id']}"
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
                     if _matches(f, (criteria or {}).get("Criterion") or {})]
            ids = [f["Id"] for f in _sort(found, sort)]
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
        return _sort(found, sort)

    def set_archived(self, detector_id: str, finding_ids: list[str], archived: bool) -> None:
        with self.lock:
            store = self._findings(detector_id)
            for finding_id in finding_ids:
                if finding_id in store:
                    store[finding_id].setdefault("Service", {})["Archived"] = archived

    def findings_statistics(self, detector_id: str, types_: list[str] | None,
                            criteria: dict[str, Any] | None, group_by: str | None,
                            order_by: str | None, max_results: int | None) -> dict[str, Any]:
        with self.lock:
            found = [f for f in self._findings(detector_id).values()
                     if _matches(f, (criteria or {}).get("Criterion") or {})]
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

    def create_sample_findings(self, detector_id: str, finding_types: list[str] | None) -> int:
        self.get_detector(detector_id)
        types_ = finding_types or list(SAMPLE_SEVERITY)
        for finding_type in types_:
            self.upsert_finding(detector_id, sample_finding(self, detector_id, finding_type))
        return len(types_)

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


# --- sample findings -------------------------------------------------------------------
SAMPLE_SEVERITY = {
    "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom": 5.0,
    "Recon:EC2/PortProbeUnprotectedPort": 2.0,
    "Backdoor:EC2/C&CActivity.B": 8.0,
    "CryptoCurrency:EC2/BitcoinTool.B": 5.0,
    "Trojan:EC2/BlackholeTraffic": 5.0,
    "UnauthorizedAccess:EC2/SSHBruteForce": 2.0,
}


def sample_finding(backend: Any, detector_id: str, finding_type: str) -> dict[str, Any]:
    """A finding shaped like GuardDuty's own samples for EC2 network findings."""
    stamp = now_iso()
    remote_ip = "198.51.100.0"
    list_name = "GeneratedFindingCustomerListName"
    custom = finding_type.endswith(".Custom")
    finding: dict[str, Any] = {
        "Id": uuid.uuid4().hex,
        "Type": finding_type,
        "Severity": SAMPLE_SEVERITY.get(finding_type, 5.0),
        "Confidence": 5.0 if custom else 8.0,
        "CreatedAt": stamp,
        "UpdatedAt": stamp,
        "Title": f"[SAMPLE] EC2 instance {SAMPLE_INSTANCE} communicating with "
                 + ("disallowed IP address." if custom else f"{remote_ip}."),
        "Description": f"[SAMPLE] EC2 instance {SAMPLE_INSTANCE} is communicating with "
                       + (f"a disallowed IP address {remote_ip} on the list {list_name}."
                          if custom else f"{remote_ip}, matching finding type {finding_type}."),
        "Resource": {
            "ResourceType": "Instance",
            "InstanceDetails": {
                "InstanceId": SAMPLE_INSTANCE,
                "InstanceType": "m3.xlarge",
                "InstanceState": "running",
                "AvailabilityZone": "GeneratedFindingInstanceAvailabilityZone",
                "ImageId": "ami-99999999",
                "ImageDescription": "GeneratedFindingInstanceImageDescription",
                "LaunchTime": "2016-08-02T02:05:06.000Z",
                "IamInstanceProfile": {
                    "Arn": f"arn:{backend.partition}:iam::{backend.account_id}:example/"
                           "instance/profile",
                    "Id": "GeneratedFindingInstanceProfileId",
                },
                "NetworkInterfaces": [{
                    "NetworkInterfaceId": "eni-abcdef00",
                    "PrivateIpAddress": "10.0.0.1",
                    "PrivateDnsName": "GeneratedFindingPrivateDnsName",
                    "PublicIp": "198.51.100.0",
                    "PublicDnsName": "GeneratedFindingPublicDNSName",
                    "SubnetId": "GeneratedFindingSubnetId",
                    "VpcId": "GeneratedFindingVPCId",
                    "SecurityGroups": [{"GroupId": "GeneratedFindingSecurityId",
                                        "GroupName": "GeneratedFindingSecurityGroupName"}],
                    "PrivateIpAddresses": [{"PrivateIpAddress": "10.0.0.1",
                                            "PrivateDnsName": "GeneratedFindingPrivateName"}],
                    "Ipv6Addresses": [],
                }],
                "ProductCodes": [],
                "Tags": [{"Key": "GeneratedFindingInstanceTag1",
                          "Value": "GeneratedFindingInstanceValue1"}],
            },
        },
        "Service": {
            "ServiceName": "guardduty",
            "DetectorId": detector_id,
            "Archived": False,
            "Count": 1,
            "EventFirstSeen": stamp,
            "EventLastSeen": stamp,
            "ResourceRole": "ACTOR" if custom else "TARGET",
            "AdditionalInfo": {"Value": '{"sample":true}', "Type": "default"},
            "Action": {
                "ActionType": "NETWORK_CONNECTION",
                "NetworkConnectionAction": {
                    "ConnectionDirection": "OUTBOUND" if custom else "INBOUND",
                    "Protocol": "TCP",
                    "Blocked": False,
                    "LocalPortDetails": {"Port": 39677, "PortName": "Unknown"},
                    "RemotePortDetails": {"Port": 80, "PortName": "HTTP"},
                    "LocalIpDetails": {"IpAddressV4": "10.0.0.23"},
                    "RemoteIpDetails": {
                        "IpAddressV4": remote_ip,
                        "Organization": {"Asn": "-1", "AsnOrg": "GeneratedFindingASNOrg",
                                         "Isp": "GeneratedFindingISP",
                                         "Org": "GeneratedFindingORG"},
                        "Country": {"CountryName": "GeneratedFindingCountryName"},
                        "City": {"CityName": "GeneratedFindingCityName"},
                        "GeoLocation": {"Lat": 0.0, "Lon": 0.0},
                    },
                },
            },
        },
    }
    if custom:
        finding["Service"]["Evidence"] = {
            "ThreatIntelligenceDetails": [{"ThreatListName": list_name,
                                           "ThreatNames": []}]
        }
    return finding


# --- HTTP layer ------------------------------------------------------------------------
class GdlabGuardDutyResponse(GuardDutyResponse):
    """moto's GuardDuty responses plus the operations above, parsed with botocore's model."""

    @property
    def guardduty_backend(self) -> GdlabGuardDutyBackend:
        return guardduty_backends[self.current_account][self.region]

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

    def create_sample_findings(self) -> EmptyResult:
        p = self._params()
        self.guardduty_backend.create_sample_findings(p["DetectorId"], p.get("FindingTypes"))
        return EmptyResult()

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


_dispatch = GdlabGuardDutyResponse.dispatch
NEW_PATHS = [
    "{0}/detector/(?P<detector_id>[^/]+)/threatintelset$",
    "{0}/detector/(?P<detector_id>[^/]+)/threatintelset/(?P<threat_intel_set_id>[^/]+)$",
    "{0}/detector/(?P<detector_id>[^/]+)/ipset$",
    "{0}/detector/(?P<detector_id>[^/]+)/ipset/(?P<ip_set_id>[^/]+)$",
    "{0}/detector/(?P<detector_id>[^/]+)/findings$",
    "{0}/detector/(?P<detector_id>[^/]+)/findings/get$",
    "{0}/detector/(?P<detector_id>[^/]+)/findings/archive$",
    "{0}/detector/(?P<detector_id>[^/]+)/findings/unarchive$",
    "{0}/detector/(?P<detector_id>[^/]+)/findings/statistics$",
    "{0}/detector/(?P<detector_id>[^/]+)/findings/create$",
    "{0}/tags/(?P<resource_arn>.+)$",
]
# moto's own paths are answered by our response class too, so one backend serves them all.
URL_MODULE = types.SimpleNamespace(
    url_bases=list(gd_urls.url_bases),
    url_paths={**{path: _dispatch for path in gd_urls.url_paths},
               **{path: _dispatch for path in NEW_PATHS}},
)

guardduty_backends: BackendDict[GdlabGuardDutyBackend] = BackendDict(
    GdlabGuardDutyBackend, "guardduty"
)


def install() -> None:
    """Make every lookup of moto's GuardDuty backends (moto.backends.get_backend, moto's
    responses, the package attribute) find ours. Idempotent."""
    import moto.guardduty as gd_package

    gd_models.guardduty_backends = guardduty_backends
    gd_package.guardduty_backends = guardduty_backends  # what moto.backends.get_backend reads
    gd_responses.guardduty_backends = guardduty_backends


def backend(account_id: str, region: str) -> GdlabGuardDutyBackend:
    return guardduty_backends[account_id][region]


def all_backends() -> list[GdlabGuardDutyBackend]:
    return [b for _, _, b in guardduty_backends.iter_backends()]  # type: ignore[misc]
