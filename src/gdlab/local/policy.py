"""IAM identity-policy evaluation for requests signed by the local cloud's role sessions.

AWS's order (IAM User Guide, "Policy evaluation logic"): an explicit Deny in any statement wins;
otherwise some Allow must match; otherwise the request is implicitly denied. A statement
matches when its Action/NotAction, Resource/NotResource and every Condition match. Each
resource of a request is authorized on its own, with its own tags as aws:ResourceTag/k.

Leniency rule: gdlab must never refuse what AWS would allow. Where it cannot compute a
resource ARN or a condition key for a request, the affected statement is "unknown": an Allow
that is unknown counts as matching, a Deny that is unknown does not. Keys gdlab knows to be
absent (aws:SourceArn on a role session, a tag the resource lacks) are absent, not unknown.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from gdlab.local.policy_errors import refusal
from gdlab.local.request_context import (
    UNKNOWN_VALUE,
    Principal,
    RequestContext,
    Resource,
    context_for,
    role_tags,
)

__all__ = ["Principal", "authorize", "evaluate", "role_allows", "Decision", "UNKNOWN"]


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()  # a tri-state value: gdlab cannot tell


def _all(values: Iterable[Any]) -> Any:
    """AND over True / False / UNKNOWN: any False is False, else any UNKNOWN is UNKNOWN."""
    seen_unknown = False
    for value in values:
        if value is False:
            return False
        if value is UNKNOWN:
            seen_unknown = True
    return UNKNOWN if seen_unknown else True


def _any(values: Iterable[Any]) -> Any:
    """OR over True / False / UNKNOWN, as NOT(AND(NOT ...)) so the two cannot drift apart."""
    return _negate(_all(_negate(value) for value in values))


def _negate(value: Any) -> Any:
    return value if value is UNKNOWN else not value


# --- wildcards and policy variables -----------------------------------------------------
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_LITERAL_VARIABLES = {"*": "*", "?": "?", "$": "$"}  # IAM: ${*} ${?} ${$} are the characters


@lru_cache(maxsize=4096)
def _wildcard_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    # Only * and ? are IAM wildcards (no [...] classes as in fnmatch).
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, (re.I if ignore_case else 0) | re.S)


def _wildcard(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return _wildcard_regex(pattern, ignore_case).fullmatch(value) is not None


Lookup = Callable[[str], Any]  # key -> tuple of values, None (absent) or UNKNOWN


def _substitute(text: str, lookup: Lookup, uses_variables: bool) -> Any:
    """`text` with ${key} replaced (IAM "policy variables", Version 2012-10-17 only): a list
    of (literal?, piece) parts, None when a variable is absent without default, or UNKNOWN."""
    if not uses_variables or "${" not in text:
        return [(False, text)]
    parts: list[tuple[bool, str]] = []
    at = 0
    for match in _VARIABLE.finditer(text):
        parts.append((False, text[at:match.start()]))
        at = match.end()
        inner = match.group(1).strip()
        if inner in _LITERAL_VARIABLES:
            parts.append((True, inner))
            continue
        key, _, default = inner.partition(",")
        values = lookup(key.strip())
        if values is UNKNOWN:
            return UNKNOWN
        if values and len(values) == 1:
            parts.append((True, values[0]))
        elif default.strip().startswith("'") and default.strip().endswith("'"):
            parts.append((True, default.strip()[1:-1]))
        else:
            return None  # IAM: a variable with no value makes the element not match
    parts.append((False, text[at:]))
    return parts


def _pattern_match(parts: Any, value: str, ignore_case: bool = False, like: bool = True) -> Any:
    if parts is UNKNOWN:
        return UNKNOWN
    if parts is None:
        return False
    if not like:
        literal = "".join(piece for _, piece in parts)
        return literal.lower() == value.lower() if ignore_case else literal == value
    regex = "".join(
        re.escape(piece) if literal else
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in piece)
        for literal, piece in parts
    )
    return re.fullmatch(regex, value, (re.I if ignore_case else 0) | re.S) is not None


# --- condition operators (IAM JSON policy elements: Condition operators) -----------------
def _number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _date(text: str) -> datetime | None:
    number = _number(text)
    if number is not None:
        return datetime.fromtimestamp(number, UTC)
    try:
        parsed = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _ordered(parse: Callable[[str], Any], compare: Callable[[Any, Any], bool]):
    def check(context_value: str, policy_value: str, _: Lookup, __: bool) -> Any:
        left, right = parse(context_value), parse(policy_value)
        return left is not None and right is not None and compare(left, right)
    return check


def _string(ignore_case: bool, like: bool):
    def check(context_value: str, policy_value: str, lookup: Lookup, variables: bool) -> Any:
        parts = _substitute(policy_value, lookup, variables)
        return _pattern_match(parts, context_value, ignore_case, like)
    return check


def _arn(context_value: str, policy_value: str, lookup: Lookup, variables: bool) -> Any:
    # Each of the six colon-delimited components is compared separately, wildcards allowed.
    parts = _substitute(policy_value, lookup, variables)
    if parts is UNKNOWN or parts is None:
        return _pattern_match(parts, context_value)
    pattern = "".join(piece for _, piece in parts)
    have, want = context_value.split(":", 5), pattern.split(":", 5)
    if len(have) != 6 or len(want) != 6:
        return False
    return all(_wildcard(w, h) for w, h in zip(want, have, strict=True))


def _ip(context_value: str, policy_value: str, _: Lookup, __: bool) -> bool:
    try:
        return ipaddress.ip_address(context_value) in ipaddress.ip_network(
            policy_value, strict=False)
    except ValueError:
        return False


def _bool(context_value: str, policy_value: str, _: Lookup, __: bool) -> bool:
    return str(context_value).lower() == str(policy_value).lower()


_EQ = {"Equals": lambda a, b: a == b, "LessThan": lambda a, b: a < b,
       "LessThanEquals": lambda a, b: a <= b, "GreaterThan": lambda a, b: a > b,
       "GreaterThanEquals": lambda a, b: a >= b}

# base operator -> (comparison, negated)
OPERATORS: dict[str, tuple[Callable[..., Any], bool]] = {
    "StringEquals": (_string(False, False), False),
    "StringNotEquals": (_string(False, False), True),
    "StringEqualsIgnoreCase": (_string(True, False), False),
    "StringNotEqualsIgnoreCase": (_string(True, False), True),
    "StringLike": (_string(False, True), False),
    "StringNotLike": (_string(False, True), True),
    "ArnEquals": (_arn, False), "ArnLike": (_arn, False),
    "ArnNotEquals": (_arn, True), "ArnNotLike": (_arn, True),
    "Bool": (_bool, False),
    "BinaryEquals": (lambda c, p, _lookup, _variables: c == p, False),
    "IpAddress": (_ip, False), "NotIpAddress": (_ip, True),
    "NumericNotEquals": (_ordered(_number, _EQ["Equals"]), True),
    "DateNotEquals": (_ordered(_date, _EQ["Equals"]), True),
}
for _suffix, _compare in _EQ.items():
    OPERATORS[f"Numeric{_suffix}"] = (_ordered(_number, _compare), False)
    OPERATORS[f"Date{_suffix}"] = (_ordered(_date, _compare), False)


def condition_matches(operator: str, key: str, policy_values: Any, lookup: Lookup,
                      variables: bool = True) -> Any:
    """One operator/key pair of a Condition block: True, False or UNKNOWN."""
    values = [str(v).lower() if isinstance(v, bool) else str(v)
              for v in (policy_values if isinstance(policy_values, list) else [policy_values])]
    set_operator, _, base = operator.rpartition(":")
    context = lookup(key)
    if context is UNKNOWN:
        return UNKNOWN
    if base == "Null":
        # "true": the key must be absent; "false": present (and not null).
        present = bool(context)
        return any(present != (v.lower() == "true") for v in values)
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    if base not in OPERATORS or set_operator not in ("", "ForAllValues", "ForAnyValue"):
        return UNKNOWN  # an operator gdlab does not evaluate
    compare, negated = OPERATORS[base]

    def one(context_value: str) -> Any:
        return _any(compare(context_value, v, lookup, variables) for v in values)

    if not context:
        if set_operator == "ForAllValues" or if_exists:
            return True
        # A missing key fails positive operators and satisfies negated ones.
        return negated and set_operator == ""
    if set_operator == "ForAllValues":
        return _all(_negate(one(c)) if negated else one(c) for c in context)
    if set_operator == "ForAnyValue":
        return _any(_negate(one(c)) if negated else one(c) for c in context)
    matched = _any(one(c) for c in context)
    return _negate(matched) if negated else matched


# --- statements and documents ------------------------------------------------------------
def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


@dataclass(frozen=True)
class Statement:
    sid: str
    effect: str
    actions: tuple[str, ...] | None
    not_actions: tuple[str, ...] | None
    resources: tuple[str, ...] | None
    not_resources: tuple[str, ...] | None
    conditions: tuple[tuple[str, str, Any], ...]
    variables: bool  # policy variables exist only in Version 2012-10-17

    def action_matches(self, action: str) -> bool:
        if self.actions is not None:
            return any(_wildcard(a, action, ignore_case=True) for a in self.actions)
        if self.not_actions is not None:
            return not any(_wildcard(a, action, ignore_case=True) for a in self.not_actions)
        return False

    def resource_matches(self, arn: str | None, lookup: Lookup) -> Any:
        patterns = self.resources if self.resources is not None else self.not_resources
        if patterns is None:
            return UNKNOWN
        if arn is None:
            matched = True if any(p == "*" for p in patterns) else UNKNOWN
        else:
            matched = _any(_pattern_match(_substitute(p, lookup, self.variables), arn)
                           for p in patterns)
        return matched if self.resources is not None else _negate(matched)

    def matches(self, action: str, arn: str | None, lookup: Lookup) -> Any:
        if not self.action_matches(action):
            return False
        return _all([self.resource_matches(arn, lookup), *(
            condition_matches(op, key, values, lookup, self.variables)
            for op, key, values in self.conditions)])


@lru_cache(maxsize=512)
def parse_document(text: str) -> tuple[Statement, ...]:
    """A policy document's statements, parsed once per distinct text."""
    try:
        document = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return ()
    if not isinstance(document, dict):
        return ()
    variables = document.get("Version") == "2012-10-17"
    statements = []
    for index, raw in enumerate(_as_list(document.get("Statement"))):
        if not isinstance(raw, dict) or raw.get("Effect") not in ("Allow", "Deny"):
            continue

        def element(name: str, raw: dict[str, Any] = raw) -> tuple[str, ...] | None:
            return tuple(str(v) for v in _as_list(raw[name])) if name in raw else None

        conditions = tuple(
            (operator, key, values)
            for operator, block in (raw.get("Condition") or {}).items()
            if isinstance(block, dict)
            for key, values in block.items()
        )
        statements.append(Statement(
            sid=str(raw.get("Sid", f"#{index}")), effect=raw["Effect"],
            actions=element("Action"), not_actions=element("NotAction"),
            resources=element("Resource"), not_resources=element("NotResource"),
            conditions=conditions, variables=variables))
    return tuple(statements)


