"""The evaluator against moto's backends: real requests as botocore sends them, parsed the
way moto parses them, authorized under the lab's responder policy."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gdlab.lab import responder
from gdlab.local.policy import Principal, authorize

ACCOUNT = "123456789012"
REGION = "us-east-1"
LAB = "gd-test01"


class _Captured(Exception):
    pass


def moto_response(client, operation, **kwargs):
    """The moto response object of one client call, set up as moto's server would, unsent."""
    from moto.core.request import Request

    held = {}

    def grab(request, **_):
        held["request"] = request
        raise _Captured

    client.meta.events.register_first("before-send", grab)
    try:
        getattr(client, operation)(**kwargs)
    except _Captured:
        pass
    finally:
        client.meta.events.unregister("before-send", grab)
    sent = held["request"]
    request = Request.from_primitives(sent.method, sent.url, sent.headers, sent.body)
    response = _response_class(client.meta.service_model.service_name)()
    response.setup_class(request)
    return response


def _response_class(service):
    if service == "ec2":
        from moto.ec2.responses import EC2Response
        return EC2Response
    if service == "sns":
        from moto.sns.responses import SNSResponse
        return SNSResponse
    from moto.logs.responses import LogsResponse
    return LogsResponse


def parsed_error(client, operation, refusal):
    """What botocore makes of the refusal's wire body."""
    from botocore.parsers import create_parser

    model = client.meta.service_model
    parser = create_parser(model.protocol)
    body = refusal.get_body()
    parsed = parser.parse({"status_code": refusal.code, "headers": dict(refusal.get_headers()),
                           "body": body.encode()}, model.operation_model(operation).output_shape)
    return refusal.code, parsed["Error"]


@pytest.fixture
def lab(mocked_aws):
    import boto3

    ec2 = boto3.client("ec2", region_name=REGION)
    iam = boto3.client("iam", region_name=REGION)
    sns = boto3.client("sns", region_name=REGION)
    logs = boto3.client("logs", region_name=REGION)
    tag = [{"Key": "gdlab:lab", "Value": LAB}]

    def tagged(kind):
        return [{"ResourceType": kind, "Tags": tag}]

    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/24")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/26")["Subnet"]["SubnetId"]
    forensic = ec2.create_security_group(GroupName="forensic", Description="f", VpcId=vpc,
                                         TagSpecifications=tagged("security-group"))["GroupId"]
    other = ec2.create_security_group(GroupName="other", Description="o", VpcId=vpc)["GroupId"]
    eni = ec2.create_network_interface(SubnetId=subnet, TagSpecifications=tagged(
        "network-interface"))["NetworkInterface"]["NetworkInterfaceId"]
    stranger = ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"][
        "NetworkInterfaceId"]
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
                                 SubnetId=subnet, TagSpecifications=tagged("instance"))[
        "Instances"][0]["InstanceId"]
    topic = sns.create_topic(Name="lab-topic")["TopicArn"]
    other_topic = sns.create_topic(Name="other-topic")["TopicArn"]
    logs.create_log_group(logGroupName="/aws/lambda/responder")
    iam.create_role(RoleName="responder", AssumeRolePolicyDocument=json.dumps(
        responder.role_trust_policy(ACCOUNT)))
    policy = responder.role_policy(
        partition="aws", region=REGION, account=ACCOUNT, lab_tag_key="gdlab:lab",
        lab_tag_value=LAB, forensic_group_id=forensic, untracking_group_id=None,
        topic_arn=topic, log_group_name="/aws/lambda/responder")
    iam.put_role_policy(RoleName="responder", PolicyName="responder",
                        PolicyDocument=json.dumps(policy))
    principal = Principal(
        account=ACCOUNT, arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/responder/fn",
        role_name="responder", role_arn=f"arn:aws:iam::{ACCOUNT}:role/responder",
        session_name="fn", issued_at=datetime.now(UTC))
    return {"ec2": ec2, "iam": iam, "sns": sns, "logs": logs, "eni": eni,
            "stranger": stranger, "forensic": forensic, "other": other, "instance": instance,
            "topic": topic, "other_topic": other_topic, "principal": principal,
            "policy": policy}


def _refusal(response, principal, action):
    from werkzeug.exceptions import HTTPException

    with pytest.raises(HTTPException) as caught:
        authorize(response, principal, action)
    return caught.value


def _isolate(lab, eni, group):
    return moto_response(lab["ec2"], "modify_network_interface_attribute",
                         NetworkInterfaceId=eni, Groups=[group])


def test_the_responder_may_do_what_it_does(lab):
    principal = lab["principal"]
    authorize(_isolate(lab, lab["eni"], lab["forensic"]), principal,
              "ec2:ModifyNetworkInterfaceAttribute")
    authorize(moto_response(lab["ec2"], "create_tags", Resources=[lab["instance"]], Tags=[
        {"Key": "gdlab:isolated-at", "Value": "now"},
        {"Key": "gdlab:original-groups:eni-1", "Value": "sg-1"}]), principal, "ec2:CreateTags")
    authorize(moto_response(lab["ec2"], "describe_instances"), principal,
              "ec2:DescribeInstances")
    authorize(moto_response(lab["sns"], "publish", TopicArn=lab["topic"], Message="m"),
              principal, "sns:Publish")
    authorize(moto_response(lab["logs"], "put_log_events", logGroupName="/aws/lambda/responder",
                            logStreamName="s", logEvents=[{"timestamp": 1, "message": "m"}]),
              principal, "logs:PutLogEvents")


