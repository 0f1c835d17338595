"""Installs every gdlab addition to moto into this process (the server process, or a test
process using mock_aws). Idempotent."""

from __future__ import annotations

import importlib

# Each module has an install() that patches or registers what it adds. Order matters only
# where one addition builds on another; keep the backends first.
MODULES = [
    "gdlab.local.guardduty",
    "gdlab.local.securityhub",
    "gdlab.local.ec2",
    "gdlab.local.iam",
    "gdlab.local.organizations",  # after iam: the roles it makes attach AWS policies
    "gdlab.local.outbox",
    "gdlab.local.lambda_runner",
    "gdlab.local.delivery",
    "gdlab.local.events",
    "gdlab.local.asff",
    "gdlab.local.traffic",
    "gdlab.local.flowlogs",
    "gdlab.local.ssm",
    "gdlab.local.enforce",  # last: authorization runs before every other addition's handler
    "gdlab.local.trail",  # after enforce: its wrapper sees enforce's refusals
]


def install() -> None:
    from gdlab.local import patches

    def each() -> None:
        for name in MODULES:  # each install() is idempotent through gdlab.local.patches
            importlib.import_module(name).install()

    patches.once("modules", "every gdlab addition, in MODULES' order", each)
