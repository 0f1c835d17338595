"""The traffic simulator: pings as ICMP flow records judged by security groups, and the
instance behaviour read from user data. `World` builds the lab's network for the other
local tests too."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gdlab.local import traffic

REGION = "us-east-1"
ACCOUNT = "123456789012"
LINUX_AMI = "ami-760aaa0f"  # an Amazon Linux AMI of moto's catalogue
SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "compromised-ec2"


class World:
    """The lab's network in moto: a VPC, a compromised instance (SSM-managed, public IP)
    and a malicious instance behind an Elastic IP; with `list_entries`, a detector and an
    ACTIVE threat list of those entries ("EIP" stands for the Elastic IP)."""

    def __init__(self, client, list_entries: list[str] | None = None, user_data: str = ""):
        self.client = client
        ec2 = self.ec2 = client("ec2")
        self.vpc = ec2.create_vpc(CidrBlock="10.0.0.0/24")["Vpc"]["VpcId"]
        self.subnet = ec2.create_subnet(VpcId=self.vpc, CidrBlock="10.0.0.0/26")["Subnet"][
            "SubnetId"]
        self.sg_compromised = self.group("compromised")
        self.sg_malicious = self.group("malicious")
        ec2.authorize_security_group_ingress(GroupId=self.sg_malicious, IpPermissions=[{
            "IpProtocol": "icmp", "FromPort": -1, "ToPort": -1,
            "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        iam = client("iam")
        iam.create_role(RoleName="ssm", AssumeRolePolicyDocument="{}")
        iam.create_instance_profile(InstanceProfileName="ssm")
        iam.add_role_to_instance_profile(InstanceProfileName="ssm", RoleName="ssm")
        self.compromised = self.instance(self.sg_compromised, "compromised", user_data)
        self.malicious = self.instance(self.sg_malicious, "malicious")
        self.eip = ec2.allocate_address(Domain="vpc")["PublicIp"]
        ec2.associate_address(InstanceId=self.malicious, PublicIp=self.eip)
        self.detector = None
        if list_entries is not None:
            self.threat_list([e.replace("EIP", self.eip) for e in list_entries])

    def group(self, name: str, rules: bool = True) -> str:
        group = self.ec2.create_security_group(GroupName=name, Description=name,
                                               VpcId=self.vpc)["GroupId"]
        if not rules:
            self.ec2.revoke_security_group_egress(GroupId=group, IpPermissions=[{
                "IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        return group

    def instance(self, group: str, name: str, user_data: str = "") -> str:
        kwargs = {"UserData": user_data} if user_data else {}
        return self.ec2.run_instances(
            ImageId=LINUX_AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro",
            IamInstanceProfile={"Name": "ssm"},
            NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": self.subnet, "Groups": [group],
                                "AssociatePublicIpAddress": True}],
            TagSpecifications=[{"ResourceType": "instance", "Tags": [
                {"Key": "Name", "Value": name}, {"Key": "gdlab:lab", "Value": "gd-test"}]}],
            **kwargs,
        )["Instances"][0]["InstanceId"]

    def threat_list(self, entries: list[str], name: str = "Example-Threat-List") -> None:
        s3 = self.client("s3")
        s3.create_bucket(Bucket="gdlab-test-lists")
        s3.put_object(Bucket="gdlab-test-lists", Key=f"{name}.txt",
                      Body="\n".join(entries) + "\n")
        gd = self.client("guardduty")
        self.detector = gd.create_detector(Enable=True)["DetectorId"]
        gd.create_threat_intel_set(DetectorId=self.detector, Name=name, Format="TXT",
                                   Location=f"s3://gdlab-test-lists/{name}.txt", Activate=True)

    def trust(self, entries: list[str]) -> None:
        self.client("s3").put_object(Bucket="gdlab-test-lists", Key="trusted.txt",
                                     Body="\n".join(entries) + "\n")
        self.client("guardduty").create_ip_set(
            DetectorId=self.detector, Name="trusted", Format="TXT", Activate=True,
            Location="s3://gdlab-test-lists/trusted.txt")

    def moto_instance(self, instance_id: str | None = None):
        from moto.ec2.models import ec2_backends

        return ec2_backends[ACCOUNT][REGION].get_instance(instance_id or self.compromised)

    def eni(self, instance_id: str | None = None) -> str:
        return self.moto_instance(instance_id).nics[0].id

    def isolate(self, instance_id: str | None = None) -> str:
        """Into a group with no rules: no pings, and no HTTPS for the SSM agent either."""
        forensic = self.group("forensic", rules=False)
        self.move_to(forensic, instance_id)
        return forensic

    def https_only(self, instance_id: str | None = None) -> str:
        """Into a group that lets only TCP 443 out: pings are REJECTed, SSM still works."""
        group = self.group("https-only", rules=False)
        self.ec2.authorize_security_group_egress(GroupId=group, IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
            "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        self.move_to(group, instance_id)
        return group

    def restore(self, instance_id: str | None = None) -> None:
        """Back into the instance's own group, as a person releasing it would."""
        own = self.sg_malicious if instance_id == self.malicious else self.sg_compromised
        self.move_to(own, instance_id)

    def move_to(self, group: str, instance_id: str | None = None) -> None:
        self.ec2.modify_network_interface_attribute(NetworkInterfaceId=self.eni(instance_id),
                                                    Groups=[group])

    def flow_log(self, group: str | None = "/gdlab/gd-test/flow-logs", resource: str = "",
                 resource_type: str = "VPC", traffic: str = "ALL", interval: int = 60) -> str:
        """A flow log to CloudWatch Logs (the group made first unless group is None)."""
        name = group or "/gdlab/gd-test/missing"
        if group is not None:
            logs = self.client("logs")
            if not logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]:
                logs.create_log_group(logGroupName=name)
        answer = self.ec2.create_flow_logs(
            ResourceType=resource_type, ResourceIds=[resource or self.vpc],
            TrafficType=traffic, LogDestinationType="cloud-watch-logs", LogGroupName=name,
            DeliverLogsPermissionArn="arn:aws:iam::123456789012:role/gdlab-flowlogs",
            MaxAggregationInterval=interval)
        return answer["FlowLogIds"][0]

    def ping(self, destination: str | None = None, count: int = 3):
        return traffic.simulate_ping(self.moto_instance(), destination or self.eip, count, 10)

    def findings(self) -> list[dict]:
        gd = self.client("guardduty")
        ids = gd.list_findings(DetectorId=self.detector)["FindingIds"]
        return gd.get_findings(DetectorId=self.detector, FindingIds=ids)["Findings"] if ids \
            else []


