"""The credential-exfiltration scenario end to end through the CLI against a real local cloud:
the run passes, every command one by one, the stolen secret never reaches gdlab's output or
home, teardown leaves nothing (the revoking policy included), and verify fails what would
fail on AWS: a rule with the finding type's old name, a revocation undone."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from lab.conftest import inventory

from gdlab.cloud import Cloud
from gdlab.lab import credential_theft

pytestmark = pytest.mark.slow

SCENARIO = "credential-exfiltration"
TYPE = "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS"
# The name GuardDuty used before the rename; the workshop's rule kept it and fell silent.
OLD_TYPE = "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration"
CHECKS = ["rule-matches", "guardduty-finding", "securityhub-finding", "responder-ran",
          "sessions-revoked", "stolen-session-refused", "emails-sent"]


def statuses(verify: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in verify["checks"]}


def created(state: dict[str, Any], key: str) -> str:
    return next(r["id"] for r in state["resources"] if r["key"] == key
                and r["status"] == "created")


def secret_of(cloud: Cloud, instance_id: str) -> str:
    """The stolen secret as the attack left it: in SSM's output of the read command."""
    ssm = cloud.client("ssm")
    commands = ssm.list_commands(InstanceId=instance_id)["Commands"]
    reads = [c for c in commands if "read the instance role's credentials" in c["Comment"]]
    assert reads, commands
    output = ssm.get_command_invocation(CommandId=reads[-1]["CommandId"],
                                        InstanceId=instance_id)["StandardOutputContent"]
    loot = credential_theft.parse_loot(output, reads[-1]["CommandId"])
    assert loot is not None, output
    return loot.secret_access_key


def home_text(home: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in home.rglob("*")
                     if p.is_file() and not p.is_symlink())


def test_run_passes_every_check_and_leaves_nothing(gdlab, cloud):
    code, out, err = gdlab("run", "--scenario", SCENARIO, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["passed"] is True
    assert list(statuses(report["verify"])) == CHECKS
    assert set(statuses(report["verify"]).values()) == {"pass"}, report["verify"]
    trigger = report["trigger"]
    assert trigger["set_off"] and trigger["role"].endswith("-instance")
    assert trigger["access_key_id"].startswith("ASIA") and trigger["instances_seen"] >= 2
    assert trigger["identity_arn"].endswith(f"/{trigger['instance_id']}")
    hops = {h["key"]: h["seen"] for h in report["watch"]["hops"]}
    assert hops == {"threat-list": True, "guardduty": True, "securityhub": True,
                    "responder": True, "revoked": True, "emails": True}
    subjects = [m["subject"] for m in report["emails"]]
    assert "GuardDuty Remediation" in subjects and len(subjects) == 2
    assert inventory(cloud) == {}


def test_each_command_one_by_one_and_the_secret_stays_out_of_gdlab(gdlab, cloud):
    gdlab_home = Path(os.environ["GDLAB_HOME"])
    outputs: list[str] = []

    def step(*args: str) -> dict[str, Any]:
        code, out, err = gdlab(*args)
        outputs.extend([out, err])
        assert code == 0, err
        return json.loads(out)

    state = step("setup", "--scenario", SCENARIO, "--json")
    lab = state["lab"]
    assert "sg-forensic" not in {r["key"] for r in state["resources"]}
    assert "flow-log" not in {r["key"] for r in state["resources"]}
    triggered = step("trigger", "--json")
    assert triggered["set_off"] is True and triggered["detail"] == "Success"
    code, out, err = gdlab("trigger")  # the human view, too
    outputs.extend([out, err])
    # A second theft gets the same session (IMDS hands it out until it nears expiry), which
    # the revocation now refuses; GetCallerIdentity still answers, as no policy denies it.
    flat = " ".join(out.split())
    assert code == 0 and "(UnauthorizedOperation)" in flat and "explicit deny" in flat, out
    assert triggered["access_key_id"] in flat
    watched = step("watch", "--json")
    assert watched["complete"] is True
    verdict = step("verify", "--json")
    assert verdict["passed"] is True and set(statuses(verdict).values()) == {"pass"}

    secret = secret_of(cloud, created(state, "instance-compromised"))
    assert all(secret not in text for text in outputs)
    assert secret not in home_text(gdlab_home)
    role = created(state, "instance-role")
    assert "AWSRevokeOlderSessions" in cloud.client("iam").list_role_policies(
        RoleName=role)["PolicyNames"]

    step("teardown", "--json")
    assert inventory(cloud, lab) == {}
    assert secret not in home_text(gdlab_home)


def test_verify_fails_a_rule_still_on_the_old_finding_type(gdlab, cloud):
    code, out, err = gdlab("setup", "--scenario", SCENARIO, "--json")
    assert code == 0, err
    state = json.loads(out)
    rule = created(state, "rule")
    events = cloud.client("events")
    events.put_rule(Name=rule, EventPattern=json.dumps({
        "source": ["aws.guardduty"], "detail": {"type": [OLD_TYPE]}}))

    code, out, err = gdlab("verify", "--json")
    assert code == 1, err
    check = next(c for c in json.loads(out)["checks"] if c["name"] == "rule-matches")
    assert check["status"] == "fail" and TYPE in check["evidence"] and rule in check["evidence"]
    code, _out, err = gdlab("teardown")
    assert code == 0, err
    assert inventory(cloud, state["lab"]) == {}


def test_verify_fails_when_the_revocation_is_undone(gdlab, cloud):
    code, out, err = gdlab("setup", "--scenario", SCENARIO, "--json")
    assert code == 0, err
    state = json.loads(out)
    for args in (("trigger",), ("watch",)):
        code, _out, err = gdlab(*args)
        assert code == 0, err
    cloud.client("iam").delete_role_policy(RoleName=created(state, "instance-role"),
                                           PolicyName="AWSRevokeOlderSessions")

    code, out, err = gdlab("verify", "--json")
    assert code == 1, err
    found = statuses(json.loads(out))
    assert found["sessions-revoked"] == "fail"
    assert found["stolen-session-refused"] == "fail"
    assert found["responder-ran"] == "pass"  # it did its part: the verdict names what broke
    code, _out, err = gdlab("teardown")
    assert code == 0, err


def test_a_lost_lab_is_found_by_its_tags_and_torn_down_whole(gdlab, cloud):
    code, out, err = gdlab("setup", "--scenario", SCENARIO, "--json")
    assert code == 0, err
    lab = json.loads(out)["lab"]
    code, _out, err = gdlab("trigger")  # the revoking policy is on the role, too
    assert code == 0, err
    state_file = Path(os.environ["GDLAB_HOME"]) / "labs" / f"{lab}.json"
    assert state_file.is_file()
    state_file.unlink()

    code, out, err = gdlab("teardown", "--lab", lab, "--yes")
    assert code == 0, err
    assert inventory(cloud, lab) == {}
