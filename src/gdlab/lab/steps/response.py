"""The automated response: the responder's role, the SNS topic and its e-mail, the Lambda
and its log group, and the EventBridge rule with its two targets."""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gdlab.lab import responder
from gdlab.lab.awsutil import error_code, ignore_not_found, message_has, retry, tag_list
from gdlab.lab.state import Resource
from gdlab.lab.steps import LAB_TAG, Found, LabContext, Step
from gdlab.lab.steps.compute import create_role, delete_role, find_role

LOG_RETENTION_DAYS = 7
STATEMENT_ID = "gdlab-eventbridge"
SNS_TARGET_ID = "gdlab-email"
LAMBDA_TARGET_ID = "gdlab-responder"


def function_name(ctx: LabContext) -> str:
    return ctx.name("function")


def log_group_name(ctx: LabContext) -> str:
    return f"/aws/lambda/{function_name(ctx)}"


def rule_arn(ctx: LabContext) -> str:
    return ctx.cloud.arn("events", f"rule/{ctx.name('rule')}")


def topic_arn(ctx: LabContext) -> str:
    return ctx.cloud.arn("sns", ctx.name("topic"))


def responder_role_name(ctx: LabContext) -> str:
    return f"gdlab-{ctx.lab}-responder"


@dataclass(frozen=True)
class ResponderSpec:
    """What a scenario's responder is: the lab resources its policy and environment name
    (they are the two steps' needs), its role's identity policy and the Lambda's environment,
    each computed from the lab, and what it does in a line (the role's and function's
    descriptions). Its code is the scenario's responder/ folder."""

    needs: tuple[str, ...]
    policy: Callable[[LabContext], dict[str, Any]]
    environment: Callable[[LabContext], dict[str, str]]
    description: str


class ResponderRole(Step):
    key, type, label = "responder-role", "AWS::IAM::Role", "Responder's least-privilege role"
    typical_seconds = 10.0  # IAM propagation: Lambda may not assume it at once

    def __init__(self, spec: ResponderSpec):
        self.spec = spec
        self.needs = spec.needs

    def display_name(self, ctx: LabContext) -> str:
        return responder_role_name(ctx)

    def create(self, ctx: LabContext) -> None:
        create_role(ctx, self, self.display_name(ctx),
                    responder.role_trust_policy(ctx.cloud.account), self.spec.description)

    def configure(self, ctx: LabContext, res: Resource) -> None:
        policy = self.spec.policy(ctx)
        ctx.cloud.client("iam").put_role_policy(
            RoleName=res.id, PolicyName="gdlab-responder", PolicyDocument=json.dumps(policy)
        )

    def find(self, ctx: LabContext) -> list[Found]:
        return find_role(ctx, self.display_name(ctx))

    def delete(self, ctx: LabContext, res: Resource) -> None:
        delete_role(ctx.cloud.client("iam"), res.id or self.display_name(ctx))


def topic_policy(ctx: LabContext) -> dict[str, Any]:
    arn = topic_arn(ctx)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OnlyThisRule",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sns:Publish",
                "Resource": arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn(ctx)}},
            },
            {
                "Sid": "TheResponder",
                "Effect": "Allow",
                "Principal": {"AWS": ctx.attr("responder-role", "arn")},
                "Action": "sns:Publish",
                "Resource": arn,
            },
        ],
    }


class Topic(Step):
    key, type, label = "sns-topic", "AWS::SNS::Topic", "SNS topic for the e-mails"
    needs = ("responder-role",)

    def display_name(self, ctx: LabContext) -> str:
        return ctx.name("topic")

    def create(self, ctx: LabContext) -> None:
        # No KMS key: EventBridge cannot publish to a topic encrypted with alias/aws/sns.
        create = lambda: ctx.cloud.client("sns").create_topic(  # noqa: E731
            Name=self.display_name(ctx),
            Attributes={
                "DisplayName": "GuardDuty-Example",
                "Policy": json.dumps(topic_policy(ctx)),
            },
            Tags=tag_list(ctx.tags(self.display_name(ctx))),
        )
        # SNS checks the policy's principals: a role made seconds ago may not be known yet.
        arn = retry(
            create, when=message_has("PrincipalNotFound"), deadline_seconds=60.0, first_delay=2.0
        )["TopicArn"]
        ctx.created(self, arn)

    def find(self, ctx: LabContext) -> list[Found]:
        from botocore.exceptions import ClientError

        sns = ctx.cloud.client("sns")
        try:
            tags = sns.list_tags_for_resource(ResourceArn=topic_arn(ctx))["Tags"]
        except ClientError as exc:
            if error_code(exc) in ("NotFound", "ResourceNotFound", "ResourceNotFoundException"):
                return []
            raise
        return [Found(topic_arn(ctx))] if any(t["Key"] == LAB_TAG for t in tags) else []

    def delete(self, ctx: LabContext, res: Resource) -> None:
        ignore_not_found(ctx.cloud.client("sns").delete_topic, TopicArn=res.id)


