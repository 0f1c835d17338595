"""A Lambda function's credentials: a session of its execution role, issued by the local STS
as Lambda's service gets one on AWS (the session is named after the function), and nothing
else. A function's process holds these and its own environment variables only, so what it
may do is what its role allows (enforce.py evaluates every request it signs)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# How long a session lasts. Lambda refreshes its environments' credentials; the local cloud
# retires an environment instead when its session is about to end (RENEW_BEFORE).
SESSION_SECONDS = 12 * 3600
RENEW_BEFORE = 15 * 60


@dataclass(frozen=True)
class RoleSession:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expires_epoch: float

    def __repr__(self) -> str:  # never the secret or the token
        return f"RoleSession(access_key_id={self.access_key_id!r})"

    def environment(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key_id,
                "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
                "AWS_SESSION_TOKEN": self.session_token}

    def renew_due(self, now: float | None = None) -> bool:
        return (now or time.time()) >= self.expires_epoch - RENEW_BEFORE


def issue(fn: Any) -> RoleSession:
    """A new session of fn's execution role (the role need not be usable: what the session
    may do is decided per request, as on AWS)."""
    from moto.sts.models import sts_backends
    from moto.utilities.utils import get_partition

    region = fn.region
    backend = sts_backends[fn.account_id][get_partition(region)]
    session = backend.assume_role(
        region_name=region, role_session_name=str(fn.function_name)[:64],
        role_arn=str(fn.role), policy=None, duration=SESSION_SECONDS, external_id=None)
    session.gdlab_issued_at = datetime.now(UTC)  # aws:TokenIssueTime
    return RoleSession(session.access_key_id, session.secret_access_key,
                       session.session_token, time.time() + SESSION_SECONDS)
