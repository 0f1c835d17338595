"""The trigger is the scenario's: set_off runs its scenario.py trigger(), and the ping's
result answers what every trigger result tells (TriggerResult)."""

from __future__ import annotations

import types

import pytest

from gdlab.lab import trigger
from gdlab.lab.state import LabState
from gdlab.lab.steps import LabContext
from gdlab.scenario import ScenarioError, load


def ping_result(**changes):
    fields = dict(command_id="c-1", instance_id="i-1", target_ip="203.0.113.9",
                  command="ping -c 3 203.0.113.9", status="Success", detail="Success",
                  exit_code=0, output="3 packets transmitted", error_output="", seconds=0.4)
    fields.update(changes)
    return trigger.PingResult(**fields)


def lab(monkeypatch, module):
    state = LabState(lab="gd-trig1", scenario="compromised-ec2", target="local",
                     region="us-east-1")
    ctx = LabContext(cloud=None, state=state, scenario=load())
    monkeypatch.setattr(type(ctx.scenario), "module", lambda self: module)
    return ctx


def test_set_off_runs_the_scenarios_trigger(monkeypatch):
    seen = []
    module = types.SimpleNamespace(trigger=lambda ctx, count: seen.append(count) or "result")
    assert trigger.set_off(lab(monkeypatch, module), count=5) == "result"
    assert seen == [5]
    with pytest.raises(ScenarioError, match="has no trigger\\(\\)"):
        trigger.set_off(lab(monkeypatch, types.SimpleNamespace()))


def test_the_first_scenario_triggers_with_the_ssm_ping():
    assert load().module().trigger.__doc__.startswith("`gdlab trigger`: the compromised")


def test_a_ping_result_tells_what_every_trigger_result_tells():
    delivered = ping_result()
    assert delivered.failure() is None and delivered.already_happened() is None
    assert delivered.headline() == "ping -c 3 203.0.113.9 on i-1 via SSM (command c-1)"
    assert delivered.output_text() == "3 packets transmitted"
    lost = ping_result(status="TimedOut", detail="DeliveryTimedOut", exit_code=None)
    message, hint = lost.failure()
    assert message == "SSM did not run the ping (DeliveryTimedOut)" and "gdlab trigger" in hint
    early = ping_result(status="Skipped", detail="AlreadyIsolated", already_isolated=True)
    assert early.failure() is None  # the instance's own timer set it off
    assert "already isolated" in early.already_happened()


@pytest.mark.parametrize("isolated_by_then", [True, False])
def test_a_ping_lost_to_an_isolation_under_way_is_the_timers_incident(monkeypatch,
                                                                      isolated_by_then):
    """The instance's own timer pings every minute: its finding can isolate the instance
    while the trigger's ping is on its way, and isolation cuts the SSM agent too."""
    ctx = lab(monkeypatch, types.SimpleNamespace())
    ctx.cloud = types.SimpleNamespace(is_local=True)
    lost = ping_result(status="TimedOut", detail="DeliveryTimedOut", exit_code=None)
    early = ping_result(status="Skipped", detail="AlreadyIsolated", already_isolated=True)
    looks = iter([None, early if isolated_by_then else None])
    monkeypatch.setattr(trigger, "wait_threat_list_active", lambda ctx, seconds: None)
    monkeypatch.setattr(trigger, "_already_isolated", lambda ctx: next(looks))
    monkeypatch.setattr(trigger, "ping", lambda ctx, count: lost)
    got = trigger.trigger(ctx)
    assert got is (early if isolated_by_then else lost)
    assert (got.failure() is None) is isolated_by_then
