"""The lab VPC's flow log: a CloudWatch Logs group of the lab's own, the role VPC Flow Logs
assumes to write to it, and the flow log itself (every packet of the VPC, default format,
1-minute windows) — the evidence a real account produces of what the instances sent and
what the security groups refused.

Delivery needs a role trusted by `vpc-flow-logs.amazonaws.com` (VPC user guide, "IAM role
for publishing flow logs to CloudWatch Logs"). Its trust is limited to flow logs of this
account and region (aws:SourceAccount / aws:SourceArn, AWS's confused-deputy guard), and its
policy to the one group: gdlab creates the group itself, so the role has no
logs:CreateLogGroup, and a group teardown deleted cannot be made again by late deliveries."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from gdlab.errors import StepFailed
from gdlab.lab.awsutil import error_code, error_message, ignore_not_found, retry
from gdlab.lab.state import Resource
from gdlab.lab.steps import Found, LabContext, Step
from gdlab.lab.steps.compute import create_role, delete_role, find_role
from gdlab.lab.steps.response import OwnedLogGroup

FLOW_LOG_RETENTION_DAYS = 7
AGGREGATION_SECONDS = 60  # 60 or 600; one minute so evidence is not ten minutes late
TRAFFIC_TYPE = "ALL"  # accepted and rejected: isolation is proven by the REJECTs
SERVICE = "vpc-flow-logs.amazonaws.com"
POLICY_NAME = "gdlab-flow-logs"
# On AWS a role made seconds ago may not be assumable yet: CreateFlowLogs answers
# InvalidParameter "Unable to assume given IAM role" until IAM has propagated it.
ASSUME_PENDING = "unable to assume"
ASSUME_DEADLINE_SECONDS = 120.0
DELIVERY_DEADLINE_SECONDS = 60.0


def flow_log_group_name(ctx: LabContext) -> str:
    """The lab's flow-log group, `/gdlab/<lab>/flow-logs`."""
    return group_name_for(ctx.lab)


def group_name_for(lab: str) -> str:
    return f"/gdlab/{lab}/flow-logs"


def flow_log_role_name(ctx: LabContext) -> str:
    return f"gdlab-{ctx.lab}-flowlogs"


def log_group_arn(*, partition: str, region: str, account: str, log_group_name: str) -> str:
    return f"arn:{partition}:logs:{region}:{account}:log-group:{log_group_name}"


def delivery_trust_policy(*, partition: str, region: str, account: str) -> dict[str, Any]:
    """Only VPC Flow Logs may assume the role, and only for flow logs of this account and
    region (the flow log's id is not known before the role exists, hence the wildcard)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": SERVICE},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{partition}:ec2:{region}:{account}:vpc-flow-log/*"
                    },
                },
            }
        ],
    }


def delivery_policy(
    *, partition: str, region: str, account: str, log_group_name: str
) -> dict[str, Any]:
    """Write to the one group, nothing else. AWS's page lists CreateLogGroup, CreateLogStream,
    PutLogEvents, DescribeLogGroups and DescribeLogStreams on "*" as the minimum; gdlab makes
    the group itself (no CreateLogGroup) and scopes the rest to the group, except
    DescribeLogGroups, which supports no resource-level permission ("*" is its only form; it
    lists the names and settings of log groups, never their events)."""
    group = log_group_arn(
        partition=partition, region=region, account=account, log_group_name=log_group_name
    )
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "WriteTheLabFlowLogGroup",
                "Effect": "Allow",
                "Action": [
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                "Resource": [group, f"{group}:*"],
            },
            {
                "Sid": "FindTheGroup",
                "Effect": "Allow",
                "Action": "logs:DescribeLogGroups",
                "Resource": "*",
            },
        ],
    }


class FlowLogGroup(OwnedLogGroup):
    key, label = "flow-log-group", "Flow-log group"
    retention_days = FLOW_LOG_RETENTION_DAYS

    def group_name(self, ctx: LabContext) -> str:
        return flow_log_group_name(ctx)


class FlowLogRole(Step):
    key, type, label = "flow-log-role", "AWS::IAM::Role", "Flow-log delivery role"

    def display_name(self, ctx: LabContext) -> str:
        return flow_log_role_name(ctx)

    def create(self, ctx: LabContext) -> None:
        name = flow_log_role_name(ctx)
        trust = delivery_trust_policy(
            partition=ctx.cloud.partition(), region=ctx.cloud.region, account=ctx.cloud.account
        )
        create_role(ctx, self, name, trust,
                    "gdlab: lets VPC Flow Logs write the lab VPC's flow log to its group")

    def configure(self, ctx: LabContext, res: Resource) -> None:
        policy = delivery_policy(
            partition=ctx.cloud.partition(),
            region=ctx.cloud.region,
            account=ctx.cloud.account,
            log_group_name=flow_log_group_name(ctx),
        )
        ctx.cloud.client("iam").put_role_policy(
            RoleName=res.id, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(policy)
        )

    def find(self, ctx: LabContext) -> list[Found]:
        return find_role(ctx, flow_log_role_name(ctx))

    def delete(self, ctx: LabContext, res: Resource) -> None:
        delete_role(ctx.cloud.client("iam"), res.id or flow_log_role_name(ctx))


class _Refused(Exception):
    """CreateFlowLogs answered, but with the VPC in its Unsuccessful list."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}" if code else message)
        self.code, self.message = code, message


def _assume_pending(exc: BaseException) -> bool:
    text = exc.message if isinstance(exc, _Refused) else error_message(exc)
    return ASSUME_PENDING in text.lower()


