"""Small AWS helpers the steps share: error codes, not-found tolerance, bounded retries."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# Codes that mean "already gone": deleting something absent is success. Decided by the
# error code alone, never by message text (messages change and are not part of the API).
NOT_FOUND_CODES = {
    "NoSuchEntity",  # IAM
    "NoSuchBucket",  # S3
    "NoSuchKey",
    "ResourceNotFoundException",  # Lambda, CloudWatch Logs, EventBridge, Security Hub
    "NotFound",  # SNS
    "NotFoundException",
    "ParameterNotFound",  # SSM
    "Gateway.NotAttached",  # EC2: detaching a gateway that is no longer attached
}


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def error_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Message", "")) or str(exc)


def is_not_found(exc: BaseException) -> bool:
    """Whether AWS says the thing is already gone. EC2 names every such code `<Id>.NotFound`
    (InvalidInstanceID.NotFound, InvalidNetworkInterfaceID.NotFound, ...). GuardDuty has no
    not-found code at all (it answers BadRequestException): its steps look first instead."""
    code = error_code(exc)
    return bool(code) and (code in NOT_FOUND_CODES or code.endswith(".NotFound"))


def ignore_not_found(call: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    from botocore.exceptions import ClientError

    try:
        return call(*args, **kwargs)
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def ignore_code(code: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Make a follow-up call idempotent: AWS's 'already done' answer counts as done."""
    from botocore.exceptions import ClientError

    try:
        return call(*args, **kwargs)
    except ClientError as exc:
        if error_code(exc) == code:
            return None
        raise


# Right after a create, AWS may not yet know the new id (eventual consistency).
NOT_YET_VISIBLE = {
    "InvalidGroup.NotFound",
    "InvalidInternetGatewayID.NotFound",
    "InvalidRouteTableID.NotFound",
    "InvalidVpcID.NotFound",
    "InvalidSubnetID.NotFound",
    "InvalidInstanceID.NotFound",
    "InvalidAllocationID.NotFound",
    "InvalidNetworkInterfaceID.NotFound",
    "NoSuchEntity",
    "NoSuchBucket",
}


def not_yet_visible(exc: BaseException) -> bool:
    return error_code(exc) in NOT_YET_VISIBLE


def retry(
    call: Callable[[], T],
    *,
    when: Callable[[BaseException], bool],
    deadline_seconds: float,
    first_delay: float = 1.0,
    max_delay: float = 10.0,
) -> T:
    """Retry a call while `when(error)` holds, with jittered backoff, up to a deadline.

    For AWS's eventual consistency (IAM propagation, ENIs released after termination)."""
    started = time.monotonic()
    delay = first_delay
    while True:
        try:
            return call()
        except Exception as exc:
            if not when(exc) or time.monotonic() - started + delay > deadline_seconds:
                raise
        time.sleep(delay * (0.5 + random.random() / 2))
        delay = min(delay * 2, max_delay)


def code_in(*codes: str) -> Callable[[BaseException], bool]:
    wanted = set(codes)
    return lambda exc: error_code(exc) in wanted


def message_has(*fragments: str) -> Callable[[BaseException], bool]:
    return lambda exc: any(f.lower() in error_message(exc).lower() for f in fragments)


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]
