"""The Compromised EC2 Instance scenario as gdlab runs it: which of gdlab's building blocks
(gdlab.lab.steps) its lab is made of. Each step declares what it needs; setup and teardown
orders are derived from those declarations (gdlab.lab.graph), so this list only says what
the lab contains and, where nothing else decides, in which order setup shows it."""

from __future__ import annotations

from gdlab.lab import checks as library_checks
from gdlab.lab import hops as library_hops
from gdlab.lab import trigger as library_trigger
from gdlab.lab.hops import HopSpec
from gdlab.lab.steps import Step
from gdlab.lab.steps.compute import (
    CompromisedInstance,
    EipAssociation,
    ElasticIp,
    InstanceProfile,
    InstanceRole,
    MaliciousInstance,
)
from gdlab.lab.steps.detection import (
    Bucket,
    Detector,
    SecurityHub,
    ThreatIntelSet,
    ThreatListFile,
)
from gdlab.lab.steps.flowlogs import FlowLog, FlowLogGroup, FlowLogRole
from gdlab.lab.steps.kits import RESPONDER_CHAIN, build
from gdlab.lab.steps.network import (
    CompromisedGroup,
    ForensicGroup,
    InternetGateway,
    MaliciousGroup,
    RouteTable,
    Subnet,
    UntrackingGroup,
    Vpc,
)
from gdlab.lab.steps.response import ISOLATION

ATTACK_SIDE: list[type[Step]] = [
    Vpc,
    # The VPC's flow log, the evidence of what the instances sent and what was refused.
    FlowLogGroup,
    FlowLogRole,
    FlowLog,
    InternetGateway,
    Subnet,
    RouteTable,
    ElasticIp,
    MaliciousGroup,
    CompromisedGroup,
    InstanceRole,
    InstanceProfile,
    MaliciousInstance,
    EipAssociation,
    CompromisedInstance,
    Bucket,
    ThreatListFile,
    Detector,
    ThreatIntelSet,
    SecurityHub,
]

def steps() -> list[Step]:
    """A fresh instance of every step of this scenario's lab; its responder isolates into
    the forensic groups, which the response side adds to the responder's chain."""
    return build(ATTACK_SIDE + [ForensicGroup, UntrackingGroup] + RESPONDER_CHAIN, ISOLATION)


def hops() -> list[HopSpec]:
    """What `gdlab watch` follows, in order: the list, the finding in GuardDuty and Security
    Hub, the responder, the isolation it made, and both e-mails."""
    return [library_hops.THREAT_LIST, library_hops.GUARDDUTY, library_hops.SECURITYHUB,
            library_hops.RESPONDER, library_hops.ISOLATED, library_hops.EMAILS]


# What the incident must show, and the checks that can prove each (the verdict: every
# property proven by a check that passed, and no check failed).
PROPERTIES: dict[str, tuple[str, ...]] = {
    "rule-matches-finding": ("rule-matches",),
    "finding-raised": ("guardduty-finding",),
    "finding-in-securityhub": ("securityhub-finding",),
    "instance-isolated": ("enis-isolated",),
    "forensic-group-empty": ("forensic-group-empty",),
    "responder-ran": ("responder-ran",),
    "emails-sent": ("emails-sent",),
    "traffic-blocked": ("flows-rejected", "ping-blocked"),
}


def checks(ctx, waiting=None):  # type: ignore[no-untyped-def]
    """What `gdlab verify` looks at: the checks of an incident answered by isolation."""
    return library_checks.isolation_checks(ctx, waiting)


def trigger(ctx, count=3):  # type: ignore[no-untyped-def]
    """`gdlab trigger`: the compromised instance pings the malicious Elastic IP (SSM
    RunCommand), unless its own timer already set the incident off."""
    return library_trigger.trigger(ctx, count=count)
