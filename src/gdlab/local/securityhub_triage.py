"""Security Hub's triage side for the local cloud: BatchUpdateFindings (what customers change
on a finding), insights (CreateInsight, GetInsights, GetInsightResults, UpdateInsight,
DeleteInsight) and the standards EnableSecurityHub turns on (GetEnabledStandards).

Mixed into the local Security Hub backend and response classes (securityhub.py)."""

from __future__ import annotations

import copy
import uuid
from collections import Counter
from typing import Any
from urllib.parse import unquote

from moto.core.responses import ActionResult, EmptyResult

from gdlab.local.securityhub_filters import STRING_FIELDS, HubError, matches, now_iso, values_at

# Fields only BatchUpdateFindings changes once a finding exists; a provider's re-import keeps
# the customer's values (BatchImportFindings API reference: "After a finding is created,
# BatchImportFindings cannot be used to update ... Note, UserDefinedFields, VerificationState,
# Workflow"; Confidence, Criticality, RelatedFindings, Severity and Types come from
# FindingProviderFields unless a customer has set them).
CUSTOMER_FIELDS = ("Note", "UserDefinedFields", "VerificationState", "Workflow",
                   "WorkflowState")
PROVIDER_OVERRIDABLE = ("Confidence", "Criticality", "RelatedFindings", "Severity", "Types")

WORKFLOW_STATUSES = ("NEW", "NOTIFIED", "RESOLVED", "SUPPRESSED")
# The deprecated WorkflowState follows Workflow.Status (ASFF "Workflow" / "WorkflowState").
WORKFLOW_STATE = {"NEW": "NEW", "NOTIFIED": "ASSIGNED", "RESOLVED": "RESOLVED",
                  "SUPPRESSED": "DEFERRED"}
VERIFICATION_STATES = ("UNKNOWN", "TRUE_POSITIVE", "FALSE_POSITIVE", "BENIGN_POSITIVE")
SEVERITY_LABELS = ("INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL")
# BatchUpdateFindings: a Label alone sets Normalized to these values (SeverityUpdate).
LABEL_NORMALIZED = {"INFORMATIONAL": 0, "LOW": 1, "MEDIUM": 40, "HIGH": 70, "CRITICAL": 90}

# EnableSecurityHub with EnableDefaultStandards (default true) enables CIS AWS Foundations
# Benchmark v1.2.0 and AWS Foundational Security Best Practices (EnableSecurityHub API ref).
DEFAULT_STANDARDS = (
    ("arn:{partition}:securityhub:::ruleset/cis-aws-foundations-benchmark/v/1.2.0",
     "arn:{partition}:securityhub:{region}:{account}:subscription/"
     "cis-aws-foundations-benchmark/v/1.2.0"),
    ("arn:{partition}:securityhub:{region}::standards/"
     "aws-foundational-security-best-practices/v/1.0.0",
     "arn:{partition}:securityhub:{region}:{account}:subscription/"
     "aws-foundational-security-best-practices/v/1.0.0"),
)
MAX_UPDATED_FINDINGS = 100  # per BatchUpdateFindings request (user guide)
MAX_INSIGHT_RESULTS = 100  # GetInsightResults returns the top 100 groups


def label_for(normalized: int) -> str:
    """SeverityUpdate: Normalized alone sets Label (0 INFORMATIONAL, 1-39 LOW, 40-69 MEDIUM,
    70-89 HIGH, 90-100 CRITICAL)."""
    if normalized == 0:
        return "INFORMATIONAL"
    if normalized < 40:
        return "LOW"
    if normalized < 70:
        return "MEDIUM"
    return "HIGH" if normalized < 90 else "CRITICAL"


def _invalid(message: str) -> HubError:
    return HubError("InvalidInputException", message)


