"""The verdict rule and the flow-log evidence verify reads: every property proven by a check
that passed and no check failed; REJECTed ICMP after isolation proves the traffic blocked."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from gdlab.lab import flows
from gdlab.lab.verify import Check, Verdict
from gdlab.render.incident import junit_xml
from gdlab.scenario import load

PROPERTIES = load().module().PROPERTIES


def verdict(**statuses: str) -> Verdict:
    names = [name for checks in PROPERTIES.values() for name in checks]
    return Verdict("gd-v1", [Check(n, n, statuses.get(n, "pass"), f"evidence of {n}")
                             for n in names], PROPERTIES)


def test_every_property_proven_and_nothing_failed_passes():
    assert verdict().passed


def test_an_inconclusive_check_does_not_sink_a_property_another_proved():
    v = verdict(**{"ping-blocked": "inconclusive"})
    assert v.passed and v.proven()["traffic-blocked"] == ["flows-rejected"]


def test_a_property_no_check_proved_fails_the_verdict():
    v = verdict(**{"ping-blocked": "inconclusive", "flows-rejected": "inconclusive"})
    assert not v.passed and v.unproven == ["traffic-blocked"] and v.failed == []


def test_a_failed_check_fails_the_verdict_even_when_its_property_is_proven():
    v = verdict(**{"ping-blocked": "fail"})
    assert not v.passed and v.failed == ["ping-blocked"]


def test_json_names_each_checks_property_and_what_proved_each():
    data = verdict(**{"ping-blocked": "inconclusive"}).to_dict()
    assert {c["name"]: c["property"] for c in data["checks"]}["flows-rejected"] == (
        "traffic-blocked")
    traffic = next(p for p in data["properties"] if p["name"] == "traffic-blocked")
    assert traffic == {"name": "traffic-blocked", "proven": True, "proven_by": ["flows-rejected"]}


def test_junit_writes_inconclusive_as_skipped_and_an_unproven_verdict_as_a_failure():
    xml = junit_xml(verdict(**{"ping-blocked": "inconclusive", "flows-rejected": "inconclusive"}))
    assert 'skipped="2"' in xml and 'failures="1"' in xml
    assert '<skipped message="inconclusive: evidence of ping-blocked"' in xml
    assert 'name="verdict"' in xml and "not proven: traffic-blocked" in xml
    assert 'failures="0"' in junit_xml(verdict(**{"ping-blocked": "inconclusive"}))


# --- flow-log records ----------------------------------------------------------------------
ENI, EIP = "eni-0a1b2c3d4e5f60718", "54.240.1.9"


def line(action: str, start: int, dst: str = EIP, protocol: int = 1, eni: str = ENI,
         window: int = 60) -> str:
    return (f"2 123456789012 {eni} 10.0.0.5 {dst} 0 0 {protocol} 6 504 {start} "
            f"{start + window} {action} OK")


def test_default_format_records_parse_and_others_are_ignored():
    record = flows.FlowRecord.parse(line("REJECT", 1733100000))
    assert record == flows.FlowRecord(ENI, "10.0.0.5", EIP, 1, 6, 1733100000, 1733100060,
                                      "REJECT")
    assert flows.FlowRecord.parse(f"2 123456789012 {ENI} - - - - - - - 1 2 - NODATA") is None
    assert flows.FlowRecord.parse("3 vpc-1 subnet-1 ...") is None


@pytest.fixture
def flow_lab(new_lab, cloud):
    ctx = new_lab("gd-flow1")
    ctx.poll_seconds = 0.01
    logs = cloud.client("logs")
    logs.create_log_group(logGroupName=flows.group_name(ctx))
    logs.create_log_stream(logGroupName=flows.group_name(ctx), logStreamName=f"{ENI}-all")

    def put(*lines: str) -> None:
        now = int(time.time() * 1000)
        logs.put_log_events(logGroupName=flows.group_name(ctx), logStreamName=f"{ENI}-all",
                            logEvents=[{"timestamp": now, "message": m} for m in lines])

    return ctx, put


def isolated(seconds_ago: int) -> datetime:
    return datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)


def test_rejected_icmp_after_isolation_proves_it(flow_lab):
    ctx, put = flow_lab
    at = isolated(300)
    put(line("ACCEPT", int(at.timestamp()) - 120), line("REJECT", int(at.timestamp()) + 60))
    found = flows.prove_blocked(ctx, [ENI], EIP, at, deadline_seconds=1.0, poll_seconds=0.05)
    assert found.status == "pass", found.evidence
    assert "1 REJECT record(s), 6 ICMP packet(s)" in found.evidence


def test_an_accept_to_the_eip_well_after_isolation_is_a_hole(flow_lab):
    ctx, put = flow_lab
    at = isolated(600)
    put(line("REJECT", int(at.timestamp()) + 30),
        line("ACCEPT", int(at.timestamp()) + 400, protocol=6))
    found = flows.prove_blocked(ctx, [ENI], EIP, at, deadline_seconds=1.0, poll_seconds=0.05)
    assert found.status == "fail" and "ACCEPT record(s) of traffic to" in found.evidence


def test_a_tracked_echo_flow_right_after_isolation_is_not_a_hole(flow_lab):
    ctx, put = flow_lab
    at = isolated(600)
    put(line("ACCEPT", int(at.timestamp()) + 30), line("REJECT", int(at.timestamp()) + 200))
    found = flows.prove_blocked(ctx, [ENI], EIP, at, deadline_seconds=1.0, poll_seconds=0.05)
    assert found.status == "pass", found.evidence


def test_the_grace_is_two_of_the_windows_the_records_show(flow_lab):
    """The local cloud's clock runs AWS's minute in a second: its 1-second windows give a
    2-second grace, so a hole opened seconds after isolation fails the check there too."""
    ctx, put = flow_lab
    at = isolated(60)
    start = int(at.timestamp())
    put(line("ACCEPT", start + 1, window=1), line("REJECT", start + 2, window=1))
    found = flows.prove_blocked(ctx, [ENI], EIP, at, deadline_seconds=1.0, poll_seconds=0.05)
    assert found.status == "pass", found.evidence  # the tracked echo flow, 1 s after
    put(line("ACCEPT", start + 10, window=1))
    found = flows.prove_blocked(ctx, [ENI], EIP, at, deadline_seconds=1.0, poll_seconds=0.05)
    assert found.status == "fail" and "ACCEPT record(s) of traffic to" in found.evidence
    assert flows.tracked_grace([]) == 120  # no record yet: AWS's two minutes


def test_no_record_in_time_is_inconclusive_and_the_wait_is_told(flow_lab):
    ctx, put = flow_lab
    at = isolated(10)
    put(line("REJECT", int(at.timestamp()) - 100), line("REJECT", int(at.timestamp()) + 5,
                                                       dst="8.8.8.8"))
    told = []
    found = flows.prove_blocked(ctx, [ENI], EIP, at, deadline_seconds=0.3, poll_seconds=0.05,
                                waiting=lambda what, waited, allowed: told.append(what))
    assert found.status == "inconclusive" and "within 0.3 s" in found.evidence
    assert told and EIP in told[0] and flows.group_name(ctx) in told[0]


def test_records_arriving_later_are_waited_for(flow_lab):
    ctx, put = flow_lab
    at = isolated(60)

    def arrive(*_):
        put(line("REJECT", int(at.timestamp()) + 10))

    found = flows.prove_blocked(ctx, [ENI], EIP, at, deadline_seconds=5.0, poll_seconds=0.05,
                                waiting=arrive)
    assert found.status == "pass"


def test_a_missing_group_is_no_record_yet(new_lab):
    ctx = new_lab("gd-flow2")
    assert flows.read_records(ctx, 0) == []
