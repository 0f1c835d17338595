"""A local lab is bound to the local cloud that holds it: once that cloud is stopped, crashed
or restarted, commands on the lab say so in one line (exit 1) instead of NoSuchBucket,
InvalidVpcID.NotFound or a minute of watching."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from gdlab.cli.common import AppContext, cloud_gone, lab_cloud_is_gone
from gdlab.errors import LabCloudGone
from gdlab.lab.state import LabState, LabStore
from gdlab.local import daemon


def gone_line(lab: str) -> str:
    return (f"error: lab {lab} lived in a local cloud that is no longer running (stopped, "
            "crashed or restarted): its resources are gone — 'gdlab teardown --lab "
            f"{lab}' forgets it, 'gdlab setup --lab {lab}' builds it again from scratch")


def assert_gone(result, lab: str) -> None:
    code, out, err = result
    assert code == 1, err
    assert err.strip().splitlines() == [gone_line(lab)]
    assert out == ""


def make_lab(home, lab: str, local_cloud: str | None) -> LabState:
    return LabStore(home).create(LabState(lab=lab, scenario="compromised-ec2", target="local",
                                          region="us-east-1", local_cloud=local_cloud,
                                          phase="ready"))


def kill_hard(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    while daemon.pid_alive(pid):  # reaps it: the daemon is a child of this test process
        time.sleep(0.01)


def test_the_error_is_one_line_with_what_to_do():
    state = LabState(lab="gd-x1", scenario="compromised-ec2", target="local",
                     region="us-east-1", local_cloud="lc-00000000")
    error = cloud_gone(state)
    assert isinstance(error, LabCloudGone) and error.exit_code == 1
    assert f"error: {error}" == gone_line("gd-x1")


def test_labs_from_before_cloud_ids_are_left_alone(gdlab_home, local_server):
    from gdlab.cloud import Cloud, CloudSettings

    cloud = Cloud(CloudSettings(target="local", endpoint_url=local_server.endpoint,
                                local_cloud_id=local_server.cloud_id))
    old = make_lab(gdlab_home, "gd-old1", None)
    assert not lab_cloud_is_gone(old, cloud)
    aws = LabState(lab="gd-aws1", scenario="compromised-ec2", target="aws",
                   region="us-east-1", local_cloud="lc-00000000")
    assert not lab_cloud_is_gone(aws, cloud)
    unknown = Cloud(CloudSettings(target="local", endpoint_url=local_server.endpoint))
    assert not lab_cloud_is_gone(make_lab(gdlab_home, "gd-new1", "lc-00000000"), unknown)


def test_explicit_endpoint_is_asked_for_its_id(run_cli, gdlab_home, local_server):
    here = make_lab(gdlab_home, "gd-here1", local_server.cloud_id)
    app = AppContext(endpoint_url=local_server.endpoint)
    cloud = app.cloud_for_lab(here)
    assert cloud.settings.local_cloud_id == local_server.cloud_id
    assert cloud.endpoint_url == local_server.endpoint
    make_lab(gdlab_home, "gd-else1", "lc-00000000")
    assert_gone(run_cli("--endpoint-url", local_server.endpoint, "trigger", "--lab", "gd-else1"),
                "gd-else1")
    old = make_lab(gdlab_home, "gd-old2", None)
    assert AppContext(endpoint_url=local_server.endpoint).cloud_for_lab(old).is_local


@pytest.mark.slow
def test_a_crashed_cloud_is_not_started_again_just_to_say_so(run_cli, gdlab_home, port,
                                                              stop_after):
    first = daemon.start(gdlab_home)
    make_lab(gdlab_home, "gd-crash1", first["cloud_id"])
    app = AppContext()
    assert app.cloud_for_lab(LabStore(gdlab_home).load("gd-crash1")).settings.local_cloud_id \
        == first["cloud_id"]
    kill_hard(first["pid"])
    assert_gone(run_cli("trigger", "--lab", "gd-crash1"), "gd-crash1")
    assert daemon.status(gdlab_home)["running"] is False
    assert not daemon.port_busy(port)
    # a lab from before cloud ids is not judged: the command goes on (and starts a cloud)
    make_lab(gdlab_home, "gd-old3", None)
    cloud = AppContext().cloud_for_lab(LabStore(gdlab_home).load("gd-old3"))
    assert cloud.settings.local_cloud_id not in (None, first["cloud_id"])


@pytest.mark.slow
def test_commands_on_a_lab_of_a_restarted_cloud_say_it_is_gone(run_cli, gdlab_home, port,
                                                               stop_after):
    """A real lab set up through the daemon, the daemon killed with SIGKILL and started
    again: a new cloud id, and every command on the lab gives the one line."""
    code, out, err = run_cli("setup", "--lab", "gd-lost1", "--json")
    assert code == 0, err
    before = daemon.status(gdlab_home)
    assert json.loads(out)["local_cloud"] == before["cloud_id"]
    code, out, err = run_cli("trigger", "--lab", "gd-lost1", "--json")
    assert code == 0, err  # the lab works in the cloud that holds it

    kill_hard(before["pid"])
    after = daemon.start(gdlab_home)
    assert after["started"] is True and after["stale_pid"] == before["pid"]
    assert after["cloud_id"] != before["cloud_id"]

    for command in (["trigger"], ["watch", "--timeout", "60s"], ["verify", "--json"], ["mail"]):
        assert_gone(run_cli(*command, "--lab", "gd-lost1"), "gd-lost1")
    # the current lab too, without --lab
    assert_gone(run_cli("trigger"), "gd-lost1")
    assert daemon.status(gdlab_home)["cloud_id"] == after["cloud_id"]  # still the same cloud


@pytest.mark.slow
def test_teardown_forgets_and_setup_rebuilds_a_lab_whose_cloud_is_gone(run_cli, gdlab_home,
                                                                        port, stop_after):
    for lab in ("gd-fgt1", "gd-reb1"):
        code, _, err = run_cli("setup", "--lab", lab, "--json")
        assert code == 0, err
    kill_hard(daemon.status(gdlab_home)["pid"])
    daemon.start(gdlab_home)

    code, out, err = run_cli("teardown", "--lab", "gd-fgt1", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["actions"] and {a["detail"] for a in report["actions"]} == {
        "gone with its local cloud"}
    assert LabStore(gdlab_home).load("gd-fgt1").phase == "torn-down"

    code, out, err = run_cli("setup", "--lab", "gd-reb1", "--json")
    assert code == 0, err
    rebuilt = json.loads(out)
    assert rebuilt["local_cloud"] == daemon.status(gdlab_home)["cloud_id"]
    assert any("building it again from scratch" in e["message"] for e in rebuilt["timeline"])
    code, out, err = run_cli("verify", "--lab", "gd-reb1", "--json")
    assert "no longer running" not in err  # it lives in the running cloud now
    code, _, err = run_cli("teardown", "--lab", "gd-reb1")
    assert code == 0, err
