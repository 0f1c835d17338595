"""The compromised-iam-credentials scenario end to end through the CLI against a real local
cloud: the run passes, the key's secret never reaches gdlab's output or home, teardown leaves
nothing (user, key and its parameter included), and verify fails a key made Active again."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from lab.conftest import every_finding_answered, inventory

pytestmark = pytest.mark.slow

SCENARIO = "compromised-iam-credentials"
CHECKS = ["rule-matches", "guardduty-finding", "securityhub-finding", "responder-ran",
          "key-inactive", "user-denied", "key-refused", "emails-sent"]


def statuses(verify: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in verify["checks"]}


def created(state: dict[str, Any], key: str) -> str:
    return next(r["id"] for r in state["resources"] if r["key"] == key
                and r["status"] == "created")


def test_run_passes_every_check_and_leaves_nothing(gdlab, cloud):
    code, out, err = gdlab("run", "--scenario", SCENARIO, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["passed"] is True
    assert list(statuses(report["verify"])) == CHECKS
    assert set(statuses(report["verify"]).values()) == {"pass"}, report["verify"]
    assert report["trigger"]["set_off"] and report["trigger"]["access_key_id"].startswith("AKIA")
    hops = {h["key"]: h["seen"] for h in report["watch"]["hops"]}
    assert hops == {"threat-list": True, "guardduty": True, "securityhub": True,
                    "responder": True, "key-disabled": True, "emails": True}
    assert inventory(cloud) == {}


def test_the_secret_stays_out_of_gdlab_and_a_reactivated_key_fails_verify(gdlab, cloud):
    home = Path(os.environ["GDLAB_HOME"])
    outputs: list[str] = []

    def step(*args: str, expect: int = 0) -> str:
        code, out, err = gdlab(*args)
        outputs.extend([out, err])
        assert code == expect, err
        return out

    state = json.loads(step("setup", "--scenario", SCENARIO, "--json"))
    ssm = cloud.client("ssm")
    parameter = f"/gdlab/{state['lab']}/access-key"
    secret = json.loads(ssm.get_parameter(Name=parameter, WithDecryption=True)
                        ["Parameter"]["Value"])["SecretAccessKey"]
    assert ssm.get_parameter(Name=parameter)["Parameter"]["Type"] == "SecureString"
    step("trigger")
    step("trigger", "--json")
    step("watch")
    assert json.loads(step("verify", "--json"))["passed"] is True
    # Every finding's run finishes before the key is turned back on, or it would turn it off.
    every_finding_answered(cloud, created(state, "function"), at_least=1)

    user, key = created(state, "iam-user"), created(state, "access-key")
    cloud.client("iam").update_access_key(UserName=user, AccessKeyId=key, Status="Active")
    cloud.client("iam").detach_user_policy(UserName=user,
                                           PolicyArn="arn:aws:iam::aws:policy/AWSDenyAll")
    found = statuses(json.loads(step("verify", "--json", expect=1)))
    assert found["key-inactive"] == found["user-denied"] == found["key-refused"] == "fail"

    text = "\n".join(p.read_text(errors="replace") for p in home.rglob("*")
                     if p.is_file() and not p.is_symlink())
    assert secret not in text and all(secret not in o for o in outputs)
    step("teardown")
    assert inventory(cloud, state["lab"]) == {}


def test_a_lost_lab_is_found_by_its_tags_and_torn_down_whole(gdlab, cloud):
    code, out, err = gdlab("setup", "--scenario", SCENARIO, "--json")
    assert code == 0, err
    state = json.loads(out)
    lab = state["lab"]
    # As a teardown cut short between the key and its parameter leaves it: the key gone, the
    # parameter (with the secret) still there. The sweep finds it by its name.
    cloud.client("iam").delete_access_key(UserName=created(state, "iam-user"),
                                          AccessKeyId=created(state, "access-key"))
    (Path(os.environ["GDLAB_HOME"]) / "labs" / f"{lab}.json").unlink()
    code, _out, err = gdlab("teardown", "--lab", lab, "--yes")
    assert code == 0, err
    assert inventory(cloud, lab) == {}
