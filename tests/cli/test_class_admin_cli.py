"""gdlab class --admin-account through the CLI against a real local cloud holding an
organization: three student accounts in two regions with a GuardDuty and Security Hub
administrator pass end to end, the administrator's view verified in every lab, while a target
whose role cannot be assumed is skipped; nothing is left in any account or region, nor in the
organization's settings. A class set up with an administrator is verified, then torn down
from another machine: its labs found by tag, its administrator's changes by the journal kept
in the administrator's buckets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli.test_class import REGIONS, leftovers, members
from lab.test_class_admin import organization_changes

pytestmark = pytest.mark.slow


def organization_left(cloud, admin: str) -> dict:
    """What the organization still says about the class's administrator, asked of the
    management account and of the administrator itself, region by region."""
    from gdlab.lab import accounts

    credentials = accounts.assume(cloud, admin, "OrganizationAccountAccessRole", "inventory")
    found = {}
    for region in REGIONS:
        managing = accounts.reach(cloud, cloud.account, region, None)
        admins = managing.client("guardduty").list_organization_admin_accounts()[
            "AdminAccounts"]
        hub_admins = managing.client("securityhub").list_organization_admin_accounts()[
            "AdminAccounts"]
        hub = accounts.reach(cloud, admin, region, credentials).client("securityhub")
        try:
            aggregators = hub.list_finding_aggregators()["FindingAggregators"]
        except hub.exceptions.InvalidAccessException:  # Security Hub is off there again
            aggregators = []
        if admins or hub_admins or aggregators:
            found[region] = {"guardduty": admins, "securityhub": hub_admins,
                             "aggregators": aggregators}
    return {**found, **organization_changes(cloud)}


def test_a_class_with_an_administrator_passes_its_view_and_leaves_nothing(gdlab, cloud):
    *students, admin = members(gdlab, 4)
    code, out, err = gdlab("class", "run", "sec-201", "--accounts",
                           ",".join([*students, "999999999999"]), "--regions",
                           ",".join(REGIONS), "--admin-account", admin, "--json")
    assert code == 1, err  # the unreachable target fails the class, and only it
    found = json.loads(out)
    assert found["administrator"] == {"account": admin, "home": REGIONS[0], "standing": []}
    targets = {(t["account"], t["region"]): t for t in found["targets"]}
    for region in REGIONS:
        skipped = targets.pop(("999999999999", region))
        assert skipped["status"] == "skipped" and "cannot assume" in skipped["error"]
    assert set(targets) == {(a, r) for a in students for r in REGIONS}
    for (account, region), target in targets.items():
        verdict = (target.get("report") or {}).get("verify") or {}
        checks = {c["name"]: c for c in verdict.get("checks", [])}
        if target["status"] != "passed":
            pytest.fail(f"{account}/{region} {target['status']}: {target['error']}; "
                        + json.dumps([c for c in checks.values() if c["status"] != "pass"]))
        assert checks["administrator-guardduty"]["status"] == "pass"
        assert f"of member {account} in {region}" in checks["administrator-guardduty"][
            "evidence"]
        home = checks["home-securityhub"]
        assert home["status"] == "pass" and f"in {REGIONS[0]} sees it from {region}" in home[
            "evidence"]
        # The finding names the administrator's list: a member cannot hold its own.
        assert "list gdlab-class-sec-201" in checks["guardduty-finding"]["evidence"]
    for account in [*students, admin]:
        for region in REGIONS:
            assert leftovers(cloud, account, region) == {}, (account, region)
    assert organization_left(cloud, admin) == {}


def test_a_class_set_up_with_an_administrator_is_verified_then_torn_down_from_elsewhere(
        gdlab, cloud):
    home = Path(os.environ["GDLAB_HOME"])
    *students, admin = members(gdlab, 2)  # one student in two regions
    code, out, err = gdlab("class", "setup", "sec-202", "--organization", "--regions",
                           ",".join(REGIONS), "--admin-account", admin, "--json")
    assert code == 0, err
    setup = json.loads(out)
    assert {t["account"] for t in setup["targets"]} == set(students)  # not the administrator
    assert setup["administrator"]["standing"]  # its changes stand with the labs
    code, out, _ = gdlab("class", "status", "sec-202")
    assert code == 0 and f"administrator {admin} (home {REGIONS[0]}): " in out
    assert "change(s) of the class standing" in out
    # The administrator holds one list per region; the students hold none.
    assert set(leftovers(cloud, admin, REGIONS[1])) >= {"detector", "threat-intel-set",
                                                        "securityhub", "bucket"}
    assert "threat-intel-set" not in leftovers(cloud, students[0], REGIONS[0])
    # Nobody has triggered the labs: a finding is there only if a lab's own timer pinged.
    # Whenever a member has its finding, the administrator sees it too.
    code, out, err = gdlab("class", "verify", "sec-202", "--json")
    assert code in (0, 1), err
    for target in json.loads(out)["targets"]:
        checks = {c["name"]: c["status"] for c in target["report"]["checks"]}
        assert {"administrator-guardduty", "home-securityhub"} <= set(checks)
        if checks["guardduty-finding"] == "pass":
            assert checks["administrator-guardduty"] == checks["home-securityhub"] == "pass"
    code, _, err = gdlab("class", "run", "sec-202", "--organization", "--admin-account", admin)
    assert code == 2 and "still has" in err  # its labs and its administrator's changes stand
    # Another class would share the administrator unknowingly: refused before any change.
    code, out, err = gdlab("class", "run", "sec-212", "--organization", "--regions",
                           REGIONS[0], "--admin-account", admin, "--json")
    assert code == 1 and "Traceback" not in err
    assert (f"class sec-212: setting up the administrator {admin} failed: administrator "
            f"{admin} still serves class sec-202") in err
    assert {t["status"] for t in json.loads(out)["targets"]} == {"failed"}
    assert json.loads(out)["administrator"]["standing"] == []
    code, out, _ = gdlab("class", "status", "sec-212")
    assert code == 0 and "failed" in out and "pending" not in out
    # The machine that set it up is gone: no class record, no lab state. The labs are found
    # by tag, the administrator's changes by the journal in its buckets.
    for path in [*(home / "classes").glob("sec-202.*"),
                 *(home / "labs" / f"{t['lab']}.json" for t in setup["targets"])]:
        path.unlink(missing_ok=True)
    code, out, err = gdlab("class", "teardown", "sec-202", "--organization", "--regions",
                           ",".join(REGIONS), "--admin-account", admin, "--yes", "--json")
    assert code == 0, err
    assert "change(s) of administrator" in err
    torn = json.loads(out)
    assert torn["administrator"]["standing"] == []
    assert {t["lab"] for t in torn["targets"]} == {t["lab"] for t in setup["targets"]}
    for account in [*students, admin]:
        for region in REGIONS:
            assert leftovers(cloud, account, region) == {}, (account, region)
    assert organization_left(cloud, admin) == {}
    assert not (home / "classes" / "sec-202.json").exists()


def test_a_signal_while_the_administrator_is_set_up_interrupts_every_target(
        gdlab, monkeypatch):
    import signal

    from gdlab.lab.class_admin import Administrator

    *students, admin = members(gdlab, 2)

    def signalled(self, cancel):  # type: ignore[no-untyped-def]
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs in this (the main) thread
        assert cancel.wait(5)  # prepare stops between its calls once cancel is set

    monkeypatch.setattr(Administrator, "prepare", signalled)
    code, out, err = gdlab("class", "run", "sec-213", "--accounts", ",".join(students),
                           "--regions", REGIONS[0], "--admin-account", admin, "--json")
    assert code == 130, err
    targets = json.loads(out)["targets"]
    assert [(t["status"], t["error"]) for t in targets] == [
        ("interrupted", "interrupted while the administrator was set up")]


def test_an_administrator_is_named_by_its_account_and_runs_no_lab(gdlab):
    code, _, err = gdlab("class", "run", "sec-203", "--accounts", "111111111111",
                         "--admin-account", "12345")
    assert code == 2 and "--admin-account '12345'" in err and "Traceback" not in err
    code, _, err = gdlab("class", "run", "sec-203", "--accounts", "111111111111,222222222222",
                         "--admin-account", "222222222222")
    assert code == 2 and "administrator, and runs no lab" in err
