"""GuardDuty for the local cloud: moto's backend plus threat lists, trusted IP lists, findings,
sample findings and the one-detector-per-region rule.

Laid out along moto's own per-service seam: models (the backend), findings (its findings
store), criteria (FindingCriteria / SortCriteria), samples, intel (threat lists), responses
and urls. Requests are parsed and answers serialized with botocore's own GuardDuty model
(through moto's parser and serializer), so the wire shapes are AWS's. Findings are stored in
GetFindings' PascalCase shape; the analyzer feeds them in with `upsert_finding`."""

from __future__ import annotations

from moto.guardduty import models as gd_models
from moto.guardduty import responses as gd_responses

from gdlab.local.guardduty.common import (
    FORMATS,
    MAX_IP_SETS,
    MAX_THREAT_INTEL_SETS,
    BadRequest,
    iso_to_ms,
    now_iso,
    on_new_finding,
)
from gdlab.local.guardduty.intel import IntelSet, parse_location, parse_txt_list
from gdlab.local.guardduty.models import (
    GdlabGuardDutyBackend,
    all_backends,
    backend,
    guardduty_backends,
)
from gdlab.local.guardduty.responses import GdlabGuardDutyResponse
from gdlab.local.guardduty.samples import SAMPLE_INSTANCE, SAMPLE_SEVERITY, sample_finding
from gdlab.local.guardduty.urls import NEW_PATHS, URL_MODULE

__all__ = [
    "FORMATS", "MAX_IP_SETS", "MAX_THREAT_INTEL_SETS", "NEW_PATHS", "SAMPLE_INSTANCE",
    "SAMPLE_SEVERITY", "URL_MODULE", "BadRequest", "GdlabGuardDutyBackend",
    "GdlabGuardDutyResponse", "IntelSet", "all_backends", "backend", "guardduty_backends",
    "install", "iso_to_ms", "now_iso", "on_new_finding", "parse_location", "parse_txt_list",
    "sample_finding",
]


def install() -> None:
    """Make every lookup of moto's GuardDuty backends (moto.backends.get_backend, moto's
    responses, the package attribute) find ours. Idempotent."""
    import moto.guardduty as gd_package

    from gdlab.local import patches

    # gd_package's is what moto.backends.get_backend reads; responses import their own name.
    for owner in (gd_models, gd_package, gd_responses):
        patches.patch(owner, "guardduty_backends", guardduty_backends,
                      "GuardDuty's backends are gdlab's (threat lists, findings, samples)")
