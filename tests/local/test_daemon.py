"""The local cloud as a real background process, driven like a user does (gdlab.cli.main),
plus its one-line errors: port in use, stale pid file, stop with nothing running."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys

import pytest

from gdlab.lab.state import LabState, LabStore
from gdlab.local import daemon


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_stale(home, port):
    path = daemon.state_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": dead_pid(), "port": port, "started_epoch": 1}))


def one_line_error(code, err):
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def test_cli_start_status_stop(run_cli, gdlab_home, port, stop_after):
    write_stale(gdlab_home, port)  # a previous server that died: start cleans it and proceeds
    LabStore(gdlab_home).create(LabState(lab="gd-one", scenario="compromised-ec2",
                                         target="local", region="us-east-1"))
    LabStore(gdlab_home).create(LabState(lab="gd-two", scenario="compromised-ec2",
                                         target="aws", region="us-east-1"))

    code, out, err = run_cli("local", "start")
    assert code == 0, err
    assert "removed a stale pid file" in out
    assert f"local cloud started on http://127.0.0.1:{port}" in out
    assert stat.S_IMODE(daemon.state_path(gdlab_home).stat().st_mode) == 0o600
    assert daemon.log_path(gdlab_home).exists()

    code, out, err = run_cli("local", "status", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["running"] is True
    assert report["endpoint"] == f"http://127.0.0.1:{port}"
    assert report["uptime_seconds"] >= 0
    assert report["labs"] == 1 and report["findings"] == 0

    assert report["cloud_id"].startswith("lc-") and len(report["cloud_id"]) == 11
    assert report["home"] == str(gdlab_home.resolve())

    code, out, _ = run_cli("local", "start")
    assert code == 0 and "already running" in out
    assert daemon.ensure_running(gdlab_home) == (f"http://127.0.0.1:{port}", False,
                                                 report["cloud_id"])

    code, out, err = run_cli("local", "stop")
    assert code == 0, err
    assert "local cloud stopped" in out
    assert not daemon.state_path(gdlab_home).exists()
    assert daemon.status(gdlab_home)["running"] is False
    assert not daemon.port_busy(port)


def test_ensure_running_starts_in_the_background(gdlab_home, port, stop_after):
    endpoint, started, cloud_id = daemon.ensure_running(gdlab_home)
    assert (endpoint, started) == (f"http://127.0.0.1:{port}", True)
    info = daemon.status(gdlab_home)
    assert info["running"] and info["pid"] != daemon.os.getpid()
    assert info["cloud_id"] == cloud_id and cloud_id.startswith("lc-")
    assert json.loads(daemon.state_path(gdlab_home).read_text())["cloud_id"] == cloud_id
    assert daemon.ensure_running(gdlab_home) == (endpoint, False, cloud_id)


def test_port_in_use_is_one_line(run_cli, gdlab_home, port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen(1)
        code, _, err = run_cli("local", "start")
    line = one_line_error(code, err)
    assert f"port {port} on 127.0.0.1 is already in use by another program" in line
    assert "GDLAB_LOCAL_PORT" in line
    assert not daemon.state_path(gdlab_home).exists()


def test_stop_with_stale_pid_file_is_one_line(run_cli, gdlab_home, port):
    write_stale(gdlab_home, port)
    assert daemon.status(gdlab_home).get("stale") is True
    code, _, err = run_cli("local", "stop")
    line = one_line_error(code, err)
    assert "stale pid file" in line
    assert not daemon.state_path(gdlab_home).exists()


def test_stop_with_nothing_running_is_one_line(run_cli, gdlab_home, port):
    code, _, err = run_cli("local", "stop")
    assert "the local cloud is not running" in one_line_error(code, err)


def test_status_when_not_running(run_cli, gdlab_home, port):
    code, out, _ = run_cli("local", "status", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["running"] is False and report["endpoint"] is None and report["labs"] == 0
    assert report["cloud_id"] is None and report["home"] is None
    code, out, _ = run_cli("local", "status")
    assert code == 0 and "not running" in out


def test_bad_port_variable_is_one_line(run_cli, gdlab_home, monkeypatch):
    monkeypatch.setenv("GDLAB_LOCAL_PORT", "http")
    code, _, err = run_cli("local", "start")
    assert "GDLAB_LOCAL_PORT=http is not a port number" in one_line_error(code, err)


def test_daemon_imports_neither_moto_nor_boto3():
    code = ("import sys, gdlab.local.daemon, gdlab.local.api, gdlab.cli.local; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('moto', 'boto3', 'botocore')];"
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("command", [("local",), ("local", "start"), ("local", "stop"),
                                     ("local", "status"), ("local", "env")])
def test_help_has_an_example(run_cli, command):
    code, out, _ = run_cli(*command, "--help")
    assert code == 0 and "Example: gdlab local" in out


def test_extension_routes_answer_on_the_background_server(run_cli, gdlab_home, monkeypatch,
                                                          free_port):
    """The daemon runs `python -m gdlab.local.server`: the routes the extensions register
    must be served there too, even right after start while moto still loads."""
    from gdlab.local.api import fetch

    monkeypatch.setenv("GDLAB_LOCAL_PORT", str(free_port))
    code, _, err = run_cli("local", "start")
    assert code == 0, err
    try:
        from gdlab.local.credentials import load

        endpoint, keys = f"http://127.0.0.1:{free_port}", load(gdlab_home)
        assert fetch(endpoint, "outbox", credentials=keys) == []
        assert fetch(endpoint, "invocations", credentials=keys) == []
    finally:
        run_cli("local", "stop")
