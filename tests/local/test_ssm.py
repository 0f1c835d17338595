"""SSM Run Command on the local cloud: pings run through the traffic simulator, honest
statuses and output, managed-instance checks, DescribeInstanceInformation, and an agent that
needs HTTPS out: isolation makes it ConnectionLost and its commands undeliverable."""

import pytest
from botocore.exceptions import ClientError
from test_traffic import World, wait_for, world  # noqa: F401 - the fixture

from gdlab.local import traffic

SHELL = "AWS-RunShellScript"


def run(w: World, *commands: str, instance: str | None = None, parameters: dict | None = None,
        **options) -> tuple[dict, dict]:
    ssm = w.client("ssm")
    target = instance or w.compromised
    command = ssm.send_command(InstanceIds=[target], DocumentName=SHELL, Parameters={
        "commands": list(commands), **(parameters or {})}, **options)["Command"]
    return command, ssm.get_command_invocation(CommandId=command["CommandId"],
                                               InstanceId=target)


def invocation(w: World, command: dict, instance: str | None = None) -> dict:
    return w.client("ssm").get_command_invocation(CommandId=command["CommandId"],
                                                  InstanceId=instance or w.compromised)


def ping_status(w: World, instance: str | None = None) -> str | None:
    info = w.client("ssm").describe_instance_information(Filters=[
        {"Key": "InstanceIds", "Values": [instance or w.compromised]}])["InstanceInformationList"]
    return info[0]["PingStatus"] if info else None


@pytest.fixture
def fast_clock(monkeypatch):
    """AWS's 5-minute agent report in a tenth of a second."""
    monkeypatch.setenv("GDLAB_LOCAL_TIME_SCALE", "3000")


def test_ping_to_a_listed_ip_succeeds_and_is_detected(world):  # noqa: F811
    w = world(list_entries=["EIP"])
    command, invocation = run(w, f"ping -c 3 -i 10 {w.eip}")
    assert (invocation["Status"], invocation["ResponseCode"]) == ("Success", 0)
    out = invocation["StandardOutputContent"]
    assert "3 packets transmitted, 3 received, 0% packet loss" in out
    assert invocation["StandardErrorContent"] == ""
    (finding,) = w.findings()
    assert finding["Resource"]["InstanceDetails"]["InstanceId"] == w.compromised
    ssm = w.client("ssm")
    (listed,) = ssm.list_commands(CommandId=command["CommandId"])["Commands"]
    assert (listed["Status"], listed["ErrorCount"], listed["CompletedCount"]) == (
        "Success", 0, 1)
    (entry,) = ssm.list_command_invocations(CommandId=command["CommandId"],
                                            Details=True)["CommandInvocations"]
    (plugin,) = entry["CommandPlugins"]
    assert (entry["Status"], plugin["Name"], plugin["ResponseCode"]) == (
        "Success", "aws:runShellScript", 0)
    assert "0% packet loss" in plugin["Output"]


def test_blocked_pings_fail_with_total_loss(world):  # noqa: F811
    w = world(list_entries=["EIP"])
    w.https_only()  # the agent still reaches SSM; the pings do not get out
    command, invocation = run(w, f"ping -c 3 -i 10 {w.eip}")
    assert (invocation["Status"], invocation["ResponseCode"]) == ("Failed", 1)
    assert "3 packets transmitted, 0 received, 100% packet loss" in \
        invocation["StandardOutputContent"]
    assert "exit status 1" in invocation["StandardErrorContent"]
    (listed,) = w.client("ssm").list_commands(CommandId=command["CommandId"])["Commands"]
    assert (listed["Status"], listed["ErrorCount"]) == ("Failed", 1)


