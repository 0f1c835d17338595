"""The checks that prove an incident answered by disabling a leaked access key: the findings,
the responder's run, the key Inactive, the user denied everything, the key refused when the
attacker tries it again, and both e-mails."""

from __future__ import annotations

from typing import Any

from gdlab.errors import GdlabError
from gdlab.lab import checks as library
from gdlab.lab import key_theft
from gdlab.lab.credential_theft import check_refused_again
from gdlab.lab.steps import LabContext
from gdlab.lab.steps.identity import user_name
from gdlab.lab.verify import Check

DENY_POLICY_NAME = "AWSDenyAll"  # AWS managed, attached by the responder
_REFUSED = ("InvalidClientTokenId", "AccessDenied", "UnauthorizedOperation",
            "SignatureDoesNotMatch")
WHO_AM_I = "aws sts get-caller-identity"


def check_key_inactive(ctx: LabContext) -> Check:
    title = "The leaked access key is Inactive"
    key_id = ctx.id_of("access-key")
    keys = ctx.cloud.client("iam").list_access_keys(UserName=user_name(ctx))["AccessKeyMetadata"]
    status = next((k.get("Status") for k in keys if k["AccessKeyId"] == key_id), None)
    if status is None:
        return Check("key-inactive", title, "fail", f"{user_name(ctx)} has no key {key_id}")
    return Check("key-inactive", title, "pass" if status == "Inactive" else "fail",
                 f"access key {key_id} of {user_name(ctx)} is {status}")


def check_user_denied(ctx: LabContext) -> Check:
    title = "The user is denied everything"
    user = user_name(ctx)
    arn = f"arn:{ctx.cloud.partition()}:iam::aws:policy/{DENY_POLICY_NAME}"
    attached = [p["PolicyArn"] for p in ctx.cloud.client("iam").list_attached_user_policies(
        UserName=user)["AttachedPolicies"]]
    return Check("user-denied", title, "pass" if arn in attached else "fail",
                 f"{user} has {', '.join(attached) or 'no managed policy'} attached"
                 + ("" if arn in attached else f", not {DENY_POLICY_NAME}"))


def check_key_refused(ctx: LabContext) -> Check:
    title = "The leaked key is refused"
    try:
        key = key_theft.leaked_key(ctx)
    except GdlabError as exc:
        return Check("key-refused", title, "inconclusive", f"no key to try: {exc}")
    return check_refused_again(ctx, "key-refused", title, key, WHO_AM_I, _REFUSED)


def _disabled(result: dict[str, Any]) -> str:
    return (f"made {result.get('access_key_id')} of {result.get('user')} Inactive and denied "
            f"the user everything, for finding {result.get('finding_id')}")


def key_checks(ctx: LabContext, waiting: Any = None) -> list[Check]:
    """`waiting` is unused: nothing here waits for delivery, as flow logs do."""
    checks, _finding = library.findings_checks(ctx)

    def guarded(name: str, title: str, fn: Any, *args: Any) -> None:
        library.guard(checks, name, title, fn, *args)

    log = library.responder_log(ctx)
    guarded("responder-ran", "The responder ran", library.check_responder, ctx, log,
            "disabled", _disabled, "it never disabled the key")
    guarded("key-inactive", "The leaked access key is Inactive", check_key_inactive, ctx)
    guarded("user-denied", "The user is denied everything", check_user_denied, ctx)
    guarded("key-refused", "The leaked key is refused", check_key_refused, ctx)
    guarded("emails-sent", "Both e-mails were sent", library.check_emails, ctx, log)
    return checks
