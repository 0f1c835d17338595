"""The attack side of the compromised-ec2 lab as CloudFormation resources: the lab network,
its flow log, the two instances, the Elastic IP and the bucket that holds the threat list.

Pure data. Strings holding `${...}` become `Fn::Sub`, so names and policies follow the stack's
own account, region and partition (a StackSet deploys one template everywhere).
"""

from __future__ import annotations

from typing import Any

from gdlab.lab.steps import LAB_TAG, SCENARIO_TAG
from gdlab.lab.steps.compute import IAM_PATH, SSM_POLICY
from gdlab.lab.steps.flowlogs import (
    AGGREGATION_SECONDS,
    FLOW_LOG_RETENTION_DAYS,
    TRAFFIC_TYPE,
    delivery_policy,
    delivery_trust_policy,
    group_name_for,
)
from gdlab.lab.steps.network import CompromisedGroup, ForensicGroup, MaliciousGroup
from gdlab.scenario import Scenario

Template = dict[str, Any]
# The stack's own place: every ARN and name is built from these, never from literals.
HERE = {"partition": "${AWS::Partition}", "region": "${AWS::Region}",
        "account": "${AWS::AccountId}"}
# AWS's documented way to remove a new group's default allow-all egress in CloudFormation:
# one egress rule that can match nothing leaving the interface (loopback, all protocols).
NO_EGRESS = [{"IpProtocol": "-1", "CidrIp": "127.0.0.1/32",
              "Description": "matches nothing: removes the default allow-all egress"}]
# Amazon Linux 2023's root device (the AMI of the scenario's SSM parameter).
ROOT_DEVICE = "/dev/xvda"


def sub(value: Any) -> Any:
    """`value` with every string that holds `${` wrapped in Fn::Sub (dict keys stay)."""
    if isinstance(value, str):
        return {"Fn::Sub": value} if "${" in value else value
    if isinstance(value, list):
        return [sub(v) for v in value]
    if isinstance(value, dict):
        return {k: sub(v) for k, v in value.items()}
    return value


def tags(scenario: Scenario, name: str | None = None) -> list[dict[str, Any]]:
    """The tags `gdlab setup` puts on every resource: the lab, the scenario, a Name."""
    out = [{"Key": LAB_TAG, "Value": {"Ref": "LabId"}},
           {"Key": SCENARIO_TAG, "Value": scenario.name}]
    if name:
        out.append({"Key": "Name", "Value": sub(name)})
    return out


def name(scenario: Scenario, key: str) -> str:
    """The workshop's name for `key`, with the stack's LabId where the lab id goes."""
    return scenario.name_for(key, "${LabId}")


def network(scenario: Scenario) -> Template:
    vpc_name = name(scenario, "vpc")
    return {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {
            "CidrBlock": scenario.vpc_cidr, "EnableDnsSupport": True,
            "EnableDnsHostnames": True, "Tags": tags(scenario, vpc_name)}},
        "InternetGateway": {"Type": "AWS::EC2::InternetGateway", "Properties": {
            "Tags": tags(scenario, vpc_name)}},
        "GatewayAttachment": {"Type": "AWS::EC2::VPCGatewayAttachment", "Properties": {
            "VpcId": {"Ref": "Vpc"}, "InternetGatewayId": {"Ref": "InternetGateway"}}},
        "Subnet": {"Type": "AWS::EC2::Subnet", "Properties": {
            "VpcId": {"Ref": "Vpc"}, "CidrBlock": scenario.subnet_cidr,
            "AvailabilityZone": {"Fn::Select": [0, {"Fn::GetAZs": ""}]},
            "MapPublicIpOnLaunch": False, "Tags": tags(scenario, vpc_name)}},
        "RouteTable": {"Type": "AWS::EC2::RouteTable", "Properties": {
            "VpcId": {"Ref": "Vpc"}, "Tags": tags(scenario, vpc_name)}},
        "DefaultRoute": {"Type": "AWS::EC2::Route", "DependsOn": "GatewayAttachment",
                         "Properties": {"RouteTableId": {"Ref": "RouteTable"},
                                        "DestinationCidrBlock": "0.0.0.0/0",
                                        "GatewayId": {"Ref": "InternetGateway"}}},
        "SubnetRoutes": {"Type": "AWS::EC2::SubnetRouteTableAssociation", "Properties": {
            "SubnetId": {"Ref": "Subnet"}, "RouteTableId": {"Ref": "RouteTable"}}},
    }


