"""The local cloud daemon keeps control of its own server whatever happens to its files:
a missing or damaged server.json (the server says which home it serves, so the home finds it
on the port), and nothing in <home>/local/ followed through a symbolic or hard link."""

from __future__ import annotations

import contextlib
import json
import os
import stat

import pytest

from gdlab.local import daemon

GARBAGE = [
    pytest.param('{"pid": "x"}', id="pid-not-int"),
    pytest.param("[]", id="not-an-object"),
    pytest.param('{"pid": 1, "port": "abc"}', id="port-not-int"),
    pytest.param('{"pid": 12, "port": 70000}', id="port-out-of-range"),
    pytest.param('{"pid": true, "port": 4731}', id="pid-bool"),
    pytest.param('{"pid": -5, "port": 4731}', id="pid-negative"),
    pytest.param("{not json", id="not-json"),
    pytest.param("", id="empty"),
]


def write_state(home, text: str) -> None:
    path = daemon.state_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def one_line_error(code, err):
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# --- server.json is checked on read ----------------------------------------------------
@pytest.mark.parametrize("text", GARBAGE)
def test_damaged_server_json_is_seen_as_damaged(gdlab_home, text):
    write_state(gdlab_home, text)
    assert daemon.read_state(gdlab_home) == {"pid": None, "port": None, "damaged": True}


def test_sound_server_json_is_read(gdlab_home):
    write_state(gdlab_home, json.dumps({"pid": 12, "port": 4731, "started_epoch": "soon",
                                        "cloud_id": 3, "started_at": "2026-01-01T00:00:00Z"}))
    assert daemon.read_state(gdlab_home) == {
        "pid": 12, "port": 4731, "endpoint": "http://127.0.0.1:4731",
        "started_at": "2026-01-01T00:00:00Z"}  # wrong-typed extras dropped
    daemon.state_path(gdlab_home).unlink()
    assert daemon.read_state(gdlab_home) is None


def test_symlinked_server_json_is_not_read(gdlab_home, tmp_path):
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps({"pid": os.getpid(), "port": 4731}))
    daemon.local_dir(gdlab_home).mkdir(parents=True)
    daemon.state_path(gdlab_home).symlink_to(outside)
    assert daemon.read_state(gdlab_home)["damaged"] is True


@pytest.mark.parametrize("text", GARBAGE[:3])
def test_damaged_server_json_with_nothing_running(run_cli, gdlab_home, port, text):
    write_state(gdlab_home, text)
    info = daemon.status(gdlab_home)
    assert info["running"] is False and info["damaged"] is True and info["pid"] is None
    code, out, _ = run_cli("local", "status")
    assert code == 0 and "damaged" in out and "'gdlab local start' replaces it" in out
    code, out, _ = run_cli("local", "status", "--json")
    assert json.loads(out)["damaged_state"] == str(daemon.state_path(gdlab_home))
    code, _, err = run_cli("local", "stop")
    line = one_line_error(code, err)
    assert "not running (removed a damaged" in line and "process None" not in line
    assert not daemon.state_path(gdlab_home).exists()


# --- a damaged or missing server.json does not lose the running cloud ------------------
def damage(home, how: str) -> None:
    if how == "missing":
        daemon.state_path(home).unlink()
    elif how == "stale":
        write_state(home, json.dumps({"pid": 2**22 + 12345, "port": 1, "started_epoch": 1}))
    else:
        write_state(home, how)


@pytest.mark.slow
def test_own_cloud_is_found_without_a_sound_server_json(run_cli, gdlab_home, port):
    first = daemon.start(gdlab_home)
    try:
        cloud_id, pid = first["cloud_id"], first["pid"]
        for how in ["missing", "stale", '{"pid": "x"}', "[]", '{"pid": 1, "port": "abc"}']:
            damage(gdlab_home, how)
            code, out, err = run_cli("local", "status", "--json")
            assert code == 0, err
            report = json.loads(out)
            assert report["running"] is True, how
            assert (report["pid"], report["cloud_id"], report["port"]) == (pid, cloud_id, port)
            assert report["home"] == str(gdlab_home.resolve()) and report["recovered"] is True
            # the next command uses it (no second cloud) and writes server.json again
            assert daemon.ensure_running(gdlab_home) == (
                f"http://127.0.0.1:{port}", False, cloud_id)
            assert daemon.read_state(gdlab_home)["pid"] == pid
            assert daemon.status(gdlab_home).get("recovered") is None
        damage(gdlab_home, '{"pid": 1, "port": "abc"}')
        code, out, err = run_cli("local", "start")
        assert code == 0, err
        assert "already running" in out and "wrote it again" in out
        damage(gdlab_home, "[]")
        code, out, err = run_cli("local", "stop")
        assert code == 0, err
        assert f"local cloud stopped (pid {pid}" in out
        assert not daemon.pid_alive(pid) and not daemon.port_busy(port)
        assert not daemon.state_path(gdlab_home).exists()
    finally:
        with contextlib.suppress(daemon.NotRunning):
            daemon.stop(gdlab_home)


