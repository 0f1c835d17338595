"""The responder Lambda against moto: events shaped like AWS's GuardDuty finding event."""

from __future__ import annotations

import copy
import importlib.util
import itertools
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models.elastic_network_interfaces import NetworkInterface
from moto.sns.models import sns_backends

from gdlab.lab import responder

ROOT = Path(__file__).resolve().parents[2]
HANDLER = ROOT / "scenarios" / "compromised-ec2" / "responder" / "handler.py"
FIXTURE = ROOT / "tests" / "fixtures" / "guardduty-finding-event.json"
REGION = "us-east-1"
LAB_TAG = ("gdlab:lab", "gd-1a2b3c")
_names = itertools.count()


def load_handler() -> Any:
    """A fresh module each time, so its per-container client cache starts empty."""
    spec = importlib.util.spec_from_file_location(f"gdlab_responder_{next(_names)}", HANDLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def finding_event(instance_id: str, **detail_changes: Any) -> dict[str, Any]:
    event = json.loads(FIXTURE.read_text())
    event["detail"]["resource"]["instanceDetails"]["instanceId"] = instance_id
    event["detail"].update(detail_changes)
    return event


class Lab:
    """A VPC with the lab's groups, topic and a lab-tagged instance with two ENIs."""

    def __init__(self) -> None:
        self.ec2 = boto3.client("ec2", region_name=REGION)
        self.sns = boto3.client("sns", region_name=REGION)
        vpc = self.ec2.create_vpc(CidrBlock="10.0.0.0/24")["Vpc"]["VpcId"]
        self.subnet = self.ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/26")["Subnet"][
            "SubnetId"
        ]
        self.forensic = self._group(vpc, "ForensicSecurityGroup-gd-1a2b3c")
        self.ec2.revoke_security_group_egress(
            GroupId=self.forensic,
            IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
        )
        self.untracking = self._group(vpc, "UntrackingSecurityGroup-gd-1a2b3c")
        self.ec2.authorize_security_group_ingress(
            GroupId=self.untracking,
            IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
        )
        self.app = self._group(vpc, "gdlab-gd-1a2b3c-compromised")
        self.admin = self._group(vpc, "gdlab-gd-1a2b3c-admin")
        self.topic = self.sns.create_topic(Name="GuardDuty-Example-gd-1a2b3c")["TopicArn"]
        self.image = self.ec2.describe_images()["Images"][0]["ImageId"]
        self.instance = self.launch(tags={LAB_TAG[0]: LAB_TAG[1]})
        self.primary = self.enis(self.instance)[0]
        second = self.ec2.create_network_interface(
            SubnetId=self.subnet, Groups=[self.admin, self.app]
        )["NetworkInterface"]["NetworkInterfaceId"]
        self.ec2.attach_network_interface(
            NetworkInterfaceId=second, InstanceId=self.instance, DeviceIndex=1
        )
        self.secondary = second

    def _group(self, vpc: str, name: str) -> str:
        return self.ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)[
            "GroupId"
        ]

    def launch(self, tags: dict[str, str]) -> str:
        spec = [{"Key": k, "Value": v} for k, v in tags.items()]
        kwargs: dict[str, Any] = {}
        if spec:
            kwargs["TagSpecifications"] = [
                {"ResourceType": "instance", "Tags": spec},
                {"ResourceType": "network-interface", "Tags": spec},
            ]
        return self.ec2.run_instances(
            ImageId=self.image,
            MinCount=1,
            MaxCount=1,
            InstanceType="t3.micro",
            SubnetId=self.subnet,
            SecurityGroupIds=[self.app],
            **kwargs,
        )["Instances"][0]["InstanceId"]

    def enis(self, instance_id: str) -> list[str]:
        found = self.ec2.describe_network_interfaces(
            Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}]
        )["NetworkInterfaces"]
        found.sort(key=lambda e: e["Attachment"]["DeviceIndex"])
        return [e["NetworkInterfaceId"] for e in found]

    def groups_of(self, eni_id: str) -> list[str]:
        eni = self.ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])[
            "NetworkInterfaces"
        ][0]
        return [g["GroupId"] for g in eni["Groups"]]

    def tags_of(self, instance_id: str) -> dict[str, str]:
        instance = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0][
            "Instances"
        ][0]
        return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}

    def mails(self) -> list[tuple[str, str | None]]:
        topic = sns_backends[DEFAULT_ACCOUNT_ID][REGION].topics[self.topic]
        return [(message, subject) for _, message, subject, _, _ in topic.sent_notifications]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL_SNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    return monkeypatch


