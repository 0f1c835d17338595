"""The local cloud's clock: AWS's slow intervals, run faster by one documented factor.

AWS measures the lab in minutes: the instance's timer waits 5 minutes after boot and fires
every minute, flow logs aggregate one-minute windows, the SSM agent reports every 5 minutes.
The local cloud keeps those intervals in AWS's units (what the user data, the API and the
docs say) and waits ``local_seconds(aws_seconds)`` for each: by default AWS's minute is the
local cloud's second (``SCALE`` = 60). Timestamps stay wall-clock time; only the waiting
between them is shortened.

``GDLAB_LOCAL_TIME_SCALE`` (a positive number, read at each use) overrides the factor:
``1`` runs the local cloud at AWS's pace, ``600`` ten times faster than the default.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("gdlab.local.clock")

SCALE = 60.0  # AWS seconds per local second
ENV = "GDLAB_LOCAL_TIME_SCALE"

_warned: set[str] = set()


def scale() -> float:
    """AWS seconds per local second: GDLAB_LOCAL_TIME_SCALE if it is a positive number,
    else SCALE."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return SCALE
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value > 0 and value != float("inf"):
        return value
    if raw not in _warned:
        _warned.add(raw)
        log.warning("%s=%r is not a positive number; the local cloud uses %g", ENV, raw, SCALE)
    return SCALE


def local_seconds(aws_seconds: float) -> float:
    """How long the local cloud waits for an interval AWS spends aws_seconds on."""
    return float(aws_seconds) / scale()


def aws_seconds(local: float) -> float:
    """The AWS interval that local seconds of the local cloud stand for."""
    return float(local) * scale()
