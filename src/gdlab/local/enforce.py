"""IAM enforced in the local cloud: a request signed by a role session (a Lambda function's
execution role, or any AssumeRole session) or by an IAM user's access key is evaluated against
that role's or user's identity policies (policy.py) before moto acts on it, and refused with
the service's own error when they do not allow it. The local administrator is the account's
root: nothing is evaluated for it.

Installed into moto at the two places every request passes: BaseResponse.call_action (all
services but S3) and S3's own authorization hook, which moto calls with the IAM action
already worked out (ListBucket, GetObject...); s3_actions corrects it for bucket
sub-resources."""

from __future__ import annotations

import functools
import logging
from typing import Any

from gdlab.local.auth import Caller, current_caller

log = logging.getLogger("gdlab.local.enforce")

# IAM's service prefix where it differs from the signing name.
_PREFIX = {"monitoring": "cloudwatch", "email": "ses"}
# Operations whose IAM action has another name (Service Authorization Reference).
_ACTIONS = {
    ("lambda", "Invoke"): "InvokeFunction",
    ("lambda", "InvokeAsync"): "InvokeFunction",
    ("lambda", "InvokeWithResponseStream"): "InvokeFunction",
}
# Calls AWS answers for any authenticated caller, whatever its policies say.
_ALWAYS_ALLOWED = {"sts:GetCallerIdentity"}


def _signing_service(response: Any) -> str:
    header = str(response.headers.get("Authorization") or "")
    scope = header.split("Credential=", 1)[-1].split(",", 1)[0].split("/")
    if len(scope) > 3:
        return scope[3]
    return str(getattr(response, "service_name", "") or "")


def iam_action(service: str, operation: str) -> str:
    prefix = _PREFIX.get(service, service)
    return f"{prefix}:{_ACTIONS.get((prefix, operation), operation)}"


def _governed(caller: Caller | None) -> bool:
    return caller is not None and caller.principal is not None


def check(response: Any, operation: str | None = None) -> None:
    """Raise AWS's refusal when the caller of this request may not make it."""
    from gdlab.local.policy import authorize

    caller = current_caller.get()
    if not _governed(caller):
        return
    operation = operation or response._get_action()
    action = iam_action(_signing_service(response), str(operation))
    if action in _ALWAYS_ALLOWED:
        return
    try:
        authorize(response, caller.principal, action)
    except Exception as refusal:
        log.info("refused %s for %s", action, caller.arn)
        raise refusal


def _refusal_response(response: Any, refusal: Any) -> tuple[int, dict[str, str], str]:
    headers = dict(refusal.get_headers())
    headers["status"] = str(refusal.code)
    return refusal.code, headers, refusal.get_body()


def install() -> None:
    from moto.core.responses import BaseResponse
    from moto.s3.responses import S3Response
    from werkzeug.exceptions import HTTPException

    from gdlab.local import patches, s3_actions

    original_call_action = BaseResponse.call_action

    @functools.wraps(original_call_action)
    def call_action(self: Any) -> Any:
        try:
            check(self)
        except HTTPException as refusal:
            return _refusal_response(self, refusal)
        return original_call_action(self)

    original_s3 = S3Response._authenticate_and_authorize_s3_action

    @functools.wraps(original_s3)
    def authorize_s3(self: Any, bucket_name: str | None = None,
                     key_name: str | None = None) -> None:
        check(self, s3_actions.operation(self, bucket_name, key_name))
        original_s3(self, bucket_name=bucket_name, key_name=key_name)

    patches.patch(BaseResponse, "call_action", call_action,
                  "IAM policies decide a governed caller's request before moto acts")
    patches.patch(S3Response, "_authenticate_and_authorize_s3_action", authorize_s3,
                  "IAM policies decide a governed caller's S3 request before moto acts")
    _install_root_identity()


def _install_root_identity() -> None:
    """GetCallerIdentity names the local administrator as AWS names an account's root user
    (moto would say user/moto for a key it did not issue)."""
    from moto.sts.models import STSBackend

    from gdlab.local import patches

    original = STSBackend.get_caller_identity

    @functools.wraps(original)
    def get_caller_identity(self: Any, access_key_id: str, region: str) -> tuple[str, str, str]:
        caller = current_caller.get()
        if caller is not None and caller.principal is None and caller.arn.endswith(":root") \
                and caller.access_key_id == access_key_id:
            return caller.account, caller.arn, caller.account
        return original(self, access_key_id, region)

    patches.patch(STSBackend, "get_caller_identity", get_caller_identity,
                  "GetCallerIdentity names the local administrator as the account's root")