@pytest.fixture
def lab(env: pytest.MonkeyPatch) -> Any:
    # moto reports an attached ENI's groups as its own plus the instance's; on AWS an ENI
    # has only its own, and the responder (and gdlab's local cloud) rely on that.
    env.setattr(NetworkInterface, "group_set", property(lambda eni: eni._group_set))
    with mock_aws():
        lab = Lab()
        variables = responder.environment(
            lab_tag_key=LAB_TAG[0],
            lab_tag_value=LAB_TAG[1],
            forensic_group_id=lab.forensic,
            untracking_group_id=lab.untracking,
            topic_arn=lab.topic,
        )
        for key, value in variables.items():
            env.setenv(key, value)
        yield lab


@pytest.fixture
def handler(lab: Lab) -> Any:
    """The handler, with its EC2 client recording every group change it makes."""
    module = load_handler()
    ec2 = boto3.client("ec2", region_name=REGION)
    module.changes = []

    def record(params: dict[str, Any], **_: Any) -> None:
        module.changes.append((params["NetworkInterfaceId"], list(params["Groups"])))

    ec2.meta.events.register("provide-client-params.ec2.ModifyNetworkInterfaceAttribute", record)
    module._clients["ec2"] = ec2
    return module


def test_isolates_every_eni_through_the_untracking_group(lab: Lab, handler: Any) -> None:
    event = finding_event(lab.instance)

    result = handler.lambda_handler(event, None)

    assert result["action"] == "isolated"
    assert result["instance_id"] == lab.instance
    assert result["finding_id"] == "16afba5c5c43e07c9e3e5e2e544e95df"
    assert result["message_id"]
    assert result["enis"] == [
        {"id": lab.primary, "groups_before": [lab.app], "groups_after": [lab.forensic]},
        {
            "id": lab.secondary,
            "groups_before": sorted([lab.admin, lab.app]),
            "groups_after": [lab.forensic],
        },
    ]
    # Checked on the ENIs themselves: moto's DescribeInstances does not follow ENI changes.
    assert lab.groups_of(lab.primary) == [lab.forensic]
    assert lab.groups_of(lab.secondary) == [lab.forensic]
    assert handler.changes == [
        (lab.primary, [lab.untracking]),
        (lab.primary, [lab.forensic]),
        (lab.secondary, [lab.untracking]),
        (lab.secondary, [lab.forensic]),
    ]


def test_records_what_it_did_as_instance_tags(lab: Lab, handler: Any) -> None:
    handler.lambda_handler(finding_event(lab.instance), None)

    tags = lab.tags_of(lab.instance)
    assert tags["gdlab:finding-id"] == "16afba5c5c43e07c9e3e5e2e544e95df"
    assert tags[f"gdlab:original-groups:{lab.primary}"] == lab.app
    assert tags[f"gdlab:original-groups:{lab.secondary}"] == ",".join(sorted([lab.admin, lab.app]))
    isolated_at = datetime.strptime(tags["gdlab:isolated-at"], "%Y-%m-%dT%H:%M:%SZ")
    assert isolated_at.year >= 2024
    assert tags[LAB_TAG[0]] == LAB_TAG[1]


def test_publishes_the_remediation_email(lab: Lab, handler: Any) -> None:
    result = handler.lambda_handler(finding_event(lab.instance), None)

    [(message, subject)] = lab.mails()
    names = {lab.admin: "gdlab-gd-1a2b3c-admin", lab.app: "gdlab-gd-1a2b3c-compromised"}
    assert subject == "GuardDuty Remediation"
    for text in (
        "GuardDuty finding 16afba5c5c43e07c9e3e5e2e544e95df",
        f"EC2 instance {lab.instance} communicated with 198.51.100.77, which is on the "
        "GuardDuty threat list Example-Threat-List-gd-1a2b3c.",
        f"  {lab.primary}: {lab.app} (gdlab-gd-1a2b3c-compromised) -> "
        f"{lab.forensic} (ForensicSecurityGroup-gd-1a2b3c)",
        f"  {lab.secondary}: "
        + ", ".join(f"{g} ({names[g]})" for g in sorted([lab.admin, lab.app]))
        + f" -> {lab.forensic}",
        f"allow-all group {lab.untracking}",
        f"--instance-specification InstanceId={lab.instance}",
        "instance profile arn:aws:iam::123456789012:instance-profile/gdlab-gd-1a2b3c-compromised",
        f"--network-interface-id {lab.secondary} --groups "
        + " ".join(sorted([lab.admin, lab.app])),
        "Terminate the instance, or rebuild it",
        "CloudTrail",
        "flow logs",
    ):
        assert text in message, text
    assert result["message_id"]


