"""IAM correction: AWS's managed policies exist in every account. moto loads them only
when told to (slowly, all ~1,000); the local cloud loads the few the lab attaches."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

# The AWS-managed policies gdlab attaches to lab roles (AdministratorAccess: the role
# Organizations makes in the accounts it creates, local/organizations.py).
NEEDED = ("AmazonSSMManagedInstanceCore", "AWSDenyAll", "AdministratorAccess")


@cache
def _needed_policy_data() -> dict[str, Any]:
    # moto's bundled document is megabytes of JSON: parse it once, keep what the lab uses.
    from moto.iam import models

    data = json.loads(models.aws_managed_policies_data)
    return {name: data[name] for name in NEEDED}


def install() -> None:
    from moto.iam import models

    from gdlab.local import patches

    original = models.IAMBackend._init_aws_policies

    def _init_aws_policies(self: Any) -> list[Any]:
        loaded = original(self)
        if loaded:
            return loaded
        return [
            models.AWSManagedPolicy.from_data(name, self.account_id, self.region_name, data)
            for name, data in _needed_policy_data().items()
        ]

    patches.patch(models.IAMBackend, "_init_aws_policies", _init_aws_policies,
                  "AWS's managed policies the lab attaches exist in every account")
