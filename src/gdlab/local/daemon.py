"""The local cloud as a background process: start, stop, status, ensure_running.

On the CLI's start-up path, so it imports neither moto nor boto3: it spawns
`python -m gdlab.local.server` and talks to it over HTTP. The process's pid, port and start
time live in <home>/local/server.json (0600); its output goes to <home>/local/server.log."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gdlab.errors import GdlabError
from gdlab.lab.state import write_private

DEFAULT_PORT = 4599  # not 5000 (moto's default) nor 4566 (LocalStack's)
HOST = "127.0.0.1"
START_TIMEOUT = 20.0  # a first start on a cold disk imports all of moto
STOP_TIMEOUT = 5.0


class LocalCloudError(GdlabError):
    """The local cloud cannot be started, stopped or reached."""


class PortInUse(LocalCloudError):
    """The port is taken by something that is not this home's local cloud."""


class NotRunning(LocalCloudError):
    """There is no local cloud to stop."""


def local_dir(home: Path) -> Path:
    return Path(home) / "local"


def state_path(home: Path) -> Path:
    return local_dir(home) / "server.json"


def log_path(home: Path) -> Path:
    return local_dir(home) / "server.log"


def default_port() -> int:
    raw = os.environ.get("GDLAB_LOCAL_PORT")
    if not raw:
        return DEFAULT_PORT
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise LocalCloudError(f"GDLAB_LOCAL_PORT={raw} is not a port number",
                              "use a number between 1024 and 65535, e.g. 4599")
    return port


def endpoint_for(port: int) -> str:
    return f"http://{HOST}:{port}"


def probe(port: int, timeout: float = 0.5) -> dict[str, Any] | None:
    """The /_gdlab/status answer of a local cloud on this port, or None."""
    from gdlab.local.api import LocalApiError, fetch

    try:
        data = fetch(endpoint_for(port), "status", timeout=timeout)
    except LocalApiError:
        return None
    return data if isinstance(data, dict) and data.get("running") is True else None


