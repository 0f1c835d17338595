"""The local cloud's own credentials: made once per home, private, shared by racing starts,
replaced only when damaged and no cloud serves them; the daemon and what it runs never hold
the user's AWS keys; `gdlab local env` hands them to the AWS CLI."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import boto3
import pytest

from gdlab.local import credentials, daemon


def test_made_once_private_and_the_same_for_every_reader(tmp_path):
    made = credentials.load_or_create(tmp_path)
    assert credentials.ACCESS_KEY_ID.fullmatch(made.access_key_id)
    assert credentials.SECRET_ACCESS_KEY.fullmatch(made.secret_access_key)
    path = credentials.path_for(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert credentials.load_or_create(tmp_path) == made == credentials.load(tmp_path)
    assert made.secret_access_key not in repr(made)


@pytest.mark.parametrize("round_", range(5))
def test_racing_starts_agree_on_one_key(tmp_path, round_):
    # A start that finds no file while another links its own must take that one, not call
    # it damaged: released together, the threads hit that window.
    found: list[credentials.LocalCredentials] = []
    failed: list[BaseException] = []
    barrier = threading.Barrier(16)

    def start() -> None:
        barrier.wait()
        try:
            found.append(credentials.load_or_create(tmp_path))
        except BaseException as exc:  # noqa: BLE001 - the assertion below names it
            failed.append(exc)

    threads = [threading.Thread(target=start) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failed == [] and len(found) == 16 and len(set(found)) == 1
    assert [p.name for p in credentials.path_for(tmp_path).parent.iterdir()] == [
        credentials.FILE_NAME]  # nothing left aside


@pytest.mark.parametrize("damage", ["{}", "not json", json.dumps(
    {"aws_access_key_id": "AKIA", "aws_secret_access_key": "short"}), "link"])
def test_a_damaged_file_is_named_and_replaced_only_when_asked(tmp_path, damage):
    path = credentials.path_for(tmp_path)
    path.parent.mkdir(mode=0o700)
    if damage == "link":
        (tmp_path / "elsewhere").write_text("{}")
        path.symlink_to(tmp_path / "elsewhere")
    else:
        path.write_text(damage)
    with pytest.raises(credentials.CredentialsError) as info:
        credentials.load(tmp_path)
    assert "damaged" in str(info.value) and "gdlab local stop" in str(info.value)
    with pytest.raises(credentials.CredentialsError):
        credentials.load_or_create(tmp_path)
    made = credentials.load_or_create(tmp_path, replace_damaged=True)
    assert credentials.load(tmp_path) == made
    if damage == "link":
        assert (tmp_path / "elsewhere").read_text() == "{}"  # never written through


def test_the_daemon_environment_carries_no_aws_credentials(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "users-real-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "users-real-token")
    monkeypatch.setenv("AWS_PROFILE", "work")
    env = daemon.server_environment(4599)
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_PROFILE"} & set(env)
    assert env["AWS_REGION"] == os.environ["AWS_REGION"]


def test_local_env_points_aws_tools_at_the_local_cloud(run_cli, gdlab_home, port, stop_after,
                                                      monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "users-real-secret")
    code, out, err = run_cli("local", "env", "--json")
    assert code == 0, err
    variables = json.loads(out)
    assert set(variables) == {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                              "AWS_REGION"}
    assert variables["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{port}"
    assert variables["AWS_ACCESS_KEY_ID"] == credentials.load(gdlab_home).access_key_id
    gd = boto3.client("guardduty", endpoint_url=variables["AWS_ENDPOINT_URL"],
                      region_name=variables["AWS_REGION"],
                      aws_access_key_id=variables["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=variables["AWS_SECRET_ACCESS_KEY"])
    assert gd.list_detectors()["DetectorIds"] == []
    pid = daemon.status(gdlab_home)["pid"]
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"users-real-secret" not in environ and b"AWS_SECRET_ACCESS_KEY" not in environ
    code, shell, _ = run_cli("local", "env")
    assert code == 0
    lines = shell.strip().splitlines()
    assert lines[0].startswith("unset AWS_SESSION_TOKEN")
    exported = dict(line.removeprefix("export ").split("=", 1) for line in lines[1:])
    assert exported["AWS_ACCESS_KEY_ID"] == variables["AWS_ACCESS_KEY_ID"]
    assert exported["AWS_DEFAULT_REGION"] == variables["AWS_REGION"]
