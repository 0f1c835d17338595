"""`gdlab run --all`: every scenario in a lab of its own, one after another, one summary;
a failing scenario neither stops the others nor leaks; bad input is one line."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from lab.conftest import inventory

from gdlab.errors import GdlabError
from gdlab.scenario import list_scenarios

pytestmark = pytest.mark.slow


def test_every_scenario_passes_with_one_report_and_a_suite_each(gdlab, cloud, tmp_path):
    junit, page = tmp_path / "runs.xml", tmp_path / "incident.html"
    code, out, err = gdlab("run", "--all", "--json", "--junit", str(junit),
                           "--report", str(page))
    assert code == 0, err
    report = json.loads(out)
    names = [s.name for s in list_scenarios()]
    assert report["passed"] is True and report["not_run"] == []
    assert [r["scenario"] for r in report["scenarios"]] == names
    for run in report["scenarios"]:
        assert run["passed"] is True
        assert [s["step"] for s in run["steps"]] == ["setup", "trigger", "watch", "verify",
                                                     "teardown"]
        assert run["api_calls"] < 400  # each run counts its own calls, not the process's
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == [f"gdlab.run.{n}" for n in names]
    assert all(s.get("failures") == "0" for s in suites)
    assert f"{len(names)}/{len(names)} scenarios passed" in err
    # One report, a section per scenario, each with its own lab's finding.
    document = page.read_text()
    assert [m for m in names if f'data-scenario="{m}"' in document] == names
    for run in report["scenarios"]:
        assert f'data-lab="{run["lab"]}"' in document
        assert f'data-finding-id="{run["watch"]["finding_id"]}"' in document
    assert inventory(cloud) == {}


def test_a_failing_scenario_does_not_stop_the_others_or_leak(gdlab, cloud, monkeypatch):
    from gdlab.lab import credential_theft

    def broken(ctx):  # type: ignore[no-untyped-def]
        raise GdlabError("the malicious instance is unreachable", "check SSM")

    monkeypatch.setattr(credential_theft, "trigger", broken)
    code, out, err = gdlab("run", "--all", "--json")
    assert code == 1, err
    runs = {r["scenario"]: r for r in json.loads(out)["scenarios"]}
    assert runs["compromised-ec2"]["passed"] is True
    failed = runs["credential-exfiltration"]
    assert failed["passed"] is False
    trigger = next(s for s in failed["steps"] if s["step"] == "trigger")
    assert not trigger["ok"] and "unreachable" in trigger["error"]
    assert [s["step"] for s in failed["steps"]] == ["setup", "trigger", "teardown"]
    assert next(s for s in failed["steps"] if s["step"] == "teardown")["ok"]
    assert inventory(cloud) == {}


@pytest.mark.parametrize("args", [("--all", "--lab", "gd-abc123"),
                                  ("--all", "--scenario", "compromised-ec2"),
                                  ("--junit", "/nonexistent-folder/runs.xml")])
def test_bad_input_is_one_line_and_makes_nothing(gdlab, cloud, args):
    code, out, err = gdlab("run", *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert inventory(cloud) == {}


def test_a_run_that_ends_before_verify_is_an_errored_suite():
    from gdlab.lab.run import RunReport, StepReport
    from gdlab.render.incident import runs_junit_xml

    report = RunReport(steps=[StepReport("setup", False, 1.0, "quota")])
    root = ET.fromstring(runs_junit_xml([("compromised-ec2", report)]).split("\n", 1)[1])
    suite = root.find("testsuite")
    assert suite is not None and suite.get("errors") == "1" and root.get("errors") == "1"
    error = suite.find("testcase/error")
    assert error is not None and error.get("message") == "setup failed: quota"


def test_a_folder_given_as_the_junit_file_is_refused(gdlab, cloud, tmp_path: Path):
    code, _out, err = gdlab("run", "--all", "--junit", str(tmp_path))
    assert code == 2 and "cannot write JUnit XML" in err and inventory(cloud) == {}
