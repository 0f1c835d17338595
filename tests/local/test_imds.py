"""The instance metadata service of simulated instances: IMDSv2 tokens, the instance
profile's role and its credentials (a session named after the instance that really signs
requests to the local cloud), and IMDS's refusals (400, 401, 404, nothing to connect to)."""

from __future__ import annotations

import json
import time
from datetime import datetime

import boto3
import pytest
from botocore.config import Config
from test_traffic import World

from gdlab.local import imds

ACCOUNT = "123456789012"
CREDENTIALS = "/latest/meta-data/iam/security-credentials/"


@pytest.fixture
def lab(local_server, local_client, monkeypatch):
    """The lab's two instances (instance profile "ssm" with role "ssm") on the real HTTP
    local cloud; with list_entries, a detector and an ACTIVE threat list."""
    monkeypatch.setenv("GDLAB_LOCAL_ACTIVATION_SECONDS", "0")
    imds.reset()

    def make(list_entries: list[str] | None = None) -> World:
        return World(local_client, list_entries)

    return make


def stolen(instance_id: str, version: int = 2) -> dict:
    """What a process on the instance reads: the role's name, then its credentials."""
    token = imds.token(instance_id, 21600) if version == 2 else None
    role = imds.get(instance_id, CREDENTIALS, token)
    return json.loads(imds.get(instance_id, CREDENTIALS + role, token))


def session_client(server, service: str, credentials: dict, source: str | None = None):
    """A client signing with instance credentials; `source`: the address it calls from."""
    client = boto3.client(
        service, region_name="us-east-1", endpoint_url=server.endpoint,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["Token"],
        config=Config(retries={"mode": "standard", "max_attempts": 1}))
    if source is None:
        return client
    from gdlab.local import trail

    return trail.from_address(client, source)


def test_role_credentials_are_a_session_named_after_the_instance(lab, local_server):
    w = lab()
    token = imds.token(w.compromised, 21600)
    assert imds.get(w.compromised, CREDENTIALS, token) == "ssm"
    assert imds.get(w.compromised, CREDENTIALS.rstrip("/"), token) == "ssm"
    credentials = json.loads(imds.get(w.compromised, CREDENTIALS + "ssm", token))
    assert set(credentials) == {"Code", "LastUpdated", "Type", "AccessKeyId",
                                "SecretAccessKey", "Token", "Expiration"}
    assert (credentials["Code"], credentials["Type"]) == ("Success", "AWS-HMAC")
    updated, expires = (datetime.strptime(credentials[k], "%Y-%m-%dT%H:%M:%SZ")
                        for k in ("LastUpdated", "Expiration"))
    assert 5 * 3600 < (expires - updated).total_seconds() <= imds.SESSION_SECONDS
    identity = session_client(local_server, "sts", credentials).get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/ssm/{w.compromised}"
    assert imds.instance_of_session(credentials["AccessKeyId"]) == w.compromised
    assert imds.session_of(credentials["AccessKeyId"]).delivery == "2.0"
    assert imds.instance_of_session("ASIANOTANINSTANCEKEY") is None
    # IMDS answers the same credentials until they are due for renewal.
    assert stolen(w.compromised)["AccessKeyId"] == credentials["AccessKeyId"]
    assert stolen(w.malicious)["AccessKeyId"] != credentials["AccessKeyId"]


def test_tokens_are_per_instance_and_expire(lab):
    w = lab()
    with pytest.raises(imds.Unauthorized):
        imds.get(w.compromised, CREDENTIALS, "not-a-token")
    other = imds.token(w.malicious, 60)
    with pytest.raises(imds.Unauthorized):
        imds.get(w.compromised, CREDENTIALS, other)
    short = imds.token(w.compromised, 1)
    assert imds.get(w.compromised, CREDENTIALS, short) == "ssm"
    time.sleep(1.05)
    with pytest.raises(imds.Unauthorized) as refused:
        imds.get(w.compromised, CREDENTIALS, short)
    assert refused.value.status == 401


@pytest.mark.parametrize("ttl", [None, 0, 21601, "six hours", -5])
def test_token_ttl_outside_1_to_21600_is_a_bad_request(lab, ttl):
    w = lab()
    with pytest.raises(imds.BadRequest) as refused:
        imds.token(w.compromised, ttl)
    assert refused.value.status == 400
    assert imds.token(w.compromised, "21600")  # a header value is text


def test_imdsv1_is_refused_only_where_tokens_are_required(lab):
    w = lab()
    # optional (moto's default for RunInstances): a request without a token is IMDSv1
    assert stolen(w.compromised, version=1)["Code"] == "Success"
    key = stolen(w.compromised, version=1)["AccessKeyId"]
    assert imds.session_of(key).delivery == "1.0"
    w.ec2.modify_instance_metadata_options(InstanceId=w.compromised, HttpTokens="required")
    with pytest.raises(imds.Unauthorized):
        imds.get(w.compromised, CREDENTIALS)
    assert stolen(w.compromised)["AccessKeyId"] == key  # IMDSv2 still answers
    assert imds.session_of(key).delivery == "2.0"


def test_an_instance_without_a_profile_has_no_credentials(lab):
    w = lab()
    bare = w.ec2.run_instances(ImageId="ami-760aaa0f", MinCount=1, MaxCount=1,
                               SubnetId=w.subnet)["Instances"][0]["InstanceId"]
    token = imds.token(bare, 60)
    with pytest.raises(imds.NotFound) as missing:
        imds.get(bare, CREDENTIALS, token)
    assert missing.value.status == 404
    with pytest.raises(imds.NotFound):
        imds.get(bare, CREDENTIALS + "ssm", token)
    assert imds.get(bare, "/latest/meta-data/instance-id", token) == bare
    token = imds.token(w.compromised, 60)
    with pytest.raises(imds.NotFound):
        imds.get(w.compromised, CREDENTIALS + "another-role", token)
    with pytest.raises(imds.NotFound):
        imds.get(w.compromised, "/latest/meta-data/no-such-item", token)


def test_other_metadata_items(lab):
    w = lab()
    token = imds.token(w.malicious, 60)
    assert imds.get(w.malicious, "/latest/meta-data/public-ipv4", token) == w.eip
    eni = w.moto_instance(w.malicious).nics[0]
    assert imds.get(w.malicious, "/latest/meta-data/local-ipv4", token) == \
        eni.private_ip_address
    info = json.loads(imds.get(w.malicious, "/latest/meta-data/iam/info", token))
    assert info["Code"] == "Success"
    assert info["InstanceProfileArn"] == f"arn:aws:iam::{ACCOUNT}:instance-profile/ssm"


def test_nothing_answers_on_a_stopped_instance_or_a_disabled_endpoint(lab):
    w = lab()
    w.ec2.modify_instance_metadata_options(InstanceId=w.malicious, HttpEndpoint="disabled")
    with pytest.raises(imds.Unreachable):
        imds.token(w.malicious, 60)
    token = imds.token(w.compromised, 60)
    w.ec2.stop_instances(InstanceIds=[w.compromised])
    with pytest.raises(imds.Unreachable):
        imds.get(w.compromised, CREDENTIALS, token)
    with pytest.raises(imds.Unreachable):
        imds.token("i-0000000000000dead", 60)