@pytest.fixture
def world(aws_client, monkeypatch):
    monkeypatch.setenv("GDLAB_LOCAL_ACTIVATION_SECONDS", "0")

    def make(list_entries: list[str] | None = None, user_data: str = "") -> World:
        return World(aws_client, list_entries, user_data)

    return make


def test_allowed_ping_is_accepted_both_ways_and_answered(world):
    w = world()
    result = w.ping(count=3)
    assert (result.transmitted, result.received, result.exit_code) == (3, 3, 0)
    source, destination = result.records
    assert source["interface-id"] == w.eni() and source["action"] == "ACCEPT"
    assert source["dstaddr"] == w.eip and source["protocol"] == 1
    assert (source["srcport"], source["dstport"], source["packets"], source["bytes"]) == (
        0, 0, 3, 252)
    assert source["version"] == 2 and source["log-status"] == "OK"
    assert destination["interface-id"] == w.eni(w.malicious)
    assert destination["action"] == "ACCEPT"
    assert destination["srcaddr"] == w.moto_instance().nics[0].public_ip
    assert traffic.flows(w.compromised)[-2:] == [
        {"instance": w.compromised, **r} for r in result.records]


def test_zero_rule_group_rejects_and_nothing_answers(world):
    w = world()
    w.isolate()
    result = w.ping(count=4)
    assert [r["action"] for r in result.records] == ["REJECT"]
    assert (result.received, result.exit_code) == (0, 1)
    assert "4 packets transmitted, 0 received, 100% packet loss, time 30000ms" in \
        result.output()


