"""Triage of a detector's findings: feedback (UpdateFindingsFeedback) and the saved filters
(suppression rules) moto keeps on its Detector. Mixed into the GuardDuty backend."""

from __future__ import annotations

import re
from typing import Any

from gdlab.local.guardduty.common import BadRequest

FEEDBACK = ("USEFUL", "NOT_USEFUL")
MAX_FEEDBACK_IDS = 50  # API_UpdateFindingsFeedback: findingIds holds 0 to 50 items
MAX_FILTER_RESULTS = 50  # API_ListFilters: maxResults 1-50, default 50
FILTER_ACTIONS = ("NOOP", "ARCHIVE")
# API_CreateFilter: at most 100 saved filters per account and Region, a name of 3 to 64
# periods, underscores, dashes and alphanumerics, a rank of 1 to 100.
MAX_FILTERS = 100
FILTER_NAME = re.compile(r"[A-Za-z0-9._-]{3,64}")
MAX_RANK = 100


def paginate(items: list, max_results: Any, next_token: Any, limit: int) -> tuple[list, str]:
    """One page of items and the NextToken of the next ("" after the last)."""
    size = limit if max_results is None else int(max_results)
    if not 1 <= size <= limit:
        raise BadRequest(f"The request is rejected because maxResults must be between 1 and "
                         f"{limit}.")
    try:
        start = int(next_token) if next_token else 0
    except ValueError:
        raise BadRequest("The request is rejected because the nextToken is invalid.") from None
    if start < 0:
        raise BadRequest("The request is rejected because the nextToken is invalid.")
    page = items[start:start + size]
    return page, str(start + size) if start + size < len(items) else ""


def _check_filter(action: str | None, rank: int | None) -> None:
    if action is not None and action not in FILTER_ACTIONS:
        raise BadRequest(f"The request is rejected because the action {action} is invalid. "
                         f"Valid values: {', '.join(FILTER_ACTIONS)}.")
    if rank is not None and not 1 <= int(rank) <= MAX_RANK:
        raise BadRequest(f"The request is rejected because the rank {rank} is not between "
                         f"1 and {MAX_RANK}.")


class TriageMixin:
    """Finding feedback and filters (self.findings via self._findings, moto's detectors)."""

    # --- feedback ---------------------------------------------------------------------
    def update_findings_feedback(self, detector_id: str, finding_ids: list[str],
                                 feedback: str, comments: str | None) -> None:
        """Mark findings USEFUL or NOT_USEFUL. GetFindings shows it as Service.UserFeedback;
        the comments have no member in the Finding shape, so only the backend keeps them."""
        if feedback not in FEEDBACK:
            raise BadRequest(f"The request is rejected because the feedback {feedback} is "
                             f"invalid. Valid values: {', '.join(FEEDBACK)}.")
        if len(finding_ids) > MAX_FEEDBACK_IDS:
            raise BadRequest("The request is rejected because findingIds has more than "
                             f"{MAX_FEEDBACK_IDS} items.")
        with self.lock:
            store = self._findings(detector_id)
            # AWS refuses the whole request when an id is not one of the detector's findings
            # (BadRequestException); nothing is updated. The wording is gdlab's.
            missing = [i for i in finding_ids if i not in store]
            if missing:
                raise BadRequest(f"The request is rejected because the finding id "
                                 f"{missing[0]} does not exist for the detector "
                                 f"{detector_id}.")
            # Kept beside the findings; a backend reset (a fresh __dict__) forgets both.
            comments_of = self.__dict__.setdefault("feedback_comments", {})
            for finding_id in finding_ids:
                store[finding_id].setdefault("Service", {})["UserFeedback"] = feedback
                if comments:
                    comments_of[(detector_id, finding_id)] = comments
                else:
                    comments_of.pop((detector_id, finding_id), None)

    def feedback_comments_for(self, detector_id: str, finding_id: str) -> str | None:
        return self.__dict__.get("feedback_comments", {}).get((detector_id, finding_id))

    # --- filters ----------------------------------------------------------------------
    def create_filter(self, detector_id: str, name: str, action: str | None,
                      description: str | None, finding_criteria: dict[str, Any],
                      rank: int | None, tags: dict[str, str] | None = None) -> None:
        # API_CreateFilter: action defaults to NOOP (the filter only narrows a view).
        action = action or "NOOP"
        _check_filter(action, rank)
        if not FILTER_NAME.fullmatch(name or ""):
            raise BadRequest(f"The request is rejected because the filter name {name} is "
                             "invalid: use 3 to 64 alphanumerics, periods, underscores or "
                             "dashes.")
        with self.lock:
            filters = self.get_detector(detector_id).filters
            # The wording of these two refusals is gdlab's; AWS refuses both.
            if name in filters:
                raise BadRequest(f"The request is rejected because a filter named {name} "
                                 "already exists.")
            if len(filters) >= MAX_FILTERS:
                raise BadRequest("The request is rejected because the number of filters "
                                 f"for the detector exceeds the limit of {MAX_FILTERS}.")
            super().create_filter(detector_id, name, action, description,  # type: ignore[misc]
                                  finding_criteria, rank)
            self.get_filter(detector_id, name).tags = dict(tags or {})

    def update_filter(self, detector_id: str, filter_name: str, action: str | None,
                      description: str | None, finding_criteria: dict[str, Any] | None,
                      rank: int | None) -> None:
        _check_filter(action, rank)
        with self.lock:
            super().update_filter(detector_id, filter_name,  # type: ignore[misc]
                                  action=action, description=description,
                                  finding_criteria=finding_criteria, rank=rank)

    def list_filters(self, detector_id: str, max_results: int | None,
                     next_token: str | None) -> tuple[list[str], str]:
        with self.lock:
            names = list(self.get_detector(detector_id).filters)
        return paginate(names, max_results, next_token, MAX_FILTER_RESULTS)

    def filter_view(self, detector_id: str, name: str) -> dict[str, Any]:
        """GetFilter's answer: absent members are left out, never sent as null."""
        with self.lock:
            found = self.get_filter(detector_id, name)
            view = {"Name": found.name, "Action": found.action or "NOOP",
                    "Description": found.description, "Rank": found.rank,
                    "FindingCriteria": found.finding_criteria or {},
                    "Tags": getattr(found, "tags", None) or {}}
        return {k: v for k, v in view.items() if v is not None}

    def filters_for(self, detector_id: str) -> list[dict[str, Any]]:
        """The detector's filters as GetFilter shows them, in rank order (the order AWS
        applies them in), for whoever applies ARCHIVE filters to new findings."""
        with self.lock:
            names = list(self.get_detector(detector_id).filters)
            views = [self.filter_view(detector_id, name) for name in names]
        return sorted(views, key=lambda v: v.get("Rank", 1))