class EmailSubscription(Step):
    key, type, label = "sns-subscription", "AWS::SNS::Subscription", "E-mail subscription"
    needs = ("sns-topic",)

    def applies(self, ctx: LabContext) -> bool:
        return bool(ctx.state.options.get("email"))

    def create(self, ctx: LabContext) -> None:
        sub = ctx.cloud.client("sns").subscribe(
            TopicArn=ctx.id_of("sns-topic"),
            Protocol="email",
            Endpoint=ctx.state.options["email"],
            ReturnSubscriptionArn=True,
        )
        ctx.created(self, sub["SubscriptionArn"], endpoint=ctx.state.options["email"])

    def delete(self, ctx: LabContext, res: Resource) -> None:
        from botocore.exceptions import ClientError

        # Unconfirmed subscriptions cannot be unsubscribed; deleting the topic removes them.
        try:
            ctx.cloud.client("sns").unsubscribe(SubscriptionArn=res.id)
        except ClientError as exc:
            if error_code(exc) not in ("NotFound", "InvalidParameter", "AuthorizationError"):
                raise


class OwnedLogGroup(Step):
    """A log group the lab makes itself (so no role of the lab needs logs:CreateLogGroup,
    and nothing can bring the group back after teardown), with its retention."""

    type = "AWS::Logs::LogGroup"
    retention_days = LOG_RETENTION_DAYS

    @abstractmethod
    def group_name(self, ctx: LabContext) -> str:
        """The group's exact name."""

    def display_name(self, ctx: LabContext) -> str:
        return self.group_name(ctx)

    def create(self, ctx: LabContext) -> None:
        name = self.group_name(ctx)
        try:
            ctx.cloud.client("logs").create_log_group(logGroupName=name, tags=ctx.tags())
        except Exception as exc:
            if error_code(exc) != "ResourceAlreadyExistsException":
                raise
        ctx.created(self, name)

    def configure(self, ctx: LabContext, res: Resource) -> None:
        ctx.cloud.client("logs").put_retention_policy(
            logGroupName=res.id, retentionInDays=self.retention_days
        )

    def find(self, ctx: LabContext) -> list[Found]:
        name = self.group_name(ctx)
        groups = ctx.cloud.client("logs").describe_log_groups(logGroupNamePrefix=name)
        return [Found(name) for g in groups["logGroups"] if g["logGroupName"] == name]

    def delete(self, ctx: LabContext, res: Resource) -> None:
        ignore_not_found(ctx.cloud.client("logs").delete_log_group, logGroupName=res.id)


class LogGroup(OwnedLogGroup):
    key, label = "log-group", "Responder's log group"

    def group_name(self, ctx: LabContext) -> str:
        return log_group_name(ctx)


def _isolation_policy(ctx: LabContext) -> dict[str, Any]:
    return responder.role_policy(
        partition=ctx.cloud.partition(),
        region=ctx.cloud.region,
        account=ctx.cloud.account,
        lab_tag_key=LAB_TAG,
        lab_tag_value=ctx.lab,
        forensic_group_id=ctx.id_of("sg-forensic"),
        untracking_group_id=ctx.id_of("sg-untracking"),
        topic_arn=topic_arn(ctx),
        log_group_name=log_group_name(ctx),
    )


def _isolation_environment(ctx: LabContext) -> dict[str, str]:
    return responder.environment(
        lab_tag_key=LAB_TAG,
        lab_tag_value=ctx.lab,
        forensic_group_id=ctx.id_of("sg-forensic"),
        untracking_group_id=ctx.id_of("sg-untracking"),
        topic_arn=ctx.id_of("sns-topic"),
    )


# The responder that isolates an instance into the forensic group (scenario 1's).
ISOLATION = ResponderSpec(
    needs=("sg-forensic", "sg-untracking"),
    policy=_isolation_policy,
    environment=_isolation_environment,
    description="gdlab: isolates a compromised lab instance into the forensic group",
)


