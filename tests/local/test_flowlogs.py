"""VPC flow logs on the local cloud: the traffic simulator's flows become default-format
records in CloudWatch Logs, aggregated per interface, flow and window, delivered once their
window has closed, as AWS delivers them."""

from __future__ import annotations

import math
import time

import pytest
import test_traffic
from test_traffic import World, render_user_data, wait_for

from gdlab.local import clock, flowlogs, traffic

world = test_traffic.world  # the fixture

GROUP = "/gdlab/gd-test/flow-logs"
FIELDS = ("version", "account-id", "interface-id", "srcaddr", "dstaddr", "srcport", "dstport",
          "protocol", "packets", "bytes", "start", "end", "action", "log-status")


@pytest.fixture(autouse=True)
def _nothing_pending(monkeypatch):
    monkeypatch.delenv("GDLAB_LOCAL_TIME_SCALE", raising=False)  # a minute is a second
    flowlogs.reset()
    yield
    flowlogs.reset()


class Later:
    """Pings an hour from now, in whole windows: the delivery thread leaves them alone and
    the test delivers them itself with flowlogs.flush(now=...)."""

    def __init__(self, monkeypatch, aws_window: int = 60):
        self.width = clock.local_seconds(aws_window)
        self.base = math.ceil((time.time() + 3600) / self.width) * self.width
        self.monkeypatch = monkeypatch
        self.real = traffic.packet_times

    def at(self, offset: float) -> None:
        """The next pings leave `offset` local seconds into the first window."""
        self.monkeypatch.setattr(traffic, "packet_times", lambda count, interval, first=None:
                                 self.real(count, interval, self.base + offset))

    def delivered(self) -> float:
        """When the first window's records are due: its end plus the delivery latency."""
        return self.base + self.width + clock.local_seconds(flowlogs.DELIVERY_AWS_SECONDS)


def events(w: World, pattern: str = "", group: str = GROUP) -> list[dict]:
    kwargs = {"filterPattern": pattern} if pattern else {}
    return w.client("logs").filter_log_events(logGroupName=group, **kwargs)["events"]


def records(w: World, pattern: str = "") -> list[dict[str, str]]:
    return [dict(zip(FIELDS, e["message"].split(" "), strict=True)) for e in events(w, pattern)]


def flow_log(w: World, flow_log_id: str) -> dict:
    return w.ec2.describe_flow_logs(FlowLogIds=[flow_log_id])["FlowLogs"][0]


def test_records_are_in_the_default_format_one_stream_per_interface(world, monkeypatch):
    w = world()
    w.flow_log()
    later = Later(monkeypatch)
    later.at(0.1)
    w.ping(count=3)
    assert flowlogs.flush(later.delivered()) == 2
    out, into = sorted(events(w), key=lambda e: e["logStreamName"] != f"{w.eni()}-all")
    assert out["logStreamName"] == f"{w.eni()}-all"
    assert into["logStreamName"] == f"{w.eni(w.malicious)}-all"
    fields = out["message"].split(" ")
    assert len(fields) == 14 and fields[0] == "2" and len(fields[1:]) == 13
    record = dict(zip(FIELDS, fields, strict=True))
    private = w.moto_instance().nics[0].private_ip_address
    assert record == {
        "version": "2", "account-id": "123456789012", "interface-id": w.eni(),
        "srcaddr": private, "dstaddr": w.eip, "srcport": "0", "dstport": "0", "protocol": "1",
        "packets": "3", "bytes": "252", "start": str(int(later.base + 0.1)),
        "end": str(int(later.base + later.width)), "action": "ACCEPT", "log-status": "OK"}
    assert out["timestamp"] == int((later.base + 0.1) * 1000)  # the record's start, in ms
    inbound = dict(zip(FIELDS, into["message"].split(" "), strict=True))
    malicious_private = w.moto_instance(w.malicious).nics[0].private_ip_address
    assert (inbound["srcaddr"], inbound["dstaddr"], inbound["action"]) == (
        w.moto_instance().nics[0].public_ip, malicious_private, "ACCEPT")
    streams = w.client("logs").describe_log_streams(logGroupName=GROUP)["logStreams"]
    assert sorted(s["logStreamName"] for s in streams) == sorted(
        [f"{w.eni()}-all", f"{w.eni(w.malicious)}-all"])


def test_accepted_before_isolation_rejected_after(world, monkeypatch):
    w = world()
    w.flow_log()
    later = Later(monkeypatch)
    later.at(0.1)
    w.ping(count=2)
    w.isolate()
    later.at(later.width + 0.1)  # the next window
    w.ping(count=4)
    flowlogs.flush(later.delivered() + later.width)
    mine = [r for r in records(w) if r["interface-id"] == w.eni()]
    assert [(r["action"], r["packets"]) for r in sorted(mine, key=lambda r: r["start"])] == [
        ("ACCEPT", "2"), ("REJECT", "4")]
    (rejected,) = records(w, "REJECT")  # what `aws logs filter-log-events` shows
    assert (rejected["interface-id"], rejected["dstaddr"]) == (w.eni(), w.eip)
    assert {r["action"] for r in records(w, "ACCEPT")} == {"ACCEPT"}


