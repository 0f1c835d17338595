"""SSM Run Command on the local cloud: pings run through the traffic simulator, honest
statuses and output, managed-instance checks, DescribeInstanceInformation."""

import pytest
from botocore.exceptions import ClientError
from test_traffic import World, world  # noqa: F401 - the fixture

SHELL = "AWS-RunShellScript"


def run(w: World, *commands: str, instance: str | None = None) -> tuple[dict, dict]:
    ssm = w.client("ssm")
    target = instance or w.compromised
    command = ssm.send_command(InstanceIds=[target], DocumentName=SHELL,
                               Parameters={"commands": list(commands)})["Command"]
    return command, ssm.get_command_invocation(CommandId=command["CommandId"],
                                               InstanceId=target)


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


def test_isolated_instance_fails_with_total_loss(world):  # noqa: F811
    w = world(list_entries=["EIP"])
    w.isolate()
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


def test_over_http(local_client, monkeypatch):
    monkeypatch.setenv("GDLAB_LOCAL_ACTIVATION_SECONDS", "0")
    w = World(local_client, ["EIP"])
    w.isolate()
    _, invocation = run(w, f"ping -c 2 {w.eip}")
    assert invocation["Status"] == "Failed"
    (finding,) = w.findings()
    assert finding["Service"]["Action"]["NetworkConnectionAction"]["Blocked"] is True
