"""The shell of simulated instances as SSM runs it: variables, $(...), quoting and set -e;
curl to the instance metadata service (and nowhere else: no internet); aws calls that reach
the local cloud from the instance's address. End to end over HTTP: one instance reads its
role credentials through IMDSv2, another uses them, the trail records the call from the
second one's address, and GuardDuty raises InstanceCredentialExfiltration.OutsideAWS."""

from __future__ import annotations

import json
import re

import pytest
from test_guardduty_credentials import TYPE, findings
from test_imds import lab  # noqa: F401 - the fixture
from test_traffic import world  # noqa: F401 - the fixture
from wire_shapes import assert_wire_shape, capture_raw

from gdlab.local import imds, trail
from gdlab.local.instance_shell import Shell

SHELL = "AWS-RunShellScript"
IMDS = "http://169.254.169.254"
READ_CREDENTIALS = [
    'TOKEN=$(curl -s -X PUT http://169.254.169.254/latest/api/token '
    '-H "X-aws-ec2-metadata-token-ttl-seconds: 21600")',
    'ROLE=$(curl -s -H "X-aws-ec2-metadata-token: $TOKEN" '
    f'{IMDS}/latest/meta-data/iam/security-credentials/)',
    f'curl -s -H "X-aws-ec2-metadata-token: $TOKEN" '
    f'{IMDS}/latest/meta-data/iam/security-credentials/$ROLE',
]


@pytest.fixture(autouse=True)
def _empty_trail():
    trail.clear()


def run(w, instance: str, *commands: str) -> dict:
    """SendCommand the script to the instance; its invocation, every SSM answer held to
    botocore's shape."""
    ssm = w.client("ssm")
    calls = capture_raw(ssm)
    command = ssm.send_command(InstanceIds=[instance], DocumentName=SHELL,
                               Parameters={"commands": list(commands)})["Command"]
    invocation = ssm.get_command_invocation(CommandId=command["CommandId"],
                                            InstanceId=instance)
    for operation, status, body in calls:
        assert status == 200
        assert_wire_shape("ssm", operation, body)
    return invocation


def with_keys(credentials: dict, line: str) -> str:
    return (f"AWS_ACCESS_KEY_ID={credentials['AccessKeyId']} "
            f"AWS_SECRET_ACCESS_KEY={credentials['SecretAccessKey']} "
            f"AWS_SESSION_TOKEN={credentials['Token']} {line}")


def test_credentials_read_on_one_instance_and_used_on_another_are_found(lab):  # noqa: F811
    w = lab(list_entries=["EIP"])  # the malicious instance's Elastic IP is threat-listed
    read = run(w, w.compromised, *READ_CREDENTIALS)
    assert (read["Status"], read["ResponseCode"]) == ("Success", 0)
    credentials = json.loads(read["StandardOutputContent"])
    assert imds.instance_of_session(credentials["AccessKeyId"]) == w.compromised
    assert imds.session_of(credentials["AccessKeyId"]).delivery == "2.0"

    used = run(w, w.malicious, with_keys(credentials, "aws sts get-caller-identity"))
    assert (used["Status"], used["ResponseCode"], used["StandardErrorContent"]) == (
        "Success", 0, "")
    identity = json.loads(used["StandardOutputContent"])
    assert identity["Arn"] == f"arn:aws:sts::123456789012:assumed-role/ssm/{w.compromised}"
    assert identity["Account"] == "123456789012"

    (record,) = trail.records(access_key_id=credentials["AccessKeyId"],
                              event_name="GetCallerIdentity")
    assert record["sourceIPAddress"] == w.eip
    assert record["userIdentity"]["type"] == "AssumedRole"
    assert record["userIdentity"]["principalId"].endswith(f":{w.compromised}")
    assert record["userIdentity"]["sessionContext"]["ec2RoleDelivery"] == "2.0"

    (finding,) = findings(w)
    assert finding["Type"] == TYPE
    assert finding["Resource"]["InstanceDetails"]["InstanceId"] == w.compromised
    assert finding["Resource"]["AccessKeyDetails"]["AccessKeyId"] == credentials["AccessKeyId"]
    call = finding["Service"]["Action"]["AwsApiCallAction"]
    assert (call["Api"], call["RemoteIpDetails"]["IpAddressV4"]) == (
        "GetCallerIdentity", w.eip)