def test_a_second_invocation_changes_nothing(lab: Lab, handler: Any) -> None:
    event = finding_event(lab.instance)
    handler.lambda_handler(event, None)
    tags = lab.tags_of(lab.instance)
    handler.changes.clear()

    again = handler.lambda_handler(copy.deepcopy(event), None)

    assert again["action"] == "skipped"
    assert again["reason"] == "already isolated"
    assert again["message_id"] is None
    assert [e["groups_after"] for e in again["enis"]] == [[lab.forensic], [lab.forensic]]
    assert handler.changes == []
    assert len(lab.mails()) == 1
    assert lab.tags_of(lab.instance) == tags


def test_a_retry_after_a_partial_run_keeps_the_true_original_groups(lab: Lab, handler: Any) -> None:
    # A crash after the first ENI reached the untracking group and the originals were saved.
    lab.ec2.create_tags(
        Resources=[lab.instance],
        Tags=[{"Key": f"gdlab:original-groups:{lab.primary}", "Value": lab.app}],
    )
    lab.ec2.modify_network_interface_attribute(
        NetworkInterfaceId=lab.primary, Groups=[lab.untracking]
    )

    result = handler.lambda_handler(finding_event(lab.instance), None)

    assert result["action"] == "isolated"
    assert result["enis"][0]["groups_before"] == [lab.app]
    assert lab.tags_of(lab.instance)[f"gdlab:original-groups:{lab.primary}"] == lab.app
    # Already in the allow-all group: straight on to the forensic group.
    assert handler.changes[0] == (lab.primary, [lab.forensic])
    assert lab.groups_of(lab.primary) == [lab.forensic]


def test_without_an_untracking_group_it_goes_straight_to_forensic(
    lab: Lab, handler: Any, env: pytest.MonkeyPatch
) -> None:
    env.setenv("UNTRACKING_GROUP_ID", "")

    result = handler.lambda_handler(finding_event(lab.instance), None)

    assert result["action"] == "isolated"
    assert handler.changes == [(lab.primary, [lab.forensic]), (lab.secondary, [lab.forensic])]
    assert "allow-all" not in lab.mails()[0][0]


def test_sample_findings_are_skipped(lab: Lab, handler: Any) -> None:
    # GuardDuty's sample findings carry `sample` as a boolean; some copies carry a string.
    for sample in (True, "true", "True"):
        event = finding_event(lab.instance)
        event["detail"]["service"]["additionalInfo"]["sample"] = sample

        result = handler.lambda_handler(event, None)

        assert result["action"] == "skipped"
        assert "sample finding" in result["reason"]
    assert handler.changes == []
    assert lab.mails() == []
    assert lab.groups_of(lab.primary) == [lab.app]


def test_sample_flag_in_get_findings_shape_is_honoured(lab: Lab, handler: Any) -> None:
    event = finding_event(lab.instance)
    event["detail"]["service"]["additionalInfo"] = {
        "value": json.dumps({"sample": True}),
        "type": "default",
    }

    assert "sample finding" in handler.lambda_handler(event, None)["reason"]


def test_sample_false_is_acted_on(lab: Lab, handler: Any) -> None:
    event = finding_event(lab.instance)
    event["detail"]["service"]["additionalInfo"]["sample"] = "false"

    assert handler.lambda_handler(event, None)["action"] == "isolated"


def test_instances_without_the_lab_tag_are_left_alone(lab: Lab, handler: Any) -> None:
    for tags in ({}, {"gdlab:lab": "gd-ffffff"}, {"Name": "web"}):
        other = lab.launch(tags=tags)

        result = handler.lambda_handler(finding_event(other), None)

        assert result["action"] == "skipped"
        assert "not a lab instance" in result["reason"]
        assert result["instance_id"] == other
        assert all(lab.groups_of(eni) == [lab.app] for eni in lab.enis(other))
    assert handler.changes == []
    assert lab.mails() == []


def test_unknown_instances_are_skipped(lab: Lab, handler: Any) -> None:
    # i-99999999 is the placeholder of GuardDuty's sample findings.
    for instance_id in ("i-99999999", "i-0123456789abcdef0", "i-nonsense"):
        result = handler.lambda_handler(finding_event(instance_id), None)

        assert result["action"] == "skipped"
        assert result["reason"] == f"instance {instance_id} does not exist"
    assert lab.mails() == []


def test_terminated_instances_are_skipped(lab: Lab, handler: Any) -> None:
    lab.ec2.terminate_instances(InstanceIds=[lab.instance])

    result = handler.lambda_handler(finding_event(lab.instance), None)

    assert result["action"] == "skipped"
    assert "terminated" in result["reason"]


