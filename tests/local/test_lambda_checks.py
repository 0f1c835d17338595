"""What Lambda's CreateFunction refuses that moto accepts: runtimes AWS no longer creates
functions with, and execution roles Lambda cannot assume."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import date

import pytest
from botocore.exceptions import ClientError

from gdlab.local import lambda_checks

LAMBDA_TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": "sts:AssumeRole",
    "Principal": {"Service": "lambda.amazonaws.com"}}]}


@pytest.mark.parametrize("runtime, today, refused", [
    ("python3.8", date(2026, 12, 2), True),
    ("python2.7", date(2026, 12, 2), True),
    ("python3.9", date(2026, 12, 2), False),  # blocked from 2027-02-01
    ("python3.9", date(2027, 2, 1), True),
    ("python3.12", date(2026, 12, 2), False),
    ("provided.al2023", date(2030, 1, 1), False),
])
def test_blocked_runtimes_follow_their_dates(runtime, today, refused):
    if refused:
        with pytest.raises(Exception, match=f"The runtime parameter of {runtime} is no longer"):
            lambda_checks.check_runtime(runtime, today)
    else:
        lambda_checks.check_runtime(runtime, today)


@pytest.mark.parametrize("document, trusted", [
    (LAMBDA_TRUST, True),
    ({"Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"],
                     "Principal": {"Service": ["ec2.amazonaws.com", "lambda.amazonaws.com"]}}]},
     True),
    ({"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                     "Principal": {"Service": "ec2.amazonaws.com"}}]}, False),
    ({"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
                     "Principal": {"Service": "lambda.amazonaws.com"}}]}, False),
    ({"Statement": [LAMBDA_TRUST["Statement"][0],
                    {**LAMBDA_TRUST["Statement"][0], "Effect": "Deny"}]}, False),
    ("not json", False),
])
def test_only_a_trust_policy_naming_lambda_lets_it_assume_the_role(document, trusted):
    text = document if isinstance(document, str) else json.dumps(document)
    assert lambda_checks.trusts_lambda(text) is trusted


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("h.py", "def h(event, context):\n    return 1\n")
    return buffer.getvalue()


def test_create_function_refuses_as_lambda_does(aws_client):
    iam, lam = aws_client("iam"), aws_client("lambda")
    good = iam.create_role(RoleName="fn", AssumeRolePolicyDocument=json.dumps(
        LAMBDA_TRUST))["Role"]["Arn"]
    ec2_only = iam.create_role(RoleName="ec2-only", AssumeRolePolicyDocument=json.dumps({
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                       "Principal": {"Service": "ec2.amazonaws.com"}}]}))["Role"]["Arn"]

    def create(name, runtime="python3.12", role=good):
        return lam.create_function(FunctionName=name, Runtime=runtime, Role=role,
                                   Handler="h.h", Code={"ZipFile": _zip()})

    for name, kwargs, message in [
        ("old", {"runtime": "python3.8"}, "The runtime parameter of python3.8"),
        ("ec2", {"role": ec2_only}, "cannot be assumed by Lambda"),
        ("gone", {"role": "arn:aws:iam::123456789012:role/missing"},
         "cannot be assumed by Lambda"),
        ("other", {"role": "arn:aws:iam::210987654321:role/fn"}, "cannot be assumed"),
    ]:
        with pytest.raises(ClientError) as info:
            create(name, **kwargs)
        assert info.value.response["Error"]["Code"] == "InvalidParameterValueException"
        assert message in info.value.response["Error"]["Message"]
    assert create("fine")["FunctionName"] == "fine"
    with pytest.raises(ClientError) as info:
        lam.update_function_configuration(FunctionName="fine", Runtime="python2.7")
    assert info.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert lam.get_function(FunctionName="fine")["Configuration"]["Runtime"] == "python3.12"
