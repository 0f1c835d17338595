"""The run core (gdlab.lab.run) against a real in-process local cloud: the phases in order,
the report `gdlab run --json` prints, and the teardown on every path — a failed step, a
signal mid-setup or mid-watch — with nothing of the lab left, by an inventory that owes
nothing to gdlab's own state."""

from __future__ import annotations

from typing import Any

import pytest

from gdlab.cloud import Cloud, CloudSettings
from gdlab.errors import GdlabError
from gdlab.lab import lifecycle
from gdlab.lab import run as core
from gdlab.lab.state import LabStore
from gdlab.scenario import load

pytestmark = pytest.mark.slow


@pytest.fixture
def cloud(local_server) -> Cloud:
    """Overrides tests/lab/conftest.py's: `leftovers` then inventories the local cloud."""
    return Cloud(CloudSettings(target="local", region="us-east-1",
                               endpoint_url=local_server.endpoint,
                               local_cloud_id=local_server.cloud_id,
                               local_credentials=local_server.credentials))


class Recorder(core.RunEvents):
    """Every hook call, in order, as (hook, what)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def phase(self, name: str) -> None:
        self.calls.append(("phase", name))

    def failed(self, name: str, error: str) -> None:
        self.calls.append(("failed", (name, error)))

    def interrupted(self, name: str, signal: str | None, message: str | None) -> None:
        self.calls.append(("interrupted", (name, signal, message)))

    def opened(self, state, scenario, cloud, resuming) -> None:  # type: ignore[no-untyped-def]
        self.calls.append(("opened", (state.lab, resuming)))

    def progress(self, event) -> None:  # type: ignore[no-untyped-def]
        self.calls.append(("progress", (event.key, event.status)))

    def ready(self, state, seconds) -> None:  # type: ignore[no-untyped-def]
        self.calls.append(("ready", state.lab))

    def triggered(self, ping) -> None:  # type: ignore[no-untyped-def]
        self.calls.append(("triggered", ping.status))

    def watched(self, result) -> None:  # type: ignore[no-untyped-def]
        self.calls.append(("watched", result.complete))

    def hooks(self, name: str) -> list[Any]:
        return [what for hook, what in self.calls if hook == name]


def go(cloud: Cloud, store: LabStore, events: core.RunEvents, **kw: Any) -> core.RunReport:
    return core.run(lambda: cloud, store, "compromised-ec2", events=events, **kw)


def test_a_run_passes_and_its_report_is_the_documented_json(cloud, store, leftovers):
    events = Recorder()
    mails_read: list[str] = []

    def mails(c: Cloud, state: Any) -> list[dict[str, Any]]:
        mails_read.append(state.lab)
        return [{"from": "x", "to": "y", "subject": "s", "body": "b", "time": "t"}]

    report = go(cloud, store, events, lab="gd-run01", mails=mails)
    assert report.passed, report.to_dict()
    assert events.hooks("phase") == ["setup", "trigger", "watch", "verify", "teardown"]
    assert events.hooks("opened") == [("gd-run01", False)]
    assert events.hooks("ready") == ["gd-run01"]
    assert events.hooks("watched") == [True]
    assert events.hooks("failed") == events.hooks("interrupted") == []
    # setup's and teardown's step lines both come through `progress`
    statuses = {status for _, status in events.hooks("progress")}
    assert {"created", "deleted"} <= statuses
    # the e-mails are read while the lab still exists: before its teardown
    assert mails_read == ["gd-run01"]
    data = report.to_dict()
    # README "JSON outputs", gdlab run --json, in the order it has always printed them
    assert list(data) == ["passed", "steps", "lab", "target", "region", "trigger", "watch",
                          "verify", "emails", "seconds", "api_calls", "interrupted"]
    assert data["lab"] == "gd-run01" and data["target"] == "local"
    assert data["region"] == "us-east-1" and data["interrupted"] is None
    assert [set(s) for s in data["steps"]] == [{"step", "ok", "seconds"}] * 5
    assert all(s["ok"] and s["seconds"] >= 0 for s in data["steps"])
    assert data["verify"]["passed"] is True and data["watch"]["complete"] is True
    assert data["trigger"] == report.trigger.to_dict()
    assert data["emails"] == mails(cloud, report.state)
    assert data["api_calls"] == cloud.api_call_count > 0
    assert data["seconds"] >= sum(s["seconds"] for s in data["steps"]) - 0.01
    assert store.load("gd-run01").phase == "torn-down"
    assert leftovers() == {}


def test_a_failed_step_fails_the_run_and_the_lab_is_still_torn_down(
    cloud, store, leftovers, monkeypatch
):
    from gdlab.lab import verify

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise GdlabError("the flow log bucket vanished")

    monkeypatch.setattr(verify, "verify", broken)
    events = Recorder()
    report = go(cloud, store, events, lab="gd-run02")
    assert not report.passed and report.failed == ["verify"]
    assert report.verify is None and "verify" not in report.to_dict()
    step = report.step("verify").to_dict()
    assert step == {"step": "verify", "ok": False, "seconds": step["seconds"],
                    "error": "the flow log bucket vanished"}
    assert events.hooks("failed") == [("verify", "the flow log bucket vanished")]
    assert report.step("teardown").ok
    assert leftovers() == {}


@pytest.mark.parametrize("outcome", ["raised", "not-set-off"])
def test_a_failed_trigger_is_not_watched_and_the_lab_is_torn_down(
    cloud, store, leftovers, monkeypatch, outcome
):
    from gdlab.lab import trigger

    def failed(ctx, count=3):  # type: ignore[no-untyped-def]
        if outcome == "raised":
            raise GdlabError("the malicious instance is unreachable")
        return trigger.PingResult("c-1", "i-1", "203.0.113.9", "ping", "Failed",
                                  "DeliveryTimedOut", None, "", "", 0.1)

    monkeypatch.setattr(trigger, "set_off", failed)
    report = go(cloud, store, Recorder(), lab="gd-run05")
    # No incident is under way: watching would only wait out its deadline.
    assert [(s.step, s.ok) for s in report.steps] == [
        ("setup", True), ("trigger", False), ("teardown", True)]
    assert report.failed == ["trigger"] and report.watch is None and report.verify is None
    assert leftovers() == {}


def test_a_signal_mid_setup_lets_it_finish_its_calls_then_tears_down(cloud, store, leftovers):
    sig = core.NoSignals()

    class SignalAfterFirstCreate(Recorder):
        def progress(self, event) -> None:  # type: ignore[no-untyped-def]
            super().progress(event)
            if event.status == "created":
                sig.note("SIGTERM")  # as cli.signals does on a first signal

    events = SignalAfterFirstCreate()
    report = go(cloud, store, events, lab="gd-run03", sig=sig)
    created = [key for key, status in events.hooks("progress") if status == "created"]
    assert created, "the signal came after a step was created"
    assert [s.step for s in report.steps] == ["setup", "teardown"]
    setup = report.steps[0].to_dict()
    assert setup["ok"] is False and setup["interrupted"] is True
    assert setup["error"].startswith("setup of lab gd-run03 interrupted")
    assert events.hooks("interrupted")[0][:2] == ("setup", "SIGTERM")
    assert report.interrupted == "SIGTERM" and not report.passed
    assert report.to_dict()["interrupted"] == "SIGTERM"
    assert report.step("teardown").ok
    assert leftovers() == {}


def test_ctrl_c_while_watching_skips_verify_and_tears_down(cloud, store, leftovers, monkeypatch):
    from gdlab.lab import watch

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(watch, "watch", interrupted)
    report = go(cloud, store, Recorder(), lab="gd-run04")
    assert [(s.step, s.ok) for s in report.steps] == [
        ("setup", True), ("trigger", True), ("watch", False), ("teardown", True)]
    assert report.step("watch").to_dict()["error"] == "interrupted (SIGINT)"
    assert report.interrupted == "SIGINT" and report.watch is None and not report.passed
    assert leftovers() == {}


def test_declined_creates_nothing_and_tears_nothing_down(cloud, store, leftovers):
    class Declines(Recorder):
        def confirm(self, cloud: Cloud) -> None:
            raise core.Declined

    events = Declines()
    report = go(cloud, store, events)
    assert [s.to_dict()["error"] for s in report.steps] == ["declined"]
    assert report.state is None and report.to_dict()["lab"] is None
    assert events.hooks("phase") == ["setup"] and not report.passed
    assert leftovers() == {}


def test_keep_keeps_the_lab_even_when_a_step_fails(cloud, store, leftovers, monkeypatch):
    from gdlab.lab import verify

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise GdlabError("not this time")

    monkeypatch.setattr(verify, "verify", broken)
    report = go(cloud, store, Recorder(), lab="gd-run05", keep=True)
    assert [s.step for s in report.steps] == ["setup", "trigger", "watch", "verify"]
    assert report.keep and store.load("gd-run05").phase != "torn-down"
    assert leftovers("gd-run05")  # still there, as asked
    lifecycle.teardown(lifecycle.context(cloud, report.state, load()), store=store)
    assert leftovers() == {}


def test_a_cloud_that_cannot_be_reached_is_the_setup_steps_failure(store):
    def unreachable() -> Cloud:
        raise GdlabError("the local cloud is not running")

    events = Recorder()
    with pytest.raises(GdlabError):  # as before: after the step, the caller sees it too
        core.run(unreachable, store, "compromised-ec2", events=events)
    assert events.hooks("failed") == [("setup", "the local cloud is not running")]


def test_the_cli_turns_a_no_at_the_aws_prompt_into_declined(monkeypatch):
    """cli/run.py's confirm hook: 'n' at confirm_billable's prompt (typer.Exit) is Declined,
    which the core records as the setup step's 'declined'."""
    import sys
    from types import SimpleNamespace

    import typer

    from gdlab.cli.run import RunView

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(typer, "confirm", lambda *a, **k: False)
    aws = SimpleNamespace(is_local=False, account="123456789012", region="us-east-1")
    with pytest.raises(core.Declined):
        RunView(json_out=True, yes=False).confirm(aws)
    RunView(json_out=True, yes=True).confirm(aws)  # --yes: no question, nothing raised
