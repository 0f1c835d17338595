import pytest

from gdlab import __version__
from gdlab.cli import hoist_global_options

COMMANDS = ["scenarios", "labs", "status", "setup", "teardown", "trigger", "watch", "verify",
            "run", "mail", "local", "local start", "local stop", "local status"]


def test_version(run_cli):
    code, out, _ = run_cli("--version")
    assert code == 0 and out.strip() == f"gdlab {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_help_has_an_example(run_cli, command):
    code, out, _ = run_cli(*command.split(), "--help")
    assert code == 0
    assert "Example: gdlab" in out


@pytest.mark.parametrize(
    "given, expected",
    [
        (["setup", "--target", "aws", "--yes"], ["--target", "aws", "setup", "--yes"]),
        (["run", "--region=eu-west-1", "--json"], ["--region=eu-west-1", "run", "--json"]),
        (["verify", "--debug", "--profile", "p"], ["--debug", "--profile", "p", "verify"]),
        (["--target", "local", "status"], ["--target", "local", "status"]),
        (["local", "start", "--port", "4600"], ["local", "start", "--port", "4600"]),
    ],
)
def test_global_options_are_accepted_anywhere(given, expected):
    assert hoist_global_options(given) == expected


def test_scenarios_lists_the_scenarios(run_cli):
    import json

    code, out, _ = run_cli("scenarios", "--json")
    assert code == 0
    exfiltration = "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS"
    listed = json.loads(out)
    assert listed[0] == {
        "name": "compromised-ec2",
        "title": "Compromised EC2 Instance",
        "finding_type": "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom",
        "finding_types": ["UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"],
    }
    by_name = {s["name"]: (s["title"], s["finding_types"]) for s in listed}
    assert by_name == {
        "compromised-ec2": ("Compromised EC2 Instance",
                            ["UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"]),
        "compromised-iam-credentials": ("Compromised IAM Credentials", [
            "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom",
            "Discovery:S3/MaliciousIPCaller.Custom"]),
        "compromised-s3-bucket": ("Compromised S3 Bucket", [
            "Policy:S3/BucketBlockPublicAccessDisabled",
            "Stealth:S3/ServerAccessLoggingDisabled"]),
        "credential-exfiltration": ("IAM Role Credential Exfiltration", [exfiltration]),
    }
    assert all(s["finding_type"] == s["finding_types"][0] for s in listed)
    code, out, _ = run_cli("scenarios")
    assert code == 0 and "compromised-ec2" in out  # the table (names wrap when narrow)


def test_labs_empty(run_cli):
    code, out, _ = run_cli("labs")
    assert code == 0 and "no labs yet" in out


def test_a_closed_pipe_ends_quietly(monkeypatch, capsys):
    """`gdlab ... | head` must not print an error when head stops reading."""
    import io
    import os
    import sys

    from gdlab.cli import main

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone: every write fails with EPIPE
    broken = io.TextIOWrapper(io.FileIO(write_end, "w"), write_through=True)
    monkeypatch.setattr(sys, "stdout", broken)
    monkeypatch.setattr(sys, "argv", ["gdlab", "scenarios", "--json"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 1
    assert capsys.readouterr().err == ""