@pytest.mark.slow
def test_another_homes_cloud_is_not_taken_for_ours(run_cli, gdlab_home, port, tmp_path,
                                                   monkeypatch):
    other = tmp_path / "other-home"
    other.mkdir()
    theirs = daemon.start(other)
    try:
        assert theirs["home"] == str(other.resolve())
        assert daemon.status(gdlab_home)["running"] is False
        code, _, err = run_cli("local", "start")
        line = one_line_error(code, err)
        assert f"port {port} is already used by another gdlab local cloud" in line
        assert str(other.resolve()) in line
        code, _, err = run_cli("local", "stop")
        assert "the local cloud is not running" in one_line_error(code, err)
        assert daemon.status(other)["running"] is True  # theirs is left alone
    finally:
        daemon.stop(other)


# --- nothing written through a link ----------------------------------------------------
@pytest.fixture
def outside(tmp_path):
    """A file outside the home that a link in local/ points at."""
    path = tmp_path / "precious.txt"
    path.write_bytes(b"not gdlab's\n")
    path.chmod(0o644)
    return path


def unchanged(path) -> None:
    assert path.read_bytes() == b"not gdlab's\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_symlinked_lock_is_refused(run_cli, gdlab_home, port, outside):
    daemon.local_dir(gdlab_home).mkdir(mode=0o700)
    lock = daemon.local_dir(gdlab_home) / "lock"
    lock.symlink_to(outside)
    for command in ("start", "stop"):
        code, _, err = run_cli("local", command)
        line = one_line_error(code, err)
        assert f"{lock} is a symbolic link" in line and f"rm {lock}" in line
    unchanged(outside)
    assert not daemon.port_busy(port) and not daemon.state_path(gdlab_home).exists()


def test_dangling_symlinked_lock_creates_nothing(gdlab_home, port, tmp_path):
    daemon.local_dir(gdlab_home).mkdir(mode=0o700)
    target = tmp_path / "would-be-created"
    (daemon.local_dir(gdlab_home) / "lock").symlink_to(target)
    with pytest.raises(daemon.LocalCloudError, match="is a symbolic link"):
        daemon.start(gdlab_home)
    assert not target.exists()


def test_symlinked_log_is_refused(run_cli, gdlab_home, port, outside):
    daemon.local_dir(gdlab_home).mkdir(mode=0o700)
    daemon.log_path(gdlab_home).symlink_to(outside)
    code, _, err = run_cli("local", "start")
    line = one_line_error(code, err)
    assert f"{daemon.log_path(gdlab_home)} is a symbolic link" in line
    unchanged(outside)
    assert not daemon.port_busy(port) and not daemon.state_path(gdlab_home).exists()


def test_hard_linked_log_is_refused(run_cli, gdlab_home, port, outside):
    daemon.local_dir(gdlab_home).mkdir(mode=0o700)
    os.link(outside, daemon.log_path(gdlab_home))
    code, _, err = run_cli("local", "start")
    assert "is not a plain file of gdlab's own" in one_line_error(code, err)
    unchanged(outside)


def test_symlinked_local_dir_is_refused(run_cli, gdlab_home, port, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    daemon.local_dir(gdlab_home).symlink_to(elsewhere, target_is_directory=True)
    code, _, err = run_cli("local", "start")
    assert f"{daemon.local_dir(gdlab_home)} is a symbolic link" in one_line_error(code, err)
    assert list(elsewhere.iterdir()) == []


def test_local_dir_and_lock_are_private(gdlab_home, port):
    with pytest.raises(daemon.NotRunning):
        daemon.stop(gdlab_home)  # takes the lock, so makes local/ and local/lock
    assert stat.S_IMODE(daemon.local_dir(gdlab_home).stat().st_mode) == 0o700
    lock = daemon.local_dir(gdlab_home) / "lock"
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    lock.chmod(0o666)
    with pytest.raises(daemon.NotRunning):
        daemon.stop(gdlab_home)
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600  # made private again, through its fd


@pytest.mark.slow
def test_log_is_private_and_appended(gdlab_home, port):
    log = daemon.log_path(gdlab_home)
    log.parent.mkdir(mode=0o700)
    log.write_bytes(b"an earlier run\n")
    log.chmod(0o644)
    daemon.start(gdlab_home)
    try:
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
        assert log.read_bytes().startswith(b"an earlier run\n")
    finally:
        daemon.stop(gdlab_home)
