"""The lab VPC's flow log, its group and its delivery role: made with the right configuration,
least privilege (parliament reports nothing), swept and removed like every other resource, and
CreateFlowLogs' refusals and IAM propagation handled."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from parliament import analyze_policy_string

from gdlab.errors import StepFailed
from gdlab.lab import discovery, lifecycle
from gdlab.lab.plan import NEEDS, PLAN, STEPS, TEARDOWN_ORDER
from gdlab.lab.steps import LAB_TAG, SCENARIO_TAG, flowlogs
from gdlab.lab.steps.flowlogs import flow_log_group_name

ACCOUNT = "123456789012"
GROUP = "/gdlab/gd-1a2b3c/flow-logs"
GROUP_ARN = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{GROUP}"


def trust(partition: str = "aws") -> dict:
    return flowlogs.delivery_trust_policy(partition=partition, region="us-east-1", account=ACCOUNT)


def policy(partition: str = "aws") -> dict:
    return flowlogs.delivery_policy(
        partition=partition, region="us-east-1", account=ACCOUNT, log_group_name=GROUP
    )


def tags_of(items) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in items or []}


# --- the role's documents ----------------------------------------------------------------
def test_delivery_role_trusts_only_flow_logs_of_this_account_and_region():
    assert trust() == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": ACCOUNT},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:aws:ec2:us-east-1:{ACCOUNT}:vpc-flow-log/*"
                    },
                },
            }
        ],
    }
    china = trust("aws-cn")["Statement"][0]["Condition"]["ArnLike"]["aws:SourceArn"]
    assert china.startswith("arn:aws-cn:ec2:us-east-1:")


def test_delivery_policy_writes_only_to_the_lab_group():
    assert policy() == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "WriteTheLabFlowLogGroup",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                "Resource": [GROUP_ARN, f"{GROUP_ARN}:*"],
            },
            {
                "Sid": "FindTheGroup",
                "Effect": "Allow",
                "Action": "logs:DescribeLogGroups",
                "Resource": "*",
            },
        ],
    }
    granted = [s["Action"] for s in policy()["Statement"]]
    assert "logs:CreateLogGroup" not in json.dumps(granted)  # gdlab makes the group itself


@pytest.mark.parametrize("partition", ["aws", "aws-us-gov"])
def test_delivery_policy_passes_parliament(partition: str):
    analyzed = analyze_policy_string(
        json.dumps(policy(partition)), include_community_auditors=True
    )
    assert [(f.issue, f.detail) for f in analyzed.findings] == []


# --- the plan ------------------------------------------------------------------------------
def test_plan_runs_the_flow_log_after_its_vpc_group_and_role_and_undoes_it_first():
    assert NEEDS["flow-log"] == ("vpc", "flow-log-group", "flow-log-role")
    assert NEEDS["flow-log-group"] == () and NEEDS["flow-log-role"] == ()
    assert {STEPS[k].type for k in ("flow-log", "flow-log-group", "flow-log-role")} == {
        "AWS::EC2::FlowLog", "AWS::Logs::LogGroup", "AWS::IAM::Role"
    }
    at = {key: i for i, group in enumerate(TEARDOWN_ORDER) for key in group}
    assert at["flow-log"] < at["vpc"]
    assert at["flow-log"] < at["flow-log-group"] and at["flow-log"] < at["flow-log-role"]
    assert PLAN.index(STEPS["flow-log"]) > PLAN.index(STEPS["vpc"])


# --- setup, sweep, teardown on moto ----------------------------------------------------------
def flow_log_of(cloud, ctx) -> dict:
    [flow] = cloud.client("ec2").describe_flow_logs(FlowLogIds=[ctx.id_of("flow-log")])[
        "FlowLogs"
    ]
    return flow


def test_setup_makes_the_flow_log_its_group_and_role(new_lab, cloud):
    ctx = new_lab()
    lifecycle.setup(ctx)
    assert flow_log_group_name(ctx) == "/gdlab/gd-test01/flow-logs"
    flow = flow_log_of(cloud, ctx)
    role = cloud.client("iam").get_role(RoleName="gdlab-gd-test01-flowlogs")["Role"]
    assert flow["ResourceId"] == ctx.id_of("vpc")
    assert flow["LogGroupName"] == "/gdlab/gd-test01/flow-logs"
    assert flow["LogDestinationType"] == "cloud-watch-logs"
    assert flow["DeliverLogsPermissionArn"] == role["Arn"] == ctx.attr("flow-log-role", "arn")
    assert flow["MaxAggregationInterval"] == 60
    assert flow["TrafficType"] == "ALL"
    assert flow["DeliverLogsStatus"] == "SUCCESS"
    assert flow["LogFormat"].startswith("${version} ${account-id} ${interface-id}")  # default
    assert tags_of(flow["Tags"])[LAB_TAG] == "gd-test01"
    assert tags_of(flow["Tags"])[SCENARIO_TAG] == "compromised-ec2"
    # the group: the lab's tags, 7 days
    logs = cloud.client("logs")
    [group] = logs.describe_log_groups(logGroupNamePrefix="/gdlab/gd-test01/flow-logs")[
        "logGroups"
    ]
    assert group["retentionInDays"] == 7
    group_tags = logs.list_tags_log_group(logGroupName=group["logGroupName"])["tags"]
    assert group_tags[LAB_TAG] == "gd-test01" and group_tags[SCENARIO_TAG] == "compromised-ec2"
    # the role: path, tags, trust and its one inline policy, exactly as designed
    iam = cloud.client("iam")
    assert role["Path"] == "/gdlab/"
    assert tags_of(role["Tags"])[LAB_TAG] == "gd-test01"
    assert role["AssumeRolePolicyDocument"] == flowlogs.delivery_trust_policy(
        partition="aws", region="us-east-1", account=ACCOUNT
    )
    assert iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"] == ["gdlab-flow-logs"]
    assert iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"] == []
    inline = iam.get_role_policy(RoleName=role["RoleName"], PolicyName="gdlab-flow-logs")
    assert inline["PolicyDocument"] == flowlogs.delivery_policy(
        partition="aws", region="us-east-1", account=ACCOUNT,
        log_group_name="/gdlab/gd-test01/flow-logs",
    )


def test_teardown_removes_the_flow_log_its_group_and_role(new_lab, cloud, store, leftovers):
    ctx = new_lab()
    lifecycle.setup(ctx)
    found = leftovers("gd-test01")
    assert found["flow-log"] == [ctx.id_of("flow-log")]
    assert "/gdlab/gd-test01/flow-logs" in found["log-group"]
    assert "gdlab-gd-test01-flowlogs" in found["role"]
    lifecycle.teardown(ctx, store)
    assert leftovers() == {}
    assert cloud.client("ec2").describe_flow_logs()["FlowLogs"] == []


def test_a_lost_state_file_still_finds_all_three(new_lab, cloud, store, scenario, leftovers):
    ctx = new_lab("gd-lost2")
    lifecycle.setup(ctx)
    store.path("gd-lost2").unlink()
    state = discovery.rebuild_lost_lab(store, cloud, scenario, "gd-lost2")
    swept = lifecycle.teardown_plan(lifecycle.context(cloud, state, scenario))
    keys = {d.resource.key: d.resource.id for group in swept for d in group}
    assert keys["flow-log"] == ctx.id_of("flow-log")
    assert keys["flow-log-group"] == "/gdlab/gd-lost2/flow-logs"
    assert keys["flow-log-role"] == "gdlab-gd-lost2-flowlogs"
    lifecycle.teardown(lifecycle.context(cloud, state, scenario), store)
    assert leftovers() == {}


def test_a_leftover_flow_log_group_alone_is_a_lab_to_discover(cloud, scenario, store):
    cloud.client("logs").create_log_group(logGroupName="/gdlab/gd-left1/flow-logs")
    cloud.client("logs").create_log_group(logGroupName="/gdlab/not a lab/flow-logs")
    assert discovery.discover_labs(cloud, scenario) == {"gd-left1"}
    state = discovery.rebuild_lost_lab(store, cloud, scenario, "gd-left1")
    lifecycle.teardown(lifecycle.context(cloud, state, scenario), store)
    groups = cloud.client("logs").describe_log_groups(logGroupNamePrefix="/gdlab/gd-left1/")
    assert groups["logGroups"] == []


def test_a_leftover_tagged_flow_log_alone_is_a_lab_to_discover(new_lab, cloud, scenario):
    ctx = new_lab("gd-left2")
    lifecycle.setup(ctx)
    iam, logs = cloud.client("iam"), cloud.client("logs")
    # everything but the flow log gone behind gdlab's back: the flow log still names the lab
    for key in [k for group in TEARDOWN_ORDER for k in group if k != "flow-log"]:
        res = ctx.state.live(key)
        if res is not None and res.ownership == "created":
            STEPS[key].delete(ctx, res)
            STEPS[key].finish_delete(ctx, res)
    assert iam.list_roles(PathPrefix="/gdlab/")["Roles"] == []
    assert logs.describe_log_groups(logGroupNamePrefix="/gdlab/")["logGroups"] == []
    assert discovery.discover_labs(cloud, scenario) == {"gd-left2"}


def test_setup_resumed_after_a_lost_create_answer_adopts_the_flow_log(new_lab, cloud, store):
    """CreateFlowLogs made the flow log but the answer never reached the journal: the pending
    intent is looked for (by tag) on resume, and no second flow log is made."""
    ctx = new_lab("gd-lost3")
    step = STEPS["flow-log"]
    original = step.create

    def lose_answer(c):
        original(c)
        c.state.forget("flow-log")
        c.state.intend("flow-log", step.type, None)
        raise ClientError({"Error": {"Code": "RequestTimeout", "Message": "lost"}}, "X")

    step.create = lose_answer
    try:
        with pytest.raises(StepFailed):
            lifecycle.setup(ctx, workers=1)
    finally:
        step.create = original
    lifecycle.setup(ctx)
    assert len(cloud.client("ec2").describe_flow_logs()["FlowLogs"]) == 1
    lifecycle.teardown(ctx, store)
    assert cloud.client("ec2").describe_flow_logs()["FlowLogs"] == []


# --- refusals, propagation, delivery --------------------------------------------------------
def _until_flow_log(new_lab, lab: str):
    """A lab whose setup has run every step the flow log needs, and nothing else."""
    ctx = new_lab(lab)
    for key in ("vpc", "flow-log-group", "flow-log-role"):
        lifecycle._create(ctx, STEPS[key])
    return ctx


def _answer_with(cloud, monkeypatch, answers):
    """CreateFlowLogs answers each of `answers` in turn (an exception is raised), then AWS's."""
    ec2 = cloud.client("ec2")
    real = ec2.create_flow_logs
    calls = []

    def fake(**kwargs):
        calls.append(kwargs)
        if answers:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return real(**kwargs)

    monkeypatch.setattr(ec2, "create_flow_logs", fake)
    return calls


