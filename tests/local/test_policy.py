"""The local cloud's IAM evaluator, rule by rule (IAM User Guide: "Policy evaluation logic",
"IAM JSON policy elements: Condition operators"): pure, no moto."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gdlab.local.policy import UNKNOWN, condition_matches, evaluate
from gdlab.local.request_context import Principal, RequestContext, Resource

ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/responder"
PRINCIPAL = Principal(account=ACCOUNT, arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/responder/s1",
                      role_name="responder", role_arn=ROLE_ARN, session_name="s1",
                      issued_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
ENI = f"arn:aws:ec2:us-east-1:{ACCOUNT}:network-interface/eni-1"


def lookup_of(**values):
    """A key lookup: value tuples, None for absent, UNKNOWN for unknown; names as given."""
    table = {k.replace("__", ":").replace("_slash_", "/").lower(): v for k, v in values.items()}
    return lambda key: table.get(key.lower())


def check(operator, key, policy_values, **context):
    key = key.replace("__", ":")
    return condition_matches(operator, key, policy_values, lookup_of(**context))


def doc(*statements, version="2012-10-17"):
    return json.dumps({"Version": version, "Statement": list(statements)})


def allow(**extra):
    return {"Effect": "Allow", "Action": "ec2:ModifyNetworkInterfaceAttribute",
            "Resource": "*", **extra}


def context(action="ec2:ModifyNetworkInterfaceAttribute", arn=ENI, tags=None,
            request_tags=None, keys=None):
    base = {"aws:principalarn": (ROLE_ARN,), "aws:principalaccount": (ACCOUNT,)}
    return RequestContext(action=action, resources=(Resource(arn, tags),),
                          keys={**base, **(keys or {})}, request_tags=request_tags)


# --- operators, both directions -----------------------------------------------------------
@pytest.mark.parametrize(("operator", "policy", "value", "expected"), [
    ("StringEquals", "lab-1", "lab-1", True), ("StringEquals", "lab-1", "LAB-1", False),
    ("StringEquals", ["a", "lab-1"], "lab-1", True),  # values OR'd
    ("StringNotEquals", "lab-1", "lab-1", False), ("StringNotEquals", "lab-1", "x", True),
    ("StringEqualsIgnoreCase", "lab-1", "LAB-1", True),
    ("StringEqualsIgnoreCase", "lab-1", "lab-2", False),
    ("StringNotEqualsIgnoreCase", "lab-1", "LAB-1", False),
    ("StringNotEqualsIgnoreCase", "lab-1", "lab-2", True),
    ("StringLike", "lab-*", "lab-17", True), ("StringLike", "lab-?", "lab-17", False),
    ("StringLike", "lab-?", "lab-1", True), ("StringLike", "Lab-*", "lab-1", False),
    ("StringNotLike", "lab-*", "lab-1", False), ("StringNotLike", "lab-*", "x", True),
    ("StringEquals", "lab-*", "lab-1", False),  # no wildcards in StringEquals
    ("Bool", "true", "true", True), ("Bool", "true", "false", False), ("Bool", True, "true", True),
    ("NumericEquals", "10", "10", True), ("NumericEquals", "10", "11", False),
    ("NumericNotEquals", "10", "10", False), ("NumericNotEquals", "10", "11", True),
    ("NumericLessThan", "10", "9", True), ("NumericLessThan", "10", "10", False),
    ("NumericLessThanEquals", "10", "10", True), ("NumericLessThanEquals", "10", "11", False),
    ("NumericGreaterThan", "10", "11", True), ("NumericGreaterThan", "10", "10", False),
    ("NumericGreaterThanEquals", "10", "10", True), ("NumericGreaterThanEquals", "10", "9", False),
    ("NumericEquals", "ten", "10", False),
    ("DateGreaterThan", "2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z", True),
    ("DateGreaterThan", "2026-01-01T00:00:00Z", "2025-06-01T00:00:00Z", False),
    ("DateLessThan", "2026-01-01T00:00:00Z", "2025-12-31T23:59:59Z", True),
    ("DateLessThan", "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", False),
    ("DateEquals", "2026-01-01T00:00:00Z", "1767225600", True),  # epoch form
    ("DateNotEquals", "2026-01-01T00:00:00Z", "1767225600", False),
    ("DateLessThanEquals", "2026-01-01", "2026-01-01T00:00:00Z", True),
    ("DateGreaterThanEquals", "2026-01-02", "2026-01-01T00:00:00Z", False),
    ("IpAddress", "127.0.0.0/8", "127.0.0.1", True),
    ("IpAddress", "10.0.0.0/8", "127.0.0.1", False),
    ("NotIpAddress", "10.0.0.0/8", "127.0.0.1", True),
    ("NotIpAddress", "127.0.0.1/32", "127.0.0.1", False),
    ("ArnLike", "arn:aws:iam::*:role/resp*", ROLE_ARN, True),
    ("ArnLike", "arn:aws:iam::*:role/other", ROLE_ARN, False),
    ("ArnEquals", ROLE_ARN, ROLE_ARN, True),
    ("ArnEquals", "arn:aws:iam::1:role/x", ROLE_ARN, False),
    ("ArnNotEquals", ROLE_ARN, ROLE_ARN, False), ("ArnNotLike", "arn:aws:sts::*", ROLE_ARN, True),
    ("ArnLike", "arn:aws:iam::*", ROLE_ARN, False),  # six components, each compared
    ("BinaryEquals", "QUJD", "QUJD", True), ("BinaryEquals", "QUJD", "QUJE", False),
])
def test_operator(operator, policy, value, expected):
    assert check(operator, "k__x", policy, k__x=(value,)) is expected


@pytest.mark.parametrize(("operator", "expected"), [
    ("StringEquals", False), ("StringNotEquals", True), ("StringLike", False),
    ("StringNotLike", True), ("ArnNotLike", True), ("NumericEquals", False),
    ("StringEqualsIfExists", True), ("StringNotEqualsIfExists", True),
    ("NumericLessThanIfExists", True),
])
def test_a_missing_key_fails_positive_operators_and_satisfies_negated_ones(operator, expected):
    assert check(operator, "k__x", "v") is expected


def test_if_exists_still_compares_a_present_key():
    assert check("StringEqualsIfExists", "k__x", "a", k__x=("b",)) is False
    assert check("StringEqualsIfExists", "k__x", "a", k__x=("a",)) is True


def test_null_checks_presence():
    assert check("Null", "k__x", "true") is True
    assert check("Null", "k__x", "true", k__x=("v",)) is False
    assert check("Null", "k__x", "false", k__x=("v",)) is True
    assert check("Null", "k__x", "false") is False


TAG_KEYS = ["gdlab:isolated-at", "gdlab:original-groups:*"]


@pytest.mark.parametrize(("keys", "expected"), [
    (("gdlab:isolated-at",), True),
    (("gdlab:isolated-at", "gdlab:original-groups:eni-1"), True),
    (("gdlab:isolated-at", "gdlab:lab"), False),
    (None, True),  # ForAllValues holds over an empty set
])
def test_for_all_values(keys, expected):
    assert check("ForAllValues:StringLike", "aws__TagKeys", TAG_KEYS, aws__TagKeys=keys) \
        is expected


@pytest.mark.parametrize(("keys", "expected"), [
    (("gdlab:lab", "gdlab:isolated-at"), True), (("gdlab:lab",), False), (None, False),
])
def test_for_any_value(keys, expected):
    assert check("ForAnyValue:StringLike", "aws__TagKeys", TAG_KEYS, aws__TagKeys=keys) \
        is expected


def test_negated_set_operators_negate_each_value():
    assert check("ForAllValues:StringNotLike", "aws__TagKeys", ["gdlab:*"],
                 aws__TagKeys=("owner", "cost")) is True
    assert check("ForAllValues:StringNotLike", "aws__TagKeys", ["gdlab:*"],
                 aws__TagKeys=("owner", "gdlab:lab")) is False
    assert check("ForAnyValue:StringNotEquals", "aws__TagKeys", ["a"],
                 aws__TagKeys=("a", "b")) is True
    assert check("ForAnyValue:StringNotEquals", "aws__TagKeys", ["a"],
                 aws__TagKeys=("a",)) is False


def test_single_valued_operator_on_several_values_matches_any():
    assert check("StringEquals", "k__x", "b", k__x=("a", "b")) is True
    assert check("StringNotEquals", "k__x", "b", k__x=("a", "b")) is False


def test_unknown_key_and_unknown_operator_are_unknown():
    assert check("StringEquals", "ec2__Vpc", "vpc-1", ec2__Vpc=UNKNOWN) is UNKNOWN
    assert check("StringFancy", "k__x", "v", k__x=("v",)) is UNKNOWN


def test_policy_variables_in_condition_values():
    lookup = lookup_of(aws__PrincipalTag_slash_team=("blue",), k__x=("team-blue",))
    assert condition_matches("StringEquals", "k:x", "team-${aws:PrincipalTag/team}", lookup)
    assert not condition_matches("StringEquals", "k:x", "team-${aws:PrincipalTag/none}", lookup)
    assert condition_matches("StringEquals", "k:x", "team-${aws:PrincipalTag/none, 'blue'}",
                             lookup)
    # ${*} is a literal star, not a wildcard.
    assert not condition_matches("StringLike", "k:x", "team-${*}", lookup)
    # Version 2008-10-17 has no variables: the text is literal.
    assert not condition_matches("StringEquals", "k:x", "team-${aws:PrincipalTag/team}",
                                 lookup, variables=False)


# --- whole decisions ------------------------------------------------------------------------
def test_allow_needs_a_matching_statement():
    assert evaluate([doc(allow())], context()).allowed
    refused = evaluate([doc({**allow(), "Action": "ec2:CreateTags"})], context())
    assert not refused.allowed and not refused.explicit_deny and refused.resource == ENI
    assert not evaluate([], context()).allowed


def test_action_is_case_insensitive_with_wildcards_and_resource_is_case_sensitive():
    assert evaluate([doc({**allow(), "Action": "EC2:modify*"})], context()).allowed
    assert evaluate([doc({**allow(), "Action": "ec2:Modify?etworkInterfaceAttribute"})],
                    context()).allowed
    assert evaluate([doc({**allow(), "Resource": "arn:aws:ec2:*:*:network-interface/*"})],
                    context()).allowed
    assert not evaluate([doc({**allow(), "Resource": "arn:aws:ec2:*:*:NETWORK-interface/*"})],
                        context()).allowed


def test_explicit_deny_wins():
    deny = {"Effect": "Deny", "Action": "ec2:*", "Resource": "*", "Sid": "NoEc2"}
    decision = evaluate([doc(allow()), doc(deny)], context())
    assert not decision.allowed and decision.explicit_deny and decision.statement == "NoEc2"


def test_not_action_and_not_resource():
    everything_but_tags = {"Effect": "Allow", "NotAction": "ec2:CreateTags", "Resource": "*"}
    assert evaluate([doc(everything_but_tags)], context()).allowed
    assert not evaluate([doc(everything_but_tags)], context(action="ec2:CreateTags")).allowed
    not_this_eni = {**allow(), "Resource": None, "NotResource": ENI}
    del not_this_eni["Resource"]
    assert not evaluate([doc(not_this_eni)], context()).allowed
    assert evaluate([doc(not_this_eni)], context(arn=ENI.replace("eni-1", "eni-2"))).allowed


def test_every_resource_needs_an_allow():
    group = f"arn:aws:ec2:us-east-1:{ACCOUNT}:security-group/sg-1"
    two = RequestContext(action="ec2:ModifyNetworkInterfaceAttribute",
                         resources=(Resource(ENI, {}), Resource(group, {})),
                         keys={}, request_tags={})
    only_eni = doc({**allow(), "Resource": ENI})
    decision = evaluate([only_eni], two)
    assert not decision.allowed and decision.resource == group
    assert evaluate([doc({**allow(), "Resource": [ENI, group]})], two).allowed


def test_conditions_are_anded_across_keys_and_operators():
    statement = allow(Condition={
        "StringEquals": {"aws:ResourceTag/gdlab:lab": "gd-1", "aws:PrincipalAccount": ACCOUNT},
        "Bool": {"aws:SecureTransport": "false"}})
    tagged = {"gdlab:lab": "gd-1"}
    keys = {"aws:securetransport": ("false",)}
    assert evaluate([doc(statement)], context(tags=tagged, keys=keys)).allowed
    assert not evaluate([doc(statement)], context(tags={"gdlab:lab": "gd-2"}, keys=keys)).allowed
    assert not evaluate([doc(statement)], context(tags=tagged,
                                                  keys={"aws:securetransport": ("true",)})).allowed


def test_resource_tag_keys_are_case_insensitive_and_a_missing_tag_is_absent():
    statement = allow(Condition={"StringEquals": {"ec2:ResourceTag/GDLAB:LAB": "gd-1"}})
    assert evaluate([doc(statement)], context(tags={"gdlab:lab": "gd-1"})).allowed
    assert not evaluate([doc(statement)], context(tags={})).allowed


def test_policy_variables_in_resources():
    statement = {**allow(), "Resource": "arn:aws:ec2:*:*:network-interface/${aws:PrincipalTag/eni}"}
    tagged = RequestContext(action="ec2:ModifyNetworkInterfaceAttribute",
                            resources=(Resource(ENI, {}),), keys={}, request_tags={},
                            principal_tags={"eni": "eni-1"})
    assert evaluate([doc(statement)], tagged).allowed
    assert not evaluate([doc(statement)], context()).allowed  # the variable has no value
    assert not evaluate([doc(statement, version="2008-10-17")], tagged).allowed


# --- leniency: unknown keys or resources never make gdlab stricter than AWS ---------------
def test_an_allow_with_an_unknown_key_matches():
    statement = allow(Condition={"StringEquals": {"ec2:Vpc": "arn:aws:ec2:*:*:vpc/vpc-1"}})
    assert evaluate([doc(statement)], context()).allowed


def test_a_deny_with_an_unknown_key_does_not_match():
    deny = {"Effect": "Deny", "Action": "ec2:*", "Resource": "*",
            "Condition": {"StringNotEquals": {"ec2:Vpc": "arn:aws:ec2:*:*:vpc/vpc-1"}}}
    assert evaluate([doc(allow()), doc(deny)], context()).allowed
    known_deny = {**deny, "Condition": {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}}
    assert not evaluate([doc(allow()), doc(known_deny)], context()).allowed


def test_unknown_resource_tags_and_arns_are_lenient_both_ways():
    tag_allow = allow(Condition={"StringEquals": {"aws:ResourceTag/gdlab:lab": "gd-1"}})
    assert evaluate([doc(tag_allow)], context(tags=None)).allowed
    scoped = {**allow(), "Resource": "arn:aws:ec2:*:*:network-interface/*"}
    assert evaluate([doc(scoped)], context(arn=None)).allowed
    deny_scoped = {"Effect": "Deny", "Action": "ec2:*", "Resource": ENI}
    assert evaluate([doc(allow()), doc(deny_scoped)], context(arn=None)).allowed


def test_absent_role_session_keys_are_absent_not_unknown():
    statement = allow(Condition={"StringEquals": {"aws:SourceArn": "arn:aws:events:*"}})
    assert not evaluate([doc(statement)], context()).allowed
    if_exists = allow(Condition={"StringEqualsIfExists": {"aws:SourceArn": "arn:aws:x"}})
    assert evaluate([doc(if_exists)], context()).allowed


def test_request_tags_and_tag_keys():
    statement = {**allow(), "Action": "ec2:CreateTags", "Condition": {
        "StringEquals": {"aws:RequestTag/gdlab:finding-id": "f-1"},
        "ForAllValues:StringEquals": {"aws:TagKeys": ["gdlab:finding-id"]}}}
    ok = context(action="ec2:CreateTags", request_tags={"gdlab:finding-id": "f-1"})
    assert evaluate([doc(statement)], ok).allowed
    extra = context(action="ec2:CreateTags",
                    request_tags={"gdlab:finding-id": "f-1", "gdlab:lab": "other"})
    assert not evaluate([doc(statement)], extra).allowed


def test_unparseable_documents_allow_nothing():
    assert not evaluate(["not json", json.dumps([1])], context()).allowed
