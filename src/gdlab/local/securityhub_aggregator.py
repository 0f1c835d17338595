"""Security Hub's cross-Region aggregation for the local cloud: one finding aggregator per
account, living in the Region where it was created (the aggregation Region); GetFindings
there returns the findings of the linked Regions of the same account too.

RegionLinkingMode (CreateFindingAggregator API reference): ALL_REGIONS aggregates every
Region where Security Hub is enabled (new ones included); ALL_REGIONS_EXCEPT_SPECIFIED all
but the Regions listed; SPECIFIED_REGIONS only those listed; NO_REGIONS none. Update and
Delete "must be called from the current aggregation Region"; Get and List answer in any
Region. Aggregated findings keep their own Region attribute."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import unquote

from moto.core.responses import ActionResult, EmptyResult

from gdlab.local.securityhub_filters import HubError

MODES = ("ALL_REGIONS", "ALL_REGIONS_EXCEPT_SPECIFIED", "SPECIFIED_REGIONS", "NO_REGIONS")
WITH_REGIONS = ("ALL_REGIONS_EXCEPT_SPECIFIED", "SPECIFIED_REGIONS")
AGGREGATOR_URL_PATHS = [
    "{0}/findingAggregator/create$",
    "{0}/findingAggregator/list$",
    "{0}/findingAggregator/update$",
    "{0}/findingAggregator/get/(?P<finding_aggregator_arn>.+)$",
    "{0}/findingAggregator/delete/(?P<finding_aggregator_arn>.+)$",
]


def _invalid(message: str) -> HubError:
    return HubError("InvalidInputException", message)


def _checked(mode: Any, regions: Any) -> tuple[str, list[str]]:
    if mode not in MODES:
        raise _invalid(f"Invalid RegionLinkingMode {mode}. Valid values: {', '.join(MODES)}")
    regions = [str(r) for r in regions or []]
    if mode in WITH_REGIONS and not regions:
        raise _invalid(f"Regions must be provided when RegionLinkingMode is {mode}")
    if mode not in WITH_REGIONS and regions:
        raise _invalid(f"Regions cannot be provided when RegionLinkingMode is {mode}")
    return mode, regions


class AggregatorBackendMixin:
    """Backend half; the host class provides lock, account_id, region_name, partition,
    findings, enabled and _require_enabled, and ``peers()`` (this account's backends by
    Region)."""

    def _aggregator_state(self) -> None:
        self.aggregator: dict[str, Any] | None = None

    def _account_aggregator(self) -> tuple[Any, dict[str, Any]] | None:
        for peer in self.peers().values():
            found = getattr(peer, "aggregator", None)
            if found is not None:
                return peer, found
        return None

    @staticmethod
    def _view(found: dict[str, Any]) -> dict[str, Any]:
        view = {"FindingAggregatorArn": found["Arn"],
                "FindingAggregationRegion": found["Region"],
                "RegionLinkingMode": found["RegionLinkingMode"]}
        if found["Regions"]:
            view["Regions"] = list(found["Regions"])
        return view

    def _named(self, arn: str, home_only: bool) -> dict[str, Any]:
        self._require_enabled()
        hit = self._account_aggregator()
        if hit is None or hit[1]["Arn"] != arn:
            raise HubError("ResourceNotFoundException",
                           f"The request was rejected because no finding aggregator was "
                           f"found with ARN {arn}.")
        if home_only and hit[1]["Region"] != self.region_name:
            raise _invalid("The finding aggregator must be updated or deleted from its "
                           f"aggregation Region {hit[1]['Region']}.")
        return hit[1]

    def create_finding_aggregator(self, mode: Any, regions: Any) -> dict[str, Any]:
        self._require_enabled()
        mode, regions = _checked(mode, regions)
        with self.lock:
            if self._account_aggregator() is not None:
                raise HubError("LimitExceededException",
                               "The request was rejected because a finding aggregator "
                               "already exists for this account; an account can have one.")
            self.aggregator = {
                "Arn": f"arn:{self.partition}:securityhub:{self.region_name}:"
                       f"{self.account_id}:finding-aggregator/{uuid.uuid4()}",
                "Region": self.region_name, "RegionLinkingMode": mode, "Regions": regions}
            return self._view(self.aggregator)

    def list_finding_aggregators(self) -> list[dict[str, str]]:
        self._require_enabled()
        hit = self._account_aggregator()
        return [{"FindingAggregatorArn": hit[1]["Arn"]}] if hit else []

    def get_finding_aggregator(self, arn: str) -> dict[str, Any]:
        return self._view(self._named(arn, home_only=False))

    def update_finding_aggregator(self, arn: str, mode: Any, regions: Any) -> dict[str, Any]:
        found = self._named(arn, home_only=True)
        mode, regions = _checked(mode, regions)
        with self.lock:
            found["RegionLinkingMode"], found["Regions"] = mode, regions
            return self._view(found)

    def delete_finding_aggregator(self, arn: str) -> None:
        self._named(arn, home_only=True)
        with self.lock:
            self.aggregator = None

    def links(self, region: str) -> bool:
        """Whether an aggregator in this Region links that (other) Region."""
        with self.lock:
            found = self.aggregator
            if found is None or region == self.region_name:
                return False
            mode, regions = found["RegionLinkingMode"], set(found["Regions"])
        return mode == "ALL_REGIONS" or (mode == "SPECIFIED_REGIONS" and region in regions) \
            or (mode == "ALL_REGIONS_EXCEPT_SPECIFIED" and region not in regions)


class AggregatorResponseMixin:
    """Response half; the host class provides securityhub_backend and _params()."""

    def create_finding_aggregator(self) -> ActionResult:
        p = self._params()
        return ActionResult(self.securityhub_backend.create_finding_aggregator(
            p.get("RegionLinkingMode"), p.get("Regions")))

    def list_finding_aggregators(self) -> ActionResult:
        self._params()
        return ActionResult(
            {"FindingAggregators": self.securityhub_backend.list_finding_aggregators()})

    def get_finding_aggregator(self) -> ActionResult:
        p = self._params()
        return ActionResult(self.securityhub_backend.get_finding_aggregator(
            unquote(p["FindingAggregatorArn"])))

    def update_finding_aggregator(self) -> ActionResult:
        p = self._params()
        return ActionResult(self.securityhub_backend.update_finding_aggregator(
            p.get("FindingAggregatorArn"), p.get("RegionLinkingMode"), p.get("Regions")))

    def delete_finding_aggregator(self) -> EmptyResult:
        p = self._params()
        self.securityhub_backend.delete_finding_aggregator(
            unquote(p["FindingAggregatorArn"]))
        return EmptyResult()
