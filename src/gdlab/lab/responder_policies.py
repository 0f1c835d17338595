"""Least-privilege IAM policies for the responders of scenarios other than compromised-ec2
(whose role policy is gdlab.lab.responder.role_policy). Pure functions: ARNs in, policy out.
"""

from __future__ import annotations

from typing import Any

from gdlab.lab.responder import report_statements

# The inline policy the credential-exfiltration responder writes (IAM's own console name).
REVOKE_POLICY_NAME = "AWSRevokeOlderSessions"


def revoke_sessions_policy(
    *,
    partition: str,
    region: str,
    account: str,
    role_name: str,
    role_path: str = "/",
    topic_arn: str,
    log_group_name: str,
    lab_tag_key: str | None = None,
    lab_tag_value: str | None = None,
) -> dict[str, Any]:
    """What scenarios/credential-exfiltration/responder/handler.py calls, on exactly one role.

    `role_name` is the lab's instance role, under `role_path` (gdlab's roles are under
    /gdlab/); IAM ARNs carry no region, so `region` only places the log group. With
    `lab_tag_key`/`lab_tag_value`, PutRolePolicy also needs the role to carry the lab tag, so
    a role re-created under the name outside the lab is refused by IAM too, not only by the
    handler's own check.
    """
    if bool(lab_tag_key) != bool(lab_tag_value):
        raise ValueError("lab_tag_key and lab_tag_value go together")
    if not (role_path.startswith("/") and role_path.endswith("/")):
        raise ValueError(f"an IAM path begins and ends with '/': {role_path!r}")
    role_arn = f"arn:{partition}:iam::{account}:role{role_path}{role_name}"
    revoke: dict[str, Any] = {
        # Service Authorization Reference (IAM): PutRolePolicy's only condition key is
        # iam:PermissionsBoundary; no key names the inline policy, so the policy name cannot
        # be pinned. The grant is bounded by the role's ARN and by the role's tag: the role
        # resource type supports aws:ResourceTag/<key> and iam:ResourceTag/<key>, which IAM
        # treats alike; the global key is used (as for EC2 in responder.role_policy).
        "Sid": "RevokeSessionsOfTheLabRole",
        "Effect": "Allow",
        "Action": "iam:PutRolePolicy",
        "Resource": role_arn,
    }
    if lab_tag_key:
        revoke["Condition"] = {"StringEquals": {f"aws:ResourceTag/{lab_tag_key}": lab_tag_value}}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                # No tag condition here: the handler must be able to read an untagged role to
                # say why it refuses to act, instead of failing with AccessDenied.
                "Sid": "ReadTheLabRole",
                "Effect": "Allow",
                "Action": ["iam:GetRole", "iam:ListRoleTags", "iam:GetRolePolicy"],
                "Resource": role_arn,
            },
            revoke,
            *report_statements(partition=partition, region=region, account=account,
                               topic_arn=topic_arn, log_group_name=log_group_name),
        ],
    }


def disable_key_policy(
    *,
    partition: str,
    region: str,
    account: str,
    user_name: str,
    user_path: str,
    topic_arn: str,
    log_group_name: str,
    lab_tag_key: str,
    lab_tag_value: str,
) -> dict[str, Any]:
    """What scenarios/compromised-iam-credentials/responder/handler.py calls, on exactly one
    user: read it, make its keys Inactive and attach AWS's AWSDenyAll (iam:PolicyARN pins the
    policy, so the role cannot grant the user anything), the two changes only while the user
    carries the lab's tag (IAM's user resource supports aws:ResourceTag)."""
    if not (user_path.startswith("/") and user_path.endswith("/")):
        raise ValueError(f"an IAM path begins and ends with '/': {user_path!r}")
    user_arn = f"arn:{partition}:iam::{account}:user{user_path}{user_name}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                # No tag condition: the handler reads an untagged user to say why it refuses.
                "Sid": "ReadTheLabUser",
                "Effect": "Allow",
                "Action": ["iam:ListUserTags", "iam:ListAccessKeys",
                           "iam:ListAttachedUserPolicies"],
                "Resource": user_arn,
            },
            {
                "Sid": "DisableTheLabUsersKeys",
                "Effect": "Allow",
                "Action": "iam:UpdateAccessKey",
                "Resource": user_arn,
                "Condition": {"StringEquals": {f"aws:ResourceTag/{lab_tag_key}": lab_tag_value}},
            },
            {
                "Sid": "DenyTheLabUserEverything",
                "Effect": "Allow",
                "Action": "iam:AttachUserPolicy",
                "Resource": user_arn,
                "Condition": {
                    "StringEquals": {f"aws:ResourceTag/{lab_tag_key}": lab_tag_value},
                    "ArnEquals": {"iam:PolicyARN": f"arn:{partition}:iam::aws:policy/AWSDenyAll"},
                },
            },
            *report_statements(partition=partition, region=region, account=account,
                               topic_arn=topic_arn, log_group_name=log_group_name),
        ],
    }


def restore_bucket_policy(
    *,
    partition: str,
    region: str,
    account: str,
    bucket: str,
    topic_arn: str,
    log_group_name: str,
) -> dict[str, Any]:
    """What scenarios/compromised-s3-bucket/responder/handler.py calls, on exactly one bucket:
    read its tags, Block Public Access and logging, and set the two back. (DeletePublicAccess-
    Block also needs s3:PutBucketPublicAccessBlock, which the responder never calls.) Bounded
    by the bucket's ARN; the handler also refuses a bucket without the lab's tag."""
    arn = f"arn:{partition}:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadTheLabBucket",
                "Effect": "Allow",
                "Action": ["s3:GetBucketTagging", "s3:GetBucketPublicAccessBlock",
                           "s3:GetBucketLogging"],
                "Resource": arn,
            },
            {
                "Sid": "RestoreTheLabBucket",
                "Effect": "Allow",
                "Action": ["s3:PutBucketPublicAccessBlock", "s3:PutBucketLogging"],
                "Resource": arn,
            },
            *report_statements(partition=partition, region=region, account=account,
                               topic_arn=topic_arn, log_group_name=log_group_name),
        ],
    }
