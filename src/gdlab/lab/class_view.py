"""What a lab of a class with a GuardDuty administrator must also show: the administrator
sees the member's finding in GuardDuty (GuardDuty sends a member's findings to its
administrator too), and one GetFindings in the class's home region shows it in Security Hub
(the administrator sees its members' findings, and the aggregator brings every linked
region's to the home region)."""

from __future__ import annotations

import time
from typing import Any

from gdlab.lab import observe
from gdlab.lab.steps import LabContext
from gdlab.lab.verify import Check, Properties

ADMIN_PROPERTY = "administrator-view"


def administrator_proof(ctx: LabContext) -> tuple[list[Check], Properties]:
    """The administrator's checks for a member's lab, and the property they prove; none for
    a lab with its own threat list. Outside its class's run (no administrator at hand) the
    view cannot be read: said, and not required."""
    from gdlab.lab import class_admin

    res = ctx.state.live("threat-intel-set")
    if not res or not res.attrs.get("admin_account"):
        return [], {}
    administrator = class_admin.serving(ctx.state.options.get("class"))
    if administrator is None:
        return [Check("administrator-guardduty", "The administrator sees the finding",
                      "inconclusive", f"the administrator {res.attrs['admin_account']} is "
                      f"read by gdlab class verify {ctx.state.options.get('class')}")], {}
    finding = observe.guardduty_finding(ctx)
    checks = [check_administrator_guardduty(ctx, administrator, finding),
              check_home_securityhub(ctx, administrator, finding)]
    return checks, {ADMIN_PROPERTY: ("administrator-guardduty", "home-securityhub")}


def check_administrator_guardduty(ctx: LabContext, administrator: Any,
                                  finding: dict[str, Any] | None) -> Check:
    title = "The administrator sees the finding in GuardDuty"
    if finding is None:
        return Check("administrator-guardduty", title, "fail",
                     "the member has no finding to look for")
    gd = administrator.cloud(ctx.cloud.region).client("guardduty")
    detectors = gd.list_detectors()["DetectorIds"]
    seen = gd.get_findings(DetectorId=detectors[0], FindingIds=[finding["Id"]])[
        "Findings"] if detectors else []
    mine = [f for f in seen if f.get("AccountId") == ctx.cloud.account]
    if not mine:
        return Check("administrator-guardduty", title, "fail",
                     f"administrator {administrator.account} has no finding {finding['Id']} "
                     f"of {ctx.cloud.account} in {ctx.cloud.region}: is the account its "
                     "member (aws guardduty list-members)?")
    return Check("administrator-guardduty", title, "pass",
                 f"administrator {administrator.account} sees {mine[0]['Id']} "
                 f"({mine[0].get('Type')}) of member {ctx.cloud.account} in "
                 f"{ctx.cloud.region}")


def check_home_securityhub(ctx: LabContext, administrator: Any,
                           finding: dict[str, Any] | None, wait_seconds: float | None = None
                           ) -> Check:
    """Security Hub imports a finding in minutes and aggregates it a few minutes later on
    AWS: the home region is asked again for a while before it counts as missing."""
    title = "One GetFindings in the home region shows it"
    home = administrator.home
    if finding is None:
        return Check("home-securityhub", title, "fail", "the member has no finding to look for")
    hub = administrator.cloud(home).client("securityhub")
    filters = {"Id": [{"Value": finding["Arn"], "Comparison": "EQUALS"}],
               "AwsAccountId": [{"Value": ctx.cloud.account, "Comparison": "EQUALS"}]}
    wait = wait_seconds if wait_seconds is not None else (
        10.0 if ctx.cloud.is_local else 600.0)
    deadline = time.monotonic() + wait
    while True:
        found = hub.get_findings(Filters=filters, MaxResults=10)["Findings"]
        if found or time.monotonic() >= deadline:
            break
        time.sleep(2.0 if ctx.cloud.is_local else 15.0)
    if not found:
        return Check("home-securityhub", title, "fail",
                     f"GetFindings of administrator {administrator.account} in {home} has no "
                     f"{finding['Arn']}: is the account its Security Hub member, and "
                     f"{ctx.cloud.region} linked by the aggregator?")
    return Check("home-securityhub", title, "pass",
                 f"administrator {administrator.account} in {home} sees it from "
                 f"{found[0].get('Region', ctx.cloud.region)} (account "
                 f"{found[0].get('AwsAccountId')}, record {found[0].get('RecordState')})")