# --- decisions -------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    allowed: bool
    explicit_deny: bool
    resource: str  # the first refused resource's ARN ("*" when none was computed)
    statement: str = ""  # the Sid that denied, for the encoded message


def _lookup_for(context: RequestContext, resource: Resource) -> Lookup:
    def lookup(key: str) -> Any:
        value = context.value(key, resource)
        return UNKNOWN if value is UNKNOWN_VALUE else value
    return lookup


def evaluate(documents: Iterable[str], context: RequestContext) -> Decision:
    """AWS's identity-policy decision for every resource of the request."""
    statements = [s for text in documents for s in parse_document(text)
                  if s.action_matches(context.action)]
    for resource in context.resources:
        lookup = _lookup_for(context, resource)
        arn = resource.arn or "*"
        for statement in statements:
            if statement.effect == "Deny" and \
                    statement.matches(context.action, resource.arn, lookup) is True:
                return Decision(False, True, arn, statement.sid)
        if not any(statement.effect == "Allow" and
                   statement.matches(context.action, resource.arn, lookup) is not False
                   for statement in statements):
            return Decision(False, False, arn)
    return Decision(True, False, "")


def role_documents(account: str, role_name: str) -> list[str]:
    """The role's inline policies and the default versions of its managed policies."""
    from moto.iam.models import iam_backends

    try:
        role = iam_backends[account]["global"].get_role(role_name)
    except Exception:  # noqa: BLE001 - a deleted role has no policies: nothing is allowed
        return []
    return [str(document) for document in role.policies.values()] + _managed_defaults(
        role.managed_policies)