def test_commands_that_cannot_be_simulated_fail_clearly(world):  # noqa: F811
    w = world()
    _, invocation = run(w, "echo start", "curl http://example.com")
    assert invocation["Status"] == "Failed"
    assert invocation["StandardOutputContent"].startswith("start\n")
    assert "cannot simulate 'curl http://example.com'" in invocation["StandardErrorContent"]
    _, invocation = run(w, "ping 203.0.113.1")
    assert invocation["Status"] == "Failed" and "-c COUNT" in invocation["StandardErrorContent"]


def test_shell_operators_and_set_e(world):  # noqa: F811
    w = world()
    _, invocation = run(w, "false || echo recovered; true && echo chained", "set -e", "false",
                        "echo never")
    assert invocation["StandardOutputContent"] == "recovered\nchained\n"
    assert (invocation["Status"], invocation["ResponseCode"]) == ("Failed", 1)


def test_only_managed_instances_are_targets(world):  # noqa: F811
    w = world()
    bare = w.ec2.run_instances(ImageId="ami-760aaa0f", MinCount=1, MaxCount=1,
                               SubnetId=w.subnet)["Instances"][0]["InstanceId"]
    with pytest.raises(ClientError) as caught:
        run(w, "echo hi", instance=bare)
    assert caught.value.response["Error"]["Code"] == "InvalidInstanceId"
    info = w.client("ssm").describe_instance_information()["InstanceInformationList"]
    assert {i["InstanceId"] for i in info} == {w.compromised, w.malicious}
    assert {(i["PingStatus"], i["PlatformType"]) for i in info} == {("Online", "Linux")}
    only = w.client("ssm").describe_instance_information(
        Filters=[{"Key": "InstanceIds", "Values": [w.compromised]}])["InstanceInformationList"]
    assert [i["InstanceId"] for i in only] == [w.compromised]


def test_over_http(local_client, monkeypatch, wire_check):
    monkeypatch.setenv("GDLAB_LOCAL_ACTIVATION_SECONDS", "0")
    w = World(local_client, ["EIP"])
    wire = wire_check(w.client("ssm"))
    w.https_only()
    _, invocation = run(w, f"ping -c 2 {w.eip}")
    assert invocation["Status"] == "Failed"
    (finding,) = w.findings()
    assert finding["Service"]["Action"]["NetworkConnectionAction"]["Blocked"] is True
    w.isolate()  # now SSM cannot reach the agent: the next command waits, and says so
    command, pending = run(w, f"ping -c 2 {w.eip}")
    assert (pending["Status"], pending["StatusDetails"], pending["ResponseCode"]) == (
        "Pending", "Pending", -1)
    ssm = w.client("ssm")
    ssm.list_commands(CommandId=command["CommandId"])
    ssm.list_command_invocations(CommandId=command["CommandId"], Details=True)
    ssm.describe_instance_information()
    assert not wire.problems()


def test_agent_is_connection_lost_while_isolated_and_online_again_after(world,  # noqa: F811
                                                                         fast_clock):
    w = world()
    assert ping_status(w) == "Online"
    w.isolate()
    assert wait_for(lambda: ping_status(w) == "ConnectionLost")
    info = w.client("ssm").describe_instance_information()["InstanceInformationList"]
    lost = next(i for i in info if i["InstanceId"] == w.compromised)
    # the malicious instance's agent still gets out, and keeps pinging the service
    assert {i["InstanceId"]: i["PingStatus"] for i in info}[w.malicious] == "Online"
    assert wait_for(lambda: next(
        i for i in w.client("ssm").describe_instance_information()["InstanceInformationList"]
        if i["InstanceId"] == w.malicious)["LastPingDateTime"] > lost["LastPingDateTime"])
    lost_again = w.client("ssm").describe_instance_information(Filters=[
        {"Key": "PingStatus", "Values": ["ConnectionLost"]}])["InstanceInformationList"]
    assert [i["InstanceId"] for i in lost_again] == [w.compromised]
    assert lost_again[0]["LastPingDateTime"] == lost["LastPingDateTime"]  # no report since
    w.restore()
    assert wait_for(lambda: ping_status(w) == "Online")