def flow_log(scenario: Scenario) -> Template:
    group = group_name_for("${LabId}")
    return {
        "FlowLogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {
            "LogGroupName": sub(group), "RetentionInDays": FLOW_LOG_RETENTION_DAYS,
            "Tags": tags(scenario)}},
        "FlowLogRole": {"Type": "AWS::IAM::Role", "Properties": {
            "Path": IAM_PATH,
            "Description": "gdlab: VPC Flow Logs writes the lab's flow log group",
            "AssumeRolePolicyDocument": sub(delivery_trust_policy(**HERE)),
            "Policies": [{"PolicyName": "gdlab-flow-logs",
                          "PolicyDocument": sub(delivery_policy(**HERE,
                                                                log_group_name=group))}],
            "Tags": tags(scenario)}},
        "FlowLog": {"Type": "AWS::EC2::FlowLog", "Properties": {
            "ResourceType": "VPC", "ResourceId": {"Ref": "Vpc"},
            "TrafficType": TRAFFIC_TYPE, "LogDestinationType": "cloud-watch-logs",
            "LogGroupName": {"Ref": "FlowLogGroup"},
            "DeliverLogsPermissionArn": {"Fn::GetAtt": ["FlowLogRole", "Arn"]},
            "MaxAggregationInterval": AGGREGATION_SECONDS,
            "Tags": tags(scenario, name(scenario, "vpc"))}},
    }


def _icmp(cidr: Any, description: str, icmp_type: int = -1) -> dict[str, Any]:
    return {"IpProtocol": "icmp", "FromPort": icmp_type, "ToPort": -1, "CidrIp": cidr,
            "Description": description}


def security_groups(scenario: Scenario) -> Template:
    """The instances' groups as setup makes them (no SSH anywhere: SSM reaches the
    compromised instance) and the forensic group, which allows nothing either way."""
    return {
        "MaliciousGroup": {"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupDescription": MaliciousGroup.description, "VpcId": {"Ref": "Vpc"},
            # Echo requests only; replies leave through connection tracking.
            "SecurityGroupIngress": [_icmp("0.0.0.0/0", "ping from the compromised instance",
                                           icmp_type=8)],
            "SecurityGroupEgress": NO_EGRESS,
            "Tags": tags(scenario, name(scenario, "malicious_instance"))}},
        "CompromisedGroup": {"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupDescription": CompromisedGroup.description, "VpcId": {"Ref": "Vpc"},
            "SecurityGroupEgress": [
                _icmp({"Fn::Sub": "${MaliciousIp}/32"}, "ping the malicious Elastic IP"),
                {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0",
                 "Description": "SSM agent (HTTPS)"},
            ],
            "Tags": tags(scenario, name(scenario, "compromised_instance"))}},
        # The untracking group of `gdlab setup` (all traffic in, for the moment between the
        # responder's two changes) is left out: the responder then isolates in one step.
        "ForensicGroup": {"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupName": sub(name(scenario, "forensic_group")),
            "GroupDescription": ForensicGroup.description, "VpcId": {"Ref": "Vpc"},
            "SecurityGroupEgress": NO_EGRESS,
            "Tags": tags(scenario, name(scenario, "forensic_group"))}},
    }


