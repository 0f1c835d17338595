"""A report's evidence (gdlab.lab.evidence): gathered by a run before its teardown against a
real in-process local cloud, what the teardown removed recorded after it, and the pure
helpers that read the responder's tags and the lab's timeline."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gdlab.cloud import Cloud, CloudSettings
from gdlab.lab import evidence
from gdlab.lab import run as core
from gdlab.lab.state import Event, LabState


@pytest.fixture
def cloud(local_server) -> Cloud:
    """Overrides tests/lab/conftest.py's: `leftovers` then inventories the local cloud."""
    return Cloud(CloudSettings(target="local", region="us-east-1",
                               endpoint_url=local_server.endpoint,
                               local_cloud_id=local_server.cloud_id,
                               local_credentials=local_server.credentials))


def _mails(cloud: Cloud, state: Any) -> list[dict[str, Any]]:
    from gdlab.cli.mail import lab_mails

    return lab_mails(cloud, state.live("sns-topic").id)


@pytest.mark.slow
def test_a_run_gathers_everything_before_teardown_and_what_teardown_removed(
        cloud, store, leftovers):
    report = core.run(lambda: cloud, store, "compromised-ec2", lab="gd-evid01",
                      mails=_mails, evidence=True)
    assert report.passed, report.to_dict()
    found = report.evidence
    assert found is not None and found.notes == []
    assert found.lab == "gd-evid01" and found.phase == "torn-down"
    # The finding as GuardDuty and Security Hub gave it while the lab existed.
    assert found.finding["Type"] == "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"
    assert found.finding["Id"] == report.watch.finding_id
    assert found.asff["Id"].endswith("/finding/" + found.finding["Id"])
    subjects = [m.get("subject") for m in found.emails]
    assert len(found.emails) == 2 and "GuardDuty Remediation" in subjects
    # The verify table and its properties, each ENI before and after isolation.
    assert [c["name"] for c in found.checks] == [c.name for c in report.verify.checks]
    assert found.properties and all(p["proven"] for p in found.properties)
    assert found.forensic_rules == {"ingress": [], "egress": []}
    forensic = next(r["id"] for r in found.resources if r["key"] == "sg-forensic")
    compromised_sg = next(r["id"] for r in found.resources if r["key"] == "sg-compromised")
    assert found.enis and all(x["groups_now"] == [forensic] for x in found.enis)
    assert all(compromised_sg in (x["groups_before"] or []) for x in found.enis)
    # The timeline starts at the trigger; every hop after it.
    assert found.hops[0]["name"] == "Triggered" and found.hops[0]["seconds_since_trigger"] == 0
    assert [h["name"] for h in found.hops[1:]] == [h.label for h in report.watch.hops]
    # What the teardown removed: every resource the lab made, none left behind.
    made = {r["key"] for r in found.resources if r["ownership"] == "created"}
    deleted = {s["key"] for s in found.teardown if s["status"] == "deleted"}
    assert made <= deleted, made - deleted
    assert leftovers() == {}
    # It survives the JSON that run --all --parallel passes between processes.
    again = evidence.from_dict(json.loads(json.dumps(found.to_dict(), default=str)))
    assert again == found


@pytest.mark.slow
def test_an_interrupted_run_does_not_read_the_cloud_again_and_still_tears_down(
        cloud, store, leftovers, monkeypatch):
    from gdlab.lab import watch

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(watch, "watch", interrupted)
    monkeypatch.setattr(evidence, "gather", lambda *a, **k: pytest.fail("read the cloud"))
    report = core.run(lambda: cloud, store, "compromised-ec2", lab="gd-evid02", evidence=True)
    assert report.interrupted == "SIGINT" and report.step("teardown").ok
    found = report.evidence
    assert found.finding is None and found.checks == []
    assert found.notes == ["the run was interrupted: the cloud was not read again for this "
                           "report"]
    assert found.teardown and found.phase == "torn-down"
    assert leftovers() == {}


@pytest.mark.slow
def test_a_report_that_cannot_be_gathered_never_stops_the_teardown(
        cloud, store, leftovers, monkeypatch):
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the renderer's data went wrong")

    monkeypatch.setattr(evidence, "gather", broken)
    report = core.run(lambda: cloud, store, "compromised-ec2", lab="gd-evid03", evidence=True)
    assert report.passed and report.step("teardown").ok
    assert report.evidence.notes[0].startswith("the cloud could not be read for this report")
    assert report.evidence.checks  # what the run knew is still there
    assert leftovers() == {}


def test_recorded_groups_read_the_responders_tags_continued_when_long():
    eni = "eni-0123"
    tags = {f"{evidence.ORIGINAL_GROUPS_TAG}{eni}": "sg-1,sg-2",
            f"{evidence.ORIGINAL_GROUPS_TAG}{eni}:2": "sg-3",
            f"{evidence.ORIGINAL_GROUPS_TAG}{eni}:3": "sg-4,",
            "Name": "x"}
    assert evidence.recorded_groups(tags, eni) == ["sg-1", "sg-2", "sg-3", "sg-4"]
    assert evidence.recorded_groups(tags, "eni-other") is None


def _state(events: list[tuple[str, str, str]]) -> LabState:
    state = LabState(lab="gd-t1", scenario="compromised-ec2", target="local",
                     region="us-east-1")
    state.timeline = [Event(time=t, phase=p, message=m) for t, p, m in events]
    return state


def test_hops_from_the_timeline_count_from_the_last_trigger():
    state = _state([
        ("2026-01-01T00:00:00Z", "ready", "ready: setup done"),
        ("2026-01-01T00:01:00Z", "triggered", "triggered: first ping"),
        ("2026-01-01T00:05:00Z", "triggered", "triggered: again"),
        ("2026-01-01T00:05:02.500Z", "verified", "verified: 9/9"),
    ])
    hops = evidence.hops_from_timeline(state)
    assert [(h["name"], h["seconds_since_trigger"]) for h in hops] == [
        ("triggered", 0.0), ("verified", 2.5)]


def test_hops_before_any_trigger_have_no_seconds():
    hops = evidence.hops_from_timeline(_state([("2026-01-01T00:00:00Z", "ready", "ready")]))
    assert hops == [{"name": "ready", "detail": "ready", "seen_at": "2026-01-01T00:00:00Z",
                     "seconds_since_trigger": None}]


def test_from_dict_leaves_out_keys_it_does_not_know():
    data = evidence.Evidence(lab="gd-x", scenario="s").to_dict()
    data["from_a_newer_gdlab"] = 1
    assert evidence.from_dict(data) == evidence.Evidence(lab="gd-x", scenario="s")
