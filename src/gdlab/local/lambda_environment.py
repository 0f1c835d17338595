"""One execution environment of the local Lambda runner: a long-lived runtime process
(lambda_bootstrap.py) for one function configuration, its reader thread, and one invocation
at a time written to it (run), awaited with the function's timeout, and killed or drained.

The process gets the function's own environment (``_environment``) and nothing of the local
cloud's but PATH; it dies with its own session (a kill takes whatever the handler started).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from datetime import datetime, timezone
from typing import Any

from gdlab.local import lambda_session
from gdlab.local.lambda_session import RoleSession

INIT_TIMEOUT = 10.0  # Lambda's limit on the init phase
DRAIN_SECONDS = 0.5  # how long a killed environment's last output is awaited

# The runtime each environment runs, as a file: started by path, it needs nothing of gdlab
# importable in the function's minimal environment.
BOOTSTRAP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lambda_bootstrap.py")

# Shared with lambda_pool, whose pools it guards (notified when a pre-warmed environment is
# ready); live is every environment not yet killed, for the exit sweep.
lock = threading.Condition()
live: set[Environment] = set()


def _environment(fn: Any, task_root: str, stream: str, url: str | None,
                 sentinel: str, session: RoleSession) -> dict[str, str]:
    """The function's own variables, Lambda's, and its role's session: nothing of the
    local cloud's own environment but PATH."""
    env = {k: str(v) for k, v in (fn.environment_vars or {}).items()}
    region = fn.region
    env.update({
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PYTHONPATH": task_root,
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "LAMBDA_TASK_ROOT": task_root,
        "_HANDLER": fn.handler or "",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.run_time}",
        "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(fn.timeout),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": stream,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        **session.environment(),
        "_GDLAB_FUNCTION_ARN": fn.function_arn,
        "_GDLAB_SENTINEL": sentinel,
    })
    if url:
        env["AWS_ENDPOINT_URL"] = url
    return env


def new_stream() -> str:
    return f"{datetime.now(timezone.utc):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"


class EnvironmentDead(Exception):
    """The environment was gone before it read the request: safe to run it elsewhere."""


class Environment:
    """One long-lived runtime process for one function configuration, serving one invocation
    at a time; its log stream is its own, as in Lambda."""

    def __init__(self, fn: Any, key: tuple[Any, ...], url: str | None):
        self.key = key
        self.arn = fn.function_arn
        self.stream = new_stream()
        self.retired = False
        self.invocations = 0
        self.sent_at: float | None = None  # when the current request was written
        self._sentinel = uuid.uuid4().hex.encode()
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._ready = threading.Event()
        self._eof = False
        self._work = tempfile.mkdtemp(prefix="gdlab-lambda-")
        try:
            task_root = os.path.join(self._work, "task")
            with zipfile.ZipFile(io.BytesIO(fn.code_bytes)) as archive:
                archive.extractall(task_root)
            self.session = lambda_session.issue(fn)
            env = _environment(fn, task_root, self.stream, url, self._sentinel.decode(),
                               self.session)
            # Own session: a kill takes whatever the handler started with it.
            self.proc = subprocess.Popen(
                [sys.executable, BOOTSTRAP], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=task_root, env=env,
                start_new_session=True,
            )
        except BaseException:
            shutil.rmtree(self._work, ignore_errors=True)
            raise
        with lock:
            live.add(self)
        threading.Thread(target=self._read, name=f"gdlab-lambda-env-{self.proc.pid}",
                         daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        # An environment whose role session is about to end is not reused (see lambda_session).
        return not self._eof and self.proc.poll() is None and not self.session.renew_due()

    def _read(self) -> None:
        ready = self._sentinel + b' "ready"'
        assert self.proc.stdout is not None
        for line in iter(self.proc.stdout.readline, b""):
            if line.rstrip(b"\n") == ready:
                self._ready.set()
            else:
                self._lines.put(line)
        self._eof = True
        self._lines.put(None)
        self._ready.set()

    def run(self, request_id: str, payload: str, timeout: float
            ) -> tuple[dict[str, Any], list[str], bool]:
        """(outcome, output lines, timed out). Raises EnvironmentDead if nothing ran."""
        output: list[str] = []
        self.sent_at = None
        if not self._ready.wait(INIT_TIMEOUT):
            self.kill()
            return {}, self._drain(output), True
        if not self.alive():
            if self.invocations == 0:
                # Init itself ended the process: that is this invocation's error.
                return self._exited(request_id), self._drain(output), False
            raise EnvironmentDead()
        self.invocations += 1
        request = {"id": request_id, "payload": payload, "deadline": time.time() + timeout}
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(request).encode("utf-8") + b"\n")
            self.proc.stdin.flush()
        except OSError:
            self.kill()
            raise EnvironmentDead() from None
        self.sent_at = time.monotonic()
        until = self.sent_at + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, until - time.monotonic()))
            except queue.Empty:
                self.kill()  # AWS discards a timed-out environment too
                return {}, self._drain(output), True
            if line is None:
                return self._exited(request_id), output, False
            if line.startswith(self._sentinel + b" "):
                outcome = json.loads(line[len(self._sentinel) + 1:])
                if outcome.pop("exit", False):
                    self.kill()
                return outcome, output, False
            # Bytes, not text mode: universal newlines would turn "\r" into "\n".
            output.append(line.decode("utf-8", "replace").rstrip("\n"))

    def _exited(self, request_id: str) -> dict[str, Any]:
        code = self.proc.wait()
        self.kill()
        return {"error": {
            "errorType": "Runtime.ExitError",
            "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: "
                            f"exit status {code}",
        }}

    def _drain(self, output: list[str]) -> list[str]:
        """What a dead or killed environment still had in the pipe."""
        until = time.monotonic() + DRAIN_SECONDS
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, until - time.monotonic()))
            except queue.Empty:
                return output
            if line is None:
                return output
            if not line.startswith(self._sentinel):
                output.append(line.decode("utf-8", "replace").rstrip("\n"))

    def kill(self) -> None:
        with lock:
            live.discard(self)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()
        shutil.rmtree(self._work, ignore_errors=True)
