"""gdlab class through the CLI against a real local cloud holding an organization: a class of
three member accounts in two regions runs end to end and leaves nothing in any of them; a
target whose role cannot be assumed is skipped in one line while the others pass; a class set
up and left standing is verified and torn down, also by its tag alone when its records are
gone; a class's lab is not touched with another account's credentials."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from lab.conftest import inventory

from gdlab.lab import accounts

pytestmark = pytest.mark.slow

REGIONS = ("us-east-1", "eu-west-1")


def members(gdlab, count: int) -> list[str]:
    code, out, err = gdlab("local", "org", "create", "--accounts", str(count), "--json")
    assert code == 0, err
    found = json.loads(out)
    assert len(found["created"]) == count
    return [a["Id"] for a in found["created"]]


def leftovers(cloud, account: str, region: str) -> dict:
    """An inventory of one account and region through the organization's role, owing
    nothing to gdlab's state."""
    credentials = accounts.assume(cloud, account, "OrganizationAccountAccessRole", "inventory")
    return inventory(accounts.reach(cloud, account, region, credentials))


def test_local_org_create_adds_members_with_their_access_role(gdlab, cloud):
    made = members(gdlab, 2)
    code, out, _ = gdlab("local", "org", "create", "--accounts", "1")
    assert code == 0 and "3 member account(s)" in out
    for account in made:
        reached = accounts.reach(cloud, account, "us-east-1", accounts.assume(
            cloud, account, "OrganizationAccountAccessRole", "check"))
        assert reached.account == account
    code, _, err = gdlab("--target", "aws", "local", "org", "create")
    assert code == 2 and "local cloud only" in err and "Traceback" not in err


def test_a_class_of_three_accounts_in_two_regions_passes_and_leaves_nothing(gdlab, cloud,
                                                                             tmp_path: Path):
    made = members(gdlab, 3)
    junit = tmp_path / "class.xml"
    code, out, err = gdlab("class", "run", "sec-101", "--organization", "--regions",
                           ",".join(REGIONS), "--json", "--junit", str(junit))
    assert code == 0, err
    found = json.loads(out)
    assert found["passed"] is True and found["class"] == "sec-101"
    targets = {(t["account"], t["region"]): t for t in found["targets"]}
    assert set(targets) == {(a, r) for a in made for r in REGIONS}
    assert len({t["lab"] for t in targets.values()}) == 6
    for (account, region), target in targets.items():
        assert target["status"] == "passed", target
        assert target["report"]["region"] == region
        assert "fail" not in {c["status"] for c in target["report"]["verify"]["checks"]}
        assert leftovers(cloud, account, region) == {}
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert len(suites) == 6 and all(s.get("failures") == "0" for s in suites)
    assert inventory(cloud) == {}  # the management account was never a target
    code, out, _ = gdlab("class", "status", "sec-101", "--json")
    assert code == 0 and {t["status"] for t in json.loads(out)["targets"]} == {"passed"}


def test_a_target_whose_role_cannot_be_assumed_is_skipped_and_the_others_pass(gdlab, cloud):
    [member] = members(gdlab, 1)
    code, out, err = gdlab("class", "run", "mixed", "--accounts", f"{member},999999999999",
                           "--regions", "us-east-1", "--json")
    assert code == 1, err
    found = {t["account"]: t for t in json.loads(out)["targets"]}
    assert found[member]["status"] == "passed"
    skipped = found["999999999999"]
    assert skipped["status"] == "skipped" and skipped["lab"] is None
    assert "cannot assume OrganizationAccountAccessRole" in skipped["error"]
    assert "AccessDenied" in skipped["error"] and "\n" not in skipped["error"]
    assert leftovers(cloud, member, "us-east-1") == {}
    assert "Traceback" not in err