def port_busy(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((HOST, port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process (started by start() here) counts as gone.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except (ChildProcessError, OSError):
        return True


def _is_server_process(pid: int) -> bool:
    """Whether pid runs gdlab's server (guards against a recycled pid)."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    with contextlib.suppress(OSError):  # no /proc (macOS): ask ps below
        return b"gdlab.local.server" in cmdline.read_bytes()
    try:
        out = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True,
                             text=True, timeout=2).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "gdlab.local.server" in out


def read_state(home: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(state_path(home).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"pid": None, "damaged": True}
    return data if isinstance(data, dict) else {"pid": None, "damaged": True}


def _remove_state(home: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        state_path(home).unlink()


@contextlib.contextmanager
def _lock(home: Path) -> Iterator[None]:
    """One start at a time per home, so two commands never spawn two servers."""
    local_dir(home).mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock, best effort
        yield
        return
    with open(local_dir(home) / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _uptime(info: dict[str, Any]) -> float | None:
    started = info.get("started_epoch")
    return round(time.time() - float(started), 1) if started else None


def status(home: Path) -> dict[str, Any]:
    """What is known about this home's local cloud. `running` is true only when the process
    of server.json answers on its port."""
    info = read_state(home)
    if info is None:
        return {"running": False, "endpoint": None, "pid": None, "port": None}
    pid, port = info.get("pid"), info.get("port")
    result: dict[str, Any] = {
        "running": False, "pid": pid, "port": port,
        "endpoint": endpoint_for(port) if port else None,
        "started_at": info.get("started_at"), "log": str(log_path(home)),
    }
    if not pid or not port:
        result["stale"] = True
        return result
    answer = probe(int(port))
    if answer and answer.get("pid") == pid:
        result.update(running=True, uptime_seconds=_uptime(info),
                      findings=answer.get("findings", 0))
    elif not pid_alive(int(pid)):
        result["stale"] = True
    else:
        result["unresponsive"] = True
    return result


def start(home: Path, port: int | None = None) -> dict[str, Any]:
    """Start the local cloud in the background and return its status once it answers.
    Already running: its status, with started False. A stale pid file is cleaned first and
    reported as `stale_pid`."""
    home = Path(home)
    with _lock(home):
        current = status(home)
        if current["running"]:
            return {**current, "started": False}
        stale_pid = None
        if current.get("unresponsive"):
            if _is_server_process(int(current["pid"])):
                raise LocalCloudError(
                    f"the local cloud (pid {current['pid']}) is running but does not answer "
                    f"on port {current['port']}",
                    f"see {log_path(home)}, then 'gdlab local stop'",
                )
            stale_pid = current["pid"]  # a recycled pid: not ours
        elif current.get("stale"):
            stale_pid = current["pid"]
        if current["pid"] is not None or stale_pid is not None:
            _remove_state(home)
        port = port or default_port()
        if port_busy(port):
            other = probe(port)
            if other:
                raise PortInUse(
                    f"port {port} is already used by another gdlab local cloud "
                    f"(pid {other.get('pid')}) that this GDLAB_HOME did not start",
                    "stop that one, or set GDLAB_LOCAL_PORT to another port",
                )
            raise PortInUse(
                f"port {port} on {HOST} is already in use by another program",
                f"set GDLAB_LOCAL_PORT to a free port (e.g. GDLAB_LOCAL_PORT={port + 1})",
            )
        info = _spawn(home, port)
    result = status(home)
    result.update(started=True, stale_pid=stale_pid)
    result["uptime_seconds"] = result.get("uptime_seconds") or _uptime(info)
    return result


def _spawn(home: Path, port: int) -> dict[str, Any]:
    local_dir(home).mkdir(parents=True, exist_ok=True, mode=0o700)
    log = log_path(home)
    env = dict(os.environ, PYTHONUNBUFFERED="1", GDLAB_LOCAL_PORT=str(port))
    with open(log, "ab") as out:
        os.chmod(log, 0o600)
        proc = subprocess.Popen(
            [sys.executable, "-m", "gdlab.local.server", "--port", str(port), "--host", HOST],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, env=env, close_fds=True,
        )
    now = time.time()
    info = {
        "pid": proc.pid, "port": port, "endpoint": endpoint_for(port),
        "started_at": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
        "started_epoch": now,
    }
    write_private(state_path(home), json.dumps(info, indent=2) + "\n")
    deadline = time.monotonic() + START_TIMEOUT
    delay = 0.02
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _remove_state(home)
            raise LocalCloudError(
                f"the local cloud exited while starting: {_last_line(log)}",
                f"see {log}",
            )
        answer = probe(port, timeout=0.3)
        if answer and answer.get("pid") == proc.pid:
            return info
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)
    proc.kill()
    _remove_state(home)
    raise LocalCloudError(f"the local cloud did not answer on port {port} within "
                          f"{START_TIMEOUT:.0f} s", f"see {log}")


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no output"
    return lines[-1].strip() if lines else "no output"


def stop(home: Path) -> dict[str, Any]:
    """Stop this home's local cloud. Nothing running, or only a stale pid file: NotRunning
    (the stale file is removed)."""
    home = Path(home)
    with _lock(home):
        current = status(home)
        if current["pid"] is None and not current.get("stale"):
            raise NotRunning("the local cloud is not running", "'gdlab local start' starts it")
        if current.get("stale") or (current.get("unresponsive")
                                    and not _is_server_process(int(current["pid"]))):
            _remove_state(home)
            raise NotRunning(
                f"the local cloud is not running (removed a stale pid file for process "
                f"{current['pid']}, which is gone)",
                "'gdlab local start' starts it",
            )
        pid = int(current["pid"])
        uptime = current.get("uptime_seconds")
        _terminate(pid)
        _remove_state(home)
        return {"stopped": True, "pid": pid, "port": current["port"], "uptime_seconds": uptime}


def _terminate(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def ensure_running(home: Path) -> tuple[str, bool]:
    """The endpoint of this home's local cloud, starting it if needed; True if started now."""
    current = status(Path(home))
    if current["running"]:
        return current["endpoint"], False
    result = start(Path(home))
    return result["endpoint"], bool(result.get("started"))
