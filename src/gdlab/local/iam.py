"""IAM correction: AWS's managed policies exist in every account. moto loads them only
when told to (slowly, all ~1,000); the local cloud loads the few the lab attaches."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

# The AWS-managed policies gdlab attaches to lab roles.
NEEDED = ("AmazonSSMManagedInstanceCore",)

_installed = False


@cache
def _needed_policy_data() -> dict[str, Any]:
    # moto's bundled document is megabytes of JSON: parse it once, keep what the lab uses.
    from moto.iam import models

    data = json.loads(models.aws_managed_policies_data)
    return {name: data[name] for name in NEEDED}


def install() -> None:
    global _installed
    if _installed:
        return
    from moto.iam import models

    original = models.IAMBackend._init_aws_policies

    def _init_aws_policies(self: Any) -> list[Any]:
        loaded = original(self)
        if loaded:
            return loaded
        return [
            models.AWSManagedPolicy.from_data(name, self.account_id, self.region_name, data)
            for name, data in _needed_policy_data().items()
        ]

    models.IAMBackend._init_aws_policies = _init_aws_policies
    _installed = True


def role_allows(account: str, role_arn: str, action: str) -> bool:
    """Whether an identity policy of the role allows `action` (actions only; the local cloud
    asks just whether Lambda may recreate a function's deleted log group)."""
    import fnmatch

    from moto.iam.models import iam_backends

    try:
        role = iam_backends[account]["global"].get_role(str(role_arn).rsplit("/", 1)[-1])
    except Exception:  # noqa: BLE001 - a role that is gone allows nothing
        return False
    documents = list(role.policies.values()) + [
        version.document
        for policy in role.managed_policies.values()
        for version in policy.policy_version_list
        if version.is_default
    ]
    for document in documents:
        try:
            statements = json.loads(document).get("Statement", [])
        except (TypeError, ValueError):
            continue
        for statement in statements if isinstance(statements, list) else [statements]:
            actions = statement.get("Action", [])
            actions = [actions] if isinstance(actions, str) else actions
            if statement.get("Effect") == "Allow" and any(
                fnmatch.fnmatchcase(action.lower(), str(a).lower()) for a in actions
            ):
                return True
    return False
