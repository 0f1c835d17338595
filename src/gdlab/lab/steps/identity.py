"""An IAM user of the lab and its access key, for the scenarios whose incident is a leaked key.

The key's secret exists once, in CreateAccessKey's answer: it goes straight into an SSM
SecureString parameter of the lab (encrypted with the account's aws/ssm key), never into
gdlab's state, logs or output. The attack reads it from there, as the workshop's template kept
its keys in Parameter Store; teardown deletes the key and the parameter."""

from __future__ import annotations

import json
import re
from typing import Any

from gdlab.errors import GdlabError
from gdlab.lab.awsutil import error_code, ignore_not_found, tag_list
from gdlab.lab.state import Resource
from gdlab.lab.steps import LAB_TAG, Found, LabContext, Step
from gdlab.lab.steps.compute import IAM_PATH

# What the application that owns the key may do: list the lab's bucket (so its thief can too).
APPLICATION_POLICY = "gdlab-application"
_KEY_ID = re.compile(r"AKIA[A-Z0-9]{16}")
_SECRET = re.compile(r"[A-Za-z0-9+/]{40}")


def user_name(ctx: LabContext) -> str:
    return f"gdlab-{ctx.lab}-user"


def parameter_name(ctx: LabContext) -> str:
    return f"/gdlab/{ctx.lab}/access-key"


class LostSecret(GdlabError):
    """An access key whose secret never reached its parameter."""


class LabUser(Step):
    """`actions` on the bucket of step `bucket_key` are what the key's application may do,
    and so what its thief can do (by default: list the threat-list bucket)."""

    key, type, label = "iam-user", "AWS::IAM::User", "IAM user whose key leaks"

    def __init__(self, bucket_key: str = "bucket", actions: tuple[str, ...] = ("s3:ListBucket",)):
        self.bucket_key, self.actions = bucket_key, actions
        self.needs = (bucket_key,)  # its policy names the bucket

    def display_name(self, ctx: LabContext) -> str:
        return user_name(ctx)

    def create(self, ctx: LabContext) -> None:
        name = user_name(ctx)
        user = ctx.cloud.client("iam").create_user(
            UserName=name, Path=IAM_PATH, Tags=tag_list(ctx.tags(name)))["User"]
        ctx.created(self, name, arn=user["Arn"])

    def configure(self, ctx: LabContext, res: Resource) -> None:
        bucket = f"arn:{ctx.cloud.partition()}:s3:::{ctx.id_of(self.bucket_key)}"
        ctx.cloud.client("iam").put_user_policy(
            UserName=res.id, PolicyName=APPLICATION_POLICY, PolicyDocument=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Sid": "WhatTheApplicationDoesOnTheLabBucket",
                               "Effect": "Allow", "Action": list(self.actions),
                               "Resource": bucket}]}))

    def find(self, ctx: LabContext) -> list[Found]:
        from botocore.exceptions import ClientError

        iam = ctx.cloud.client("iam")
        name = user_name(ctx)
        try:
            tags = iam.list_user_tags(UserName=name)["Tags"]
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
                return []
            raise
        if not any(t["Key"] == LAB_TAG and t["Value"] == ctx.lab for t in tags):
            return []
        return [Found(name, attrs={"arn": iam.get_user(UserName=name)["User"]["Arn"]})]

    def delete(self, ctx: LabContext, res: Resource) -> None:
        """Keys, inline and attached policies, then the user (IAM refuses it before)."""
        from botocore.exceptions import ClientError

        iam = ctx.cloud.client("iam")
        name = res.id or user_name(ctx)
        try:
            keys = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
            inline = iam.list_user_policies(UserName=name)["PolicyNames"]
            attached = iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
                return
            raise
        for key in keys:
            ignore_not_found(iam.delete_access_key, UserName=name,
                             AccessKeyId=key["AccessKeyId"])
        for policy in inline:
            ignore_not_found(iam.delete_user_policy, UserName=name, PolicyName=policy)
        for policy in attached:
            ignore_not_found(iam.detach_user_policy, UserName=name,
                             PolicyArn=policy["PolicyArn"])
        ignore_not_found(iam.delete_user, UserName=name)


class LeakedKey(Step):
    key, type, label = "access-key", "AWS::IAM::AccessKey", "The user's access key (secret in SSM)"
    needs = ("iam-user",)

    def create(self, ctx: LabContext) -> None:
        iam, ssm = ctx.cloud.client("iam"), ctx.cloud.client("ssm")
        made = iam.create_access_key(UserName=ctx.id_of("iam-user"))["AccessKey"]
        ctx.created(self, made["AccessKeyId"], parameter=parameter_name(ctx))
        ssm.put_parameter(
            Name=parameter_name(ctx), Type="SecureString", Overwrite=False,
            Description="gdlab: the lab user's access key, which the lab's attacker uses",
            Value=json.dumps({"AccessKeyId": made["AccessKeyId"],
                              "SecretAccessKey": made["SecretAccessKey"]}),
            Tags=tag_list(ctx.tags()))

    def configure(self, ctx: LabContext, res: Resource) -> None:
        """A key whose secret is not in the parameter (setup stopped between the two calls)
        can never be used: say so; teardown removes both."""
        stored = read_key(ctx)
        if stored is None or stored[0] != res.id:
            raise LostSecret(
                f"the secret of access key {res.id} is not in {parameter_name(ctx)}: it was "
                "lost when setup stopped", f"run 'gdlab teardown --lab {ctx.lab}' and set up "
                "again")

    def find(self, ctx: LabContext) -> list[Found]:
        from botocore.exceptions import ClientError

        try:
            keys = [k["AccessKeyId"] for k in ctx.cloud.client("iam").list_access_keys(
                UserName=user_name(ctx))["AccessKeyMetadata"]]
        except ClientError as exc:
            if error_code(exc) != "NoSuchEntity":
                raise
            keys = []
        if not keys:  # a parameter left behind by a teardown cut short: its key, by name
            stored = read_key(ctx)
            keys = [stored[0]] if stored else []
        return [Found(key, attrs={"parameter": parameter_name(ctx)}) for key in keys]

    def delete(self, ctx: LabContext, res: Resource) -> None:
        ignore_not_found(ctx.cloud.client("iam").delete_access_key,
                         UserName=user_name(ctx), AccessKeyId=res.id)
        ignore_not_found(ctx.cloud.client("ssm").delete_parameter, Name=parameter_name(ctx))


def read_key(ctx: LabContext) -> tuple[str, str] | None:
    """(access key id, secret) from the lab's parameter, if it holds a well-formed key."""
    from botocore.exceptions import ClientError

    try:
        value = ctx.cloud.client("ssm").get_parameter(
            Name=parameter_name(ctx), WithDecryption=True)["Parameter"]["Value"]
    except ClientError as exc:
        if error_code(exc) == "ParameterNotFound":
            return None
        raise
    try:
        data: Any = json.loads(value)
    except ValueError:
        return None
    key, secret = (data.get("AccessKeyId"), data.get("SecretAccessKey")) \
        if isinstance(data, dict) else (None, None)
    if not (isinstance(key, str) and _KEY_ID.fullmatch(key) and isinstance(secret, str)
            and _SECRET.fullmatch(secret)):
        return None
    return key, secret
