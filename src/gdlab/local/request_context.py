"""What IAM sees of a request to the local cloud: the resources it touches (ARN and tags, read
from moto's backends) and its condition keys (AWS global condition context keys, ec2:Region,
aws:RequestTag/k, aws:TagKeys). Anything not computed here is UNKNOWN to policy.py, which then
errs toward what AWS would allow (see its docstring)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

UNKNOWN_VALUE: Any = "__unknown__"  # policy.py maps this marker to its UNKNOWN


@dataclass(frozen=True)
class Principal:
    account: str  # "123456789012"
    arn: str  # arn:aws:sts::123456789012:assumed-role/<role>/<session>
    role_name: str
    role_arn: str
    session_name: str
    issued_at: datetime  # UTC, the session's creation (aws:TokenIssueTime)
    user_name: str = ""  # an IAM user signing with its access key (no role, no session)

    @property
    def is_user(self) -> bool:
        return bool(self.user_name)

    @classmethod
    def user(cls, account: str, arn: str, user_name: str) -> Principal:
        return cls(account=account, arn=arn, role_name="", role_arn="", session_name="",
                   issued_at=datetime.now(UTC), user_name=user_name)


@dataclass(frozen=True)
class Resource:
    arn: str | None  # None: gdlab cannot tell which resource AWS authorizes
    tags: Mapping[str, str] | None = None  # None: the resource's tags are unknown


# Keys AWS leaves out of a role session's request context unless something sets them
# (AWS global condition context keys): absent, so Null and ...IfExists see them missing.
_ABSENT_FOR_ROLE_SESSIONS = frozenset({
    "aws:username", "aws:sourcearn", "aws:sourceaccount", "aws:sourceowner", "aws:sourcevpc",
    "aws:sourcevpce", "aws:vpcsourceip", "aws:calledvia", "aws:calledviafirst",
    "aws:calledvialast", "aws:sourceidentity", "aws:federatedprovider",
    "aws:multifactorauthpresent", "aws:multifactorauthage",
})


@dataclass(frozen=True)
class RequestContext:
    action: str
    resources: tuple[Resource, ...]
    keys: Mapping[str, tuple[str, ...]]  # lower-cased key name -> values
    request_tags: Mapping[str, str] | None  # None: unknown; {}: the request carries none
    principal_tags: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def bare(cls, principal: Principal, action: str, resource: str,
             principal_tags: Mapping[str, str] | None = None) -> RequestContext:
        """Only the principal's keys known (for questions asked outside a request)."""
        return cls(action=action, resources=(Resource(resource),),
                   keys=principal_keys(principal), request_tags=None,
                   principal_tags=principal_tags or {})

    def value(self, key: str, resource: Resource) -> Any:
        """A key's values (a tuple), None when absent, UNKNOWN_VALUE when gdlab cannot tell."""
        name = key.lower()
        prefix, _, tag = name.partition("/")
        if prefix.endswith(":resourcetag") and tag:
            # aws:ResourceTag/k, and the service's own ec2:ResourceTag/k.
            return _tag(resource.tags, tag)
        if prefix == "aws:requesttag" and tag:
            return _tag(self.request_tags, tag)
        if prefix == "aws:principaltag" and tag:
            return _tag(self.principal_tags, tag)
        if name == "aws:tagkeys":
            if self.request_tags is None:
                return UNKNOWN_VALUE
            return tuple(self.request_tags) or None
        if name in self.keys:
            return self.keys[name]
        if name in _ABSENT_FOR_ROLE_SESSIONS:
            return None
        return UNKNOWN_VALUE


def _tag(tags: Mapping[str, str] | None, key: str) -> Any:
    if tags is None:
        return UNKNOWN_VALUE
    # Condition key names, tag keys included, are not case-sensitive.
    for name, value in tags.items():
        if name.lower() == key:
            return (value,)
    return None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def principal_keys(principal: Principal) -> dict[str, Any]:
    """The principal's global condition keys; a key mapped to None is absent."""
    if principal.is_user:
        return _user_keys(principal)
    now = datetime.now(UTC)
    role_id = _role_id(principal.account, principal.role_name)
    keys: dict[str, Any] = {
        "aws:principalarn": (principal.role_arn,),  # for a role session: the role's ARN
        "aws:principalaccount": (principal.account,),
        "aws:principaltype": ("AssumedRole",),
        "aws:tokenissuetime": (_iso(principal.issued_at),),
        "aws:currenttime": (_iso(now),),
        "aws:epochtime": (str(int(time.time())),),
        "aws:securetransport": ("false",),  # the local cloud speaks plain http
        "aws:sourceip": ("127.0.0.1",),
        "aws:viaawsservice": ("false",),
        "aws:principalisawsservice": ("false",),
    }
    if role_id:
        keys["aws:userid"] = (f"{role_id}:{principal.session_name}",)
    return keys


def _user_keys(principal: Principal) -> dict[str, Any]:
    user = _iam_user(principal.account, principal.user_name)
    return {
        "aws:principalarn": (principal.arn,),
        "aws:principalaccount": (principal.account,),
        "aws:principaltype": ("User",),
        "aws:username": (principal.user_name,),
        "aws:userid": (str(getattr(user, "id", "")),) if user else UNKNOWN_VALUE,
        "aws:tokenissuetime": None,  # long-term keys carry no token
        "aws:currenttime": (_iso(datetime.now(UTC)),),
        "aws:epochtime": (str(int(time.time())),),
        "aws:securetransport": ("false",),
        "aws:sourceip": ("127.0.0.1",),
        "aws:viaawsservice": ("false",),
        "aws:principalisawsservice": ("false",),
    }


