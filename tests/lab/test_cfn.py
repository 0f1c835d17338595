"""The compromised-ec2 lab as a CloudFormation template (gdlab.lab.cfn): every resource
`gdlab setup` makes, with the same protections; nothing tied to one account or region (a
StackSet deploys it everywhere); cfn-lint finds no error; moto's CloudFormation deploys what
it can of it."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from gdlab.errors import UsageError
from gdlab.lab import cfn, responder
from gdlab.lab.steps import LAB_TAG
from gdlab.scenario import load

EXPECTED_TYPES = {
    "AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::InternetGateway",
    "AWS::EC2::VPCGatewayAttachment", "AWS::EC2::RouteTable", "AWS::EC2::Route",
    "AWS::EC2::SubnetRouteTableAssociation", "AWS::EC2::SecurityGroup",
    "AWS::EC2::LaunchTemplate", "AWS::EC2::Instance", "AWS::EC2::EIP",
    "AWS::EC2::EIPAssociation", "AWS::EC2::FlowLog", "AWS::IAM::Role",
    "AWS::IAM::InstanceProfile", "AWS::S3::Bucket", "AWS::GuardDuty::Detector",
    "AWS::GuardDuty::ThreatIntelSet", "AWS::Events::Rule", "AWS::SNS::Topic",
    "AWS::SNS::TopicPolicy", "AWS::SNS::Subscription", "AWS::Lambda::Function",
    "AWS::Lambda::Permission", "AWS::Logs::LogGroup", "Custom::GdlabBootstrap",
}
# Resource types that take no Tags property in CloudFormation.
UNTAGGABLE = {"AWS::EC2::VPCGatewayAttachment", "AWS::EC2::Route",
              "AWS::EC2::SubnetRouteTableAssociation", "AWS::EC2::EIPAssociation",
              "AWS::EC2::Instance", "AWS::IAM::InstanceProfile", "AWS::SNS::TopicPolicy",
              "AWS::SNS::Subscription", "AWS::Lambda::Permission", "AWS::Events::Rule",
              "AWS::EC2::LaunchTemplate", "Custom::GdlabBootstrap"}


@pytest.fixture(scope="module")
def scenario():
    return load("compromised-ec2")


@pytest.fixture(scope="module")
def template(scenario) -> dict[str, Any]:
    return cfn.template(scenario, email="trainer@example.com")


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def test_every_resource_setup_makes_is_in_the_template(template):
    types = {r["Type"] for r in template["Resources"].values()}
    assert types == EXPECTED_TYPES
    assert len(of_type(template, "AWS::EC2::Instance")) == 2
    assert set(of_type(template, "AWS::EC2::SecurityGroup")) == {
        "MaliciousGroup", "CompromisedGroup", "ForensicGroup"}


def test_everything_taggable_carries_the_lab_tag(template):
    def lab_tagged(tags: list[dict[str, Any]]) -> bool:
        return {"Key": LAB_TAG, "Value": {"Ref": "LabId"}} in tags

    for key, resource in template["Resources"].items():
        if resource["Type"] in UNTAGGABLE:
            continue
        assert lab_tagged(resource["Properties"]["Tags"]), key
    for key, lt in of_type(template, "AWS::EC2::LaunchTemplate").items():
        specs = lt["Properties"]["LaunchTemplateData"]["TagSpecifications"]
        # The responder may only move lab-tagged interfaces of lab-tagged instances.
        assert {s["ResourceType"] for s in specs} == {"instance", "volume", "network-interface"}
        assert all(lab_tagged(s["Tags"]) for s in specs), key


def _ingress(group: dict[str, Any]) -> list[dict[str, Any]]:
    return group["Properties"].get("SecurityGroupIngress", [])


def test_no_ssh_from_the_world(template):
    for key, group in of_type(template, "AWS::EC2::SecurityGroup").items():
        for rule in _ingress(group):
            if rule.get("CidrIp") != "0.0.0.0/0" and rule.get("CidrIpv6") != "::/0":
                continue
            protocol = str(rule["IpProtocol"])
            assert protocol not in ("-1", "tcp", "6"), (key, rule)  # ICMP only from anywhere


def test_the_forensic_group_has_no_usable_rule(template):
    forensic = template["Resources"]["ForensicGroup"]["Properties"]
    assert forensic.get("SecurityGroupIngress", []) == []
    # CloudFormation's way to drop the default allow-all egress: one loopback rule.
    assert [(r["IpProtocol"], r["CidrIp"]) for r in forensic["SecurityGroupEgress"]] == [
        ("-1", "127.0.0.1/32")]
    assert "CidrIpv6" not in json.dumps(forensic)


def test_the_bucket_is_encrypted_and_private(template):
    (bucket,) = of_type(template, "AWS::S3::Bucket").values()
    props = bucket["Properties"]
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "IgnorePublicAcls": True,
        "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    assert "BucketName" not in props  # CloudFormation's own name: unique per stack


def test_the_instances_require_imdsv2_and_the_compromised_one_is_ssm_managed(template):
    lts = template["Resources"]
    for key in ("MaliciousLaunchTemplate", "CompromisedLaunchTemplate"):
        data = lts[key]["Properties"]["LaunchTemplateData"]
        assert data["MetadataOptions"]["HttpTokens"] == "required"
        assert all(m["Ebs"]["Encrypted"] for m in data["BlockDeviceMappings"])
    compromised = lts["CompromisedLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    assert compromised["IamInstanceProfile"] == {"Arn": {"Fn::GetAtt": ["InstanceProfile", "Arn"]}}
    role = lts["InstanceRole"]["Properties"]
    assert role["ManagedPolicyArns"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"}]
    assert "${MaliciousIp}" in compromised["UserData"]["Fn::Base64"]["Fn::Sub"]


def test_the_responder_code_is_the_handler_file(template, scenario):
    handler = (scenario.responder_dir / "handler.py").read_text(encoding="utf-8")
    assert len(handler) > 4096  # why the code does not go inline in ZipFile
    assert template["Resources"]["Bootstrap"]["Properties"]["Code"] == handler
    function = template["Resources"]["ResponderFunction"]["Properties"]
    assert function["Handler"] == responder.HANDLER and function["Runtime"] == responder.RUNTIME
    # The bootstrap's own code fits inline, and zips the handler under the handler's name.
    bootstrap = template["Resources"]["BootstrapFunction"]["Properties"]["Code"]["ZipFile"]
    assert len(bootstrap) <= 4096
    assert '"handler.py"' in bootstrap and responder.HANDLER.startswith("handler.")
    compile(bootstrap, "bootstrap", "exec")
    # The rule only exists once the code is in place.
    assert template["Resources"]["FindingRule"]["DependsOn"] == "Bootstrap"
    assert template["Resources"]["ThreatIntelSet"]["DependsOn"] == "Bootstrap"


def test_the_responder_role_is_the_projects_least_privilege_policy(template):
    role = template["Resources"]["ResponderRole"]["Properties"]
    (policy,) = role["Policies"]
    expected = responder.role_policy(
        partition="${AWS::Partition}", region="${AWS::Region}", account="${AWS::AccountId}",
        lab_tag_key=LAB_TAG, lab_tag_value="${LabId}",
        forensic_group_id="${ForensicGroup.GroupId}", untracking_group_id=None,
        topic_arn="${AlertTopic}",
        log_group_name="/aws/lambda/GuardDuty-Example-Remediation-EC2MaliciousIPCaller-${LabId}")
    assert policy["PolicyDocument"] == cfn.sub(expected)


def test_the_rule_has_the_workshops_pattern_and_input_transformer(template, scenario):
    rule = template["Resources"]["FindingRule"]["Properties"]
    assert rule["EventPattern"] == scenario.event_pattern
    email = next(t for t in rule["Targets"] if t["Id"] == "email")
    assert email["InputTransformer"] == scenario.notification


def test_the_detector_is_made_only_without_a_detector_id(template):
    assert template["Resources"]["Detector"]["Condition"] == "CreateDetector"
    assert template["Parameters"]["DetectorId"]["Default"] == ""
    pattern = re.compile(template["Parameters"]["DetectorId"]["AllowedPattern"])
    for value in ("", "auto", "12abc34def56789012abc34def567890"):
        assert pattern.fullmatch(value), value
    assert not pattern.fullmatch("nope")
    # Where the threat list goes: the new detector, the region's own (auto), or the given id.
    assert template["Resources"]["ThreatIntelSet"]["Properties"]["DetectorId"] == {
        "Fn::If": ["CreateDetector", {"Ref": "Detector"},
                   {"Fn::If": ["FindDetector", {"Fn::GetAtt": ["Bootstrap", "DetectorId"]},
                               {"Ref": "DetectorId"}]}]}
    assert template["Resources"]["EmailSubscription"]["Condition"] == "HasEmail"
    assert template["Parameters"]["Email"]["Default"] == "trainer@example.com"


def test_nothing_is_tied_to_one_account_or_region(template):
    text = json.dumps(template)
    assert not re.search(r"(?<![0-9])[0-9]{12}(?![0-9])", text)
    regions = r"\b(us|eu|ap|sa|ca|me|af|il|mx)-(east|west|north|south|central|northeast|" \
              r"southeast|northwest|southwest)-[0-9]\b"
    assert not re.search(regions, text)
    assert "arn:aws:" not in text  # the partition comes from AWS::Partition
    assert "${AWS::AccountId}" in text and "${AWS::Region}" in text


def test_names_fit_awss_limits_with_the_longest_lab_id(template):
    resources = template["Resources"]
    longest = "a" * 12
    for key, prop, limit in (("ResponderFunction", "FunctionName", 64),
                             ("BootstrapFunction", "FunctionName", 64),
                             ("FindingRule", "Name", 64)):
        assert len(resources[key]["Properties"][prop]["Fn::Sub"].replace(
            "${LabId}", longest)) <= limit, key


def test_the_template_fits_template_body(template):
    assert len(json.dumps(template, separators=(",", ":")).encode()) < cfn.TEMPLATE_BODY_LIMIT


def test_cfn_lint_finds_no_error(template):
    from cfnlint.api import ManualArgs, lint

    matches = lint(json.dumps(template, indent=1),
                   config=ManualArgs(regions=["us-east-1", "eu-west-1", "ap-southeast-2"]))
    errors = [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches
              if m.rule.severity == "error"]
    assert errors == []
    assert [m for m in matches if m.rule.severity == "warning"] == []


def test_other_scenarios_are_refused_in_one_line():
    with pytest.raises(UsageError) as caught:
        cfn.template(load("compromised-s3-bucket"))
    assert "compromised-ec2" in str(caught.value) and "\n" not in str(caught.value)


# moto's CloudFormation cannot take the whole template: it makes AWS::EC2::Instance only
# from an ImageId property (these instances come from a launch template, which tags their
# network interfaces), and it runs a Custom:: resource's Lambda only in Docker. So the
# deploy-shape check leaves those three resources out; everything else is created.
MOTO_CANNOT = ("MaliciousInstance", "CompromisedInstance", "MaliciousIpAssociation",
               "Bootstrap")


def _without(template: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    shaped = json.loads(json.dumps(template))
    for key in keys:
        del shaped["Resources"][key]
    for resource in shaped["Resources"].values():
        if "DependsOn" in resource:
            needs = resource["DependsOn"]
            needs = [n for n in ([needs] if isinstance(needs, str) else needs) if n not in keys]
            if needs:
                resource["DependsOn"] = needs
            else:
                del resource["DependsOn"]
    del shaped["Outputs"]["CompromisedInstanceId"]
    return shaped


@pytest.mark.skip(reason="moto's CloudFormation cannot create AWS::EC2::Instance from a "
                         "launch template (KeyError 'ImageId') nor run Custom:: resources "
                         "without Docker; test_moto_deploys_the_rest_of_the_stack covers the rest")
def test_moto_deploys_the_whole_stack():  # pragma: no cover
    raise AssertionError("skipped")


def test_moto_deploys_the_rest_of_the_stack(mocked_aws, template):
    import boto3

    cf = boto3.client("cloudformation", region_name="eu-west-1")
    cf.create_stack(StackName="gdlab-lab", TemplateBody=json.dumps(_without(template,
                                                                            MOTO_CANNOT)),
                    Capabilities=["CAPABILITY_IAM"],
                    Parameters=[{"ParameterKey": "LabId", "ParameterValue": "gd-cfn01"}])
    stack = cf.describe_stacks(StackName="gdlab-lab")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert outputs["LabId"] == "gd-cfn01"
    assert outputs["ResponderFunction"] == (
        "GuardDuty-Example-Remediation-EC2MaliciousIPCaller-gd-cfn01")
    assert outputs["TopicArn"].startswith("arn:aws:sns:eu-west-1:")
    ec2 = boto3.client("ec2", region_name="eu-west-1")
    (group,) = ec2.describe_security_groups(GroupIds=[outputs["ForensicGroupId"]])[
        "SecurityGroups"]
    assert group["IpPermissions"] == []
    # Its egress is not checked here: moto's CloudFormation ignores SecurityGroupEgress and
    # keeps the default allow-all rule, where AWS's replaces it with the rules given (see
    # test_the_forensic_group_has_no_usable_rule).
    fn = boto3.client("lambda", region_name="eu-west-1").get_function_configuration(
        FunctionName=outputs["ResponderFunction"])
    assert fn["Environment"]["Variables"]["LAB_TAG_VALUE"] == "gd-cfn01"
    assert fn["Environment"]["Variables"]["FORENSIC_GROUP_ID"] == outputs["ForensicGroupId"]
    logs = boto3.client("logs", region_name="eu-west-1")
    names = {g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]}
    assert {"/gdlab/gd-cfn01/flow-logs", "/aws/lambda/gdlab-gd-cfn01-bootstrap"} <= names


def test_the_bootstrap_writes_the_list_and_the_responder_and_cleans_up(mocked_aws, template,
                                                                       monkeypatch):
    """The custom resource's inline code, run as Lambda would run it (cfnresponse is the
    module CloudFormation gives inline code; here it records what would be sent)."""
    import sys
    import types

    import boto3

    sent: list[tuple[str, str, str | None]] = []
    answers: list[dict[str, Any]] = []
    module = types.ModuleType("cfnresponse")
    module.SUCCESS, module.FAILED = "SUCCESS", "FAILED"

    def send(event, context, status, data, physical, reason=None):  # type: ignore[no-untyped-def]
        sent.append((status, physical, reason))
        answers.append(data)

    module.send = send
    monkeypatch.setitem(sys.modules, "cfnresponse", module)
    namespace: dict[str, Any] = {}
    exec(compile(template["Resources"]["BootstrapFunction"]["Properties"]["Code"]["ZipFile"],
                 "index.py", "exec"), namespace)

    region = "us-east-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    s3, lam = boto3.client("s3", region_name=region), boto3.client("lambda", region_name=region)
    iam = boto3.client("iam", region_name=region)
    s3.create_bucket(Bucket="lab-bucket")
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps(
        responder.role_trust_policy("123456789012")))["Role"]["Arn"]
    lam.create_function(FunctionName="responder", Runtime=responder.RUNTIME,
                        Handler=responder.HANDLER, Role=role,
                        Code={"ZipFile": _zip({"index.py": cfn.PLACEHOLDER})})
    props = dict(template["Resources"]["Bootstrap"]["Properties"],
                 Bucket="lab-bucket", Body="# lab\n198.51.100.7\n", FunctionName="responder")
    event = {"RequestType": "Create", "ResourceProperties": props}
    namespace["handler"](event, None)
    assert sent == [("SUCCESS", "lab-bucket/threat-list.txt", None)]
    assert answers == [{"DetectorId": ""}]  # DetectorId empty: the stack's own detector
    body = s3.get_object(Bucket="lab-bucket", Key="threat-list.txt")["Body"].read()
    assert body == b"# lab\n198.51.100.7\n"
    # The function's code is now the handler file, zipped as handler.py (the same bytes).
    code = lam.get_function(FunctionName="responder")["Configuration"]["CodeSha256"]
    assert code == responder.code_sha256(_zip_like_bootstrap(props["Code"]))

    namespace["handler"]({"RequestType": "Delete", "ResourceProperties": props,
                          "PhysicalResourceId": "lab-bucket/threat-list.txt"}, None)
    assert s3.list_objects_v2(Bucket="lab-bucket").get("KeyCount") == 0
    # A delete that fails still answers SUCCESS, so the stack can go.
    namespace["handler"]({"RequestType": "Delete", "PhysicalResourceId": "x",
                          "ResourceProperties": dict(props, Bucket="gone")}, None)
    assert sent[-1][0] == "SUCCESS"
    namespace["handler"]({"RequestType": "Update", "ResourceProperties": dict(props,
                                                                          Bucket="gone")}, None)
    assert sent[-1][0] == "FAILED" and sent[-1][2]

    # DetectorId auto: the region's own detector, or a failure that says what to do.
    namespace["handler"](dict(event, ResourceProperties=dict(props, DetectorId="auto")), None)
    assert sent[-1][0] == "FAILED" and "DetectorId empty" in sent[-1][2]
    detector = boto3.client("guardduty", region_name=region).create_detector(Enable=True)[
        "DetectorId"]
    namespace["handler"](dict(event, ResourceProperties=dict(props, DetectorId="auto")), None)
    assert sent[-1][0] == "SUCCESS" and answers[-1] == {"DetectorId": detector}


def _zip(files: dict[str, str]) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file, text in files.items():
            archive.writestr(file, text)
    return buffer.getvalue()


def _zip_like_bootstrap(code: str) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        info = zipfile.ZipInfo("handler.py", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.create_system = 3
        info.external_attr = 0o100644 << 16
        zipped.writestr(info, code)
    return buffer.getvalue()