def test_exported_keys_and_the_cli_error_of_a_refused_call(lab):  # noqa: F811
    w = lab()
    credentials = json.loads(run(w, w.compromised, *READ_CREDENTIALS)["StandardOutputContent"])
    exports = [f"export AWS_ACCESS_KEY_ID={credentials['AccessKeyId']}",
               f"export AWS_SECRET_ACCESS_KEY={credentials['SecretAccessKey']}",
               f"export AWS_SESSION_TOKEN={credentials['Token']}"]
    # The role "ssm" has no policy: EC2 refuses, and the CLI says so with exit code 254.
    refused = run(w, w.malicious, *exports,
                  "aws ec2 describe-instances --region us-east-1 || echo exit=$?")
    assert refused["StandardOutputContent"] == "exit=254\n"
    assert refused["StandardErrorContent"].startswith(
        "\nAn error occurred (UnauthorizedOperation) when calling the DescribeInstances "
        "operation: ")
    w.client("iam").put_role_policy(RoleName="ssm", PolicyName="recon", PolicyDocument=(
        json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
            "ec2:DescribeInstances", "s3:ListAllMyBuckets", "iam:ListRoles"],
            "Resource": "*"}]})))
    w.client("s3").create_bucket(Bucket="gdlab-loot")
    listed = run(w, w.malicious, *exports, "aws ec2 describe-instances", "aws s3 ls",
                 "aws iam list-roles --region us-east-1")
    assert (listed["Status"], listed["StandardErrorContent"]) == ("Success", "")
    out = listed["StandardOutputContent"]
    decoder = json.JSONDecoder()
    instances, end = decoder.raw_decode(out)
    assert {i["InstanceId"] for r in instances["Reservations"] for i in r["Instances"]} == {
        w.compromised, w.malicious}
    buckets = out[end:].lstrip("\n").split("{", 1)[0].splitlines()
    assert [line.split(" ", 2)[2] for line in buckets] == ["gdlab-loot"]
    roles, _ = decoder.raw_decode(out[out.index("{", end):])
    assert "ssm" in [r["RoleName"] for r in roles["Roles"]]
    events = [r["eventName"] for r in trail.records(access_key_id=credentials["AccessKeyId"])]
    assert events == ["DescribeInstances", "DescribeInstances", "ListBuckets", "ListRoles"]
    assert {r["sourceIPAddress"] for r in trail.records(
        access_key_id=credentials["AccessKeyId"])} == {w.eip}


def test_without_keys_the_cli_uses_the_instance_role_and_nothing_is_found(lab):  # noqa: F811
    w = lab(list_entries=["EIP"])
    own = run(w, w.malicious, "aws sts get-caller-identity")
    assert own["Status"] == "Success"
    assert json.loads(own["StandardOutputContent"])["Arn"].endswith(f"/ssm/{w.malicious}")
    (record,) = trail.records(event_name="GetCallerIdentity", source_ip=w.eip)
    assert imds.instance_of_session(record["userIdentity"]["accessKeyId"]) == w.malicious
    assert findings(w) == []  # an instance's own credentials from its own address


def test_partial_keys_and_unknown_operations_fail_clearly(lab):  # noqa: F811
    w = lab()
    partial = run(w, w.malicious, "AWS_ACCESS_KEY_ID=ASIAX aws sts get-caller-identity")
    assert (partial["Status"], partial["ResponseCode"]) == ("Failed", 253)
    assert "Partial credentials found in env, missing: AWS_SECRET_ACCESS_KEY" in \
        partial["StandardErrorContent"]
    unknown = run(w, w.malicious, "aws lambda list-functions", "echo never")
    assert (unknown["Status"], unknown["ResponseCode"]) == ("Failed", 127)
    assert "cannot simulate 'aws lambda list-functions'" in unknown["StandardErrorContent"]
    assert "never" not in unknown["StandardOutputContent"]


