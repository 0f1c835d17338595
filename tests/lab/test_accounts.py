"""A class's way into its accounts against a real local cloud holding an organization: the
role's credentials renew themselves before they expire (a class on AWS outlasts the role's
hour), and are not renewed while they have long to live; a role that cannot be assumed is
one line."""

from __future__ import annotations

import pytest

from gdlab.cloud import Cloud, CloudSettings
from gdlab.lab import accounts

ROLE = "OrganizationAccountAccessRole"


@pytest.fixture
def org(local_server):
    base = Cloud(CloudSettings(target="local", region="us-east-1",
                               endpoint_url=local_server.endpoint,
                               local_cloud_id=local_server.cloud_id,
                               local_credentials=local_server.credentials))
    (member,) = [a["Id"] for a in accounts.create_member_accounts(base, 1)]
    return base, member


def count_assume_role(base: Cloud) -> list[str]:
    calls: list[str] = []
    base.client("sts").meta.events.register(
        "before-call.sts.AssumeRole", lambda **_: calls.append("AssumeRole"))
    return calls


def test_credentials_with_long_to_live_are_used_as_they_are(org):
    base, member = org
    calls = count_assume_role(base)
    reached = accounts.reach(base, member, "eu-west-1",
                             accounts.assume(base, member, ROLE, "gdlab-class-test"))
    for _ in range(3):
        reached.client("ec2").describe_vpcs()
    assert reached.account == member and calls == ["AssumeRole"]


def test_credentials_near_their_expiry_are_renewed_and_the_renewed_ones_work(org, monkeypatch):
    base, member = org
    # The shortest role session AWS grants (15 min) is already inside botocore's renewal
    # window: every use renews it, as an hour-long session's uses do in its last 15 minutes.
    monkeypatch.setattr(accounts, "ROLE_SECONDS", 900)
    calls = count_assume_role(base)
    credentials = accounts.assume(base, member, ROLE, "gdlab-class-test")
    reached = accounts.reach(base, member, "us-east-1", credentials)
    keys = set()
    for _ in range(3):
        reached.client("ec2").describe_vpcs()
        keys.add(credentials.get_frozen_credentials().access_key)
    assert len(calls) >= 3 and len(keys) >= 2
    assert reached.account == member


def test_a_role_that_cannot_be_assumed_is_one_line(org):
    base, member = org
    with pytest.raises(accounts.TargetUnreachable) as caught:
        accounts.assume(base, member, "NoSuchRole", "gdlab-class-test")
    assert str(caught.value).startswith(f"account {member}: cannot assume NoSuchRole (")
    assert "\n" not in str(caught.value)
