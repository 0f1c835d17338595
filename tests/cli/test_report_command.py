"""`gdlab report` and `gdlab run --report` through the CLI against a real local cloud: a
live lab's report holds its finding, e-mails and checks without changing the lab; a torn-down
lab still gives one from its state; a run's report is complete though teardown ran; a path
that cannot be written is one line before anything is made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lab.conftest import inventory

pytestmark = pytest.mark.slow


def test_a_runs_report_is_complete_though_the_lab_is_gone(gdlab, cloud, tmp_path: Path):
    page = tmp_path / "incident.html"
    code, out, err = gdlab("run", "--json", "--report", str(page))
    assert code == 0, err
    run = json.loads(out)
    document = page.read_text()
    assert f'data-finding-id="{run["watch"]["finding_id"]}"' in document
    for check in run["verify"]["checks"]:
        assert f'data-check="{check["name"]}" data-status="{check["status"]}"' in document
    assert "GuardDuty Remediation" in document and "AWS Notification Message" in document
    assert "<h3>Teardown</h3>" in document and document.count('class="teardown-step"') > 20
    assert 'phase <span class="phase">torn-down</span>' in document
    assert oct(page.stat().st_mode & 0o777) == "0o644"
    assert inventory(cloud) == {}


def test_a_live_labs_report_reads_the_cloud_and_leaves_the_lab_as_it_was(
        gdlab, cloud, tmp_path: Path):
    code, out, err = gdlab("run", "--keep", "--json", "--lab", "gd-rep01")
    assert code == 0, err
    finding = json.loads(out)["watch"]["finding_id"]
    code, before, err = gdlab("status", "--json")
    assert code == 0, err
    page = tmp_path / "live.html"
    code, out, err = gdlab("report", "-o", str(page))
    assert code == 0, err
    assert out.strip() == f"wrote {page}"
    document = page.read_text()
    assert f'data-finding-id="{finding}"' in document
    assert 'data-check="enis-isolated" data-status="pass"' in document
    assert "<h3>Teardown</h3>" not in document and "<h3>Isolation</h3>" in document
    code, after, err = gdlab("status", "--json")
    assert json.loads(after)["phase"] == json.loads(before)["phase"]
    assert json.loads(after)["timeline"] == json.loads(before)["timeline"]

    code, out, err = gdlab("teardown", "--lab", "gd-rep01")
    assert code == 0, err
    gone = tmp_path / "gone.html"
    code, out, err = gdlab("report", "--lab", "gd-rep01", "--output", str(gone))
    assert code == 0, err
    document = gone.read_text()
    assert 'phase <span class="phase">torn-down</span>' in document
    assert "No finding" in document and 'data-key="sg-forensic"' in document
    assert inventory(cloud) == {}


@pytest.mark.parametrize("command", [("report",), ("run",)])
def test_a_report_that_cannot_be_written_is_one_line_and_makes_nothing(
        gdlab, cloud, command, tmp_path: Path):
    for where in ("/nonexistent-folder/incident.html", str(tmp_path)):
        option = "-o" if command == ("report",) else "--report"
        code, out, err = gdlab(*command, option, where)
        assert code == 2, err
        assert f"cannot write the report to {where}" in err and "Traceback" not in err
    assert inventory(cloud) == {}


def test_a_report_of_no_lab_says_so_in_one_line(gdlab, tmp_path: Path):
    code, out, err = gdlab("report", "-o", str(tmp_path / "x.html"))
    assert code != 0 and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2, err
    assert not (tmp_path / "x.html").exists()