def test_curl_reaches_only_the_metadata_service(world):  # noqa: F811
    w = world()
    shell = Shell(w.moto_instance())
    code, out, err = shell.run(["curl -s https://example.com/x.sh; echo exit=$?",
                                "curl http://10.0.0.9/ || echo exit=$?"])
    assert (code, out) == (0, "exit=7\nexit=7\n")
    assert "cannot simulate 'curl -s https://example.com/x.sh': the local cloud has no " \
           "internet" in err
    assert "curl: (7) Failed to connect to 10.0.0.9 port 80" in err
    assert "Failed to connect to example.com" not in err  # -s keeps curl's own error quiet
    code, out, err = Shell(w.moto_instance()).run([
        f'curl -s -H "X-aws-ec2-metadata-token: forged" {IMDS}/latest/meta-data/instance-id',
        f"curl -sf {IMDS}/latest/meta-data/nothing-here || echo exit=$?",
        f"curl -sS -X DELETE {IMDS}/latest/api/token"])
    assert code == 0
    assert "<title>401 - Unauthorized</title>" in out and "exit=22\n" in out
    assert "<h1>405 - Method Not Allowed</h1>" in out
    # IMDSv1 still answers while HttpTokens is optional; an empty -H value sends no header.
    assert Shell(w.moto_instance()).run(
        [f"curl -s {IMDS}/latest/meta-data/instance-id",
         f'curl -s -H "X-aws-ec2-metadata-token: $NONE" {IMDS}/latest/meta-data/instance-id']
    )[1] == w.compromised * 2
    w.ec2.modify_instance_metadata_options(InstanceId=w.compromised, HttpTokens="required")
    assert "401 - Unauthorized" in Shell(w.moto_instance()).run(
        [f"curl -s {IMDS}/latest/meta-data/instance-id"])[1]


def test_curl_to_a_disabled_metadata_endpoint_cannot_connect(world):  # noqa: F811
    w = world()
    w.ec2.modify_instance_metadata_options(InstanceId=w.compromised, HttpEndpoint="disabled")
    code, out, err = Shell(w.moto_instance()).run([f"curl {IMDS}/latest/meta-data/"])
    assert (code, out) == (7, "")
    assert "curl: (7) Failed to connect to 169.254.169.254 port 80" in err


def test_aws_without_a_local_cloud_server_cannot_connect(world):  # noqa: F811
    w = world()  # mock_aws: no server for the instance to call
    code, _, err = Shell(w.moto_instance()).run(["aws sts get-caller-identity"])
    assert code == 255
    assert 'Could not connect to the endpoint URL: "https://sts.us-east-1.amazonaws.com/"' \
        in err


def shell(*commands: str) -> tuple[int, str, str]:
    return Shell(None).run(list(commands))


def test_variables_quotes_and_command_substitution():
    code, out, _ = shell(
        "A=one; B='two  spaced'; C=\"$A and $B\"",
        'echo $A "$B" $B; echo "$C"; echo \'$A\' \\$A ${A}x',
        "D=$(echo  nested  words)",
        'echo "[$D]" [$(echo inner)] "$(false)$?"',
        "E=outer echo not-assigned; echo [$E]", "echo done")
    assert code == 0
    assert out.splitlines() == ["one two  spaced two spaced", "one and two  spaced",
                                "$A $A onex", "[nested words] [inner] 1", "not-assigned", "[]",
                                "done"]


def test_set_e_ignores_failures_inside_and_or_lists():
    code, out, err = shell("set -e", "false || echo recovered", "false && echo no",
                           "echo after", "false", "echo never")
    assert (code, out) == (1, "recovered\nafter\n")
    assert err == "failed to run commands: exit status 1\n"


def test_unsimulated_syntax_and_syntax_errors():
    code, out, err = shell("echo start", "echo hi | cat")
    assert (code, out) == (127, "start\n")
    assert "does not simulate shell syntax '|'" in err
    code, _, err = shell("echo 'open")
    assert (code, err) == (2, "bash: line 1: syntax error: No closing quotation\n")
    code, _, err = shell("X=$(echo unclosed")
    assert code == 2 and "matching `)'" in err
    code, _, err = shell("&& echo x")
    assert code == 2 and "unexpected token `&&'" in err


# --- the S3 and IAM operations of the bucket scenarios' attacks ------------------------------
RECON = ["s3:ListBucket", "s3:GetBucketLogging", "s3:PutBucketLogging",
         "s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock", "iam:ListUsers",
         "iam:GetUser"]


