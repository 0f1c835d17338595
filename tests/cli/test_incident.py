"""The incident end to end through the CLI against a real local cloud on 127.0.0.1."""

import json

import boto3
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def client(local_server):
    def make(service: str):
        return boto3.client(service, endpoint_url=local_server.endpoint, region_name="us-east-1",
                            **local_server.credentials.boto3_kwargs())

    return make


def checks(out: str) -> dict[str, bool]:
    return {c["name"]: c["passed"] for c in json.loads(out)["checks"]}


def proven(verify: dict) -> None:
    """The verdict as the rule has it: every check passed, except that ping-blocked may be
    inconclusive (isolation cuts the SSM agent too), and the flow log proved the blocking."""
    statuses = {c["name"]: c["status"] for c in verify["checks"]}
    assert verify["passed"] is True, verify
    assert statuses.pop("ping-blocked") in ("pass", "inconclusive")
    assert set(statuses.values()) == {"pass"}, statuses
    assert all(p["proven"] for p in verify["properties"])


def setup_lab(gdlab) -> dict:
    code, out, err = gdlab("setup", "--json")
    assert code == 0, err
    return json.loads(out)


def resource(state: dict, key: str) -> str:
    return next(r["id"] for r in state["resources"] if r["key"] == key and r["status"] == "created")


