"""watch survives a failed look, but notices an endpoint that stopped answering: a few polls
in a row that cannot reach it end the watch with one line saying so, instead of waiting for
the deadline and giving hints about hops that cannot be seen."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from gdlab import cloud as cloud_module
from gdlab.cloud import Cloud, CloudSettings
from gdlab.errors import describe
from gdlab.lab import lifecycle, observe
from gdlab.lab import watch as watch_module
from gdlab.lab.state import LabState
from gdlab.lab.watch import EndpointLost, watch
from gdlab.scenario import load


def lab_at(endpoint: str, target: str = "local"):
    """A lab context whose journal has a detector and a threat list (so the first look
    calls GuardDuty), on a cloud at `endpoint`; its state is kept in memory only."""
    cloud = Cloud(CloudSettings(target=target, region="us-east-1", endpoint_url=endpoint))
    state = LabState(lab="gd-watch1", scenario="compromised-ec2", target=target,
                     region="us-east-1", phase="triggered")
    state.record("detector", "AWS::GuardDuty::Detector", "d" * 32)
    state.record("threat-intel-set", "AWS::GuardDuty::ThreatIntelSet", "t" * 32)
    return lifecycle.context(cloud, state, load())


@pytest.fixture
def prompt(monkeypatch):
    """A lost endpoint is declared after 2 failed polls, however quickly they come."""
    monkeypatch.setattr(watch_module, "LOST_AFTER_SECONDS", 0.0)
    monkeypatch.setattr(cloud_module, "BOUNDED_ATTEMPTS", 1)


@pytest.fixture
def quiet_hops(monkeypatch):
    """Every look answers 'nothing yet' at once, without a cloud."""
    monkeypatch.setattr(observe, "threat_list_status", lambda ctx: "ACTIVATING")
    monkeypatch.setattr(observe, "guardduty_finding", lambda ctx: None)
    monkeypatch.setattr(observe, "responder_log", lambda ctx: {"results": [], "errors": []})
    monkeypatch.setattr(observe, "eni_groups", lambda ctx: [])
    monkeypatch.setattr(observe, "is_isolated", lambda ctx, groups: False)
    monkeypatch.setattr(observe, "published_count", lambda ctx: 0)


def unreachable(endpoint: str = "http://127.0.0.1:9") -> EndpointConnectionError:
    return EndpointConnectionError(endpoint_url=endpoint, error="[Errno 111] Connection refused")


def test_a_closed_port_ends_the_watch_with_one_line(prompt, free_port):
    endpoint = f"http://127.0.0.1:{free_port}"  # nothing listens there
    ctx = lab_at(endpoint)
    with pytest.raises(EndpointLost) as raised:
        watch(ctx, timeout_seconds=120)
    line, code = describe(raised.value)
    assert code == 1
    assert line.startswith(f"lost the endpoint {endpoint} while watching lab gd-watch1: ")
    assert "nothing listens at" in line and "(2 polls in a row)" in line
    assert "'gdlab local status' shows the local cloud; if it was stopped, the lab's " \
           "resources are gone" in line
    assert "\n" not in line
    assert ctx.state.timeline[-1].kind == "error"
    assert ctx.state.timeline[-1].message.startswith("lost the endpoint")


def test_on_aws_the_hint_is_about_the_network(prompt, free_port, monkeypatch):
    monkeypatch.setitem(watch_module.PAUSES, "aws", (0.05, 0.5))
    ctx = lab_at(f"http://127.0.0.1:{free_port}", target="aws")
    ctx.state.account = "123456789012"
    with pytest.raises(EndpointLost, match="'gdlab watch' resumes where it stopped"):
        watch(ctx, timeout_seconds=120)


def test_one_failed_poll_is_survived(quiet_hops, prompt, monkeypatch):
    calls = {"n": 0}

    def flaky(ctx):
        calls["n"] += 1
        if calls["n"] == 1:
            raise unreachable()
        return "ACTIVE"

    monkeypatch.setattr(observe, "threat_list_status", flaky)
    result = watch(lab_at("http://127.0.0.1:9"), timeout_seconds=0.5)
    assert not result.complete
    assert result.hops[0].seen and result.hops[0].key == "threat-list"
    assert calls["n"] == 2  # seen once: not looked at again


def test_failures_that_alternate_with_answers_are_survived(quiet_hops, prompt, monkeypatch):
    calls = {"n": 0}

    def every_other(ctx):
        calls["n"] += 1
        if calls["n"] % 2:
            raise unreachable()
        return "ACTIVATING"

    monkeypatch.setattr(observe, "threat_list_status", every_other)
    result = watch(lab_at("http://127.0.0.1:9"), timeout_seconds=1.0)
    assert calls["n"] > 4
    assert not result.complete and result.hints  # the deadline, with its hints


def test_aws_errors_are_answers_not_a_lost_endpoint(quiet_hops, prompt, monkeypatch):
    def throttled(ctx):
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}},
                          "GetThreatIntelSet")

    monkeypatch.setattr(observe, "threat_list_status", throttled)
    result = watch(lab_at("http://127.0.0.1:9"), timeout_seconds=0.5)
    assert not result.complete
    assert "could not check: AWS GetThreatIntelSet failed: ThrottlingException" in \
        result.hops[0].detail


def test_a_poll_that_got_an_answer_is_not_a_failed_poll(quiet_hops, prompt, monkeypatch):
    """The threat list answered; the next look could not connect: the endpoint is there."""
    monkeypatch.setattr(observe, "guardduty_finding",
                        lambda ctx: (_ for _ in ()).throw(unreachable()))
    result = watch(lab_at("http://127.0.0.1:9"), timeout_seconds=0.5)
    assert not result.complete


def test_the_polls_use_bounded_clients(quiet_hops, monkeypatch):
    seen = []

    def look(ctx):
        seen.append(ctx.cloud.client("guardduty").meta.config)
        return "ACTIVE"

    monkeypatch.setattr(observe, "threat_list_status", look)
    watch(lab_at("http://127.0.0.1:9"), timeout_seconds=0.2)
    config = seen[0]
    assert config.retries["total_max_attempts"] == cloud_module.BOUNDED_ATTEMPTS
    assert config.read_timeout == cloud_module.BOUNDED_READ_TIMEOUT


@pytest.mark.slow
def test_the_local_cloud_stopped_mid_watch(run_cli, local_server, prompt):
    """Through the CLI: set up, stop the local cloud, watch: one line, exit 1, quickly."""
    code, _, err = run_cli("--endpoint-url", local_server.endpoint, "setup")
    assert code == 0, err
    local_server.stop()
    code, out, err = run_cli("--endpoint-url", local_server.endpoint, "watch", "--timeout", "10m")
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 1
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"lost the endpoint {local_server.endpoint} while watching lab gd-" in lines[0]
    assert "if it was stopped, the lab's resources are gone" in lines[0]


def test_the_hops_are_the_scenarios(monkeypatch):
    """Watch follows what the scenario's hops() lists, in its order, and nothing else."""
    import types

    from gdlab.lab import hops
    from gdlab.lab.watch import Watcher, hops_of
    from gdlab.scenario import ScenarioError

    ctx = lab_at("http://127.0.0.1:9")
    assert [s.key for s in hops_of(ctx)] == ["threat-list", "guardduty", "securityhub",
                                             "responder", "isolated", "emails"]
    seen = []
    only = hops.HopSpec("custom", "Custom hop", lambda w: seen.append(w.see("custom", "ok")),
                        60, "look elsewhere")
    module = types.SimpleNamespace(hops=lambda: [only])
    monkeypatch.setattr(type(ctx.scenario), "module", lambda self: module)
    watcher = Watcher(ctx)
    watcher.poll()
    assert watcher.complete and list(watcher.hops) == ["custom"] and seen
    module.hops = lambda: [("custom", "Custom hop")]
    with pytest.raises(ScenarioError, match="hops\\(\\) must return a list of HopSpecs"):
        hops_of(ctx)