def test_one_record_per_flow_and_window_delivered_only_once_it_has_closed(world,
                                                                         monkeypatch):
    w = world()
    w.flow_log(resource=w.eni(), resource_type="NetworkInterface")
    later = Later(monkeypatch)
    later.at(0.1)
    w.ping(count=2)
    later.at(0.5)
    w.ping(count=3)  # same interface, flow and window: the same record
    later.at(later.width + 0.2)
    w.ping(count=1)  # the next window: a record of its own
    assert flowlogs.flush(later.base + 0.9) == 0  # the window is still open
    assert flowlogs.flush(later.base + later.width) == 0  # closed, not delivered yet
    assert events(w) == []
    assert flowlogs.flush(later.delivered()) == 1
    (first,) = records(w)
    assert (first["packets"], first["bytes"]) == ("5", str(5 * 84))
    assert (first["start"], first["end"]) == (str(int(later.base + 0.1)),
                                              str(int(later.base + later.width)))
    assert flowlogs.flush(later.delivered() + later.width) == 1
    assert [r["packets"] for r in records(w)] == ["5", "1"]
    # an ENI flow log sees that interface only
    assert {r["interface-id"] for r in records(w)} == {w.eni()}


def test_traffic_type_and_aggregation_interval_of_each_flow_log(world, monkeypatch):
    w = world()
    w.flow_log(traffic="REJECT", resource=w.subnet, resource_type="Subnet")
    w.flow_log("/gdlab/gd-test/ten-minutes", interval=600)
    later = Later(monkeypatch, aws_window=600)
    later.at(0.1)
    w.ping(count=1)
    w.isolate()
    later.at(clock.local_seconds(60) + 0.1)  # a minute later: same 10-minute window
    w.ping(count=2)
    flowlogs.flush(later.delivered())
    assert [(r["action"], r["packets"]) for r in records(w)] == [("REJECT", "2")]
    ten = [dict(zip(FIELDS, e["message"].split(" "), strict=True))
           for e in events(w, group="/gdlab/gd-test/ten-minutes")]
    mine = sorted((r["action"], r["packets"]) for r in ten if r["interface-id"] == w.eni())
    assert mine == [("ACCEPT", "1"), ("REJECT", "2")]


def test_a_missing_group_fails_delivery_as_aws_reports_it(world, monkeypatch):
    w = world()
    flow = w.flow_log(group=None)
    logs = w.client("logs")
    later = Later(monkeypatch)
    later.at(0.1)
    w.ping(count=1)
    logs.create_log_group(logGroupName=GROUP)  # another group: this flow log's stays missing
    flowlogs.flush(later.delivered())
    described = flow_log(w, flow)
    assert (described["DeliverLogsStatus"], described["DeliverLogsErrorMessage"]) == (
        "FAILED", "Access error")
    assert events(w) == []
    assert logs.describe_log_groups(logGroupNamePrefix="/gdlab/gd-test/missing")[
        "logGroups"] == []
    failed = w.ec2.describe_flow_logs(Filters=[
        {"Name": "deliver-log-status", "Values": ["FAILED"]}])["FlowLogs"]
    assert [f["FlowLogId"] for f in failed] == [flow]
    logs.create_log_group(logGroupName="/gdlab/gd-test/missing")
    later.at(later.width + 0.1)
    w.ping(count=1)
    flowlogs.flush(later.delivered() + later.width)
    assert flow_log(w, flow)["DeliverLogsStatus"] == "SUCCESS"
    assert "DeliverLogsErrorMessage" not in flow_log(w, flow)
    assert len(events(w, group="/gdlab/gd-test/missing")) == 2


def test_describe_flow_logs_says_what_the_lab_asked_for(world):
    w = world()
    flow = flow_log(w, w.flow_log())
    assert {k: flow[k] for k in ("ResourceId", "TrafficType", "LogDestinationType",
                                 "LogGroupName", "MaxAggregationInterval",
                                 "DeliverLogsStatus", "FlowLogStatus", "LogFormat")} == {
        "ResourceId": w.vpc, "TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs",
        "LogGroupName": GROUP, "MaxAggregationInterval": 60, "DeliverLogsStatus": "SUCCESS",
        "FlowLogStatus": "ACTIVE", "LogFormat": flowlogs.DEFAULT_FORMAT}


def test_a_deleted_flow_log_writes_nothing_more(world, monkeypatch):
    w = world()
    flow = w.flow_log()
    later = Later(monkeypatch)
    later.at(0.1)
    w.ping(count=1)
    w.ec2.delete_flow_logs(FlowLogIds=[flow])
    assert flowlogs.flush(later.delivered()) == 0
    assert events(w) == []