def test_other_finding_types_are_skipped(lab: Lab, handler: Any) -> None:
    for finding_type in (
        "Recon:EC2/PortProbeUnprotectedPort",
        "UnauthorizedAccess:EC2/MaliciousIPCaller",
        "Backdoor:EC2/C&CActivity.B",
        "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom",
    ):
        result = handler.lambda_handler(finding_event(lab.instance, type=finding_type), None)

        assert result["action"] == "skipped"
        assert finding_type in result["reason"]
    assert handler.changes == []


def test_events_of_other_sources_are_skipped(lab: Lab, handler: Any) -> None:
    for change in (
        {"source": "aws.securityhub"},
        {"source": "my.app"},
        {"detail-type": "AWS API Call via CloudTrail"},
    ):
        event = finding_event(lab.instance)
        event.update(change)

        result = handler.lambda_handler(event, None)

        assert result["action"] == "skipped"
        assert result["reason"].startswith("not a GuardDuty")
    assert handler.changes == []


def test_malformed_events_are_skipped_not_raised(lab: Lab, handler: Any) -> None:
    for event in ({}, {"source": "aws.guardduty"}, "text", None, []):
        assert handler.lambda_handler(event, None)["action"] == "skipped"
    assert handler.changes == []


def test_a_finding_without_an_instance_is_skipped(lab: Lab, handler: Any) -> None:
    event = finding_event(lab.instance)
    del event["detail"]["resource"]["instanceDetails"]

    result = handler.lambda_handler(event, None)

    assert result == {
        "action": "skipped",
        "reason": "the finding names no EC2 instance (resource.instanceDetails.instanceId)",
        "instance_id": None,
        "finding_id": "16afba5c5c43e07c9e3e5e2e544e95df",
        "enis": [],
        "message_id": None,
    }


def test_logs_one_result_line_that_gdlab_can_parse(
    lab: Lab, handler: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gdlab.responder"):
        result = handler.lambda_handler(finding_event(lab.instance), None)
        skipped = handler.lambda_handler(finding_event("i-99999999"), None)

    lines = [r.getMessage() for r in caplog.records if "gdlab-responder result" in r.getMessage()]
    assert [responder.parse_result(line) for line in lines] == [result, skipped]
    assert all(line.startswith("gdlab-responder result {") for line in lines)
    assert any(
        "nothing to do: instance i-99999999 does not exist" in r.getMessage()
        for r in caplog.records
    )


def test_clients_are_made_once_per_container_with_standard_retries(
    lab: Lab, env: pytest.MonkeyPatch
) -> None:
    module = load_handler()
    module.lambda_handler(finding_event(lab.instance), None)
    ec2, sns = module._clients["ec2"], module._clients["sns"]
    module.lambda_handler(finding_event(lab.instance), None)

    assert module._clients == {"ec2": ec2, "sns": sns}
    assert ec2.meta.config.retries["mode"] == "standard"


def test_real_errors_are_raised_for_lambda_to_retry(
    lab: Lab, handler: Any, env: pytest.MonkeyPatch
) -> None:
    env.setenv("TOPIC_ARN", lab.topic + "-gone")

    with pytest.raises(Exception, match="NotFound"):
        handler.lambda_handler(finding_event(lab.instance), None)


def test_long_group_lists_fit_in_tag_values(lab: Lab) -> None:
    module = load_handler()
    groups = [f"sg-{n:017x}" for n in range(16)]

    tags = module._original_group_tags({"eni-0a1b2c3d4e5f60718": groups})

    assert list(tags) == [
        "gdlab:original-groups:eni-0a1b2c3d4e5f60718",
        "gdlab:original-groups:eni-0a1b2c3d4e5f60718:2",
    ]
    assert all(len(v) <= 256 for v in tags.values())
    assert module._recorded_groups(tags, "eni-0a1b2c3d4e5f60718") == groups


def test_an_interface_is_never_left_in_the_untracking_group() -> None:
    """If the move to the forensic group keeps failing, the original groups come back."""
    from botocore.exceptions import ClientError

    calls = []

    class Ec2:
        def modify_network_interface_attribute(self, NetworkInterfaceId, Groups):
            calls.append(Groups)
            if Groups == ["sg-forensic"]:
                raise ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}},
                                  "ModifyNetworkInterfaceAttribute")

    handler = load_handler()
    with pytest.raises(ClientError):
        handler._into_forensic_or_back(Ec2(), "eni-1", ["sg-forensic"], ["sg-original"])
    assert calls == [["sg-forensic"], ["sg-forensic"], ["sg-original"]]