def test_unsuccessful_from_create_flow_logs_is_a_step_failure_naming_the_reason(
    new_lab, cloud, monkeypatch
):
    ctx = _until_flow_log(new_lab, "gd-refu1")
    refusal = {
        "FlowLogIds": [],
        "Unsuccessful": [
            {
                "ResourceId": ctx.id_of("vpc"),
                "Error": {"Code": "FlowLogsLimitExceeded", "Message": "too many flow logs"},
            }
        ],
    }
    calls = _answer_with(cloud, monkeypatch, [refusal])
    with pytest.raises(StepFailed, match="FlowLogsLimitExceeded: too many flow logs") as info:
        lifecycle._create(ctx, STEPS["flow-log"])
    assert ctx.id_of("vpc") in str(info.value) and "VPC flow log" in str(info.value)
    assert len(calls) == 1  # not retried: only propagation is
    assert ctx.state.live("flow-log") is None


def test_a_role_not_yet_assumable_is_retried_until_it_is(new_lab, cloud, monkeypatch):
    ctx = _until_flow_log(new_lab, "gd-prop1")
    pending = ClientError(
        {"Error": {"Code": "InvalidParameter",
                   "Message": "Unable to assume given IAM role: 'arn:aws:iam::1:role/x'"}},
        "CreateFlowLogs",
    )
    in_list = {
        "Unsuccessful": [
            {"ResourceId": ctx.id_of("vpc"),
             "Error": {"Code": "400", "Message": "Unable to assume given IAM role"}}
        ]
    }
    calls = _answer_with(cloud, monkeypatch, [pending, in_list])
    lifecycle._create(ctx, STEPS["flow-log"])
    assert len(calls) == 3
    assert len({c["ClientToken"] for c in calls}) == 1  # one token for the attempt
    assert ctx.state.live("flow-log").attrs["configured"]
    assert flow_log_of(cloud, ctx)["DeliverLogsStatus"] == "SUCCESS"


