"""FindingCriteria matching and SortCriteria ordering over stored (PascalCase) findings,
as ListFindings, GetFindingsStatistics and filters use them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from gdlab.local.guardduty.common import BadRequest, iso_to_ms


def get_path(finding: dict[str, Any], path: str) -> list[Any]:
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


def criterion_of(finding_criteria: dict[str, Any] | None) -> dict[str, Any]:
    """The Criterion of a FindingCriteria as matches() reads it, from either spelling: the
    parsed (PascalCase: Criterion, Eq, GreaterThan) or the wire's (criterion, eq,
    greaterThan) that moto keeps for a filter. Field names stay as given."""
    def upper(name: str) -> str:
        return name[:1].upper() + name[1:]

    top = {upper(k): v for k, v in (finding_criteria or {}).items()}
    return {field: {upper(op): operand for op, operand in (condition or {}).items()}
            for field, condition in (top.get("Criterion") or {}).items()}


def matches(finding: dict[str, Any], criteria: dict[str, Any]) -> bool:
    for field, condition in (criteria or {}).items():
        values = get_path(finding, field)
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
                hit = any(wildcard(w, _text(v)) for v in values for w in operand)
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


def wildcard(pattern: str, value: str) -> bool:
    regex = "^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$"
    return re.match(regex, value) is not None


def sort_findings(findings: list[dict[str, Any]],
                  sort: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not sort or not sort.get("AttributeName"):
        return findings
    field = sort["AttributeName"]
    reverse = str(sort.get("OrderBy", "ASC")).upper() == "DESC"

    def key(finding: dict[str, Any]) -> tuple[int, Any]:
        values = get_path(finding, field)
        if not values:
            return (1, "")
        number = _as_number(field, values[0])
        return (0, number) if number is not None else (0, _text(values[0]))

    try:
        return sorted(findings, key=key, reverse=reverse)
    except TypeError:  # numbers and text mixed under one attribute: sort as text
        return sorted(findings, key=lambda f: _text(get_path(f, field)), reverse=reverse)

