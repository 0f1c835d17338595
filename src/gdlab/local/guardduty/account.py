"""What an account's detector answers about its account: publishing destinations, usage
and coverage. Mixed into the GuardDuty backend (members and administrator: organization.py).

The local cloud has no publishing destination API and no GuardDuty security agent; each
answer below is the one AWS gives such an account."""

from __future__ import annotations

from typing import Any

from gdlab.local.guardduty.common import BadRequest
from gdlab.local.guardduty.triage import paginate

USAGE_TYPES = ("SUM_BY_ACCOUNT", "SUM_BY_DATA_SOURCE", "SUM_BY_RESOURCE", "TOP_RESOURCES",
               "SUM_BY_FEATURES", "TOP_ACCOUNTS_BY_FEATURE")
MAX_LIST_RESULTS = 50  # maxResults 1-50 for ListMembers, ListPublishingDestinations
MAX_USAGE_RESULTS = 50
MAX_COVERAGE_RESULTS = 50
# Foundational sources are on for every enabled detector and cannot be turned off
# (https://docs.aws.amazon.com/guardduty/latest/ug/guardduty_data-sources.html).
FOUNDATIONAL = ("FLOW_LOGS", "CLOUD_TRAIL", "DNS_LOGS")
# Protection plans: detector feature name -> (usage feature, legacy usage data source).
PLANS: dict[str, tuple[str, str | None]] = {
    "S3_DATA_EVENTS": ("S3_DATA_EVENTS", "S3_LOGS"),
    "EKS_AUDIT_LOGS": ("EKS_AUDIT_LOGS", "KUBERNETES_AUDIT_LOGS"),
    "EBS_MALWARE_PROTECTION": ("EBS_MALWARE_PROTECTION", "EC2_MALWARE_SCAN"),
    "RDS_LOGIN_EVENTS": ("RDS_LOGIN_EVENTS", None),
    "LAMBDA_NETWORK_LOGS": ("LAMBDA_NETWORK_LOGS", None),
}


def _get(data: Any, *names: str) -> Any:
    """data[name] under its PascalCase or camelCase spelling (moto keeps the request's)."""
    for name in names:
        if not isinstance(data, dict):
            return None
        data = data.get(name, data.get(name[:1].lower() + name[1:]))
    return data


def _enabled(value: Any) -> bool:
    return bool(value if not isinstance(value, dict) else _get(value, "Enable"))


def enabled_plans(detector: Any) -> list[str]:
    """The detector's enabled protection plans: its feature_state when the detector keeps
    one (what GetDetector reports), else the Features and DataSources it was given."""
    state = getattr(detector, "feature_state", None)
    if isinstance(state, dict):
        return [p for p in PLANS
                if str((state.get(p) or {}).get("status", "")).upper() == "ENABLED"]
    plans = {str(_get(f, "Name")) for f in detector.features or []
             if str(_get(f, "Status")).upper() == "ENABLED"}
    sources = detector.datasources or {}
    if _enabled(_get(sources, "S3Logs")):
        plans.add("S3_DATA_EVENTS")
    if _enabled(_get(sources, "Kubernetes", "AuditLogs")):
        plans.add("EKS_AUDIT_LOGS")
    if _enabled(_get(sources, "MalwareProtection", "ScanEc2InstanceWithFindings",
                     "EbsVolumes")):
        plans.add("EBS_MALWARE_PROTECTION")
    return [p for p in PLANS if p in plans]


class AccountMixin:
    """Standalone-account answers of the backend's detectors (moto's self.get_detector)."""

    def publishing_destinations(self, detector_id: str, max_results: int | None = None,
                                next_token: str | None = None
                                ) -> tuple[list[dict[str, Any]], str]:
        # A detector exports findings only after CreatePublishingDestination, which the
        # local cloud does not offer: none.
        self.get_detector(detector_id)
        return paginate([], max_results, next_token, MAX_LIST_RESULTS)

    def coverage(self, detector_id: str, max_results: int | None,
                 next_token: str | None) -> tuple[list[dict[str, Any]], str]:
        # Coverage lists the EKS clusters, ECS tasks and EC2 instances GuardDuty's security
        # agent reports from; Runtime Monitoring is off by default and the local cloud runs
        # no agent (https://docs.aws.amazon.com/guardduty/latest/ug/runtime-monitoring.html).
        self.get_detector(detector_id)
        return paginate([], max_results, next_token, MAX_COVERAGE_RESULTS)

    def usage_statistics(self, detector_id: str, usage_type: str,
                         criteria: dict[str, Any] | None, unit: str | None,
                         max_results: int | None,
                         next_token: str | None) -> tuple[dict[str, Any], str]:
        """GetUsageStatistics as a free-trial account sees it: every source and plan the
        detector has, at a zero cost in USD (the local cloud bills nothing)."""
        detector = self.get_detector(detector_id)
        if usage_type not in USAGE_TYPES:
            raise BadRequest(f"The request is rejected because the usageStatisticsType "
                             f"{usage_type} is invalid. Valid values: {', '.join(USAGE_TYPES)}.")
        if unit not in (None, "USD"):  # API_GetUsageStatistics: "valid values are USD"
            raise BadRequest(f"The request is rejected because the unit {unit} is invalid. "
                             "Valid values: USD.")
        criteria = criteria or {}
        total = {"Amount": "0", "Unit": "USD"}
        plans = enabled_plans(detector)
        features = [*FOUNDATIONAL, *(PLANS[p][0] for p in plans)]
        sources = [*FOUNDATIONAL, *(s for p in plans if (s := PLANS[p][1]))]
        if criteria.get("Features"):
            features = [f for f in features if f in criteria["Features"]]
        if criteria.get("DataSources"):
            sources = [s for s in sources if s in criteria["DataSources"]]
        # Only this account has usage here; any other account id is no member of it.
        accounts = [self.account_id] if self.account_id in (
            criteria.get("AccountIds") or [self.account_id]) else []
        by_account = [{"AccountId": a, "Total": dict(total)} for a in accounts]
        if usage_type == "SUM_BY_ACCOUNT":
            key, rows = "SumByAccount", by_account
        elif usage_type == "SUM_BY_DATA_SOURCE":
            key, rows = "SumByDataSource", [{"DataSource": s, "Total": dict(total)}
                                            for s in (sources if accounts else [])]
        elif usage_type == "SUM_BY_FEATURES":
            key, rows = "SumByFeature", [{"Feature": f, "Total": dict(total)}
                                         for f in (features if accounts else [])]
        elif usage_type == "TOP_ACCOUNTS_BY_FEATURE":
            key, rows = "TopAccountsByFeature", [
                {"Feature": f, "Accounts": [dict(a) for a in by_account]}
                for f in (features if accounts else [])]
        else:
            # Per-resource usage is metered by volume (events, GB analysed); the local cloud
            # meters none, so no resource has a usage line.
            key = "SumByResource" if usage_type == "SUM_BY_RESOURCE" else "TopResources"
            rows = []
        page, token = paginate(rows, max_results, next_token, MAX_USAGE_RESULTS)
        return {key: page}, token