def _revoke_policy(ctx: LabContext) -> dict[str, Any]:
    from gdlab.lab.responder_policies import revoke_sessions_policy
    from gdlab.lab.steps.compute import IAM_PATH

    return revoke_sessions_policy(
        partition=ctx.cloud.partition(),
        region=ctx.cloud.region,
        account=ctx.cloud.account,
        role_name=ctx.id_of("instance-role"),
        role_path=IAM_PATH,
        topic_arn=topic_arn(ctx),
        log_group_name=log_group_name(ctx),
        lab_tag_key=LAB_TAG,
        lab_tag_value=ctx.lab,
    )


def _revoke_environment(ctx: LabContext) -> dict[str, str]:
    return {"LAB_TAG_KEY": LAB_TAG, "LAB_TAG_VALUE": ctx.lab, "TOPIC_ARN": ctx.id_of("sns-topic"),
            "LOG_LEVEL": "INFO"}


# The responder that revokes the sessions of the instance role whose credentials were stolen.
REVOKE = ResponderSpec(
    needs=("instance-role",),
    policy=_revoke_policy,
    environment=_revoke_environment,
    description="gdlab: revokes the sessions of a lab instance role whose credentials leaked",
)


def _disable_key_policy(ctx: LabContext) -> dict[str, Any]:
    from gdlab.lab.responder_policies import disable_key_policy
    from gdlab.lab.steps.compute import IAM_PATH

    return disable_key_policy(
        partition=ctx.cloud.partition(), region=ctx.cloud.region, account=ctx.cloud.account,
        user_name=ctx.id_of("iam-user"), user_path=IAM_PATH, topic_arn=topic_arn(ctx),
        log_group_name=log_group_name(ctx), lab_tag_key=LAB_TAG, lab_tag_value=ctx.lab)


# The responder that disables a leaked IAM user access key and denies the user everything.
DISABLE_KEY = ResponderSpec(
    needs=("iam-user",),
    policy=_disable_key_policy,
    environment=_revoke_environment,  # the same three: lab tag, topic, log level
    description="gdlab: disables a lab user's leaked access key and denies the user",
)


def _restore_bucket_policy(ctx: LabContext) -> dict[str, Any]:
    from gdlab.lab.responder_policies import restore_bucket_policy

    return restore_bucket_policy(
        partition=ctx.cloud.partition(), region=ctx.cloud.region, account=ctx.cloud.account,
        bucket=ctx.id_of("data-bucket"), topic_arn=topic_arn(ctx),
        log_group_name=log_group_name(ctx))


def _restore_bucket_environment(ctx: LabContext) -> dict[str, str]:
    from gdlab.lab.steps.buckets import ACCESS_LOG_PREFIX

    return {**_revoke_environment(ctx), "LOG_BUCKET": ctx.id_of("log-bucket"),
            "LOG_PREFIX": ACCESS_LOG_PREFIX}


# The responder that restores a lab bucket's Block Public Access and access logging.
RESTORE_BUCKET = ResponderSpec(
    needs=("data-bucket", "log-bucket"),
    policy=_restore_bucket_policy,
    environment=_restore_bucket_environment,
    description="gdlab: restores a lab bucket's Block Public Access and access logging",
)


class Function(Step):
    key, type, label = "function", "AWS::Lambda::Function", "Responder Lambda"
    typical_seconds = 30.0  # CreateFunction, then the wait until it is Active

    def __init__(self, spec: ResponderSpec):
        self.spec = spec
        self.needs = ("responder-role", "sns-topic", "log-group", *spec.needs)

    def display_name(self, ctx: LabContext) -> str:
        return function_name(ctx)

    def create(self, ctx: LabContext) -> None:
        lam = ctx.cloud.client("lambda")
        name = function_name(ctx)
        code = responder.build_zip(ctx.scenario)
        env = self.spec.environment(ctx)
        create = lambda: lam.create_function(  # noqa: E731
            FunctionName=name,
            Runtime=responder.RUNTIME,
            Role=ctx.attr("responder-role", "arn"),
            Handler=responder.HANDLER,
            Code={"ZipFile": code},
            Description=self.spec.description,
            Timeout=responder.TIMEOUT_SECONDS,
            MemorySize=responder.MEMORY_MB,
            Environment={"Variables": env},
            Tags=ctx.tags(name),
        )
        # A role made seconds ago may not be assumable by Lambda yet (IAM propagation).
        function = retry(
            create,
            when=message_has("cannot be assumed", "role defined for the function"),
            deadline_seconds=60.0,
            first_delay=2.0,
        )
        ctx.created(
            self,
            name,
            arn=function["FunctionArn"],
            code_sha256=function.get("CodeSha256"),
        )

    def configure(self, ctx: LabContext, res: Resource) -> None:
        ctx.cloud.client("lambda").get_waiter("function_active_v2").wait(
            FunctionName=res.id, WaiterConfig=ctx.waiter_config(max_seconds=300)
        )

    def find(self, ctx: LabContext) -> list[Found]:
        from botocore.exceptions import ClientError

        try:
            fn = ctx.cloud.client("lambda").get_function(FunctionName=function_name(ctx))
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return []
            raise
        if fn.get("Tags", {}).get(LAB_TAG) != ctx.lab:
            return []
        return [Found(function_name(ctx), attrs={"arn": fn["Configuration"]["FunctionArn"]})]

    def delete(self, ctx: LabContext, res: Resource) -> None:
        ignore_not_found(ctx.cloud.client("lambda").delete_function, FunctionName=res.id)


