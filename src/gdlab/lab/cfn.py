"""The compromised-ec2 lab as one CloudFormation template, deployable with StackSets
(service-managed permissions, auto-deployment to an OU): what `gdlab setup` creates, as data.

Pure: `template()` returns a dict; the CLI writes it. No account id, region or partition is
written in the template: each stack takes its own from AWS::AccountId, AWS::Region and
AWS::Partition, and every name that must be unique in a region carries the stack's LabId.

What CloudFormation cannot say by itself, done by one small custom resource (a Lambda
whose inline code is BOOTSTRAP_CODE):

- the threat list: AWS::GuardDuty::ThreatIntelSet needs the TXT file in S3 when it is
  created, and the file holds the Elastic IP, known only once the stack has made it. The
  custom resource writes the file (after the EIP and the bucket, before the set) and removes
  it when the stack is deleted, so the bucket can go. This works on a real account in one
  deployment, with no second step for the trainer.
- the region's detector, when DetectorId is `auto`: a StackSet gives every account the same
  parameters, and each account's detector has its own id.
- the responder's code: Lambda's inline `ZipFile` holds at most 4096 characters and the
  handler (scenarios/compromised-ec2/responder/handler.py) is longer. The template carries the
  handler's exact text as a property of the custom resource, which zips it and calls
  UpdateFunctionCode on the responder (before the EventBridge rule exists), so no S3 artifact
  has to be staged in every region of every account.
"""

from __future__ import annotations

from typing import Any

from gdlab.errors import UsageError
from gdlab.lab import responder
from gdlab.lab.cfn_resources import (
    HERE,
    bucket,
    compute,
    flow_log,
    name,
    network,
    security_groups,
    sub,
    tags,
)
from gdlab.lab.state import LAB_ID
from gdlab.lab.steps import LAB_TAG
from gdlab.lab.steps.compute import IAM_PATH
from gdlab.lab.steps.detection import THREAT_LIST_KEY
from gdlab.lab.steps.response import LOG_RETENTION_DAYS
from gdlab.scenario import Scenario

SUPPORTED = "compromised-ec2"
DEFAULT_LAB_ID = "gd-stackset"
# --template-body (create-stack, create-stack-set) takes at most this many bytes.
TEMPLATE_BODY_LIMIT = 51_200
# What Lambda runs before the custom resource writes the real handler (never invoked: the
# EventBridge rule is made after the code is in place).
PLACEHOLDER = ("def lambda_handler(event, context):\n"
               "    raise RuntimeError('the lab stack has not written the responder yet')\n")

BOOTSTRAP_CODE = '''\
"""gdlab lab stack: write the threat list (with the Elastic IP) and the responder's code."""
import io
import zipfile

import boto3
import cfnresponse


def handler(event, context):
    props = event.get("ResourceProperties", {})
    kind = event["RequestType"]
    status, reason = cfnresponse.SUCCESS, None
    physical = event.get("PhysicalResourceId") or props["Bucket"] + "/" + props["Key"]
    data = {"DetectorId": ""}
    try:
        s3 = boto3.client("s3")
        if kind in ("Create", "Update"):
            if props.get("DetectorId") == "auto":  # the region's own detector
                found = boto3.client("guardduty").list_detectors()["DetectorIds"]
                if not found:
                    raise RuntimeError("no GuardDuty detector in this region: deploy with "
                                       "DetectorId empty to create one")
                data["DetectorId"] = found[0]
            s3.put_object(Bucket=props["Bucket"], Key=props["Key"],
                          Body=props["Body"].encode(), ContentType="text/plain")
            archive = io.BytesIO()
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
                info = zipfile.ZipInfo("handler.py", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.create_system = 3
                info.external_attr = 0o100644 << 16
                zipped.writestr(info, props["Code"])
            lam = boto3.client("lambda")
            lam.get_waiter("function_active").wait(FunctionName=props["FunctionName"])
            lam.update_function_code(FunctionName=props["FunctionName"],
                                     ZipFile=archive.getvalue())
            lam.get_waiter("function_updated").wait(FunctionName=props["FunctionName"])
        else:
            s3.delete_object(Bucket=props["Bucket"], Key=props["Key"])
    except Exception as exc:  # a failed delete must not keep the stack from going
        print("gdlab bootstrap:", kind, "failed:", repr(exc))
        if kind != "Delete":
            status, reason = cfnresponse.FAILED, str(exc)[:300]
    cfnresponse.send(event, context, status, data, physical, reason=reason)
'''


