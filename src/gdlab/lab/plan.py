"""The compromised-ec2 lab as a list of steps; setup and teardown orders come from what each
step declares (lab/graph.py)."""

from __future__ import annotations

from gdlab.lab import graph
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
    # The VPC's flow log, the evidence of what the instances sent and what was refused.
    FlowLogGroup(),
    FlowLogRole(),
    FlowLog(),
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
graph.validate(PLAN)
STEPS: dict[str, Step] = {step.key: step for step in PLAN}
# Derived from what each step declares (Step.needs / outlives / typical_seconds).
NEEDS: dict[str, tuple[str, ...]] = {step.key: step.needs for step in PLAN}
PRIORITY: dict[str, float] = graph.priorities(PLAN)
TEARDOWN_ORDER: list[tuple[str, ...]] = graph.teardown_groups(PLAN)
