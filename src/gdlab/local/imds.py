"""The instance metadata service (IMDS) of a simulated instance, as a Python API for the
instance simulation (the local cloud has no 169.254.169.254 to listen on).

What it follows from the EC2 user guide ("Use instance metadata to manage your EC2
instance", "Retrieve security credentials from instance metadata"):

- IMDSv2: ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds`` between 1
  and 21600 gives a session token for that instance (``token``); a TTL missing, not a
  number or out of range is 400 Bad Request. Every ``GET`` carrying a token that is unknown,
  expired or another instance's is 401 Unauthorized. A ``GET`` with no token is IMDSv1:
  refused with 401 when the instance's ``HttpTokens`` is ``required``, answered when it is
  ``optional`` (the instance's MetadataOptions, as RunInstances or
  ModifyInstanceMetadataOptions set them). ``HttpEndpoint`` ``disabled``, or an instance that
  is not running, leaves nothing to connect to (``Unreachable``).
- ``/latest/meta-data/iam/security-credentials/`` lists the role of the instance profile;
  ``.../security-credentials/<role>`` answers JSON with Code "Success", LastUpdated,
  Type "AWS-HMAC", AccessKeyId, SecretAccessKey, Token and Expiration. An instance without a
  profile (or a profile without a role, or another role's name) answers 404 Not Found.
- The credentials are a session of the profile's role whose session name is the instance
  id, as EC2 names it (``assumed-role/<role>/<instance-id>``). "We make new credentials
  available at least five minutes before the expiration of the old credentials": the same
  session is answered until RENEW_BEFORE its end, then a new one.

Every session issued here is remembered with the instance it belongs to and the IMDS
version that delivered it (``session_of`` / ``instance_of_session``): CloudTrail's
``sessionContext.ec2RoleDelivery`` and GuardDuty's credential-exfiltration analysis read it.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# IMDSv2 token TTL bounds (EC2 user guide, "How Instance Metadata Service Version 2 works").
MIN_TTL, MAX_TTL = 1, 21600
# Instance role credentials last hours; the local cloud issues them for six.
SESSION_SECONDS = 6 * 3600
RENEW_BEFORE = 15 * 60
CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/"


class ImdsError(Exception):
    """An answer of IMDS that is not 200: `status` and its reason phrase."""

    status = 500
    reason = "Internal Server Error"

    def __init__(self, detail: str = ""):
        super().__init__(f"{self.status} {self.reason}" + (f": {detail}" if detail else ""))
        self.detail = detail


class BadRequest(ImdsError):
    status, reason = 400, "Bad Request"


class Unauthorized(ImdsError):
    status, reason = 401, "Unauthorized"


class NotFound(ImdsError):
    status, reason = 404, "Not Found"


class Unreachable(Exception):
    """Nothing answers at 169.254.169.254: the endpoint is disabled or the instance is not
    running (curl would fail to connect)."""


@dataclass(frozen=True)
class InstanceSession:
    account: str
    region: str
    instance_id: str
    role_arn: str
    access_key_id: str
    delivery: str  # "2.0" (IMDSv2) or "1.0" (IMDSv1): CloudTrail's ec2RoleDelivery

    @property
    def role_name(self) -> str:
        return self.role_arn.rsplit("/", 1)[-1]


@dataclass
class _Token:
    key: tuple[str, str, str]  # (account, region, instance id)
    expires: float  # time.monotonic()


@dataclass
class _Issued:
    session: Any  # moto's AssumedRole
    issued_at: datetime
    expires_epoch: float


_lock = threading.Lock()
_tokens: dict[str, _Token] = {}
_issued: dict[tuple[str, str, str, str], _Issued] = {}  # (account, region, instance, role)
_sessions: dict[str, InstanceSession] = {}  # access key id -> its instance


def reset() -> None:
    with _lock:
        _tokens.clear()
        _issued.clear()
        _sessions.clear()


# --- the instance ------------------------------------------------------------------------
def find_instance(instance_id: str) -> tuple[str, str, Any] | None:
    """(account, region, moto instance) of an instance id in any existing EC2 backend."""
    from moto.ec2.models import ec2_backends

    for account, region, backend in list(ec2_backends.iter_backends()):
        for reservation in list(backend.reservations.values()):
            for instance in list(reservation.instances):
                if instance.id == instance_id:
                    return account, region, instance
    return None


def _reachable(instance_id: str) -> tuple[tuple[str, str, str], Any]:
    found = find_instance(instance_id)
    if found is None:
        raise Unreachable(f"there is no instance {instance_id}")
    account, region, instance = found
    if instance.state != "running":
        raise Unreachable(f"{instance_id} is {instance.state}")
    options = getattr(instance, "metadata_options", None)
    if str(getattr(options, "http_endpoint", "enabled")) == "disabled":
        raise Unreachable(f"the instance metadata endpoint of {instance_id} is disabled")
    return (account, region, instance_id), instance


def profile_of(instance: Any) -> Any:
    """The moto instance profile associated with the instance, or None."""
    ec2 = instance.ec2_backend
    association = ec2.iam_instance_profile_associations.get(instance.id)
    return association.iam_instance_profile if association is not None else None


def role_arn_of(instance: Any) -> str | None:
    profile = profile_of(instance)
    roles = list(getattr(profile, "roles", None) or []) if profile is not None else []
    return str(roles[0].arn) if roles else None  # a profile holds at most one role


# --- IMDSv2 tokens -----------------------------------------------------------------------
def token(instance_id: str, ttl: int | str | None) -> str:
    """PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds: ttl."""
    key, _instance = _reachable(instance_id)
    try:
        seconds = int(str(ttl).strip()) if ttl is not None else None
    except ValueError:
        seconds = None
    if seconds is None or not MIN_TTL <= seconds <= MAX_TTL:
        raise BadRequest(f"X-aws-ec2-metadata-token-ttl-seconds must be {MIN_TTL}-{MAX_TTL}")
    value = base64.b64encode(secrets.token_bytes(42)).decode()  # opaque, as AWS's are
    now = time.monotonic()
    with _lock:
        for stale in [t for t, v in _tokens.items() if v.expires <= now]:
            del _tokens[stale]
        _tokens[value] = _Token(key, now + seconds)
    return value


def _version(key: tuple[str, str, str], instance: Any, session_token: str | None) -> str:
    """The IMDS version a request uses, or Unauthorized."""
    if session_token is None:
        options = getattr(instance, "metadata_options", None)
        if str(getattr(options, "http_tokens", "optional")) == "required":
            raise Unauthorized("IMDSv2 is required: PUT /latest/api/token first")
        return "1.0"
    with _lock:
        known = next((v for t, v in _tokens.items()
                      if hmac.compare_digest(t.encode(), str(session_token).encode())), None)
    if known is None or known.key != key or known.expires <= time.monotonic():
        raise Unauthorized("the token is not valid for this instance")
    return "2.0"


# --- metadata ----------------------------------------------------------------------------
def get(instance_id: str, path: str, session_token: str | None = None) -> str:
    """GET <path> from the instance's IMDS with X-aws-ec2-metadata-token: session_token
    (None: an IMDSv1 request). The body as text, or an ImdsError."""
    key, instance = _reachable(instance_id)
    version = _version(key, instance, session_token)
    if path.rstrip("/") == CREDENTIALS_PATH.rstrip("/"):
        role_arn = role_arn_of(instance)
        if role_arn is None:
            raise NotFound(f"{instance_id} has no instance profile role")
        return role_arn.rsplit("/", 1)[-1]
    if path.startswith(CREDENTIALS_PATH):
        name = path[len(CREDENTIALS_PATH):].rstrip("/")
        role_arn = role_arn_of(instance)
        if role_arn is None or name != role_arn.rsplit("/", 1)[-1]:
            raise NotFound(path)
        return json.dumps(_credentials(key, role_arn, version), indent=2)
    simple = _simple(instance)
    if path in simple:
        return simple[path]
    raise NotFound(path)


def _simple(instance: Any) -> dict[str, str]:
    """The few other items the simulation may read."""
    base = "/latest/meta-data/"
    eni = instance.nics[0] if getattr(instance, "nics", None) else None
    zone = str(instance.placement.zone or "")
    items = {base + "instance-id": instance.id,
             base + "instance-type": str(instance.instance_type),
             base + "ami-id": str(instance.image_id),
             base + "placement/availability-zone": zone,
             base + "placement/region": instance.ec2_backend.region_name}
    if eni is not None:
        items[base + "local-ipv4"] = str(eni.private_ip_address)
        if eni.public_ip:
            items[base + "public-ipv4"] = str(eni.public_ip)
    profile = profile_of(instance)
    if profile is not None:
        items[base + "iam/info"] = json.dumps({
            "Code": "Success", "LastUpdated": _stamp(datetime.now(UTC)),
            "InstanceProfileArn": str(profile.arn), "InstanceProfileId": str(profile.id)},
            indent=2)
    return items


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _credentials(key: tuple[str, str, str], role_arn: str, version: str) -> dict[str, str]:
    account, region, instance_id = key
    with _lock:
        current = _issued.get((*key, role_arn))
        if current is None or time.time() >= current.expires_epoch - RENEW_BEFORE or \
                not _alive(account, region, current.session):
            current = _issue(account, region, instance_id, role_arn)
            _issued[(*key, role_arn)] = current
        session = current.session
        _sessions[session.access_key_id] = InstanceSession(
            account, region, instance_id, role_arn, session.access_key_id,
            # the latest delivery of these credentials
            version)
    return {"Code": "Success", "LastUpdated": _stamp(current.issued_at), "Type": "AWS-HMAC",
            "AccessKeyId": session.access_key_id,
            "SecretAccessKey": session.secret_access_key, "Token": session.session_token,
            "Expiration": _stamp(datetime.fromtimestamp(current.expires_epoch, UTC))}


def _alive(account: str, region: str, session: Any) -> bool:
    """Whether STS still knows the session (a reset of the local cloud forgets it)."""
    from moto.sts.models import sts_backends
    from moto.utilities.utils import get_partition

    backend = sts_backends[account][get_partition(region)]
    return any(s is session for s in list(getattr(backend, "assumed_roles", [])))


def _issue(account: str, region: str, instance_id: str, role_arn: str) -> _Issued:
    """A new session of the role named after the instance (as EC2 does)."""
    from moto.sts.models import sts_backends
    from moto.utilities.utils import get_partition

    backend = sts_backends[account][get_partition(region)]
    session = backend.assume_role(region_name=region, role_session_name=instance_id,
                                  role_arn=role_arn, policy=None, duration=SESSION_SECONDS,
                                  external_id=None)
    issued = datetime.now(UTC)
    session.gdlab_issued_at = issued  # aws:TokenIssueTime
    expires = session.expiration.replace(tzinfo=UTC).timestamp()
    return _Issued(session, issued, expires)


# --- who holds a session -----------------------------------------------------------------
def session_of(access_key_id: str) -> InstanceSession | None:
    with _lock:
        return _sessions.get(access_key_id)


def instance_of_session(access_key_id: str) -> str | None:
    """The instance whose IMDS delivered this access key, or None."""
    found = session_of(access_key_id)
    return found.instance_id if found is not None else None
