"""The local cloud as a background process: start, stop, status, ensure_running.

On the CLI's start-up path, so it imports neither moto nor boto3: it spawns
`python -m gdlab.local.server` and talks to it over HTTP. The process's pid, port and start
time live in <home>/local/server.json (0600); its output goes to <home>/local/server.log.
The server's /_gdlab/status answers the home it serves (so a home recognises its own cloud
without server.json) and the id it made at its start (so a lab can tell the cloud that holds
it from a later one). Nothing here writes through a symbolic link in <home>/local/."""

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
from typing import Any, NamedTuple

from gdlab.lab.state import write_private
from gdlab.local.private_files import (
    LocalCloudError,
    _open_private,
    _read_small,
    ensure_local_dir,
    local_dir,
)

DEFAULT_PORT = 4599  # not 5000 (moto's default) nor 4566 (LocalStack's)
HOST = "127.0.0.1"
START_TIMEOUT = 20.0  # a first start on a cold disk imports all of moto
STOP_TIMEOUT = 5.0


class PortInUse(LocalCloudError):
    """The port is taken by something that is not this home's local cloud."""


class NotRunning(LocalCloudError):
    """There is no local cloud to stop."""


class LocalCloud(NamedTuple):
    """What ensure_running found or started."""

    endpoint: str
    started: bool  # True: started by this call
    cloud_id: str | None  # the id the server made at its start (None: a server before ids)


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


DAMAGED: dict[str, Any] = {"pid": None, "port": None, "damaged": True}

def read_state(home: Path) -> dict[str, Any] | None:
    """server.json, checked: None when there is none; {"damaged": True, pid/port None} when it
    is unreadable, not JSON, or its pid and port are not a pid and a port number."""
    try:
        raw = _read_small(state_path(home))
    except FileNotFoundError:
        return None
    except OSError:  # a link, a directory, no permission
        return dict(DAMAGED)
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return dict(DAMAGED)
    pid, port = data.get("pid"), data.get("port")
    if not (_is_int(pid) and pid > 0 and _is_int(port) and 1 <= port <= 65535):
        return dict(DAMAGED)
    for key, kind in (("started_epoch", (int, float)), ("started_at", str), ("cloud_id", str)):
        if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
            data.pop(key, None)
    data["endpoint"] = endpoint_for(port)
    return data


def _write_state(home: Path, info: dict[str, Any]) -> None:
    write_private(state_path(home), json.dumps(info, indent=2) + "\n")


