"""Shared fixtures: an isolated environment for every test, moto in-process with gdlab's
extensions, a real local-cloud server on a free port, clients for either, a CLI runner, and a
checker that holds raw responses to botocore's service model."""

from __future__ import annotations

import functools
import json
import socket
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """No test reaches a real account or the user's gdlab home."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN",
                 "AWS_SECURITY_TOKEN", "GDLAB_TARGET", "GDLAB_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("GDLAB_HOME", str(tmp_path_factory.mktemp("gdlab-home")))


@pytest.fixture
def free_port() -> int:
    return find_free_port()


@pytest.fixture
def port(monkeypatch: pytest.MonkeyPatch, free_port: int) -> int:
    """A free port that this test's local cloud uses (GDLAB_LOCAL_PORT)."""
    monkeypatch.setenv("GDLAB_LOCAL_PORT", str(free_port))
    return free_port


@pytest.fixture
def stop_after(gdlab_home: Any) -> Iterator[None]:
    """Whatever local cloud the test started in its home is stopped afterwards."""
    import contextlib

    from gdlab.local import daemon

    yield
    with contextlib.suppress(daemon.NotRunning):
        daemon.stop(gdlab_home)


@pytest.fixture
def gdlab_home(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Any:
    """A fresh GDLAB_HOME for this test (a Path)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("GDLAB_HOME", str(home))
    return home


@pytest.fixture
def mocked_aws() -> Iterator[None]:
    """moto in this process (no HTTP), with every gdlab extension installed."""
    from moto import mock_aws

    from gdlab.local import extensions

    extensions.install()
    with mock_aws():
        yield


@pytest.fixture
def aws_client(mocked_aws: None) -> Callable[..., Any]:
    """aws_client("guardduty") -> a boto3 client on the in-process moto."""
    import boto3

    def make(service: str, region: str = REGION) -> Any:
        return boto3.client(service, region_name=region)

    return make


@pytest.fixture(scope="module")
def shared_aws() -> Iterator[Callable[..., Any]]:
    """One in-process moto for a whole test module (a reset and a boto3 client cost about a
    second each with every extension installed). Yields a client factory; clients are
    cached. Tests clean up what they share with reset_backends()."""
    import boto3
    from moto import mock_aws

    from gdlab.local import extensions

    extensions.install()
    clients: dict[tuple[str, str], Any] = {}
    with mock_aws():
        def make(service: str, region: str = REGION) -> Any:
            if (service, region) not in clients:
                clients[(service, region)] = boto3.client(service, region_name=region)
            return clients[(service, region)]

        yield make


def _reset_backends(service: str) -> None:
    from moto.backends import get_backend

    for _, _, backend in get_backend(service).iter_backends():
        backend.reset()


@pytest.fixture
def reset_backends() -> Callable[[str], None]:
    """reset_backends("guardduty"): forget one service's state (every account and region),
    leaving the others alone."""
    return _reset_backends


@pytest.fixture
def local_server() -> Iterator[Any]:
    """A real local cloud (InProcessServer) on a free 127.0.0.1 port; moto's state is reset
    afterwards so tests do not see each other's resources."""
    from moto.core.base_backend import BackendDict

    from gdlab.local.server import InProcessServer

    BackendDict.reset()
    with InProcessServer(port=find_free_port()) as server:
        yield server
    BackendDict.reset()


@pytest.fixture
def local_client(local_server: Any) -> Callable[..., Any]:
    """local_client("guardduty") -> a boto3 client on the local_server endpoint, with no
    retries so an emulator error is seen once."""
    import boto3
    from botocore.config import Config

    def make(service: str, region: str = REGION) -> Any:
        return boto3.client(
            service, region_name=region, endpoint_url=local_server.endpoint,
            **local_server.credentials.boto3_kwargs(),
            config=Config(retries={"mode": "standard", "max_attempts": 1}),
        )

    return make


@pytest.fixture
def gdlab(run_cli: Callable[..., Any], local_server: Any) -> Callable[..., tuple[int, str, str]]:
    """gdlab("verify", "--json") through the CLI against the test's local cloud."""

    def run(*args: str) -> tuple[int, str, str]:
        return run_cli("--endpoint-url", local_server.endpoint, *args)

    return run


@pytest.fixture
def cloud(local_server: Any) -> Any:
    """A Cloud on the test's local cloud, for an inventory that owes nothing to gdlab's state
    (tests/lab overrides it with one on in-process moto)."""
    from gdlab.cloud import Cloud, CloudSettings

    return Cloud(CloudSettings(target="local", region=REGION,
                               endpoint_url=local_server.endpoint,
                               local_cloud_id=local_server.cloud_id,
                               local_credentials=local_server.credentials))


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """run_cli("local", "status", "--json") -> (exit code, stdout, stderr) through
    gdlab.cli.main, the same edge users hit (one-line errors)."""

    def run(*args: str) -> tuple[int, str, str]:
        from gdlab.cli import main

        monkeypatch.setattr(sys, "argv", ["gdlab", *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


# --- checking responses against botocore's model -----------------------------------------
def _check_value(shape: Any, value: Any, where: str, problems: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            problems.append(f"{where}: expected an object, got {type(value).__name__}")
            return
        wire = {m.serialization.get("name", name): (name, m) for name, m in shape.members.items()
                if m.serialization.get("location") in (None, "")}
        for key, item in value.items():
            if key == "__type" and shape.metadata.get("exception"):
                continue
            if key not in wire:
                problems.append(f"{where}: unknown member '{key}' for {shape.name}")
                continue
            _check_value(wire[key][1], item, f"{where}.{key}", problems)
        for required in shape.required_members:
            member = shape.members[required]
            if member.serialization.get("location") not in (None, ""):
                continue
            if member.serialization.get("name", required) not in value:
                problems.append(f"{where}: missing required '{required}' of {shape.name}")
    elif kind == "list":
        if not isinstance(value, list):
            problems.append(f"{where}: expected a list, got {type(value).__name__}")
            return
        for index, item in enumerate(value):
            _check_value(shape.member, item, f"{where}[{index}]", problems)
    elif kind == "map":
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a map, got {type(value).__name__}")
            return
        for key, item in value.items():
            _check_value(shape.value, item, f"{where}[{key}]", problems)
    elif kind == "string":
        if not isinstance(value, str):
            problems.append(f"{where}: expected a string, got {type(value).__name__}")
        elif shape.enum and value not in shape.enum:
            problems.append(f"{where}: '{value}' is not one of {shape.name}'s values")
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{where}: expected an integer, got {value!r}")
    elif kind in ("double", "float"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            problems.append(f"{where}: expected a number, got {value!r}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{where}: expected a boolean, got {value!r}")
    elif kind == "timestamp" and (not isinstance(value, (int, float, str))
                                  or isinstance(value, bool)):
        problems.append(f"{where}: expected a timestamp, got {value!r}")


@functools.cache
def service_model(service: str) -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


def wire_problems(service: str, operation: str, body: bytes | str) -> list[str]:
    """What is wrong with a raw JSON response body of `operation` per botocore's model:
    unknown member names, missing required members, wrong types, values outside enums."""
    op = service_model(service).operation_model(operation)
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    if op.output_shape is None or not op.output_shape.members:
        return []
    data = json.loads(text) if text.strip() else {}
    problems: list[str] = []
    _check_value(op.output_shape, data, operation, problems)
    return problems


class WireRecorder:
    """Records the raw body of every successful response a client receives."""

    def __init__(self, service: str):
        self.service = service
        self.seen: list[tuple[str, int, bytes]] = []

    def __call__(self, operation_model: Any = None, response_dict: Any = None, **_: Any) -> None:
        if operation_model is None or response_dict is None:
            return
        self.seen.append((operation_model.name, response_dict.get("status_code", 0),
                          response_dict.get("body") or b""))

    def problems(self) -> list[str]:
        found = []
        for operation, status, body in self.seen:
            if status >= 300:
                continue
            found.extend(wire_problems(self.service, operation, body))
        return found

    def operations(self) -> set[str]:
        return {operation for operation, _, _ in self.seen}


@pytest.fixture
def wire_check() -> Callable[[Any], WireRecorder]:
    """wire_check(client) -> a recorder of raw responses; assert not recorder.problems()."""

    def attach(client: Any) -> WireRecorder:
        recorder = WireRecorder(client.meta.service_model.service_name)
        client.meta.events.register("before-parse", recorder)
        return recorder

    return attach