def test_custom_formats_get_the_fields_the_simulator_knows(world, monkeypatch):
    w = world()
    w.client("logs").create_log_group(logGroupName=GROUP)
    w.ec2.create_flow_logs(
        ResourceType="VPC", ResourceIds=[w.vpc], TrafficType="ALL", LogGroupName=GROUP,
        LogDestinationType="cloud-watch-logs", MaxAggregationInterval=60,
        DeliverLogsPermissionArn="arn:aws:iam::123456789012:role/gdlab-flowlogs",
        LogFormat="${version} ${vpc-id} ${instance-id} ${flow-direction} ${action} "
                  "${az-id}")
    later = Later(monkeypatch)
    later.at(0.1)
    w.ping(count=1)
    flowlogs.flush(later.delivered())
    messages = sorted(e["message"] for e in events(w))
    assert messages == sorted([f"5 {w.vpc} {w.compromised} egress ACCEPT -",
                               f"5 {w.vpc} {w.malicious} ingress ACCEPT -"])


def test_the_timer_keeps_pinging_when_isolated_and_the_flow_log_shows_it(world,
                                                                        monkeypatch):
    monkeypatch.setenv("GDLAB_LOCAL_TIME_SCALE", "600")  # a minute is 0.1 s
    w = world()
    w.flow_log()
    eip = w.eip
    w.ec2.terminate_instances(InstanceIds=[w.compromised])
    w.compromised = w.instance(w.sg_compromised, "compromised",
                               render_user_data(every_seconds=60, count=2, target_ip=eip))
    behaviour = traffic.behaviour_of("123456789012", "us-east-1", w.compromised)
    assert wait_for(lambda: behaviour.runs >= 1)
    w.isolate()
    runs = behaviour.runs
    assert wait_for(lambda: any(r["interface-id"] == w.eni() and r["dstaddr"] == eip
                                for r in records(w, "REJECT")), 30)
    assert behaviour.runs > runs  # no SSM needed: the instance pings on its own
    assert any(r["action"] == "ACCEPT" and r["interface-id"] == w.eni() for r in records(w))


def test_filter_patterns_for_flow_logs_match_as_cloudwatch_logs_documents(world, monkeypatch):
    w = world()
    w.flow_log()
    later = Later(monkeypatch)
    later.at(0.1)
    w.ping(count=2)
    w.isolate()
    later.at(later.width + 0.1)
    w.ping(count=4)
    flowlogs.flush(later.delivered() + later.width)
    guide = ('[version, account, eni, source, destination, srcport, destport, protocol="1", '
             'packets, bytes, windowstart, windowend, action="REJECT", flowlogstatus]')
    assert [(r["action"], r["packets"]) for r in records(w, guide)] == [("REJECT", "4")]
    assert [r["packets"] for r in records(w, "[..., packets>3, bytes, start, end, action, "
                                             "status]")] == ["4"]
    assert {r["action"] for r in records(w, '[v, ..., action!="REJECT", status]')} == {
        "ACCEPT"}
    assert len(records(w, "?REJECT ?NODATA")) == 1 and len(records(w, "-REJECT")) == 2
    assert records(w, "[version, account]") == []  # 14 fields, not 2


def test_pattern_matcher():
    line = "2 123456789012 eni-1 1.2.3.4 10.0.0.4 5555 22 6 3 252 1700000000 1700000060 REJECT OK"
    ssh = flowlogs.pattern_matcher(
        '[version, account, eni, source, destination, srcport, destport="22", protocol="6", '
        'packets, bytes, windowstart, windowend, action="REJECT", flowlogstatus]')
    assert ssh(line) and not ssh(line.replace(" 22 ", " 23 "))
    assert flowlogs.pattern_matcher("[..., action=REJ*, status]")(line)
    assert flowlogs.pattern_matcher("[v, a, e, s, d, sp, dp=22.0, ...]")(line)  # numbers
    assert not flowlogs.pattern_matcher("[v, a, e, s, d, sp, dp, p, packets>=4, ...]")(line)
    assert flowlogs.pattern_matcher("REJECT") is None  # moto's own term match is right
    assert flowlogs.pattern_matcher("[a, b=1 || b=2]") is None  # not simulated: moto's


def test_filter_log_events_over_http(local_client, monkeypatch):
    """What `aws logs filter-log-events --filter-pattern REJECT` shows after isolation."""
    monkeypatch.setenv("GDLAB_LOCAL_TIME_SCALE", "600")
    w = World(local_client)
    w.flow_log()
    w.isolate()
    w.ping(count=2)
    # the two packets may fall in one window or straddle two: count packets, not records
    assert wait_for(lambda: sum(int(r["packets"]) for r in records(w, "REJECT")) == 2, 30)
    assert {(r["interface-id"], r["dstaddr"], r["action"]) for r in records(w, "REJECT")} == {
        (w.eni(), w.eip, "REJECT")}
    assert events(w, "ACCEPT") == []