def _score(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise _invalid(f"{name} must be an integer between 0 and 100")
    return value


def validated_updates(updates: dict[str, Any]) -> dict[str, Any]:
    """The finding fields a BatchUpdateFindings request sets, as they are stored."""
    stored: dict[str, Any] = {}
    stamp = now_iso()
    if updates.get("Note") is not None:
        note = updates["Note"]
        if not note.get("Text") or not note.get("UpdatedBy"):
            raise _invalid("Note requires Text and UpdatedBy")
        stored["Note"] = {"Text": note["Text"], "UpdatedBy": note["UpdatedBy"],
                          "UpdatedAt": stamp}
    if updates.get("Severity") is not None:
        stored["Severity"] = dict(updates["Severity"])
    if updates.get("Workflow") is not None:
        status = updates["Workflow"].get("Status")
        if status not in WORKFLOW_STATUSES:
            raise _invalid(f"Workflow.Status must be one of {', '.join(WORKFLOW_STATUSES)}")
        stored["Workflow"] = {"Status": status}
        stored["WorkflowState"] = WORKFLOW_STATE[status]
    if updates.get("VerificationState") is not None:
        if updates["VerificationState"] not in VERIFICATION_STATES:
            raise _invalid("VerificationState must be one of "
                           f"{', '.join(VERIFICATION_STATES)}")
        stored["VerificationState"] = updates["VerificationState"]
    for name in ("Confidence", "Criticality"):
        if updates.get(name) is not None:
            stored[name] = _score(name, updates[name])
    for name in ("Types", "RelatedFindings", "UserDefinedFields"):
        if updates.get(name) is not None:
            stored[name] = copy.deepcopy(updates[name])
    return stored


def merged_severity(current: dict[str, Any] | None, update: dict[str, Any]) -> dict[str, Any]:
    severity = dict(current or {})
    label, normalized = update.get("Label"), update.get("Normalized")
    if label is not None and label not in SEVERITY_LABELS:
        raise _invalid(f"Severity.Label must be one of {', '.join(SEVERITY_LABELS)}")
    if normalized is not None:
        _score("Severity.Normalized", normalized)
    if label is not None:
        severity["Label"] = label
        severity["Normalized"] = normalized if normalized is not None else \
            LABEL_NORMALIZED[label]
    elif normalized is not None:
        severity["Normalized"] = normalized
        severity["Label"] = label_for(normalized)
    if update.get("Product") is not None:
        severity["Product"] = float(update["Product"])
    return severity


class TriageBackendMixin:
    """Backend half; the host class provides lock, findings, _require_enabled, account_id,
    region_name, partition and enabled."""

    def _triage_state(self) -> None:
        self.insights: dict[str, dict[str, Any]] = {}
        self.enabled_standards: list[dict[str, Any]] = []

    def _enable_default_standards(self, enabled: bool) -> None:
        names = {"partition": self.partition, "region": self.region_name,
                 "account": self.account_id}
        self.enabled_standards = [
            {"StandardsArn": standard.format(**names),
             "StandardsSubscriptionArn": subscription.format(**names),
             "StandardsInput": {}, "StandardsStatus": "READY",
             "StandardsControlsUpdatable": "READY_FOR_UPDATES"}
            for standard, subscription in DEFAULT_STANDARDS
        ] if enabled else []

    def batch_update_findings(self, identifiers: list[dict[str, Any]],
                              updates: dict[str, Any]) -> tuple[list[dict], list[dict]]:
        self._require_enabled()
        if not 1 <= len(identifiers) <= MAX_UPDATED_FINDINGS:
            raise _invalid("FindingIdentifiers must list between 1 and "
                           f"{MAX_UPDATED_FINDINGS} findings")
        stored = validated_updates(updates)
        if "Severity" in stored:
            merged_severity(None, stored["Severity"])  # validate before touching any finding
        processed: list[dict[str, Any]] = []
        unprocessed: list[dict[str, Any]] = []
        keys = [(i.get("Id"), i.get("ProductArn")) for i in identifiers]
        with self.lock:
            by_key = {(f.data["Id"], f.data["ProductArn"]): f for f in self.findings}
            for identifier, key in zip(identifiers, keys, strict=True):
                # Error codes and messages: BatchUpdateFindingsUnprocessedFinding.
                if keys.count(key) > 1:
                    unprocessed.append({"FindingIdentifier": identifier,
                                        "ErrorCode": "DuplicatedFindingIdentifier",
                                        "ErrorMessage": "Finding Identifier is duplicated"})
                    continue
                finding = by_key.get(key)
                if finding is None:
                    unprocessed.append({"FindingIdentifier": identifier,
                                        "ErrorCode": "FindingNotFound",
                                        "ErrorMessage": "Finding Not Found"})
                    continue
                data = copy.deepcopy(finding.data)
                for name, value in stored.items():
                    data[name] = (merged_severity(data.get("Severity"), value)
                                  if name == "Severity" else copy.deepcopy(value))
                # UpdatedAt stays the provider's: "your updates don't affect existing values
                # for the UpdatedAt field" (user guide, BatchUpdateFindings for customers).
                data["ProcessedAt"] = now_iso()
                finding.data = data
                customer = getattr(finding, "customer_fields", set())
                finding.customer_fields = customer | set(stored)
                processed.append({"Id": key[0], "ProductArn": key[1]})
        return processed, unprocessed

    # --- insights ---------------------------------------------------------------------
    def _insight(self, arn: str) -> dict[str, Any]:
        insight = self.insights.get(arn)
        if insight is None:
            raise HubError("ResourceNotFoundException",
                           f"The request was rejected because no insight was found with "
                           f"ARN {arn}.")
        return insight

    @staticmethod
    def _check_insight(filters: Any, group_by: Any) -> None:
        if group_by is not None and group_by not in STRING_FIELDS:
            raise _invalid(f"GroupByAttribute {group_by} is not a finding attribute the "
                           "local cloud groups by")
        matches({}, filters)  # an unknown filter name is refused now, not at results time

    def create_insight(self, name: str, filters: dict[str, Any], group_by: str) -> str:
        self._require_enabled()
        if not name:
            raise _invalid("Name must not be empty")
        self._check_insight(filters, group_by)
        arn = (f"arn:{self.partition}:securityhub:{self.region_name}:{self.account_id}:"
               f"insight/{self.account_id}/custom/{uuid.uuid4()}")
        with self.lock:
            self.insights[arn] = {"InsightArn": arn, "Name": name,
                                  "Filters": copy.deepcopy(filters or {}),
                                  "GroupByAttribute": group_by}
        return arn

    def get_insights(self, arns: list[str] | None, max_results: int | None,
                     next_token: str | None) -> tuple[list[dict[str, Any]], str | None]:
        self._require_enabled()
        with self.lock:
            chosen = [self._insight(a) for a in arns] if arns else list(self.insights.values())
            chosen = copy.deepcopy(chosen)
        size = 100 if max_results is None else int(max_results)
        if not 1 <= size <= 100:
            raise _invalid("MaxResults must be a number between 1 and 100")
        try:
            start = int(next_token) if next_token else 0
        except ValueError:
            raise _invalid("Invalid NextToken") from None
        page = chosen[start:start + size]
        return page, (str(start + size) if start + size < len(chosen) else None)

    def update_insight(self, arn: str, name: str | None, filters: dict[str, Any] | None,
                       group_by: str | None) -> None:
        self._require_enabled()
        self._check_insight(filters, group_by)
        with self.lock:
            insight = self._insight(arn)
            if name:
                insight["Name"] = name
            if filters is not None:
                insight["Filters"] = copy.deepcopy(filters)
            if group_by is not None:
                insight["GroupByAttribute"] = group_by

    def delete_insight(self, arn: str) -> str:
        self._require_enabled()
        with self.lock:
            self._insight(arn)
            del self.insights[arn]
        return arn

    def get_insight_results(self, arn: str) -> dict[str, Any]:
        self._require_enabled()
        with self.lock:
            insight = copy.deepcopy(self._insight(arn))
            found = [f.data for f in self.findings if matches(f.data, insight["Filters"])]
            path = STRING_FIELDS[insight["GroupByAttribute"]]
            # A finding counts once per distinct value it has (e.g. several resources).
            counts = Counter(str(v) for f in found for v in set(map(str, values_at(f, path))))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return {"InsightArn": arn, "GroupByAttribute": insight["GroupByAttribute"],
                "ResultValues": [{"GroupByAttributeValue": value, "Count": count}
                                 for value, count in ranked[:MAX_INSIGHT_RESULTS]]}

    def get_enabled_standards(self, arns: list[str] | None) -> list[dict[str, Any]]:
        self._require_enabled()
        with self.lock:
            chosen = [s for s in self.enabled_standards
                      if not arns or s["StandardsSubscriptionArn"] in arns]
            return copy.deepcopy(chosen)


class TriageResponseMixin:
    """Response half; the host class provides securityhub_backend and _params()."""

    def batch_update_findings(self) -> ActionResult:
        p = self._params()
        updates = {k: v for k, v in p.items() if k != "FindingIdentifiers"}
        processed, unprocessed = self.securityhub_backend.batch_update_findings(
            p.get("FindingIdentifiers") or [], updates)
        return ActionResult({"ProcessedFindings": processed,
                             "UnprocessedFindings": unprocessed})

    def create_insight(self) -> ActionResult:
        p = self._params()
        arn = self.securityhub_backend.create_insight(p.get("Name"), p.get("Filters") or {},
                                                      p.get("GroupByAttribute"))
        return ActionResult({"InsightArn": arn})

    def get_insights(self) -> ActionResult:
        p = self._params()
        insights, token = self.securityhub_backend.get_insights(
            p.get("InsightArns"), p.get("MaxResults"), p.get("NextToken"))
        result: dict[str, Any] = {"Insights": insights}
        if token:
            result["NextToken"] = token
        return ActionResult(result)

    def get_insight_results(self) -> ActionResult:
        p = self._params()
        return ActionResult({"InsightResults": self.securityhub_backend.get_insight_results(
            unquote(p["InsightArn"]))})

    def update_insight(self) -> EmptyResult:
        p = self._params()
        self.securityhub_backend.update_insight(unquote(p["InsightArn"]), p.get("Name"),
                                                p.get("Filters"), p.get("GroupByAttribute"))
        return EmptyResult()

    def delete_insight(self) -> ActionResult:
        p = self._params()
        arn = self.securityhub_backend.delete_insight(unquote(p["InsightArn"]))
        return ActionResult({"InsightArn": arn})

    def get_enabled_standards(self) -> ActionResult:
        p = self._params()
        return ActionResult({"StandardsSubscriptions":
                             self.securityhub_backend.get_enabled_standards(
                                 p.get("StandardsSubscriptionArns"))})


TRIAGE_URL_PATHS = (
    "{0}/findings/batchupdate$",
    "{0}/insights$",
    "{0}/insights/get$",
    "{0}/insights/results/(?P<insight_arn>.+)$",
    "{0}/insights/(?P<insight_arn>.+)$",
    "{0}/standards/get$",
)