def template(scenario: Scenario, email: str | None = None) -> dict[str, Any]:
    """The lab of `scenario` (compromised-ec2 only) as a CloudFormation template; `email`
    becomes the Email parameter's default (subscribed to the lab's topic)."""
    if scenario.name != SUPPORTED:
        raise UsageError(f"scenario {scenario.name} cannot be exported to CloudFormation",
                         f"only {SUPPORTED} is supported")
    resources: dict[str, Any] = {}
    for part in (network, flow_log, security_groups, compute, bucket, detection, response):
        resources.update(part(scenario))
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": (f"gdlab: the GuardDuty '{scenario.title}' lab ({scenario.name}) - "
                        "attack side and automated response; deployable with StackSets"),
        "Parameters": parameters(scenario, email),
        "Conditions": {
            "CreateDetector": {"Fn::Equals": [{"Ref": "DetectorId"}, ""]},
            "FindDetector": {"Fn::Equals": [{"Ref": "DetectorId"}, "auto"]},
            "HasEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Email"}, ""]}]},
        },
        "Resources": resources,
        "Outputs": outputs(),
    }


def parameters(scenario: Scenario, email: str | None) -> dict[str, Any]:
    return {
        "LabId": {
            "Type": "String", "Default": DEFAULT_LAB_ID,
            "AllowedPattern": f"^{LAB_ID.pattern}$",
            "Description": "The lab's id: tag gdlab:lab and part of the names that must be "
                           "unique in a region (3-12 lowercase letters, digits, dashes)"},
        "Email": {
            "Type": "String", "Default": email or "",
            "Description": "Subscribed to the lab's topic (confirm the e-mail); empty: none"},
        "DetectorId": {
            "Type": "String", "Default": "", "AllowedPattern": "^(auto|[0-9a-f]{32})?$",
            "Description": "GuardDuty allows one detector per account and region. Empty: the "
                           "stack creates it; auto: the region's existing one (GuardDuty on "
                           "in every account, e.g. by the organization); or its id"},
        "AmiId": {
            "Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
            "Default": scenario.ami_parameter,
            "Description": "The instances' AMI (Amazon Linux 2023, from SSM's public parameter)"},
    }


def outputs() -> dict[str, Any]:
    def out(value: Any, description: str) -> dict[str, Any]:
        return {"Value": value, "Description": description}

    return {
        "LabId": out({"Ref": "LabId"}, "The lab's id (tag gdlab:lab)"),
        "CompromisedInstanceId": out({"Ref": "CompromisedInstance"},
                                     "The instance the responder isolates"),
        "MaliciousIp": out({"Ref": "MaliciousIp"}, "The threat-listed Elastic IP"),
        "ForensicGroupId": out({"Fn::GetAtt": ["ForensicGroup", "GroupId"]},
                               "The group with no usable rule"),
        "TopicArn": out({"Ref": "AlertTopic"}, "Where the e-mails go"),
        "ResponderFunction": out({"Ref": "ResponderFunction"}, "The responder Lambda"),
        "DetectorId": out(_detector(), "The GuardDuty detector the threat list is on"),
    }


def _detector() -> dict[str, Any]:
    return {"Fn::If": ["CreateDetector", {"Ref": "Detector"},
                       {"Fn::If": ["FindDetector", {"Fn::GetAtt": ["Bootstrap", "DetectorId"]},
                                   {"Ref": "DetectorId"}]}]}


def _role(scenario: Scenario, description: str, policy_name: str,
          policy: dict[str, Any]) -> dict[str, Any]:
    return {"Type": "AWS::IAM::Role", "Properties": {
        "Path": IAM_PATH, "Description": description,
        "AssumeRolePolicyDocument": sub(responder.role_trust_policy(HERE["account"])),
        "Policies": [{"PolicyName": policy_name, "PolicyDocument": sub(policy)}],
        "Tags": tags(scenario)}}