def allow(w, actions: list[str]) -> None:
    w.client("iam").put_role_policy(RoleName="ssm", PolicyName="recon", PolicyDocument=(
        json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": actions, "Resource": "*"}]})))


def loot(w) -> None:
    s3 = w.client("s3")
    s3.create_bucket(Bucket="gdlab-loot")
    s3.put_object(Bucket="gdlab-loot", Key="customers.csv", Body=b"x" * 1234)
    s3.put_object(Bucket="gdlab-loot", Key="exports/2024.csv", Body=b"y")


def test_bucket_listings_as_the_cli_prints_them(lab):  # noqa: F811
    w = lab()
    loot(w)
    allow(w, RECON)
    listed = run(w, w.malicious, "aws s3 ls s3://gdlab-loot", "aws s3 ls s3://gdlab-loot/exports/",
                 "aws s3 ls s3://gdlab-loot/none || echo exit=$?",
                 "aws s3api list-objects-v2 --bucket gdlab-loot --prefix exports/")
    assert (listed["Status"], listed["StandardErrorContent"]) == ("Success", "")
    lines = listed["StandardOutputContent"].splitlines()
    assert lines[0] == f"{'PRE':>30} exports/"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d       1234 customers\.csv", lines[1])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d          1 2024\.csv", lines[2])
    assert lines[3] == "exit=1"  # a prefix with nothing under it
    objects = json.loads("\n".join(lines[4:]))
    assert [(o["Key"], o["Size"]) for o in objects["Contents"]] == [("exports/2024.csv", 1)]
    assert objects["Prefix"] == "exports/"
    assert "IsTruncated" not in objects  # the CLI merges every page into one answer
    # CloudTrail names a ListObjectsV2 request "ListObjects".
    assert [r["eventName"] for r in trail.records(source_ip=w.eip)] == ["ListObjects"] * 4


def test_public_access_block_and_logging_are_changed_and_read_back(lab):  # noqa: F811
    w = lab()
    loot(w)
    allow(w, ["s3:*"])
    s3 = w.client("s3")
    opened = run(
        w, w.malicious,
        "aws s3api put-public-access-block --bucket gdlab-loot "
        "--public-access-block-configuration BlockPublicAcls=false,IgnorePublicAcls=false,"
        "BlockPublicPolicy=false,RestrictPublicBuckets=TRUE",
        "aws s3api get-public-access-block --bucket gdlab-loot",
        "aws s3api put-public-access-block --bucket gdlab-loot "
        "--public-access-block-configuration '{\"BlockPublicAcls\": true}'",
        "aws s3api delete-public-access-block --bucket gdlab-loot",
        "aws s3api get-public-access-block --bucket gdlab-loot || echo exit=$?",
        "aws s3api put-bucket-logging --bucket gdlab-loot --bucket-logging-status '{}'",
        "aws s3api get-bucket-logging --bucket gdlab-loot")
    assert opened["Status"] == "Success"
    out, _ = json.JSONDecoder().raw_decode(opened["StandardOutputContent"])
    assert out == {"PublicAccessBlockConfiguration": {
        "BlockPublicAcls": False, "IgnorePublicAcls": False, "BlockPublicPolicy": False,
        "RestrictPublicBuckets": True}}
    # put, delete and put-bucket-logging print nothing; get-bucket-logging of a bucket that
    # does not log answers {}, which the CLI prints as nothing too.
    assert opened["StandardOutputContent"].endswith("}\nexit=254\n")
    assert opened["StandardErrorContent"] == (
        "\nAn error occurred (NoSuchPublicAccessBlockConfiguration) when calling the "
        "GetPublicAccessBlock operation: The public access block configuration was not found\n")
    with pytest.raises(s3.exceptions.ClientError):
        s3.get_public_access_block(Bucket="gdlab-loot")
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket="gdlab-loot")
    assert [(r["eventSource"], r["eventName"]) for r in trail.records(source_ip=w.eip)] == [
        ("s3.amazonaws.com", name) for name in (
            "PutBucketPublicAccessBlock", "GetBucketPublicAccessBlock",
            "PutBucketPublicAccessBlock", "DeleteBucketPublicAccessBlock",
            "GetBucketPublicAccessBlock", "PutBucketLogging", "GetBucketLogging")]


def test_logging_is_pointed_at_a_bucket_given_as_json(lab):  # noqa: F811
    w = lab()
    loot(w)
    allow(w, RECON)
    s3 = w.client("s3")
    s3.create_bucket(Bucket="gdlab-logs", ACL="log-delivery-write")
    pointed = run(w, w.malicious, "aws s3api put-bucket-logging --bucket gdlab-loot "
                  "--bucket-logging-status '{\"LoggingEnabled\": {\"TargetBucket\": "
                  "\"gdlab-logs\", \"TargetPrefix\": \"loot/\"}}'",
                  "aws s3api get-bucket-logging --bucket gdlab-loot")
    assert (pointed["Status"], pointed["StandardErrorContent"]) == ("Success", "")
    assert json.loads(pointed["StandardOutputContent"])["LoggingEnabled"] == {
        "TargetBucket": "gdlab-logs", "TargetPrefix": "loot/"}
    assert w.client("s3").get_bucket_logging(Bucket="gdlab-loot")["LoggingEnabled"][
        "TargetBucket"] == "gdlab-logs"