def test_a_standing_class_is_verified_then_torn_down_even_by_tag_alone(gdlab, cloud):
    home = Path(os.environ["GDLAB_HOME"])
    made = members(gdlab, 2)
    code, out, err = gdlab("class", "setup", "lab-day", "--organization", "--json")
    assert code == 0, err
    labs = {t["account"]: t["lab"] for t in json.loads(out)["targets"]}
    assert set(labs) == set(made)
    standing = leftovers(cloud, made[0], "us-east-1")
    assert standing["instance"] and standing["function"]
    ec2 = accounts.reach(cloud, made[0], "us-east-1", accounts.assume(
        cloud, made[0], "OrganizationAccountAccessRole", "check")).client("ec2")
    tags = {t["Key"]: t["Value"] for v in ec2.describe_vpcs()["Vpcs"] for t in v.get("Tags", [])}
    assert tags["gdlab:class"] == "lab-day" and tags["gdlab:lab"] == labs[made[0]]

    # Nothing has been triggered yet: verify says so for every target, and fails.
    code, out, err = gdlab("class", "verify", "lab-day", "--json")
    assert code == 1, err
    assert {t["status"] for t in json.loads(out)["targets"]} == {"failed"}

    # Another account's credentials never touch a class's lab (it would find nothing there
    # and forget it): one line that names the class.
    code, _, err = gdlab("teardown", "--lab", labs[made[0]], "--yes")
    assert code == 1 and "gdlab class status|verify|teardown lab-day" in err
    assert leftovers(cloud, made[0], "us-east-1")["instance"]

    # The machine that set it up is gone: no class record, no lab state.
    for path in [*(home / "classes").glob("lab-day.*"),
                 *(home / "labs" / f"{lab}.json" for lab in labs.values())]:
        path.unlink(missing_ok=True)
    code, out, err = gdlab("class", "teardown", "lab-day", "--organization", "--json")
    assert code == 0, err
    assert {t["lab"] for t in json.loads(out)["targets"]} == set(labs.values())
    for account in made:
        assert leftovers(cloud, account, "us-east-1") == {}
    code, _, err = gdlab("class", "status", "lab-day")
    assert code == 1 and "no class 'lab-day'" in err


@pytest.mark.parametrize("args, says, exit_code", [
    (("class", "run", "Bad_Name", "--accounts", "111111111111"), "invalid class name", 2),
    (("class", "run", "ok-name", "--accounts", "12345"), "is not an AWS account id", 2),
    (("class", "run", "ok-name", "--accounts", "111111111111", "--regions", "mars-1"),
     "is not an AWS region", 2),
    (("class", "run", "ok-name"), "a class needs its accounts", 2),
    (("class", "run", "ok-name", "--accounts", "111111111111", "--organization"),
     "both say which accounts", 2),
    (("class", "run", "ok-name", "--ou", "ou-ab12-34cd5678", "--accounts", "111111111111"),
     "--ou narrows --organization", 2),
    (("class", "run", "ok-name", "--organization"), "is not in an organization", 1),
    (("class", "run", "ok-name", "--accounts", "111111111111", "--role", "no/slash"),
     "invalid role name", 2),
    (("class", "verify", "never-made"), "no class 'never-made'", 1),
])
def test_bad_class_input_is_one_line(gdlab, args, says, exit_code):
    code, _, err = gdlab(*args)
    assert says in err, err
    assert code == exit_code
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_lab_the_record_lost_is_found_by_its_own_state(gdlab, cloud):
    """A process killed between opening a lab and writing the class's record: the lab's own
    state names the class, and the class's teardown finds it there."""
    [member] = members(gdlab, 1)
    code, out, err = gdlab("class", "setup", "cut-off", "--accounts", member, "--json")
    assert code == 0, err
    record_path = Path(os.environ["GDLAB_HOME"], "classes", "cut-off.json")
    record = json.loads(record_path.read_text())
    for lab in record["labs"]:
        lab["lab"], lab["status"] = None, "running"
    record_path.write_text(json.dumps(record))
    assert leftovers(cloud, member, "us-east-1")["instance"]
    code, out, err = gdlab("class", "teardown", "cut-off", "--json")
    assert code == 0, err
    assert leftovers(cloud, member, "us-east-1") == {}


def test_a_damaged_record_is_listed_kept_and_swept_past(gdlab):
    classes = Path(os.environ["GDLAB_HOME"], "classes")
    classes.mkdir(mode=0o700, parents=True, exist_ok=True)
    (classes / "broken.json").write_text('{"name": "x"')
    code, out, _ = gdlab("class", "status")
    assert code == 0 and "broken: class record" in out and "damaged" in out
    code, _, err = gdlab("class", "teardown", "broken")
    assert code == 1 and "damaged" in err and len(err.strip().splitlines()) == 1
    # With targets the damaged record is kept beside and the class's labs are looked for by
    # tag; an account that cannot be searched is never called clean.
    code, out, err = gdlab("class", "teardown", "broken", "--accounts", "999999999999",
                           "--json")
    assert code == 1 and "kept as" in err
    [target] = json.loads(out)["targets"]
    assert target["status"] == "left" and target["error"].startswith("not searched:")
    assert [p.name for p in classes.glob("broken.json.damaged-*")]