def _remove_state(home: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        state_path(home).unlink()  # unlink removes a link itself, never its target


@contextlib.contextmanager
def _lock(home: Path) -> Iterator[None]:
    """One start at a time per home, so two commands never spawn two servers."""
    ensure_local_dir(home)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock, best effort
        yield
        return
    fd = _open_private(local_dir(home) / "lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# --- recognising this home's cloud ------------------------------------------------------
def _resolved(path: Any) -> str:
    return str(Path(path).expanduser().resolve())


def serves_home(answer: dict[str, Any] | None, home: Path) -> bool:
    """Whether a /_gdlab/status answer comes from the local cloud of this home."""
    theirs = (answer or {}).get("home")
    return isinstance(theirs, str) and bool(theirs) and _resolved(theirs) == _resolved(home)


def _find_own(home: Path, ports: list[int | None]) -> tuple[int, dict[str, Any]] | None:
    """The port and status answer of this home's cloud among these ports, found by asking
    the servers there which home they serve."""
    seen: set[int] = set()
    for port in ports:
        if port is None or port in seen:
            continue
        seen.add(port)
        answer = probe(port)
        if answer and serves_home(answer, home) and _is_int(answer.get("pid")):
            return port, answer
    return None


def _uptime(started: Any) -> float | None:
    if not isinstance(started, (int, float)) or isinstance(started, bool):
        return None
    return round(time.time() - float(started), 1)


def _running(result: dict[str, Any], port: int, answer: dict[str, Any],
             started_epoch: Any) -> dict[str, Any]:
    result.update(running=True, pid=answer["pid"], port=port, endpoint=endpoint_for(port),
                  started_at=result.get("started_at") or answer.get("started_at"),
                  uptime_seconds=_uptime(started_epoch or answer.get("started_epoch")),
                  findings=answer.get("findings", 0), cloud_id=answer.get("cloud_id"),
                  home=answer.get("home"))
    return result


def status(home: Path, port: int | None = None) -> dict[str, Any]:
    """What is known about this home's local cloud. `running` is true when the process of
    server.json answers on its port, or when a server on its port, `port` or the default
    port says it serves this home (then `recovered` is true: server.json is missing,
    damaged or stale). Otherwise `stale` (its process is gone), `unresponsive` (alive but
    not answering) or `damaged` (server.json unreadable) may be set."""
    home = Path(home)
    info = read_state(home)
    result: dict[str, Any] = {"running": False, "pid": None, "port": None, "endpoint": None,
                              "log": str(log_path(home))}
    if info is not None and info.get("damaged"):
        result["damaged"] = True
    elif info is not None:
        pid, known_port = info["pid"], info["port"]
        result.update(pid=pid, port=known_port, endpoint=endpoint_for(known_port),
                      started_at=info.get("started_at"))
        answer = probe(known_port)
        if answer and answer.get("pid") == pid:
            return _running(result, known_port, answer, info.get("started_epoch"))
        if not (answer and serves_home(answer, home)):
            if pid_alive(pid):
                result["unresponsive"] = True
                return result
            result["stale"] = True
    ports = [info.get("port") if info else None, port]
    with contextlib.suppress(LocalCloudError):  # a bad GDLAB_LOCAL_PORT: not asked
        ports.append(default_port())
    found = _find_own(home, ports)
    if found is None:
        return result
    found_port, answer = found
    stale_pid = result.get("pid") if result.get("stale") else None
    result = _running({"log": result["log"], "started_at": None}, found_port, answer, None)
    result["recovered"] = True
    if info is not None and info.get("damaged"):
        result["damaged"] = True
    if stale_pid is not None:
        result["stale_pid"] = stale_pid
    return result


def _record(home: Path, current: dict[str, Any]) -> bool:
    """Write server.json again for a recovered cloud, once its pid is seen to run gdlab's
    server. False (nothing written) otherwise."""
    pid = current["pid"]
    if not _is_server_process(int(pid)):
        return False
    _write_state(home, {
        "pid": pid, "port": current["port"], "endpoint": current["endpoint"],
        "started_at": current.get("started_at"),
        "started_epoch": time.time() - (current.get("uptime_seconds") or 0),
        "cloud_id": current.get("cloud_id"),
    })
    return True


def start(home: Path, port: int | None = None) -> dict[str, Any]:
    """Start the local cloud in the background and return its status once it answers.
    Already running: its status, with started False (a recovered one gets its server.json
    written again). A stale pid file is cleaned first and reported as `stale_pid`, a
    damaged one as `damaged`."""
    home = Path(home)
    with _lock(home):
        current = status(home, port)
        if current["running"]:
            if current.get("recovered"):  # nothing removed: server.json written anew
                current.update(rewritten=_record(home, current), stale_pid=None)
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
        damaged = bool(current.get("damaged"))
        if current["pid"] is not None or stale_pid is not None or damaged:
            _remove_state(home)
        port = port or default_port()
        if port_busy(port):
            other = probe(port)
            if other:
                where = other.get("home")
                raise PortInUse(
                    f"port {port} is already used by another gdlab local cloud "
                    f"(pid {other.get('pid')}"
                    + (f", serving GDLAB_HOME {where}" if isinstance(where, str) else "")
                    + ") that this GDLAB_HOME did not start",
                    "stop that one, or set GDLAB_LOCAL_PORT to another port",
                )
            raise PortInUse(
                f"port {port} on {HOST} is already in use by another program",
                f"set GDLAB_LOCAL_PORT to a free port (e.g. GDLAB_LOCAL_PORT={port + 1})",
            )
        info = _spawn(home, port)
    result = status(home)
    result.update(started=True, stale_pid=stale_pid, damaged=damaged)
    result["uptime_seconds"] = result.get("uptime_seconds") or _uptime(info["started_epoch"])
    return result


def server_environment(port: int) -> dict[str, str]:
    """The daemon's environment: this one without any AWS credentials or profile (the local
    cloud has its own, and what it runs must never find the user's)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") or k in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    env.update(PYTHONUNBUFFERED="1", GDLAB_LOCAL_PORT=str(port),
               AWS_EC2_METADATA_DISABLED="true")
    return env


def _spawn(home: Path, port: int) -> dict[str, Any]:
    from gdlab.local.credentials import load_or_create

    ensure_local_dir(home)
    load_or_create(home, replace_damaged=True)  # no cloud serves this home: safe to renew
    log = log_path(home)
    env = server_environment(port)
    out = _open_private(log, os.O_WRONLY | os.O_APPEND)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gdlab.local.server", "--port", str(port), "--host", HOST,
             "--home", _resolved(home)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, env=env, close_fds=True,
        )
    finally:
        os.close(out)
    now = time.time()
    info = {
        "pid": proc.pid, "port": port, "endpoint": endpoint_for(port),
        "started_at": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
        "started_epoch": now,
    }
    _write_state(home, info)
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
            if isinstance(answer.get("cloud_id"), str):
                info["cloud_id"] = answer["cloud_id"]
                _write_state(home, info)
            return info
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)
    proc.kill()
    _remove_state(home)
    raise LocalCloudError(f"the local cloud did not answer on port {port} within "
                          f"{START_TIMEOUT:.0f} s", f"see {log}")


def _last_line(path: Path) -> str:
    try:
        text = _read_small(path).decode("utf-8", errors="replace")
    except OSError:
        return "no output"
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def stop(home: Path) -> dict[str, Any]:
    """Stop this home's local cloud (also one found by asking the port, when server.json is
    missing or damaged). Nothing running, or only a stale or damaged pid file: NotRunning
    (the file is removed)."""
    home = Path(home)
    with _lock(home):
        current = status(home)
        if not current["running"]:
            gone: str | None = None  # alive but not answering: stopped below
            if current.get("damaged"):
                gone = f" (removed a damaged {state_path(home)})"
            elif current["pid"] is None:
                gone = ""
            elif current.get("stale") or not _is_server_process(int(current["pid"])):
                gone = f" (removed a stale pid file for process {current['pid']}, which is gone)"
            if gone is not None:
                _remove_state(home)
                raise NotRunning(f"the local cloud is not running{gone}",
                                 "'gdlab local start' starts it")
        elif current.get("recovered") and not _is_server_process(int(current["pid"])):
            raise LocalCloudError(
                f"the local cloud on port {current['port']} serves this GDLAB_HOME but its "
                f"pid {current['pid']} is not a gdlab local cloud process here", "stop it by hand")
        pid = int(current["pid"])
        _terminate(pid)
        _remove_state(home)
        return {"stopped": True, "pid": pid, "port": current["port"],
                "uptime_seconds": current.get("uptime_seconds"),
                "cloud_id": current.get("cloud_id")}


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


def ensure_running(home: Path) -> LocalCloud:
    """This home's local cloud, started if needed: its endpoint, whether this call started
    it, and its cloud id. One found without a sound server.json gets it written again."""
    current = status(Path(home))
    if current["running"] and not current.get("recovered"):
        return LocalCloud(current["endpoint"], False, current.get("cloud_id"))
    result = start(Path(home))
    return LocalCloud(result["endpoint"], bool(result.get("started")), result.get("cloud_id"))
