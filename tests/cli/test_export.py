"""`gdlab export cloudformation` through the CLI edge: the template as JSON on stdout or in
a file, and bad input (another scenario, a path that cannot be written, a bad e-mail) as one
line with exit code 2, before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

from gdlab.scenario import load


def _handler() -> str:
    return (load("compromised-ec2").responder_dir / "handler.py").read_text(encoding="utf-8")


def test_the_template_goes_to_stdout(run_cli):
    code, out, err = run_cli("export", "cloudformation")
    assert code == 0, err
    template = json.loads(out)
    assert template["AWSTemplateFormatVersion"] == "2010-09-09"
    assert template["Resources"]["Bootstrap"]["Properties"]["Code"] == _handler()
    assert template["Parameters"]["Email"]["Default"] == ""


def test_the_template_goes_to_a_file(run_cli, tmp_path: Path):
    path = tmp_path / "lab.json"
    code, out, err = run_cli("export", "cloudformation", "--scenario", "compromised-ec2",
                             "-o", str(path), "--email", "trainer@example.com")
    assert code == 0, err
    assert f"wrote {path}" in out
    template = json.loads(path.read_text(encoding="utf-8"))
    assert template["Parameters"]["Email"]["Default"] == "trainer@example.com"


def test_another_scenario_is_refused_in_one_line(run_cli):
    code, out, err = run_cli("export", "cloudformation", "--scenario", "compromised-s3-bucket")
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "only compromised-ec2 is supported" in err


def test_an_unknown_scenario_is_refused_in_one_line(run_cli):
    code, _, err = run_cli("export", "cloudformation", "--scenario", "no-such-thing")
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_a_path_that_cannot_be_written_is_refused(run_cli, tmp_path: Path):
    for bad in (tmp_path / "missing" / "lab.json", tmp_path):
        code, out, err = run_cli("export", "cloudformation", "-o", str(bad))
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and "cannot write the template" in err
    assert list(tmp_path.iterdir()) == []


def test_a_bad_email_is_refused(run_cli, tmp_path: Path):
    path = tmp_path / "lab.json"
    code, _, err = run_cli("export", "cloudformation", "--email", "nope", "-o", str(path))
    assert code == 2 and "invalid e-mail address" in err
    assert not path.exists()


def test_help_has_an_example_and_the_group_alone_shows_it(run_cli):
    for args in (("export", "cloudformation", "--help"), ("export", "--help"), ("export",)):
        code, out, err = run_cli(*args)
        assert code == 0, err
        assert "Example: gdlab export cloudformation" in out + err
