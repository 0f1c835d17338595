"""`gdlab status` in text: the view a person reads, with cloud text that holds [brackets]."""

from gdlab.lab.state import LabState, LabStore


def test_status_text_renders_any_timeline(run_cli, gdlab_home):
    store = LabStore(gdlab_home)
    state = store.create(LabState(lab="gd-view1", scenario="compromised-ec2", target="local",
                                  region="us-east-1"))
    state.record("vpc", "AWS::EC2::VPC", "vpc-123")
    state.event("teardown started")  # no phase, no error: plain text
    state.event("Finding [SAMPLE] seen [/] with brackets")
    state.event("something failed: [red]", kind="error")
    state.set_phase("ready", "setup complete")
    code, out, err = run_cli("status")
    assert code == 0, err
    assert "Traceback" not in out + err
    assert "teardown started" in out
    assert "[SAMPLE]" in out and "[/]" in out
    assert "vpc-123" in out


def test_errors_with_brackets_print_as_one_line(run_cli):
    code, _, err = run_cli("status", "--lab", "gd-[x]")
    assert code == 2
    assert "invalid lab id 'gd-[x]'" in err
    assert "Traceback" not in err
