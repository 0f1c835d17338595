"""Bad input gets one clear line and the right exit code, never a traceback."""

import errno
import os

import pytest

AWS = ("--target", "aws", "--region", "us-east-1")


def one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    "args, expected",
    [
        (("setup", "--scenario", "nope"), "unknown scenario 'nope'"),
        (("setup", "--lab", "BAD_ID"), "invalid lab id 'BAD_ID'"),
        (("setup", "--email", "not-an-address"), "invalid e-mail address"),
        (("--target", "mars", "setup"), "unknown target 'mars'"),
        (("watch", "--timeout", "soon"), "invalid duration 'soon'"),
        (("teardown", "--lab", "gd-one", "--all"), "exclude each other"),
    ],
)
def test_usage_errors_exit_2(run_cli, args, expected):
    code, out, err = run_cli(*args)
    assert code == 2
    assert expected in one_line(err)


def test_no_region(run_cli, monkeypatch, tmp_path):
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    code, _, err = run_cli("--target", "aws", "setup", "--yes")
    assert code == 1
    assert "no AWS region set" in one_line(err)


def test_no_credentials(run_cli, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code, _, err = run_cli(*AWS, "setup", "--yes")
    assert code == 1
    assert "no AWS credentials found" in one_line(err)


def test_unknown_lab_teardown(run_cli, mocked_aws):
    code, _, err = run_cli(*AWS, "teardown", "--lab", "gd-nope1", "--yes")
    assert code == 1
    assert "no lab 'gd-nope1'" in one_line(err)


def test_status_without_labs(run_cli):
    code, _, err = run_cli("status")
    assert code == 1
    assert "no current lab" in one_line(err)


def test_eip_quota_exhausted(run_cli, mocked_aws):
    import boto3

    ec2 = boto3.client("ec2", region_name="us-east-1")
    for _ in range(5):
        ec2.allocate_address(Domain="vpc")
    code, _, err = run_cli(*AWS, "setup", "--yes")
    assert code == 1
    assert "Elastic IP quota exhausted in us-east-1: 5 of 5 in use" in one_line(err)


def test_six_threat_lists(run_cli, mocked_aws):
    import boto3

    gd = boto3.client("guardduty", region_name="us-east-1")
    detector = gd.create_detector(Enable=True)["DetectorId"]
    for i in range(6):
        gd.create_threat_intel_set(DetectorId=detector, Name=f"list-{i}", Format="TXT",
                                   Location=f"s3://other/{i}.txt", Activate=False)
    code, out, err = run_cli(*AWS, "setup", "--lab", "gd-full6", "--yes")
    assert code == 1
    assert "already has 6 threat lists" in one_line(err)
    # what the failed setup made can be torn down, and the user's lists stay
    code, _, err = run_cli(*AWS, "teardown", "--lab", "gd-full6", "--yes")
    assert code == 0, err
    assert len(gd.list_threat_intel_sets(DetectorId=detector)["ThreatIntelSetIds"]) == 6


def test_confirmation_needed_on_aws_without_tty(run_cli, mocked_aws):
    code, _, err = run_cli(*AWS, "setup")
    assert code == 2
    assert "rerun with --yes" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "args, expected",
    [
        (("run", "--lab", "BAD!"), "invalid lab id 'BAD!'"),
        (("run", "--email", "nope"), "invalid e-mail address 'nope'"),
        (("run", "--scenario", "nope"), "unknown scenario 'nope'"),
    ],
)
def test_run_usage_errors_exit_2_before_anything_starts(run_cli, gdlab_home, args, expected):
    code, out, err = run_cli(*args)
    assert code == 2
    assert expected in one_line(err)
    assert not (gdlab_home / "local").exists()  # no local cloud was started
    assert not (gdlab_home / "labs").exists()


