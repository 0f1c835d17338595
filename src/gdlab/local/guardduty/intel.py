"""ThreatIntelSets and IPSets: where GuardDuty reads them (S3 locations in every form it
accepts) and what a TXT list holds. Status is computed from timestamps on each read."""

from __future__ import annotations

import ipaddress
import re
import time
import uuid
from urllib.parse import unquote, urlparse

from gdlab.local.guardduty.common import activation_delay, log


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