def _iam_user(account: str, user_name: str) -> Any:
    from moto.iam.models import iam_backends

    try:
        return iam_backends[account]["global"].get_user(user_name)
    except Exception:  # noqa: BLE001 - a deleted user: no id, no tags
        return None


def _tags_of(entity: Any) -> dict[str, str]:
    raw = getattr(entity, "tags", None) or {}
    if isinstance(raw, list):  # moto keeps tags as [{"Key": ..., "Value": ...}]
        return {str(t.get("Key")): str(t.get("Value", "")) for t in raw if isinstance(t, dict)}
    return {str(k): str(v.get("Value", "")) if isinstance(v, dict) else str(v)
            for k, v in raw.items()}


def principal_tags(principal: Principal) -> dict[str, str]:
    if principal.is_user:
        user = _iam_user(principal.account, principal.user_name)
        return _tags_of(user) if user else {}
    return role_tags(principal.account, principal.role_name)


def _iam_role(account: str, role_name: str) -> Any:
    from moto.iam.models import iam_backends

    try:
        return iam_backends[account]["global"].get_role(role_name)
    except Exception:  # noqa: BLE001 - a deleted role: no id, no tags
        return None


def _role_id(account: str, role_name: str) -> str:
    role = _iam_role(account, role_name)
    return str(getattr(role, "id", "") or "") if role else ""


def role_tags(account: str, role_name: str) -> dict[str, str]:
    role = _iam_role(account, role_name)
    return _tags_of(role) if role else {}


# --- request parameters ------------------------------------------------------------------
def request_params(response: Any) -> dict[str, Any] | None:
    """The request's input members as botocore names them, parsed by moto's own parser."""
    params = getattr(response, "params", None)
    if getattr(response, "automated_parameter_parsing", False) and isinstance(params, dict):
        return params
    try:
        from moto.core.model import get_service_model  # type: ignore[attr-defined]
    except ImportError:
        from moto.core.responses import get_service_model
    try:
        from moto.core.parse import PROTOCOL_PARSERS
        from moto.core.request import determine_request_protocol

        request = response.normalized_request
        model = get_service_model(response.boto3_service_name)
        operation = model.operation_model(response._get_action())
        protocol = determine_request_protocol(model, request.content_type)
        parser = PROTOCOL_PARSERS[protocol](operation, map_type=dict)
        return dict(parser.parse({
            "method": request.method, "values": request.values, "headers": request.headers,
            "body": request.data, "url_path": request.path,
            "url_params": getattr(response, "uri_match", {}) or {},
        }))
    except Exception:  # noqa: BLE001 - unparsed: resources and request tags stay unknown
        return None


def tags_in(params: Mapping[str, Any]) -> dict[str, str]:
    """Tags a request carries: TagSpecifications, Tags/tags as a list of Key/Value or a map."""
    found: dict[str, str] = {}
    for spec in params.get("TagSpecifications") or []:
        for tag in spec.get("Tags") or []:
            found[str(tag.get("Key"))] = str(tag.get("Value", ""))
    for name in ("Tags", "tags", "TagList"):
        value = params.get(name)
        if isinstance(value, Mapping):
            found.update({str(k): str(v) for k, v in value.items()})
        elif isinstance(value, list):
            for tag in value:
                if isinstance(tag, Mapping):
                    found[str(tag.get("Key", tag.get("key")))] = str(
                        tag.get("Value", tag.get("value", "")))
    return found


def context_for(response: Any, principal: Principal, action: str) -> RequestContext:
    from gdlab.local.request_resources import resources_for

    region = getattr(response, "region", None) or "us-east-1"
    params = request_params(response)
    keys = principal_keys(principal)
    keys["aws:requestedregion"] = (region,)
    keys["aws:sourceip"] = (source_ip(response),)
    service = action.split(":", 1)[0].lower()
    if service == "ec2":
        keys["ec2:region"] = (region,)
    resources = resources_for(action, params, principal.account, region,
                              getattr(response, "partition", "aws") or "aws")
    return RequestContext(
        action=action, resources=resources, keys=keys,
        request_tags=None if params is None else tags_in(params),
        principal_tags=principal_tags(principal))


def source_ip(response: Any) -> str:
    """Where the request came from: the instance address the instance simulation proved it
    speaks for (trail.py), else the peer's address."""
    environ = getattr(getattr(response, "normalized_request", None), "environ", None)
    if not isinstance(environ, dict):
        return "127.0.0.1"
    from gdlab.local.trail import resolve_source

    return resolve_source(environ)


def as_json(context: RequestContext) -> str:
    """The context as AWS's decoded authorization message lists it (for the EC2 refusal)."""
    return json.dumps({"action": context.action,
                       "resources": [r.arn or "*" for r in context.resources],
                       "conditions": {k: list(v) for k, v in sorted(context.keys.items())
                                      if isinstance(v, tuple)}})
