"""The credential theft's pure parts: what is read back from an instance is checked before it
goes into a command line, and nothing gdlab keeps or prints holds the secret."""

from __future__ import annotations

import json

import pytest

from gdlab.lab import credential_theft as theft

KEY = "ASIARZPUZDIKGI5AV6TK"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ=="


def loot(**changes: str) -> str:
    data = {"Code": "Success", "LastUpdated": "2026-12-02T17:12:51Z", "Type": "AWS-HMAC",
            "AccessKeyId": KEY, "SecretAccessKey": SECRET, "Token": TOKEN,
            "Expiration": "2026-12-02T23:12:51Z"}
    role = changes.pop("role", "gdlab-gd-1a2b3c-instance")
    data.update(changes)
    return role + "\n" + json.dumps(data, indent=2) + "\n"


def test_a_well_formed_answer_gives_the_session_and_repr_hides_it():
    session = theft.parse_loot(loot(), "cmd-1")
    assert session is not None
    assert (session.role, session.access_key_id, session.issued) == (
        "gdlab-gd-1a2b3c-instance", KEY, "2026-12-02T17:12:51Z")
    assert SECRET not in repr(session) and TOKEN not in repr(session)
    assert session.exports()[1] == f"export AWS_SECRET_ACCESS_KEY='{SECRET}'"


@pytest.mark.parametrize("changes", [
    {"AccessKeyId": "ASIA'; rm -rf / #AAAAAA"},  # would break out of the quotes
    {"SecretAccessKey": SECRET[:-1] + "'"},
    {"Token": "abc$(reboot)def0123456789"},
    {"role": "x'; curl evil #"},
    {"Code": "Failure"},
    {"AccessKeyId": "AKIAIOSFODNN7EXAMPLE"},  # a long-term key is not an instance session
])
def test_anything_not_shaped_as_aws_writes_it_is_refused(changes):
    assert theft.parse_loot(loot(**changes), "cmd-1") is None


@pytest.mark.parametrize("output", ["", "role-only", "role\nnot json", "role\n[1, 2]"])
def test_a_broken_answer_is_no_session(output):
    assert theft.parse_loot(output, "cmd-1") is None


def test_the_read_script_uses_imdsv2_and_fails_fast():
    script = theft.read_script()
    assert script[0] == "set -e"
    assert "-X PUT http://169.254.169.254/latest/api/token" in script[1]
    assert all("X-aws-ec2-metadata-token" in line for line in script[1:3] + script[4:])


def test_the_cli_error_line_is_the_one_that_says_why():
    stderr = ("\nAn error occurred (UnauthorizedOperation) when calling the DescribeInstances "
              "operation: You are not authorized. Encoded authorization failure message: "
              "eyJhbGxv\nfailed to run commands: exit status 254\n")
    assert theft.cli_error(stderr) == ("An error occurred (UnauthorizedOperation) when calling "
                                       "the DescribeInstances operation: You are not "
                                       "authorized.")
    assert theft.cli_error("only line\n") == "only line"
    assert theft.cli_error("") == ""


def result(**changes) -> theft.TheftResult:
    fields = dict(instance_id="i-1", attacker_id="i-2", target_ip="54.1.2.3",
                  read_command_id="c1", use_command_id="c2", role="r", access_key_id=KEY,
                  status="Success", detail="Success", exit_code=0,
                  identity_arn="arn:aws:sts::123456789012:assumed-role/r/i-1",
                  instances_seen=2, error_output="", seconds=0.5)
    fields.update(changes)
    return theft.TheftResult(**fields)


def test_set_off_once_the_session_reached_aws_from_the_attacker():
    assert result().set_off and result().failure() is None
    no_loot = result(role=None, access_key_id=None, use_command_id="", identity_arn=None,
                     status="Failed", detail="Failed")
    assert not no_loot.set_off and "gave no credentials" in no_loot.failure()[0]
    undelivered = result(detail="DeliveryTimedOut", status="Failed", identity_arn=None)
    assert not undelivered.delivered and "could not use" in undelivered.failure()[0]
    assert set(result().to_dict()) >= {"set_off", "delivered", "access_key_id", "role"}