def test_a_role_never_assumable_is_a_bounded_step_failure(new_lab, cloud, monkeypatch):
    ctx = _until_flow_log(new_lab, "gd-prop2")
    ctx.patience_seconds = 0.5
    pending = [
        ClientError({"Error": {"Code": "InvalidParameter",
                               "Message": "Unable to assume given IAM role"}}, "CreateFlowLogs")
        for _ in range(100)
    ]
    calls = _answer_with(cloud, monkeypatch, pending)
    with pytest.raises(StepFailed, match="Unable to assume given IAM role"):
        lifecycle._create(ctx, STEPS["flow-log"])
    assert 1 < len(calls) < 20


def test_a_flow_log_that_cannot_deliver_fails_setup_with_aws_reason(new_lab, cloud):
    """DeliverLogsStatus FAILED, "Access error": here the group is gone when the flow log is
    made (moto says so the way AWS does when the role cannot write)."""
    ctx = _until_flow_log(new_lab, "gd-deli1")
    cloud.client("logs").delete_log_group(logGroupName=ctx.id_of("flow-log-group"))
    ctx.patience_seconds = 0.3
    with pytest.raises(StepFailed, match="cannot deliver to /gdlab/gd-deli1/flow-logs: Access"):
        lifecycle._create(ctx, STEPS["flow-log"])
    res = ctx.state.live("flow-log")
    assert res is not None and not res.attrs["configured"]  # a resumed setup checks again


def test_deleting_a_flow_log_already_gone_is_success(new_lab, cloud, store):
    ctx = new_lab("gd-gone1")
    lifecycle.setup(ctx)
    cloud.client("ec2").delete_flow_logs(FlowLogIds=[ctx.id_of("flow-log")])
    STEPS["flow-log"].delete(ctx, ctx.state.live("flow-log"))
    lifecycle.teardown(ctx, store)
    assert ctx.state.phase == "torn-down"