# --- the OS's errors: a sentence saying what failed where, and what to do -----------------
def test_home_under_a_regular_file(run_cli, mocked_aws, monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GDLAB_HOME", str(blocker / "home"))
    code, _, err = run_cli(*AWS, "setup", "--yes")
    line = one_line(err)
    assert code == 1
    assert f"cannot use {blocker}/home" in line and "not a directory" in line
    assert f"{blocker} is a file, not a folder" in line and "GDLAB_HOME" in line
    assert "Errno" not in line and "NotADirectoryError" not in line


@pytest.mark.parametrize(
    "number, reason, advice",
    [
        (errno.ENOSPC, "no space left on device",
         "free some space on the disk holding /data/gdlab/labs"),
        (errno.EROFS, "read-only file system",
         "make /data/gdlab/labs writable or set GDLAB_HOME to a writable folder"),
        (errno.EACCES, "permission denied",
         "make /data/gdlab/labs writable for this user or set GDLAB_HOME to a writable folder"),
    ],
)
def test_os_errors_reaching_the_edge(run_cli, monkeypatch, number, reason, advice):
    import gdlab.scenario

    def broken(*_, **__):
        raise OSError(number, os.strerror(number), "/data/gdlab/labs/gd-abc123.json")

    monkeypatch.setattr(gdlab.scenario, "list_scenarios", broken)
    code, _, err = run_cli("scenarios")
    line = one_line(err)
    assert code == 1
    assert f"cannot use /data/gdlab/labs/gd-abc123.json: {reason} — {advice}" in line
    assert "Errno" not in line and "OSError" not in line


def test_os_error_without_a_path():
    from gdlab.errors import describe

    line, code = describe(OSError(errno.ENOSPC, "No space left on device"))
    assert code == 1 and "no space left on device" in line and "free some disk space" in line
    assert "\n" not in line


def test_raw_errors_are_one_bounded_line():
    from gdlab.errors import describe

    line, code = describe(ValueError("first\nsecond " + "x" * 10_000))
    assert code == 1 and "\n" not in line and len(line) < 400
    assert line.startswith("ValueError: first second")


def test_botocore_timeouts_are_not_mistaken_for_disk_errors():
    """botocore's timeouts are OSErrors (through requests): they name the endpoint."""
    from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

    from gdlab.errors import describe

    line, _ = describe(ReadTimeoutError(endpoint_url="https://example.test/"))
    assert line.startswith("the endpoint https://example.test did not answer in time")
    assert "check --endpoint-url / AWS_ENDPOINT_URL" in line
    line, _ = describe(ConnectTimeoutError(endpoint_url="https://sts.us-east-1.amazonaws.com/"))
    assert line.startswith("cannot connect to https://sts.us-east-1.amazonaws.com in time")
    assert "check the network" in line


def test_a_client_error_from_a_non_aws_answer_is_named_so():
    from botocore.exceptions import ClientError

    from gdlab.errors import describe

    exc = ClientError({"Error": {"Code": "502", "Message": "Bad Gateway"},
                       "ResponseMetadata": {"HTTPStatusCode": 502,
                                            "HTTPHeaders": {"content-type": "text/html"}}},
                      "DescribeVpcs")
    line, code = describe(exc)
    assert code == 1
    assert "did not answer as AWS does: it answered HTTP 502 (text/html)" in line


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda b: b.EndpointConnectionError(
            endpoint_url="http://127.0.0.1:1/", error="[Errno 111] Connection refused"),
         "nothing listens at http://127.0.0.1:1 (connection refused)"),
        (lambda b: b.EndpointConnectionError(
            endpoint_url="https://nope.invalid/",
            error="Failed to resolve 'nope.invalid' ([Errno -2] Name or service not known)"),
         "cannot reach https://nope.invalid: its host name does not resolve"),
        (lambda b: b.ConnectionClosedError(endpoint_url="http://127.0.0.1:2/"),
         "the endpoint http://127.0.0.1:2 closed the connection without answering"),
    ],
)
def test_connection_errors_name_the_endpoint(make, expected):
    import botocore.exceptions

    from gdlab.errors import describe

    line, code = describe(make(botocore.exceptions))
    assert code == 1 and line.startswith(expected), line


def test_an_unreadable_answer_never_dumps_its_body():
    from botocore.parsers import ResponseParserError

    from gdlab.errors import describe

    body = repr(os.urandom(6000))
    exc = ResponseParserError(
        "Unable to parse response (not well-formed (invalid token): line 1, column 0), "
        f"invalid XML received. Further retries may succeed:\n{body}"
    )
    line, code = describe(exc)
    assert code == 1 and len(line) < 250 and "\\x" not in line
    assert "its answer is not readable as AWS's (not well-formed (invalid token): line 1, " \
        "column 0)" in line