def test_run_passes(gdlab, client):
    code, out, err = gdlab("run", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["passed"] is True
    assert [s["step"] for s in report["steps"]] == ["setup", "trigger", "watch", "verify",
                                                    "teardown"]
    proven(report["verify"])
    assert report["api_calls"] > 0
    subjects = sorted(m.get("subject") or "" for m in report["emails"])
    assert "GuardDuty Remediation" in subjects
    finding_mail = next(m for m in report["emails"] if m.get("subject") != "GuardDuty Remediation")
    assert report["watch"]["finding_id"] in finding_mail["body"]
    # teardown left nothing of the lab
    assert client("ec2").describe_vpcs(
        Filters=[{"Name": "tag:gdlab:lab", "Values": [report["lab"]]}]
    )["Vpcs"] == []
    assert client("lambda").list_functions()["Functions"] == []


def test_each_command_one_by_one(gdlab, client, tmp_path):
    state = setup_lab(gdlab)
    assert state["phase"] == "ready"
    code, out, err = gdlab("trigger", "--json")
    assert code == 0, err
    ping = json.loads(out)
    # the instance's own timer may have set the incident off first on a slow machine
    assert ping["delivered"] is True or ping["already_isolated"] is True
    code, out, err = gdlab("watch", "--json", "--timeout", "30s")
    assert code == 0, err
    watched = json.loads(out)
    assert watched["complete"] and all(h["seen"] for h in watched["hops"])
    junit = tmp_path / "verify.xml"
    code, out, err = gdlab("verify", "--json", "--junit", str(junit))
    assert code == 0, err
    proven(json.loads(out))
    assert len(checks(out)) == 9
    xml = junit.read_text()
    assert 'tests="10"' in xml and 'failures="0"' in xml  # 9 checks and the verdict
    code, out, _ = gdlab("status", "--json")
    status = json.loads(out)
    assert status["phase"] == "verified"
    assert {"lab", "target", "region", "phase", "resources"} <= set(status)
    assert all({"type", "id", "ownership"} <= set(r) for r in status["resources"])
    code, out, _ = gdlab("mail", "--json")
    assert code == 0
    assert {m["subject"] for m in json.loads(out)} >= {"GuardDuty Remediation"}
    code, out, err = gdlab("teardown")
    assert code == 0, err
    assert client("ec2").describe_instances(
        Filters=[{"Name": "tag:gdlab:lab", "Values": [state["lab"]]},
                 {"Name": "instance-state-name", "Values": ["running"]}]
    )["Reservations"] == []
    code, out, err = gdlab("teardown")
    assert code == 0, err  # a second teardown is a no-op


def break_rule(client, state):
    client("events").disable_rule(Name=resource(state, "rule"))


def delete_function(client, state):
    client("lambda").delete_function(FunctionName=resource(state, "function"))


def delete_threat_list(client, state):
    client("guardduty").delete_threat_intel_set(
        DetectorId=resource(state, "detector"),
        ThreatIntelSetId=resource(state, "threat-intel-set"),
    )


@pytest.mark.parametrize(
    "breakage, failing, passing",
    [
        (break_rule, {"responder-ran", "enis-isolated", "emails-sent", "ping-blocked"},
         {"guardduty-finding", "securityhub-finding", "forensic-group-empty"}),
        (delete_function, {"responder-ran", "enis-isolated", "emails-sent", "ping-blocked"},
         {"guardduty-finding", "securityhub-finding", "forensic-group-empty"}),
        (delete_threat_list, {"guardduty-finding", "securityhub-finding", "responder-ran"},
         {"forensic-group-empty"}),
    ],
    ids=["rule-disabled", "lambda-deleted", "threat-list-deleted"],
)
def test_verify_names_what_broke(gdlab, client, breakage, failing, passing):
    state = setup_lab(gdlab)
    breakage(client, state)
    code, _, err = gdlab("trigger")
    if breakage is delete_threat_list:
        # no list, no finding: trigger says so instead of pinging for nothing
        assert code == 1 and "threat list" in err and "DELETED" in err
    else:
        assert code == 0, err
    gdlab("watch", "--timeout", "3s")
    code, out, err = gdlab("verify", "--json")
    assert code == 1
    result = checks(out)
    assert json.loads(out)["passed"] is False
    assert {name for name, ok in result.items() if not ok} >= failing
    assert all(result[name] for name in passing)


def test_verify_fails_when_forensic_group_gains_egress(gdlab, client):
    state = setup_lab(gdlab)
    assert gdlab("trigger")[0] == 0
    assert gdlab("watch", "--timeout", "30s")[0] == 0
    client("ec2").authorize_security_group_egress(
        GroupId=resource(state, "sg-forensic"),
        IpPermissions=[{"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1,
                        "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    code, out, _ = gdlab("verify", "--json")
    assert code == 1
    result = checks(out)
    assert result["forensic-group-empty"] is False
    assert result["ping-blocked"] is False  # the new rule lets the ping through again
    assert result["enis-isolated"] is True
    assert result["flows-rejected"] is False  # the flow log shows the ACCEPTs: a hole


def test_watch_ends_cleanly_on_its_deadline(gdlab):
    setup_lab(gdlab)
    code, out, err = gdlab("watch", "--timeout", "1s")
    assert code == 1
    assert "Traceback" not in out + err
    assert "deadline reached" in out
    assert "GuardDuty usually needs about 5 minutes" in out
    code, out, _ = gdlab("watch", "--timeout", "1s", "--json")
    assert code == 1
    assert json.loads(out)["complete"] is False


def test_run_interrupted_still_tears_down(gdlab, client, monkeypatch):
    """Ctrl-C while watching: the lab is removed all the same, nothing billable stays."""
    from gdlab.lab import watch

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(watch, "watch", interrupted)
    code, out, err = gdlab("run")
    assert code == 130, (out[-500:], err[-500:])
    assert "interrupted" in err, (out[-500:], err[-500:])
    assert client("ec2").describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["running", "pending"]}]
    )["Reservations"] == []
    assert client("lambda").list_functions()["Functions"] == []


def test_a_responder_missing_one_permission_fails_as_on_aws_and_verify_names_it(gdlab, client):
    """IAM is enforced for the responder's role session: without
    ec2:ModifyNetworkInterfaceAttribute it cannot isolate, gets EC2's UnauthorizedOperation,
    and verify says which call was refused."""
    state = setup_lab(gdlab)
    iam = client("iam")
    role = resource(state, "responder-role")
    policy = iam.get_role_policy(RoleName=role, PolicyName="gdlab-responder")["PolicyDocument"]
    kept = [s for s in policy["Statement"] if s["Action"] != "ec2:ModifyNetworkInterfaceAttribute"]
    assert len(kept) == len(policy["Statement"]) - 1
    iam.put_role_policy(RoleName=role, PolicyName="gdlab-responder",
                        PolicyDocument=json.dumps({**policy, "Statement": kept}))
    assert gdlab("trigger")[0] == 0
    gdlab("watch", "--timeout", "5s")
    code, out, _ = gdlab("verify", "--json")
    assert code == 1
    verify = json.loads(out)
    by_name = {c["name"]: c for c in verify["checks"]}
    responder = by_name["responder-ran"]
    assert responder["status"] == "fail"
    assert "UnauthorizedOperation" in responder["evidence"]
    assert "ModifyNetworkInterfaceAttribute" in responder["evidence"]
    assert by_name["enis-isolated"]["status"] == "fail"
    assert by_name["guardduty-finding"]["status"] == "pass"
    gdlab("teardown")