class Rule(Step):
    key, type, label = "rule", "AWS::Events::Rule", "EventBridge rule"

    def display_name(self, ctx: LabContext) -> str:
        return ctx.name("rule")

    def create(self, ctx: LabContext) -> None:
        arn = ctx.cloud.client("events").put_rule(
            Name=self.display_name(ctx),
            EventPattern=json.dumps(ctx.scenario.event_pattern),
            State="ENABLED",
            Description=f"gdlab: {ctx.scenario.finding_type} findings to e-mail and the responder",
            Tags=tag_list(ctx.tags(self.display_name(ctx))),
        )["RuleArn"]
        ctx.created(self, self.display_name(ctx), arn=arn)

    def find(self, ctx: LabContext) -> list[Found]:
        from botocore.exceptions import ClientError

        events = ctx.cloud.client("events")
        try:
            tags = events.list_tags_for_resource(ResourceARN=rule_arn(ctx))["Tags"]
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return []
            raise
        if not any(t["Key"] == LAB_TAG and t["Value"] == ctx.lab for t in tags):
            return []
        return [Found(self.display_name(ctx), attrs={"arn": rule_arn(ctx)})]

    def delete(self, ctx: LabContext, res: Resource) -> None:
        ignore_not_found(ctx.cloud.client("events").delete_rule, Name=res.id)


class InvokePermission(Step):
    key, type, label = "permission", "AWS::Lambda::Permission", "Invoke permission for the rule"
    needs = ("function", "rule")

    def create(self, ctx: LabContext) -> None:
        ctx.cloud.client("lambda").add_permission(
            FunctionName=ctx.id_of("function"),
            StatementId=STATEMENT_ID,
            Action="lambda:InvokeFunction",
            Principal="events.amazonaws.com",
            SourceArn=ctx.attr("rule", "arn"),
            SourceAccount=ctx.cloud.account,
        )
        ctx.created(self, STATEMENT_ID)

    def delete(self, ctx: LabContext, res: Resource) -> None:
        ignore_not_found(
            ctx.cloud.client("lambda").remove_permission,
            FunctionName=function_name(ctx),
            StatementId=res.id,
        )


class Targets(Step):
    key, type, label = "targets", "AWS::Events::Target", "Rule targets: e-mail + responder"
    needs = ("permission", "sns-topic", "rule", "function")

    def create(self, ctx: LabContext) -> None:
        notification = ctx.scenario.notification
        rule = ctx.id_of("rule")
        result = ctx.cloud.client("events").put_targets(
            Rule=rule,
            Targets=[
                {
                    "Id": SNS_TARGET_ID,
                    "Arn": ctx.id_of("sns-topic"),
                    "InputTransformer": {
                        "InputPathsMap": notification["InputPathsMap"],
                        "InputTemplate": notification["InputTemplate"],
                    },
                },
                {"Id": LAMBDA_TARGET_ID, "Arn": ctx.attr("function", "arn")},
            ],
        )
        if result.get("FailedEntryCount"):
            failed = result["FailedEntries"][0]
            raise RuntimeError(
                f"EventBridge refused target {failed.get('TargetId')}: {failed.get('ErrorMessage')}"
            )
        ctx.created(self, f"{rule}:{SNS_TARGET_ID},{LAMBDA_TARGET_ID}", rule=rule)

    def find(self, ctx: LabContext) -> list[Found]:
        from botocore.exceptions import ClientError

        rule = ctx.name("rule")
        try:
            targets = ctx.cloud.client("events").list_targets_by_rule(Rule=rule)["Targets"]
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return []
            raise
        ids = [t["Id"] for t in targets]
        return [Found(f"{rule}:{','.join(ids)}", attrs={"rule": rule})] if ids else []

    def delete(self, ctx: LabContext, res: Resource) -> None:
        rule, _, ids = (res.id or "").partition(":")
        if ids:
            ignore_not_found(
                ctx.cloud.client("events").remove_targets, Rule=rule, Ids=ids.split(",")
            )