def test_an_untagged_interface_is_refused_as_ec2_does(lab):
    refusal = _refusal(_isolate(lab, lab["stranger"], lab["forensic"]), lab["principal"],
                       "ec2:ModifyNetworkInterfaceAttribute")
    status, error = parsed_error(lab["ec2"], "ModifyNetworkInterfaceAttribute", refusal)
    assert status == 403 and error["Code"] == "UnauthorizedOperation"
    assert error["Message"].startswith(
        f"You are not authorized to perform this operation. User: {lab['principal'].arn} "
        "is not authorized to perform: ec2:ModifyNetworkInterfaceAttribute on resource: "
        f"arn:aws:ec2:{REGION}:{ACCOUNT}:network-interface/{lab['stranger']} because no "
        "identity-based policy allows the ec2:ModifyNetworkInterfaceAttribute action. "
        "Encoded authorization failure message: ")


def test_a_group_outside_the_policy_is_refused(lab):
    refusal = _refusal(_isolate(lab, lab["eni"], lab["other"]), lab["principal"],
                       "ec2:ModifyNetworkInterfaceAttribute")
    assert f"security-group/{lab['other']} because" in refusal.message


def test_an_attached_instance_is_authorized_too(lab):
    ec2 = lab["ec2"]
    primary = ec2.describe_instances(InstanceIds=[lab["instance"]])["Reservations"][0][
        "Instances"][0]["NetworkInterfaces"][0]["NetworkInterfaceId"]
    ec2.create_tags(Resources=[primary], Tags=[{"Key": "gdlab:lab", "Value": LAB}])
    authorize(_isolate(lab, primary, lab["forensic"]), lab["principal"],
              "ec2:ModifyNetworkInterfaceAttribute")
    ec2.delete_tags(Resources=[lab["instance"]], Tags=[{"Key": "gdlab:lab"}])
    refusal = _refusal(_isolate(lab, primary, lab["forensic"]), lab["principal"],
                       "ec2:ModifyNetworkInterfaceAttribute")
    assert f"instance/{lab['instance']} because" in refusal.message


def test_a_tag_key_outside_the_list_is_refused(lab):
    response = moto_response(lab["ec2"], "create_tags", Resources=[lab["instance"]],
                             Tags=[{"Key": "gdlab:lab", "Value": "stolen"}])
    refusal = _refusal(response, lab["principal"], "ec2:CreateTags")
    assert refusal.error_type == "UnauthorizedOperation"


def test_another_topic_is_refused_as_sns_does(lab):
    response = moto_response(lab["sns"], "publish", TopicArn=lab["other_topic"], Message="m")
    refusal = _refusal(response, lab["principal"], "sns:Publish")
    status, error = parsed_error(lab["sns"], "Publish", refusal)
    assert status == 403 and error["Code"] == "AuthorizationError"
    assert error["Message"] == (
        f"User: {lab['principal'].arn} is not authorized to perform: SNS:Publish on resource: "
        f"{lab['other_topic']} because no identity-based policy allows the SNS:Publish action")


def test_another_log_group_is_refused_as_logs_does(lab):
    response = moto_response(lab["logs"], "put_log_events", logGroupName="/other",
                             logStreamName="s", logEvents=[{"timestamp": 1, "message": "m"}])
    refusal = _refusal(response, lab["principal"], "logs:PutLogEvents")
    status, error = parsed_error(lab["logs"], "PutLogEvents", refusal)
    assert status == 403 and error["Code"] == "AccessDeniedException"
    assert "logs:PutLogEvents on resource: arn:aws:logs:" in error["Message"]


def test_without_the_grant_isolation_is_refused(lab):
    policy = dict(lab["policy"])
    policy["Statement"] = [s for s in policy["Statement"]
                           if s["Action"] != "ec2:ModifyNetworkInterfaceAttribute"]
    lab["iam"].put_role_policy(RoleName="responder", PolicyName="responder",
                               PolicyDocument=json.dumps(policy))
    refusal = _refusal(_isolate(lab, lab["eni"], lab["forensic"]), lab["principal"],
                       "ec2:ModifyNetworkInterfaceAttribute")
    assert refusal.error_type == "UnauthorizedOperation"


def test_an_explicit_deny_says_so(lab):
    lab["iam"].put_role_policy(RoleName="responder", PolicyName="deny", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Action": "sns:Publish", "Resource": "*"}]}))
    response = moto_response(lab["sns"], "publish", TopicArn=lab["topic"], Message="m")
    refusal = _refusal(response, lab["principal"], "sns:Publish")
    assert refusal.message.endswith("with an explicit deny in an identity-based policy")


def test_attached_managed_policies_count_and_role_allows(lab):
    from gdlab.local.policy import role_allows

    role_arn = lab["principal"].role_arn
    assert not role_allows(ACCOUNT, role_arn, "logs:CreateLogGroup")
    arn = lab["iam"].create_policy(PolicyName="logs", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "logs:CreateLogGroup", "Resource": "*"}]}))[
        "Policy"]["Arn"]
    lab["iam"].attach_role_policy(RoleName="responder", PolicyArn=arn)
    assert role_allows(ACCOUNT, role_arn, "logs:CreateLogGroup")
    assert role_allows(ACCOUNT, role_arn, "sns:Publish", lab["topic"])
    assert not role_allows(ACCOUNT, role_arn, "sns:Publish", lab["other_topic"])