def test_a_command_to_an_isolated_instance_does_not_run(world):  # noqa: F811
    w = world(list_entries=["EIP"])
    w.isolate()
    before = len(traffic.flows(w.compromised))
    # AWS-RunShellScript: delivery timeout = TimeoutSeconds + executionTimeout (31 s here)
    command, pending = run(w, f"ping -c 3 {w.eip}", TimeoutSeconds=30,
                           parameters={"executionTimeout": ["1"]})
    assert (pending["Status"], pending["StatusDetails"]) == ("Pending", "Pending")
    assert wait_for(lambda: invocation(w, command)["Status"] != "Pending", 30)
    ended = invocation(w, command)
    assert (ended["Status"], ended["StatusDetails"], ended["ResponseCode"]) == (
        "TimedOut", "DeliveryTimedOut", -1)
    assert ended["StandardOutputContent"] == "" and ended["ExecutionStartDateTime"] == ""
    (listed,) = w.client("ssm").list_commands(CommandId=command["CommandId"])["Commands"]
    assert (listed["Status"], listed["StatusDetails"]) == ("TimedOut", "DeliveryTimedOut")
    assert (listed["DeliveryTimedOutCount"], listed["ErrorCount"],
            listed["CompletedCount"]) == (1, 0, 1)
    (entry,) = w.client("ssm").list_command_invocations(
        CommandId=command["CommandId"], Details=True)["CommandInvocations"]
    assert entry["CommandPlugins"][0]["StatusDetails"] == "DeliveryTimedOut"
    assert len(traffic.flows(w.compromised)) == before  # nothing ran: no ping, no flow
    assert w.findings() == []


def test_a_pending_command_runs_once_the_agent_gets_through(world):  # noqa: F811
    w = world()
    w.isolate()
    command, pending = run(w, f"ping -c 2 {w.eip}")  # default timeouts: two AWS hours
    assert pending["Status"] == "Pending"
    w.restore()
    # delivered by the agent's own polling, without anyone asking for the result
    assert wait_for(lambda: any(f["dstaddr"] == w.eip for f in traffic.flows(w.compromised)))
    done = invocation(w, command)
    assert (done["Status"], done["ResponseCode"]) == ("Success", 0)
    assert "2 packets transmitted, 2 received" in done["StandardOutputContent"]


def test_an_agent_that_never_got_out_is_not_registered(world):  # noqa: F811
    w = world()
    closed = w.group("closed", rules=False)
    shut = w.instance(closed, "no-egress")
    assert ping_status(w, shut) is None
    with pytest.raises(ClientError) as caught:
        run(w, "echo hi", instance=shut)
    assert caught.value.response["Error"]["Code"] == "InvalidInstanceId"


def test_ssm_egress_rules():
    def rule(protocol, cidr, ports=(None, None)):
        return type("Rule", (), {"ip_protocol": protocol, "from_port": ports[0],
                                 "to_port": ports[1], "ip_range": {"CidrIp": cidr}})()

    assert traffic._tcp_out(rule("-1", "0.0.0.0/0"), 443)
    assert traffic._tcp_out(rule("tcp", "0.0.0.0/0", (443, 443)), 443)
    assert traffic._tcp_out(rule("tcp", "52.0.0.0/8", (0, 65535)), 443)
    assert traffic._tcp_out(rule("tcp", "0.0.0.0/1", (443, 443)), 443)
    assert not traffic._tcp_out(rule("tcp", "0.0.0.0/0", (80, 80)), 443)
    assert not traffic._tcp_out(rule("udp", "0.0.0.0/0", (443, 443)), 443)
    assert not traffic._tcp_out(rule("icmp", "0.0.0.0/0", (-1, -1)), 443)
    assert not traffic._tcp_out(rule("-1", "10.0.0.0/16"), 443)  # the VPC: no SSM there
    assert not traffic._tcp_out(rule("tcp", "192.168.0.0/16", (443, 443)), 443)
