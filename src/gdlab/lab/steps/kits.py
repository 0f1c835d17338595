"""Step lists the scenarios compose their labs from: the responder's chain every scenario
has, the attack side of the scenarios whose attack is API calls from the malicious instance,
and the one way a list of step kinds becomes a lab's steps."""

from __future__ import annotations

from gdlab.lab.steps import Step
from gdlab.lab.steps.compute import (
    ApiCallerInstance,
    AttackerProfile,
    AttackerRole,
    EipAssociation,
    ElasticIp,
    InstanceProfile,
    InstanceRole,
    ManagedMaliciousInstance,
)
from gdlab.lab.steps.detection import (
    Bucket,
    Detector,
    SecurityHub,
    ThreatIntelSet,
    ThreatListFile,
)
from gdlab.lab.steps.network import (
    ApiCallerGroup,
    AttackerGroup,
    InternetGateway,
    RouteTable,
    Subnet,
    Vpc,
)
from gdlab.lab.steps.response import (
    EmailSubscription,
    Function,
    InvokePermission,
    LogGroup,
    ResponderRole,
    ResponderSpec,
    Rule,
    Targets,
    Topic,
)

# The rule, its e-mail and the responder Lambda: the response side of every scenario.
RESPONDER_CHAIN: list[type[Step]] = [
    ResponderRole,
    Topic,
    EmailSubscription,
    LogGroup,
    Function,
    Rule,
    InvokePermission,
    Targets,
]


def api_attack_side(instance_role: type[Step] = InstanceRole,
                    extra: tuple[type[Step], ...] = ()) -> list[type[Step]]:
    """The lab network, both instances managed by SSM (only HTTPS out of either), the
    threat-listed Elastic IP and its list, the detector and Security Hub; `extra` steps (the
    scenario's own resources) go before the detector."""
    return [
        Vpc,
        InternetGateway,
        Subnet,
        RouteTable,
        ElasticIp,
        AttackerGroup,
        ApiCallerGroup,
        instance_role,
        InstanceProfile,
        AttackerRole,
        AttackerProfile,
        ManagedMaliciousInstance,
        EipAssociation,
        ApiCallerInstance,
        Bucket,
        ThreatListFile,
        *extra,
        Detector,
        ThreatIntelSet,
        SecurityHub,
    ]


def build(kinds: list[type[Step]], responder: ResponderSpec,
          made: dict[type[Step], Step] | None = None) -> list[Step]:
    """A fresh step of each kind: the responder's role and function get `responder`; a kind
    in `made` is that step (built with the scenario's own arguments); the rest are bare."""
    made = made or {}
    return [made[kind] if kind in made
            else kind(responder) if kind in (ResponderRole, Function)  # type: ignore[call-arg]
            else kind() for kind in kinds]
