"""What every part of the local GuardDuty shares: its limits, its error, its clock
stamps and the hook list through which new findings leave it."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from moto.core.exceptions import ServiceException

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


def detector_arn(backend: Any, detector_id: str) -> str:
    return f"arn:{backend.partition}:guardduty:{backend.region_name}:{backend.account_id}" \
           f":detector/{detector_id}"
