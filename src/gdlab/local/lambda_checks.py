"""What Lambda's CreateFunction refuses and moto accepts: a runtime AWS no longer lets you
create functions with, and an execution role Lambda cannot assume."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

# Runtime -> the day AWS stopped creating functions with it (Lambda developer guide,
# "Runtime deprecation", deprecated runtimes table). python3.9's block is announced
# for 2027-02-01 and takes effect then.
BLOCKED_FROM: dict[str, date] = {
    "python2.7": date(2022, 7, 15),
    "python3.6": date(2022, 8, 29),
    "python3.7": date(2024, 1, 8),
    "python3.8": date(2026, 3, 9),
    "python3.9": date(2027, 2, 1),
    "nodejs10.x": date(2021, 8, 30),
    "nodejs12.x": date(2023, 3, 31),
    "nodejs14.x": date(2024, 1, 9),
    "nodejs16.x": date(2024, 6, 12),
    "ruby2.7": date(2024, 1, 9),
    "go1.x": date(2024, 1, 8),
    "java8": date(2024, 2, 8),
    "dotnetcore3.1": date(2023, 4, 3),
}
RECOMMENDED = {"python": "python3.13", "nodejs": "nodejs22.x", "ruby": "ruby3.4",
               "java": "java21", "go": "provided.al2023", "dotnet": "dotnet8"}
LAMBDA_SERVICE = "lambda.amazonaws.com"


def _invalid(message: str) -> Exception:
    from moto.awslambda.exceptions import InvalidParameterValueException

    return InvalidParameterValueException(message)


def check_runtime(runtime: str | None, today: date | None = None) -> None:
    if not runtime:
        return
    blocked = BLOCKED_FROM.get(runtime)
    if blocked is None or (today or datetime.now(UTC).date()) < blocked:
        return
    family = next((k for k in RECOMMENDED if runtime.startswith(k)), "python")
    raise _invalid(
        f"The runtime parameter of {runtime} is no longer supported for creating or updating "
        f"AWS Lambda functions. We recommend you use the new runtime ({RECOMMENDED[family]}) "
        "while creating or updating functions.")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def trusts_lambda(document: Any) -> bool:
    """Whether a trust policy lets Lambda's service principal call sts:AssumeRole."""
    try:
        policy = json.loads(document) if isinstance(document, str) else document
    except ValueError:
        return False
    statements = policy.get("Statement", []) if isinstance(policy, dict) else []
    allowed = denied = False
    for statement in _as_list(statements):
        if not isinstance(statement, dict):
            continue
        actions = [str(a).lower() for a in _as_list(statement.get("Action", []))]
        principal = statement.get("Principal", {})
        services = _as_list(principal.get("Service", [])) if isinstance(principal, dict) else []
        everyone = principal == "*" or (isinstance(principal, dict)
                                        and principal.get("AWS") == "*")
        if not (any(a in ("sts:assumerole", "sts:*", "*") for a in actions)
                and (LAMBDA_SERVICE in services or everyone)):
            continue
        if statement.get("Effect") == "Deny":
            denied = True
        elif statement.get("Effect") == "Allow":
            allowed = True
    return allowed and not denied


def check_role(account: str, role_arn: str | None) -> None:
    """The role exists in the function's account and its trust policy names Lambda."""
    from moto.iam.models import iam_backends

    cannot = _invalid("The role defined for the function cannot be assumed by Lambda.")
    parts = str(role_arn or "").split(":")
    if len(parts) < 6 or parts[4] != account or not parts[5].startswith("role/"):
        raise cannot
    try:
        role = iam_backends[account]["aws"].get_role(parts[5].rsplit("/", 1)[-1])
    except Exception:  # noqa: BLE001 - moto's NoSuchEntity: no such role
        raise cannot from None
    if role.arn != role_arn or not trusts_lambda(role.assume_role_policy_document):
        raise cannot


def check_create(backend: Any, spec: dict[str, Any]) -> None:
    check_runtime(spec.get("Runtime"))
    check_role(backend.account_id, spec.get("Role"))


def check_update(backend: Any, body: Any) -> None:
    if isinstance(body, dict):
        check_runtime(body.get("Runtime"))
        if body.get("Role"):
            check_role(backend.account_id, body["Role"])