def _managed_defaults(policies: Any) -> list[str]:
    documents = []
    for policy in policies.values():
        # policy_version_list is moto's wire view (dicts); the models are in versions.
        for version in getattr(policy, "versions", []):
            if version.is_default:
                documents.append(str(version.document))
    return documents


def user_documents(account: str, user_name: str) -> list[str]:
    """An IAM user's identity policies: its inline and managed ones, and its groups'."""
    from moto.iam.models import iam_backends

    backend = iam_backends[account]["global"]
    try:
        user = backend.get_user(user_name)
    except Exception:  # noqa: BLE001 - a deleted user has no policies: nothing is allowed
        return []
    documents = [str(d) for d in user.policies.values()] + _managed_defaults(
        user.managed_policies)
    for group in backend.get_groups_for_user(user_name):
        documents += [str(d) for d in group.policies.values()]
        documents += _managed_defaults(group.managed_policies)
    return documents


def principal_documents(principal: Principal) -> list[str]:
    if principal.is_user:
        return user_documents(principal.account, principal.user_name)
    return role_documents(principal.account, principal.role_name)


def authorize(response: Any, principal: Principal, action: str) -> None:
    """Raise AWS's refusal for `action` when the principal's identity policies do not allow
    the request `response` (a moto BaseResponse after setup_class) carries."""
    context = context_for(response, principal, action)
    decision = evaluate(principal_documents(principal), context)
    if not decision.allowed:
        raise refusal(action, principal, decision, context)


def role_allows(account: str, role_arn: str, action: str, resource: str = "*") -> bool:
    """Whether the role's identity policies allow `action` on `resource` (an ARN or "*"),
    with only the principal's global condition keys known (others count as unknown)."""
    role_name = str(role_arn).rsplit("/", 1)[-1]
    principal = Principal(account=account, arn=str(role_arn), role_name=role_name,
                          role_arn=str(role_arn), session_name="",
                          issued_at=datetime.now(UTC))
    context = RequestContext.bare(principal, action, resource,
                                  principal_tags=role_tags(account, role_name))
    return evaluate(role_documents(account, role_name), context).allowed