class FlowLog(Step):
    key, type, label = "flow-log", "AWS::EC2::FlowLog", "VPC flow log"
    needs = ("vpc", "flow-log-group", "flow-log-role")

    def create(self, ctx: LabContext) -> None:
        from botocore.exceptions import ClientError

        ec2 = ctx.cloud.client("ec2")
        vpc, group = ctx.id_of("vpc"), ctx.id_of("flow-log-group")
        # One token per setup attempt: botocore's own retries of a call AWS did carry out
        # return that flow log instead of a second one.
        token = uuid.uuid4().hex

        def call() -> str:
            answer = ec2.create_flow_logs(
                ResourceType="VPC",
                ResourceIds=[vpc],
                TrafficType=TRAFFIC_TYPE,
                LogDestinationType="cloud-watch-logs",
                LogGroupName=group,
                DeliverLogsPermissionArn=ctx.attr("flow-log-role", "arn"),
                MaxAggregationInterval=AGGREGATION_SECONDS,
                TagSpecifications=ctx.tag_specs("vpc-flow-log", name=ctx.name("vpc")),
                ClientToken=token,
            )
            for failed in answer.get("Unsuccessful") or []:
                error = failed.get("Error") or {}
                raise _Refused(str(error.get("Code") or ""), str(error.get("Message") or ""))
            ids = answer.get("FlowLogIds") or []
            if not ids:
                raise _Refused("", "no flow log id in the answer")
            return str(ids[0])

        try:
            flow_log_id = retry(
                call,
                when=_assume_pending,
                deadline_seconds=min(ASSUME_DEADLINE_SECONDS, ctx.patience_seconds),
                first_delay=min(2.0, max(ctx.poll_seconds, 0.05)),
            )
        except (_Refused, ClientError) as exc:
            code = exc.code if isinstance(exc, _Refused) else error_code(exc)
            if code == "FlowLogAlreadyExists" and (same := self._same(ctx, vpc, group)):
                flow_log_id = same  # made by an attempt whose answer was lost: it is ours
            elif isinstance(exc, ClientError) and not _assume_pending(exc):
                raise
            else:
                reason = str(exc) if isinstance(exc, _Refused) else (
                    f"{code}: {error_message(exc)}"
                )
                raise StepFailed(
                    f"setup failed at '{self.label}': EC2 refused the flow log on {vpc} to "
                    f"{group}: {reason}",
                    f"'gdlab setup --lab {ctx.lab}' resumes, "
                    f"'gdlab teardown --lab {ctx.lab}' removes what was made",
                ) from exc
        ctx.created(self, flow_log_id, vpc_id=vpc, log_group=group)

    def _same(self, ctx: LabContext, vpc: str, group: str) -> str | None:
        flows = ctx.cloud.client("ec2").describe_flow_logs(
            Filters=[
                {"Name": "resource-id", "Values": [vpc]},
                {"Name": "log-group-name", "Values": [group]},
            ]
        )["FlowLogs"]
        return flows[0]["FlowLogId"] if flows else None

    def configure(self, ctx: LabContext, res: Resource) -> None:
        """The flow log delivers: DescribeFlowLogs' DeliverLogsStatus is not FAILED. "Access
        error" means the role cannot write to the group (not yet assumable, or wrong)."""
        ec2 = ctx.cloud.client("ec2")
        deadline = time.monotonic() + min(DELIVERY_DEADLINE_SECONDS, ctx.patience_seconds)
        while True:
            flows = ec2.describe_flow_logs(FlowLogIds=[res.id])["FlowLogs"]
            flow = flows[0] if flows else None
            if flow is not None and flow.get("DeliverLogsStatus") != "FAILED":
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(max(ctx.poll_seconds, 0.1))
        if flow is None:
            raise StepFailed(
                f"setup failed at '{self.label}': flow log {res.id} is not visible in "
                "DescribeFlowLogs",
                f"'gdlab setup --lab {ctx.lab}' looks again",
            )
        error = flow.get("DeliverLogsErrorMessage") or "no reason given"
        raise StepFailed(
            f"setup failed at '{self.label}': flow log {res.id} cannot deliver to "
            f"{flow.get('LogGroupName') or flow_log_group_name(ctx)}: {error}",
            f"check that role {flow_log_role_name(ctx)} exists, trusts {SERVICE} and may "
            f"write to the group; 'gdlab setup --lab {ctx.lab}' checks again, "
            f"'gdlab teardown --lab {ctx.lab}' removes what was made",
        )

    def find(self, ctx: LabContext) -> list[Found]:
        flows = ctx.cloud.client("ec2").describe_flow_logs(Filters=ctx.lab_filter())["FlowLogs"]
        return [
            Found(
                f["FlowLogId"],
                attrs={"vpc_id": f.get("ResourceId"), "log_group": f.get("LogGroupName")},
            )
            for f in flows
        ]

    def delete(self, ctx: LabContext, res: Resource) -> None:
        answer = ignore_not_found(ctx.cloud.client("ec2").delete_flow_logs, FlowLogIds=[res.id])
        # AWS reports an unknown id in Unsuccessful rather than raising.
        for failed in (answer or {}).get("Unsuccessful") or []:
            error = failed.get("Error") or {}
            code = str(error.get("Code") or "")
            if not code.endswith(".NotFound"):
                raise StepFailed(
                    f"EC2 refused to delete flow log {res.id}: {code}: {error.get('Message')}"
                )
