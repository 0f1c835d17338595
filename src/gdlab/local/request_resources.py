"""The resources AWS authorizes for a request, as ARNs with their tags, read from moto.

Per the Service Authorization Reference ("Actions, resources, and condition keys for ..."):
an action with no resource types is authorized on "*"; otherwise each resource the request
names is authorized separately. An action not listed here gets one Resource(None): unknown,
so policy.py neither grants nor denies on its ARN (the leniency rule)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gdlab.local.request_context import Resource

ANY = (Resource("*", {}),)  # the action has no resource types
UNKNOWN_RESOURCES = (Resource(None),)

# Actions whose Resource types column is empty in the Service Authorization Reference.
_NO_RESOURCE_TYPES = ("ec2:describe*", "sns:listtopics", "s3:listallmybuckets",
                      "lambda:listfunctions", "guardduty:listdetectors",
                      "guardduty:createdetector", "iam:listroles", "iam:listpolicies")

# EC2 id prefix -> resource type in the ARN arn:aws:ec2:<region>:<account>:<type>/<id>.
_EC2_TYPES = {"i": "instance", "eni": "network-interface", "sg": "security-group",
              "vol": "volume", "eipalloc": "elastic-ip", "vpc": "vpc", "subnet": "subnet",
              "snap": "snapshot", "ami": "image", "igw": "internet-gateway",
              "rtb": "route-table", "acl": "network-acl", "fl": "vpc-flow-log"}


def _ec2_backend(account: str, region: str) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[account][region]


def _exists(backend: Any, kind: str, resource_id: str) -> bool:
    try:
        if kind == "instance":
            backend.get_instance(resource_id)
        elif kind == "network-interface":
            backend.get_network_interface(resource_id)
        elif kind == "security-group":
            return backend.get_security_group_from_id(resource_id) is not None
        elif kind == "volume":
            backend.get_volume(resource_id)
        else:
            return resource_id in backend.tags
    except Exception:  # noqa: BLE001 - moto raises its NotFound errors
        return False
    return True


def ec2_resource(account: str, region: str, partition: str, resource_id: str) -> Resource:
    """An EC2 resource by id; tags unknown when moto does not hold it (AWS would answer
    NotFound after authorizing, which gdlab does not guess)."""
    kind = _EC2_TYPES.get(str(resource_id).split("-", 1)[0])
    if kind is None:
        return Resource(None)
    backend = _ec2_backend(account, region)
    arn = f"arn:{partition}:ec2:{region}:{account}:{kind}/{resource_id}"
    if not _exists(backend, kind, resource_id):
        return Resource(arn, None)
    return Resource(arn, dict(backend.tags.get(resource_id, {})))


def _ec2(operation: str, params: Mapping[str, Any], account: str, region: str,
         partition: str) -> tuple[Resource, ...] | None:
    def by_id(*ids: Any) -> list[Resource]:
        return [ec2_resource(account, region, partition, str(i)) for i in ids if i]

    if operation == "ModifyNetworkInterfaceAttribute":
        # network-interface* (required) and, from Groups, each security-group. The instance
        # is an optional resource type: authorized when the interface is attached to one.
        eni_id = params.get("NetworkInterfaceId")
        found = by_id(eni_id, *(params.get("Groups") or []))
        try:
            attached = _ec2_backend(account, region).get_network_interface(eni_id).instance
        except Exception:  # noqa: BLE001 - no such interface: its instance is unknown
            attached = None
        if attached is not None:
            found += by_id(attached.id)
        return tuple(found)
    if operation == "ModifyInstanceAttribute":
        return tuple(by_id(params.get("InstanceId"), *(params.get("Groups") or [])))
    if operation in ("CreateTags", "DeleteTags"):
        return tuple(by_id(*(params.get("Resources") or [])))
    if operation in ("StartInstances", "StopInstances", "RebootInstances",
                     "TerminateInstances"):
        return tuple(by_id(*(params.get("InstanceIds") or [])))
    if operation in ("AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress",
                     "RevokeSecurityGroupIngress", "RevokeSecurityGroupEgress",
                     "DeleteSecurityGroup"):
        return tuple(by_id(params.get("GroupId")))
    return None


def _sns(operation: str, params: Mapping[str, Any], account: str, region: str,
         partition: str) -> tuple[Resource, ...] | None:
    from moto.sns.models import sns_backends

    if operation == "CreateTopic":
        return (Resource(f"arn:{partition}:sns:{region}:{account}:{params.get('Name')}", {}),)
    arn = params.get("TopicArn") or (params.get("TargetArn") if operation == "Publish" else None)
    if not arn:
        return None
    topic = sns_backends[account][region].topics.get(arn)
    return (Resource(str(arn), None if topic is None else dict(topic._tags)),)


def _logs(operation: str, params: Mapping[str, Any], account: str, region: str,
          partition: str) -> tuple[Resource, ...] | None:
    from moto.logs.models import logs_backends

    name = params.get("logGroupName")
    if not name:
        return None
    group = logs_backends[account][region].groups.get(name)
    tags = None if group is None else dict(getattr(group, "tags", None) or {})
    arn = f"arn:{partition}:logs:{region}:{account}:log-group:{name}"
    if operation in ("CreateLogStream", "PutLogEvents"):
        # log-stream*: arn:...:log-group:<group>:log-stream:<stream>
        return (Resource(f"{arn}:log-stream:{params.get('logStreamName')}", tags),)
    return None


_BY_SERVICE: dict[str, Callable[..., tuple[Resource, ...] | None]] = {
    "ec2": _ec2, "sns": _sns, "logs": _logs}


def resources_for(action: str, params: Mapping[str, Any] | None, account: str, region: str,
                  partition: str = "aws") -> tuple[Resource, ...]:
    lowered = action.lower()
    if any(lowered == a or (a.endswith("*") and lowered.startswith(a[:-1]))
           for a in _NO_RESOURCE_TYPES):
        return ANY
    service, _, operation = action.partition(":")
    resolve = _BY_SERVICE.get(service.lower())
    if params is None or resolve is None:
        return UNKNOWN_RESOURCES
    found = resolve(operation, params, account, region, partition)
    return found if found else UNKNOWN_RESOURCES