def test_iam_users_and_the_caller(lab):  # noqa: F811
    w = lab()
    w.client("iam").create_user(UserName="gdlab-admin")
    refused = run(w, w.malicious, "aws iam list-users || echo exit=$?")
    assert refused["StandardOutputContent"] == "exit=254\n"
    assert refused["StandardErrorContent"].startswith(
        "\nAn error occurred (AccessDenied) when calling the ListUsers operation: ")
    allow(w, RECON)
    listed = run(w, w.malicious, "aws iam list-users", "aws iam get-user --user-name gdlab-admin")
    assert (listed["Status"], listed["StandardErrorContent"]) == ("Success", "")
    decoder = json.JSONDecoder()
    users, end = decoder.raw_decode(listed["StandardOutputContent"])
    assert [u["UserName"] for u in users["Users"]] == ["gdlab-admin"]
    assert "IsTruncated" not in users
    user = json.loads(listed["StandardOutputContent"][end:])["User"]
    assert user["Arn"] == "arn:aws:iam::123456789012:user/gdlab-admin"
    assert [r["eventName"] for r in trail.records(source_ip=w.eip)] == [
        "ListUsers", "ListUsers", "GetUser"]


def test_s3_refused_by_iam_with_the_cli_error(lab):  # noqa: F811
    w = lab()
    loot(w)
    refused = run(w, w.malicious, "aws s3 ls s3://gdlab-loot || echo exit=$?",
                  "aws s3api put-public-access-block --bucket gdlab-loot "
                  "--public-access-block-configuration BlockPublicAcls=false || echo exit=$?")
    assert refused["StandardOutputContent"] == "exit=254\nexit=254\n"
    first, second = refused["StandardErrorContent"].split("\n\n")
    assert first.startswith("\nAn error occurred (AccessDenied) when calling the ListObjectsV2 "
                            "operation: ")
    assert second.startswith("An error occurred (AccessDenied) when calling the "
                             "PutPublicAccessBlock operation: ")
    assert [(r["eventName"], r["errorCode"]) for r in trail.records(source_ip=w.eip)] == [
        ("ListObjects", "AccessDenied"), ("PutBucketPublicAccessBlock", "AccessDenied")]


USAGE = ("\nusage: aws [options] <command> <subcommand> [<subcommand> ...] [parameters]\n"
         "To see help text, you can run:\n\n  aws help\n  aws <command> help\n"
         "  aws <command> <subcommand> help\n\n")


def test_missing_and_unknown_options_are_the_clis_syntax_errors(lab):  # noqa: F811
    w = lab()
    missing = run(w, w.malicious, "aws s3api put-public-access-block --bucket b || echo exit=$?",
                  "aws s3api get-bucket-logging --bucket || echo exit=$?",
                  "aws s3api list-objects-v2 --bucket b --bukket c || echo exit=$?",
                  "aws s3api put-bucket-logging --bucket b --bucket-logging-status '{x' "
                  "|| echo exit=$?",
                  "aws s3api put-public-access-block --bucket b "
                  "--public-access-block-configuration BlockPublicAcls || echo exit=$?",
                  "aws s3api put-public-access-block --bucket b "
                  "--public-access-block-configuration BlockPublicAcls=maybe || echo exit=$?")
    assert missing["StandardOutputContent"] == "exit=252\n" * 6
    assert missing["StandardErrorContent"] == (
        f"{USAGE}aws: error: the following arguments are required: "
        "--public-access-block-configuration\n\n"
        f"{USAGE}aws: error: argument --bucket: expected one argument\n\n"
        f"{USAGE}Unknown options: --bukket, c\n\n"
        "\nError parsing parameter '--bucket-logging-status': Invalid JSON: Expecting property "
        "name enclosed in double quotes: line 1 column 2 (char 1)\nJSON received: {x\n"
        "\nError parsing parameter '--public-access-block-configuration': Expected: '=', "
        "received: 'EOF' for input:\nBlockPublicAcls\n               ^\n"
        "\nParameter validation failed:\nInvalid type for parameter "
        "PublicAccessBlockConfiguration.BlockPublicAcls, value: maybe, type: <class 'str'>, "
        "valid types: <class 'bool'>\n")
    assert trail.records(source_ip=w.eip) == []  # refused before any request
    unsimulated = run(w, w.malicious, "aws s3 ls s3://b --recursive")
    assert (unsimulated["Status"], unsimulated["ResponseCode"]) == ("Failed", 127)
    assert "cannot simulate 'aws s3 ls s3://b --recursive': aws option --recursive" in \
        unsimulated["StandardErrorContent"]
