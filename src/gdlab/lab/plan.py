"""The compromised-ec2 lab as an ordered plan of steps, and the order teardown undoes it."""

from __future__ import annotations

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
from gdlab.lab.steps.response import (
    EmailSubscription,
    Function,
    InvokePermission,
    LogGroup,
    ResponderRole,
    Rule,
    Targets,
    Topic,
)

ATTACK_SIDE: list[Step] = [
    Vpc(),
    InternetGateway(),
    Subnet(),
    RouteTable(),
    ElasticIp(),
    MaliciousGroup(),
    CompromisedGroup(),
    InstanceRole(),
    InstanceProfile(),
    MaliciousInstance(),
    EipAssociation(),
    CompromisedInstance(),
    Bucket(),
    ThreatListFile(),
    Detector(),
    ThreatIntelSet(),
    SecurityHub(),
]

RESPONSE_SIDE: list[Step] = [
    ForensicGroup(),
    UntrackingGroup(),
    ResponderRole(),
    Topic(),
    EmailSubscription(),
    LogGroup(),
    Function(),
    Rule(),
    InvokePermission(),
    Targets(),
]

PLAN: list[Step] = ATTACK_SIDE + RESPONSE_SIDE
STEPS: dict[str, Step] = {step.key: step for step in PLAN}

# Teardown follows dependencies, not creation order: the instances (which may sit in the
# forensic group) go before any group, the rule's targets before the rule, and so on.
# Keys in one tuple are begun together, then waited for together.
TEARDOWN_ORDER: list[tuple[str, ...]] = [
    ("targets",),
    ("permission",),
    ("rule",),
    ("function",),
    ("log-group",),
    ("sns-subscription",),
    ("sns-topic",),
    ("responder-role",),
    ("threat-intel-set",),
    ("securityhub",),
    ("detector",),
    ("eip-association",),
    ("instance-compromised", "instance-malicious"),
    ("eip",),
    ("threat-list-file",),
    ("bucket",),
    ("instance-profile",),
    ("instance-role",),
    ("sg-untracking", "sg-forensic", "sg-compromised", "sg-malicious"),
    ("route-table",),
    ("subnet",),
    ("igw",),
    ("vpc",),
]

assert {k for group in TEARDOWN_ORDER for k in group} == set(STEPS), "teardown misses a step"