def detection(scenario: Scenario) -> dict[str, Any]:
    """The detector (unless DetectorId names the region's own, or is `auto`: the custom
    resource finds it), the threat list the custom resource writes, and the ThreatIntelSet
    on it."""
    # From LabId, not the stack name: a StackSet's stack names are too long for Lambda's 64.
    bootstrap_name = "gdlab-${LabId}-bootstrap"
    bootstrap_logs = f"/aws/lambda/{bootstrap_name}"
    list_arn = f"arn:${{AWS::Partition}}:s3:::${{ThreatListBucket}}/{THREAT_LIST_KEY}"
    bootstrap_policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": "WriteTheThreatList", "Effect": "Allow",
         "Action": ["s3:PutObject", "s3:DeleteObject"], "Resource": list_arn},
        {"Sid": "WriteTheResponderCode", "Effect": "Allow",
         "Action": ["lambda:UpdateFunctionCode", "lambda:GetFunctionConfiguration"],
         "Resource": "${ResponderFunction.Arn}"},
        # ListDetectors supports no resource-level permission: "*" is its only form.
        {"Sid": "FindTheDetector", "Effect": "Allow", "Action": "guardduty:ListDetectors",
         "Resource": "*"},
        {"Sid": "WriteOwnLogs", "Effect": "Allow",
         "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:"
                     f"log-group:{bootstrap_logs}:*"},
    ]}
    return {
        "Detector": {"Type": "AWS::GuardDuty::Detector", "Condition": "CreateDetector",
                     "Properties": {"Enable": True,
                                    "FindingPublishingFrequency": "FIFTEEN_MINUTES",
                                    "Tags": tags(scenario)}},
        "BootstrapLogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {
            "LogGroupName": sub(bootstrap_logs), "RetentionInDays": LOG_RETENTION_DAYS,
            "Tags": tags(scenario)}},
        "BootstrapRole": _role(scenario, "gdlab: writes the lab's threat list and responder",
                               "gdlab-bootstrap", bootstrap_policy),
        "BootstrapFunction": {"Type": "AWS::Lambda::Function",
                              "DependsOn": "BootstrapLogGroup", "Properties": {
            "FunctionName": sub(bootstrap_name),
            "Description": "gdlab: writes the threat list and the responder's code",
            "Runtime": responder.RUNTIME, "Handler": "index.handler", "Timeout": 120,
            "MemorySize": 128, "Role": {"Fn::GetAtt": ["BootstrapRole", "Arn"]},
            "Code": {"ZipFile": BOOTSTRAP_CODE}, "Tags": tags(scenario)}},
        "Bootstrap": {"Type": "Custom::GdlabBootstrap", "Properties": {
            "ServiceToken": {"Fn::GetAtt": ["BootstrapFunction", "Arn"]},
            "Bucket": {"Ref": "ThreatListBucket"}, "Key": THREAT_LIST_KEY,
            "Body": sub("# gdlab lab ${LabId}: the malicious instance's Elastic IP\n"
                        "${MaliciousIp}\n"),
            "FunctionName": {"Ref": "ResponderFunction"}, "DetectorId": {"Ref": "DetectorId"},
            "Code": (scenario.responder_dir / "handler.py").read_text(encoding="utf-8")}},
        # DependsOn although DetectorId may hold a GetAtt of Bootstrap: that one is inside an
        # Fn::If, and the list must be in S3 whichever branch is taken (cfn-lint's W3005 says
        # the DependsOn is redundant).
        "ThreatIntelSet": {"Type": "AWS::GuardDuty::ThreatIntelSet", "DependsOn": "Bootstrap",
                           "Metadata": {"cfn-lint": {"config": {"ignore_checks": ["W3005"]}}},
                           "Properties": {
            "Activate": True, "DetectorId": _detector(), "Format": "TXT",
            "Location": sub(f"s3://${{ThreatListBucket}}/{THREAT_LIST_KEY}"),
            "Name": sub(name(scenario, "threat_list")), "Tags": tags(scenario)}},
    }