def test_destination_ingress_decides(world):
    w = world()
    w.ec2.revoke_security_group_ingress(GroupId=w.sg_malicious, IpPermissions=[{
        "IpProtocol": "icmp", "FromPort": -1, "ToPort": -1,
        "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    result = w.ping()
    assert [r["action"] for r in result.records] == ["ACCEPT", "REJECT"]
    assert result.received == 0


def test_group_references_match_private_traffic_only(world):
    w = world()
    w.ec2.revoke_security_group_ingress(GroupId=w.sg_malicious, IpPermissions=[{
        "IpProtocol": "icmp", "FromPort": -1, "ToPort": -1,
        "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    w.ec2.authorize_security_group_ingress(GroupId=w.sg_malicious, IpPermissions=[{
        "IpProtocol": "icmp", "FromPort": 8, "ToPort": -1,
        "UserIdGroupPairs": [{"GroupId": w.sg_compromised}]}])
    private = w.moto_instance(w.malicious).nics[0].private_ip_address
    assert w.ping(private).received == 3
    assert w.ping(w.eip).received == 0


def test_unknown_address_gets_no_answer(world):
    result = world().ping("198.51.100.7", count=2)
    assert [r["action"] for r in result.records] == ["ACCEPT"]
    assert result.received == 0


def test_ping_output_reads_like_linux_ping(world):
    w = world()
    text = w.ping(count=2).output()
    lines = text.splitlines()
    assert lines[0] == f"PING {w.eip} ({w.eip}) 56(84) bytes of data."
    assert lines[1].startswith(f"64 bytes from {w.eip}: icmp_seq=1 ttl=")
    assert f"--- {w.eip} ping statistics ---" in lines
    assert "2 packets transmitted, 2 received, 0% packet loss, time 10000ms" in lines
    assert lines[-1].startswith("rtt min/avg/max/mdev = ")


def test_ping_options():
    assert traffic.parse_ping(["ping", "-c", "6", "-i", "10", "1.2.3.4"]) == {
        "count": 6, "interval": 10.0, "size": 56, "quiet": False, "target": "1.2.3.4"}
    assert traffic.parse_ping(["ping", "-c3", "-q", "1.2.3.4"])["count"] == 3
    with pytest.raises(traffic.Unsupported, match="needs -c"):
        traffic.parse_ping(["ping", "1.2.3.4"])
    with pytest.raises(traffic.Unsupported, match="-f"):
        traffic.parse_ping(["ping", "-f", "-c", "1", "1.2.3.4"])


def test_timespans():
    assert traffic.parse_timespan("300") == 300
    assert traffic.parse_timespan("5min") == 300
    assert traffic.parse_timespan("1min 30s") == 90
    with pytest.raises(ValueError):
        traffic.parse_timespan("soon")


def render_user_data(**values) -> str:
    template = (SCENARIO / "user-data.sh").read_text()
    fields = {"lab": "gd-test", "count": 2, "interval_seconds": 10, "every_seconds": 3600,
              "start_delay_seconds": 0, "target_ip": "203.0.113.9"}
    fields.update(values)
    for key, value in fields.items():
        template = template.replace("{" + key + "}", str(value))
    return template


def test_scenario_user_data_is_understood():
    schedule = traffic.parse_user_data(render_user_data(start_delay_seconds=300,
                                                        every_seconds=60, count=6))
    assert schedule.argv == ["ping", "-c", "6", "-i", "10", "203.0.113.9"]
    assert (schedule.boot_delay, schedule.every) == (300, 60)
    assert traffic.parse_user_data("#!/bin/bash\necho hi\n") is None


def wait_for(predicate, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_instance_behaviour_runs_on_a_daemon_thread_until_terminated(world):
    script = render_user_data(target_ip="203.0.113.9")
    w = world(user_data=script)  # boto3 base64-encodes UserData itself
    behaviour = traffic.behaviour_of(ACCOUNT, REGION, w.compromised)
    assert behaviour is not None and behaviour.thread.daemon
    assert wait_for(lambda: behaviour.runs >= 1)
    assert any(f["dstaddr"] == "203.0.113.9" for f in traffic.flows(w.compromised))
    w.ec2.terminate_instances(InstanceIds=[w.compromised])
    behaviour.thread.join(timeout=10)
    assert not behaviour.thread.is_alive()
    assert traffic.behaviour_of(ACCOUNT, REGION, w.compromised) is None


def test_the_local_clock(monkeypatch):
    from gdlab.local import clock

    monkeypatch.delenv("GDLAB_LOCAL_TIME_SCALE", raising=False)
    assert clock.SCALE == 60 and clock.local_seconds(300) == 5 and clock.local_seconds(60) == 1
    assert clock.aws_seconds(1) == 60
    monkeypatch.setenv("GDLAB_LOCAL_TIME_SCALE", "1")
    assert clock.local_seconds(300) == 300  # AWS's own pace
    for wrong in ("0", "-5", "fast", "inf"):
        monkeypatch.setenv("GDLAB_LOCAL_TIME_SCALE", wrong)
        assert clock.scale() == clock.SCALE


def test_ping_interval_spaces_the_packets_through_the_clock(monkeypatch):
    monkeypatch.delenv("GDLAB_LOCAL_TIME_SCALE", raising=False)
    times = traffic.packet_times(6, 10, first=1000.0)
    assert times == [1000.0 + n * 10 / 60 for n in range(6)]  # -i 10: a sixth of a second


def test_the_timer_waits_its_spans_through_the_clock(world, monkeypatch):
    monkeypatch.setenv("GDLAB_LOCAL_TIME_SCALE", "3000")  # 300 s after boot: 0.1 s
    w = world(user_data=render_user_data(start_delay_seconds=300, every_seconds=60))
    behaviour = traffic.behaviour_of(ACCOUNT, REGION, w.compromised)
    assert (behaviour.schedule.boot_delay, behaviour.schedule.every) == (300, 60)  # AWS time
    assert wait_for(lambda: behaviour.runs >= 3)  # unscaled, the first run is 5 minutes away
