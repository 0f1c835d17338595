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
STEPS: dict[str, Step] = {step.key: step for step in PLAN}

# What each step needs done first. Setup runs steps side by side as soon as their needs are
# met (on AWS the instance and Lambda waits then overlap), in PLAN order otherwise.
NEEDS: dict[str, tuple[str, ...]] = {
    "vpc": (),
    "flow-log-group": (),
    "flow-log-role": (),
    "flow-log": ("vpc", "flow-log-group", "flow-log-role"),
    "igw": ("vpc",),
    "subnet": ("vpc",),
    "route-table": ("igw", "subnet"),
    "eip": (),
    "sg-malicious": ("vpc",),
    "sg-compromised": ("vpc", "eip"),
    "instance-role": (),
    "instance-profile": ("instance-role",),
    "instance-malicious": ("subnet", "sg-malicious"),
    # AWS associates an Elastic IP only in a VPC with an internet gateway attached.
    "eip-association": ("eip", "instance-malicious", "igw"),
    "instance-compromised": ("subnet", "sg-compromised", "instance-profile", "eip"),
    "bucket": (),
    "threat-list-file": ("bucket", "eip"),
    "detector": (),
    "threat-intel-set": ("detector", "threat-list-file"),
    "securityhub": (),
    "sg-forensic": ("vpc",),
    "sg-untracking": ("vpc",),
    "responder-role": ("sg-forensic", "sg-untracking"),
    "sns-topic": ("responder-role",),
    "sns-subscription": ("sns-topic",),
    "log-group": (),
    "function": ("responder-role", "sns-topic", "log-group", "sg-forensic", "sg-untracking"),
    "rule": (),
    "permission": ("function", "rule"),
    "targets": ("permission", "sns-topic", "rule"),
}

# Teardown follows dependencies, not creation order: the instances (which may sit in the
# forensic group) go before any group, the rule's targets before the rule, and so on.
# Keys in one tuple are begun together, then waited for together.
TEARDOWN_ORDER: list[tuple[str, ...]] = [
    # The flow log goes before the VPC, its group and its role after it.
    ("targets", "flow-log"),
    ("permission",),
    ("rule",),
    ("function",),
    ("log-group", "flow-log-group"),
    ("sns-subscription",),
    ("sns-topic",),
    ("responder-role", "flow-log-role"),
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
assert set(NEEDS) == set(STEPS), "a step lacks its needs"
assert all(
    PLAN.index(STEPS[need]) < PLAN.index(step) for step in PLAN for need in NEEDS[step.key]
), "a step needs one that comes after it in PLAN"