def response(scenario: Scenario) -> dict[str, Any]:
    """The rule with the workshop's input transformer, the topic (and its e-mail), the
    responder with its least-privilege role, and their logs."""
    function = name(scenario, "function")
    log_group = f"/aws/lambda/{function}"
    topic = "${AlertTopic}"
    policy = responder.role_policy(
        **HERE, lab_tag_key=LAB_TAG, lab_tag_value="${LabId}",
        forensic_group_id="${ForensicGroup.GroupId}", untracking_group_id=None,
        topic_arn=topic, log_group_name=log_group)
    env = responder.environment(lab_tag_key=LAB_TAG, lab_tag_value="${LabId}",
                                forensic_group_id="${ForensicGroup.GroupId}",
                                untracking_group_id=None, topic_arn=topic)
    return {
        "ResponderRole": _role(scenario, "gdlab: the responder isolates lab instances only",
                               "gdlab-responder", policy),
        "AlertTopic": {"Type": "AWS::SNS::Topic", "Properties": {
            "TopicName": sub(name(scenario, "topic")), "Tags": tags(scenario)}},
        "AlertTopicPolicy": {"Type": "AWS::SNS::TopicPolicy", "Properties": {
            "Topics": [{"Ref": "AlertTopic"}],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Sid": "OnlyThisRule", "Effect": "Allow",
                 "Principal": {"Service": "events.amazonaws.com"}, "Action": "sns:Publish",
                 "Resource": {"Ref": "AlertTopic"},
                 "Condition": {"ArnEquals": {"aws:SourceArn": {
                     "Fn::GetAtt": ["FindingRule", "Arn"]}}}},
                {"Sid": "TheResponder", "Effect": "Allow",
                 "Principal": {"AWS": {"Fn::GetAtt": ["ResponderRole", "Arn"]}},
                 "Action": "sns:Publish", "Resource": {"Ref": "AlertTopic"}},
            ]}}},
        "EmailSubscription": {"Type": "AWS::SNS::Subscription", "Condition": "HasEmail",
                              "Properties": {"TopicArn": {"Ref": "AlertTopic"},
                                             "Protocol": "email",
                                             "Endpoint": {"Ref": "Email"}}},
        "ResponderLogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {
            "LogGroupName": sub(log_group), "RetentionInDays": LOG_RETENTION_DAYS,
            "Tags": tags(scenario)}},
        "ResponderFunction": {"Type": "AWS::Lambda::Function",
                              "DependsOn": "ResponderLogGroup", "Properties": {
            "FunctionName": sub(function),
            "Description": "gdlab: isolates the compromised instance into the forensic group",
            "Runtime": responder.RUNTIME, "Handler": responder.HANDLER,
            "Timeout": responder.TIMEOUT_SECONDS, "MemorySize": responder.MEMORY_MB,
            "Role": {"Fn::GetAtt": ["ResponderRole", "Arn"]},
            "Environment": {"Variables": sub(env)},
            # The real code is written by the Bootstrap custom resource (see the module's doc).
            "Code": {"ZipFile": PLACEHOLDER}, "Tags": tags(scenario)}},
        # Made once the responder's code is in place, so no finding meets the placeholder.
        "FindingRule": {"Type": "AWS::Events::Rule", "DependsOn": "Bootstrap", "Properties": {
            "Name": sub(name(scenario, "rule")),
            "Description": f"gdlab: GuardDuty finding {scenario.finding_type}",
            "EventPattern": scenario.event_pattern, "State": "ENABLED",
            "Targets": [
                {"Id": "responder", "Arn": {"Fn::GetAtt": ["ResponderFunction", "Arn"]}},
                {"Id": "email", "Arn": {"Ref": "AlertTopic"},
                 "InputTransformer": scenario.notification},
            ]}},
        "InvokePermission": {"Type": "AWS::Lambda::Permission", "Properties": {
            "Action": "lambda:InvokeFunction", "FunctionName": {"Ref": "ResponderFunction"},
            "Principal": "events.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": ["FindingRule", "Arn"]},
            "SourceAccount": {"Ref": "AWS::AccountId"}}},
    }