def _launch_template(scenario: Scenario, key: str, group: str, public_ip: bool,
                     extra: dict[str, Any]) -> dict[str, Any]:
    instance_name = name(scenario, key)
    spec = [{"ResourceType": kind, "Tags": tags(scenario, instance_name)}
            for kind in ("instance", "volume", "network-interface")]
    data = {
        "ImageId": {"Ref": "AmiId"},
        "InstanceType": scenario.instance_type,
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
        "BlockDeviceMappings": [{"DeviceName": ROOT_DEVICE, "Ebs": {
            "Encrypted": True, "VolumeType": "gp3", "DeleteOnTermination": True}}],
        # A launch template tags the network interface too: the responder's role may only
        # move lab-tagged interfaces.
        "NetworkInterfaces": [{"DeviceIndex": 0, "SubnetId": {"Ref": "Subnet"},
                               "Groups": [{"Ref": group}],
                               "AssociatePublicIpAddress": public_ip,
                               "DeleteOnTermination": True}],
        "TagSpecifications": spec,
        **extra,
    }
    return {"Type": "AWS::EC2::LaunchTemplate", "Properties": {
        "LaunchTemplateData": data,
        "TagSpecifications": [{"ResourceType": "launch-template",
                               "Tags": tags(scenario, instance_name)}]}}


def _instance(template: str, depends: list[str]) -> dict[str, Any]:
    return {"Type": "AWS::EC2::Instance", "DependsOn": depends, "Properties": {
        "LaunchTemplate": {"LaunchTemplateId": {"Ref": template},
                           "Version": {"Fn::GetAtt": [template, "LatestVersionNumber"]}}}}


def compute(scenario: Scenario) -> Template:
    user_data = scenario.render_user_data("${LabId}", "${MaliciousIp}") or ""
    return {
        "InstanceRole": {"Type": "AWS::IAM::Role", "Properties": {
            "Path": IAM_PATH,
            "Description": "gdlab: the compromised instance, managed through SSM",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole"}]},
            "ManagedPolicyArns": [sub(f"arn:${{AWS::Partition}}:iam::aws:policy/{SSM_POLICY}")],
            "Tags": tags(scenario)}},
        "InstanceProfile": {"Type": "AWS::IAM::InstanceProfile", "Properties": {
            "Path": IAM_PATH, "Roles": [{"Ref": "InstanceRole"}]}},
        "MaliciousIp": {"Type": "AWS::EC2::EIP", "Properties": {
            "Domain": "vpc", "Tags": tags(scenario, name(scenario, "malicious_instance"))}},
        "MaliciousLaunchTemplate": _launch_template(
            scenario, "malicious_instance", "MaliciousGroup", False, {}),
        "MaliciousInstance": _instance("MaliciousLaunchTemplate", ["DefaultRoute"]),
        "MaliciousIpAssociation": {"Type": "AWS::EC2::EIPAssociation", "Properties": {
            "AllocationId": {"Fn::GetAtt": ["MaliciousIp", "AllocationId"]},
            "InstanceId": {"Ref": "MaliciousInstance"}}},
        "CompromisedLaunchTemplate": _launch_template(
            scenario, "compromised_instance", "CompromisedGroup", True, {
                "IamInstanceProfile": {"Arn": {"Fn::GetAtt": ["InstanceProfile", "Arn"]}},
                # Its own timer pings the malicious Elastic IP, as the workshop's cron did.
                "UserData": {"Fn::Base64": {"Fn::Sub": user_data}},
            }),
        # After the forensic group: on deletion the instance (whose interface the responder
        # moved into that group) goes first, or the group could not be deleted.
        "CompromisedInstance": _instance("CompromisedLaunchTemplate",
                                         ["DefaultRoute", "MaliciousIpAssociation",
                                          "ForensicGroup"]),
    }


def bucket(scenario: Scenario) -> Template:
    """Private and encrypted; its name is left to CloudFormation, unique per stack."""
    return {"ThreatListBucket": {"Type": "AWS::S3::Bucket", "Properties": {
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True, "IgnorePublicAcls": True,
            "BlockPublicPolicy": True, "RestrictPublicBuckets": True},
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        "Tags": tags(scenario)}}}
