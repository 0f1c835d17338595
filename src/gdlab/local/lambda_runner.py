"""Runs deployed Lambda functions for real, in warm execution environments, instead of moto's
Docker path.

``LambdaFunction._invoke_lambda`` and ``LambdaFunction.invoke`` (the seams every moto
invocation goes through: the Invoke API, EventBridge, SNS) run the function's zip
(``code_bytes``) as Lambda does, in an execution environment: a long-lived ``sys.executable``
process per (function ARN, code SHA-256, environment, handler, runtime, timeout, memory,
endpoint) that imports the handler once (init) and then serves one invocation at a time, so
module state such as boto3 clients persists between invocations:

- the zip is extracted to the environment's task root, first on ``sys.path``;
- the environment is the function's variables plus what Lambda sets (AWS_REGION,
  AWS_DEFAULT_REGION, AWS_LAMBDA_FUNCTION_NAME, ..., credentials) and ``AWS_ENDPOINT_URL``
  pointing back at the local cloud, so boto3 inside the handler talks to it;
- an invocation arriving while every environment is busy gets a new one (Lambda scales out
  rather than queueing); up to MAX_IDLE stay warm afterwards;
- the function's ``Timeout`` is enforced per invocation; a timed-out environment is killed
  and the next invocation starts a fresh one; a failed init is reported on each invocation;
- creating or updating a function starts its environment in the background (once the
  endpoint is known); update, delete and a backend reset retire the old ones; all die with
  the local cloud (atexit, and each environment exits when its parent is gone);
- output goes to CloudWatch Logs ``/aws/lambda/<name>``, one stream per environment
  ``YYYY/MM/DD/[$LATEST]<hex>``, in Lambda's format: ``START``, the handler's lines (logging
  records as ``[LEVEL]\\t<time>\\t<request id>\\t<message>``), ``[ERROR]`` on an unhandled
  exception, ``END`` and ``REPORT`` with the handler's duration and the peak memory.

The Invoke API answers with the handler's JSON result, or ``X-Amz-Function-Error:
Unhandled`` and Lambda's error payload ``{errorMessage, errorType, stackTrace}``. Every
invocation is kept in memory and listed at ``/_gdlab/invocations`` (``?function=NAME``).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import functools
import hashlib
import io
import json
import logging
import math
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
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from gdlab.local import lambda_checks, lambda_session
from gdlab.local.lambda_session import RoleSession

log = logging.getLogger("gdlab.local.lambda_runner")

MAX_KEPT = 1000
LOG_TAIL_BYTES = 4096  # what Invoke's LogType=Tail returns

_lock = threading.Lock()
_invocations: list[Invocation] = []
_endpoint: str | None = None  # set explicitly
_seen_endpoint: str | None = None  # where clients reached the server
_installed = False

# Runs inside each execution environment: the Lambda runtime's part, for Python handlers.
# Init imports the handler once; then one request per line on a private copy of stdin, each
# answered by a line starting with the sentinel on a private copy of stdout (after the
# handler's own output, which shares the pipe).
RUNTIME = r"""
import json, logging, os, resource, sys, threading, time, traceback

sentinel = os.environ.pop("_GDLAB_SENTINEL").encode()
requests = os.fdopen(os.dup(0), "rb")
answers = os.fdopen(os.dup(1), "wb")
os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # the protocol is not the handler's to read
parent = os.getppid()
request_id = ""
deadline = 0.0


def watch_parent():
    # The local cloud died without killing us (SIGKILL): do not outlive it.
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


threading.Thread(target=watch_parent, daemon=True).start()


class LambdaFormatter(logging.Formatter):
    converter = time.gmtime

    def format(self, record):
        record.aws_request_id = request_id
        return super().format(record).replace("\n", "\r")


handler = logging.StreamHandler(sys.stdout)
handler.setFormatter(LambdaFormatter(
    "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
    "%Y-%m-%dT%H:%M:%S"))
root = logging.getLogger()
root.handlers = [handler]
root.setLevel(logging.WARNING)


class Context:
    function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
    function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
    invoked_function_arn = os.environ["_GDLAB_FUNCTION_ARN"]
    memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
    log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
    log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
    identity = None
    client_context = None

    def __init__(self, aws_request_id, deadline):
        self.aws_request_id = aws_request_id
        self._deadline = deadline

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.time()) * 1000))


def peak_kb():
    # VmHWM starts afresh at exec; ru_maxrss can carry the forking parent's size.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def answer(body):
    sys.stdout.flush()
    sys.stderr.flush()
    answers.write(b"\n" + sentinel + b" " + json.dumps(body).encode() + b"\n")
    answers.flush()


def finish(outcome):
    outcome["max_rss_kb"] = peak_kb()
    answer(outcome)


def error(kind, message, trace=None):
    body = {"errorMessage": message, "errorType": kind, "requestId": request_id,
            "stackTrace": trace or []}
    line = f"[ERROR] {kind}: {message}"
    if trace:
        line += "\rTraceback (most recent call last):\r" + "".join(trace).replace("\n", "\r")
    sys.stdout.write(line.rstrip("\r") + "\n")
    return {"error": body}


module_name, _, function_name = os.environ["_HANDLER"].rpartition(".")
module_name = module_name.replace("/", ".")
sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
init_error = None
fn = None
try:
    import importlib
    module = importlib.import_module(module_name)
except Exception as exc:
    init_error = ("Runtime.ImportModuleError",
                  f"Unable to import module '{module_name}': {exc}")
else:
    fn = getattr(module, function_name, None)
    if fn is None:
        init_error = ("Runtime.HandlerNotFound",
                      f"Handler '{function_name}' missing on module '{module_name}'")
answer("ready")

for raw in requests:
    request = json.loads(raw)
    request_id, deadline = request["id"], request["deadline"]
    if init_error:
        # As Lambda does: the failed init is reported on the invocation, the environment
        # is discarded and the next invocation tries the init again.
        outcome = error(*init_error)
        outcome["exit"] = True
        finish(outcome)
        break
    try:
        event = json.loads(request["payload"] or "{}")
        value = fn(event, Context(request_id, deadline))
    except Exception as exc:
        frames = traceback.format_tb(exc.__traceback__)[1:]
        finish(error(type(exc).__name__, str(exc), frames))
        continue
    try:
        finish({"result": json.dumps(value)})
    except TypeError as exc:
        finish(error("Runtime.MarshalError", f"Unable to marshal response: {exc}"))
"""


@dataclass
class Invocation:
    function: str
    function_arn: str
    request_id: str
    time: str
    trigger: str
    payload_summary: str
    status: str = "running"  # Success | Error | Timeout
    result: Any = None
    error: dict[str, Any] | None = None
    duration_ms: float = 0.0
    max_memory_mb: int = 0
    log_group: str = ""
    log_stream: str = ""
    logs: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status != "Success"

    def payload(self) -> str:
        """What the Invoke API returns as the response payload."""
        if self.error is not None:
            return json.dumps(self.error)
        return self.result if isinstance(self.result, str) else json.dumps(self.result)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if isinstance(self.result, str):
            with contextlib.suppress(ValueError):
                data["result"] = json.loads(self.result)
        return data


def set_endpoint(url: str | None) -> None:
    """Where functions reach the local cloud (AWS_ENDPOINT_URL). The server records the
    address its clients use; in-process mock_aws tests set it here."""
    global _endpoint
    _endpoint = url.rstrip("/") if url else None


def endpoint() -> str | None:
    return _endpoint or os.environ.get("GDLAB_LOCAL_ENDPOINT") or _seen_endpoint


def invocations(function: str | None = None) -> list[dict[str, Any]]:
    with _lock:
        return [i.to_dict() for i in _invocations if function in (None, i.function)]


def clear() -> None:
    with _lock:
        _invocations.clear()


def _summary(payload: str) -> str:
    return payload if len(payload) <= 200 else payload[:197] + "..."


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


def _new_stream() -> str:
    return f"{datetime.now(timezone.utc):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"


_logs_lock = threading.Lock()


def _write_logs(fn: Any, stream: str, lines: list[tuple[int, str]]) -> None:
    from moto.logs.models import logs_backends

    from gdlab.local.policy import role_allows

    logs = logs_backends[fn.account_id][fn.region]
    group = f"/aws/lambda/{fn.function_name}"
    # Invocations end on several threads; moto's logs backend is not thread-safe.
    with _logs_lock:
        if group not in logs.groups:
            # Lambda creates a missing group only for a role allowed logs:CreateLogGroup.
            # gdlab's responder is not (setup makes the group), so once teardown deleted it
            # an invocation still running writes nowhere, as on AWS: the group stays gone.
            if not role_allows(fn.account_id, fn.role, "logs:CreateLogGroup"):
                log.info("log group %s does not exist: %d line(s) of %s dropped", group,
                         len(lines), fn.function_name)
                return
            logs.create_log_group(group, {})
        if stream not in logs.groups[group].streams:
            logs.create_log_stream(group, stream)
        events = [{"timestamp": ts, "message": message} for ts, message in lines]
        logs.put_log_events(group, stream, events)


# --- execution environments -------------------------------------------------------------
INIT_TIMEOUT = 10.0  # Lambda's limit on the init phase
MAX_IDLE = 4  # warm environments kept per function once a burst is over
DRAIN_SECONDS = 0.5  # how long a killed environment's last output is awaited

_pool_lock = threading.Condition()  # notified when a pre-warmed environment is ready
_pools: dict[str, _Pool] = {}  # by function ARN
_generations: dict[str, int] = {}  # bumped by update/delete: older environments retire
_environments: set[Environment] = set()  # every live one, for the exit sweep


class EnvironmentDead(Exception):
    """The environment was gone before it read the request: safe to run it elsewhere."""


class Environment:
    """One long-lived runtime process for one function configuration, serving one invocation
    at a time; its log stream is its own, as in Lambda."""

    def __init__(self, fn: Any, key: tuple[Any, ...], url: str | None):
        self.key = key
        self.arn = fn.function_arn
        self.stream = _new_stream()
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
                [sys.executable, "-c", RUNTIME], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=task_root, env=env,
                start_new_session=True,
            )
        except BaseException:
            shutil.rmtree(self._work, ignore_errors=True)
            raise
        with _pool_lock:
            _environments.add(self)
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
        with _pool_lock:
            _environments.discard(self)
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


@dataclass
class _Pool:
    key: tuple[Any, ...]
    idle: list[Environment] = field(default_factory=list)
    busy: set[Environment] = field(default_factory=set)
    starting: int = 0  # pre-warms under way: an invocation waits for one, not spawns

    def retire(self) -> list[Environment]:
        """Idle environments to kill now; busy ones end when their invocation does."""
        for env in self.busy:
            env.retired = True
        doomed, self.idle = self.idle, []
        return doomed


def _key(fn: Any, url: str | None) -> tuple[Any, ...]:
    # Whatever the process was started with; the endpoint is baked into its environment.
    code = hashlib.sha256(fn.code_bytes or b"").hexdigest()
    variables = json.dumps(fn.environment_vars or {}, sort_keys=True, default=str)
    return (fn.function_arn, _generations.get(fn.function_arn, 0), code, variables,
            fn.handler, str(fn.run_time), fn.timeout, fn.memory_size, url)


def _kill_all(envs: list[Environment]) -> None:
    for env in envs:
        env.kill()


def _acquire(fn: Any) -> Environment:
    """A warm idle environment for fn's current configuration, or a new one (scale out)."""
    url = endpoint()
    key = _key(fn, url)
    doomed: list[Environment] = []
    try:
        with _pool_lock:
            pool = _pools.get(fn.function_arn)
            if pool is None or pool.key != key:
                if pool is not None:
                    doomed += pool.retire()
                pool = _pools[fn.function_arn] = _Pool(key)
            while True:
                while pool.idle:
                    env = pool.idle.pop()  # the most recently used is the warmest
                    if env.alive():
                        pool.busy.add(env)
                        return env
                    doomed.append(env)
                if not pool.starting or _pools.get(fn.function_arn) is not pool:
                    break
                _pool_lock.wait(INIT_TIMEOUT)
        env = Environment(fn, key, url)
        with _pool_lock:
            if _pools.get(fn.function_arn) is pool:
                pool.busy.add(env)
            else:
                env.retired = True  # the function changed meanwhile: run once, then go
        return env
    finally:
        _kill_all(doomed)


def _release(env: Environment) -> None:
    with _pool_lock:
        pool = _pools.get(env.arn)
        if pool is not None:
            pool.busy.discard(env)
        keep = (pool is not None and pool.key == env.key and not env.retired
                and env.alive() and len(pool.idle) < MAX_IDLE)
        if keep:
            pool.idle.append(env)  # type: ignore[union-attr]
    if not keep:
        env.kill()


def prewarm(fn: Any) -> None:
    """Start fn's environment in the background, so the first event finds it initialised.
    Only once the endpoint is known: an environment cannot learn it later."""
    url = endpoint()
    if url is None or not str(fn.run_time or "").startswith("python"):
        return
    key = _key(fn, url)
    doomed: list[Environment] = []
    with _pool_lock:
        pool = _pools.get(fn.function_arn)
        if pool is not None and pool.key == key and (pool.idle or pool.busy or pool.starting):
            return
        if pool is not None:
            doomed = pool.retire()
        pool = _pools[fn.function_arn] = _Pool(key)
        # Counted before the thread runs, so an invocation right behind waits for this one.
        pool.starting += 1
    _kill_all(doomed)

    def start() -> None:
        env = None
        try:
            env = Environment(fn, key, url)
        except Exception:
            log.exception("could not start an environment for %s", fn.function_name)
        with _pool_lock:
            pool.starting -= 1
            keep = env is not None and _pools.get(fn.function_arn) is pool
            if keep:
                pool.idle.append(env)  # type: ignore[arg-type]
            _pool_lock.notify_all()
        if env is not None and not keep:
            env.kill()

    threading.Thread(target=start, name=f"gdlab-lambda-prewarm-{fn.function_name}",
                     daemon=True).start()


def retire(function_arn: str) -> None:
    """The function was updated or deleted: its environments go (busy ones when done)."""
    with _pool_lock:
        _generations[function_arn] = _generations.get(function_arn, 0) + 1
        pool = _pools.pop(function_arn, None)
        doomed = pool.retire() if pool is not None else []
    _kill_all(doomed)


def environments(function_arn: str | None = None) -> list[Environment]:
    """The live environments (idle and busy), for one function or all."""
    with _pool_lock:
        return [e for e in _environments if function_arn in (None, e.arn)]


def shutdown() -> None:
    """Kill every environment: the local cloud is going away."""
    with _pool_lock:
        doomed = list(_environments)
        for pool in _pools.values():
            pool.retire()
        _pools.clear()
    _kill_all(doomed)


atexit.register(shutdown)


def _run(fn: Any, request_id: str, payload: str
         ) -> tuple[str, dict[str, Any], list[str], bool, float | None]:
    """(log stream, outcome, output lines, timed out, when the handler got the request), on a
    warm environment if there is one.
    A request is written to exactly one environment; only one that never read it is retried."""
    if not str(fn.run_time or "").startswith("python"):
        raise RuntimeError(f"the local cloud runs Python functions only, not {fn.run_time}")
    for _attempt in range(3):
        env = _acquire(fn)
        try:
            outcome, output, timed_out = env.run(request_id, payload, float(fn.timeout))
        except EnvironmentDead:
            _release(env)
            continue
        _release(env)
        return env.stream, outcome, output, timed_out, env.sent_at
    raise RuntimeError("the function's execution environment keeps exiting before it starts")


def invoke(fn: Any, payload: Any, trigger: str = "api") -> Invocation:
    """Run the function once, synchronously; logs and the invocation record are kept."""
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8")
    if payload is None or payload == "":
        payload = "{}"
    if not isinstance(payload, str):
        payload = json.dumps(payload)
    request_id = str(uuid.uuid4())
    inv = Invocation(function=fn.function_name, function_arn=fn.function_arn,
                     request_id=request_id, time=_now_iso(), trigger=trigger,
                     payload_summary=_summary(payload),
                     log_group=f"/aws/lambda/{fn.function_name}")
    with _lock:
        _invocations.append(inv)
        del _invocations[:-MAX_KEPT]

    lines: list[tuple[int, str]] = []

    def emit(message: str) -> None:
        lines.append((int(time.time() * 1000), message))

    emit(f"START RequestId: {request_id} Version: $LATEST")
    started = time.monotonic()
    timed_out = False
    try:
        stream, outcome, output, timed_out, sent_at = _run(fn, request_id, payload)
        # Lambda's Duration is the handler's; a cold start's init is not in it.
        started = sent_at or started
    except (zipfile.BadZipFile, RuntimeError, OSError) as exc:
        stream, output = _new_stream(), []
        outcome = {"error": {"errorMessage": str(exc),
                             "errorType": "Runtime.InvalidEntrypoint"}}
        emit(f"[ERROR] Runtime.InvalidEntrypoint: {exc}")
    if timed_out:
        message = f"{_now_iso()} {request_id} Task timed out after {float(fn.timeout):.2f}" \
                  " seconds"
        outcome = {"error": {"errorMessage": message}}
    inv.log_stream = stream
    # Only "\n" ends a log event: Lambda keeps "\r" inside one (multi-line records).
    for line in output:
        if line:
            emit(line)
    if timed_out:
        emit(outcome["error"]["errorMessage"])
    duration = (time.monotonic() - started) * 1000
    memory = max(1, math.ceil(outcome.get("max_rss_kb", 0) / 1024))
    emit(f"END RequestId: {request_id}")
    report = (f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\t"
              f"Billed Duration: {math.ceil(duration)} ms\tMemory Size: {fn.memory_size} MB\t"
              f"Max Memory Used: {memory} MB\t")
    if timed_out:
        report += "Status: timeout"
    emit(report)

    inv.duration_ms = round(duration, 2)
    inv.max_memory_mb = memory
    inv.logs = [message for _, message in lines]
    if "error" in outcome:
        inv.error = {k: v for k, v in outcome["error"].items() if k != "requestId"}
        inv.status = "Timeout" if timed_out else "Error"
    else:
        inv.result = outcome.get("result", "null")
        inv.status = "Success"
    try:
        _write_logs(fn, stream, lines)
    except Exception:
        log.exception("could not write the logs of %s", fn.function_name)
    return inv


def _header(headers: Any, name: str, default: str | None = None) -> str | None:
    if headers is None:
        return default
    for key in (name, name.lower(), name.title()):
        value = headers.get(key)
        if value is not None:
            return value
    return default


def _hook_lifecycle() -> None:
    """Environments follow the function: started when it is created or changed, gone when
    it changes, is deleted, or its backend is reset."""
    from moto.awslambda.models import LambdaBackend

    def latest(backend: Any, name: str) -> Any:
        with contextlib.suppress(Exception):
            return backend.get_function(name)
        return None

    original_create = LambdaBackend.create_function

    @functools.wraps(original_create)
    def create_function(self: Any, spec: dict[str, Any]) -> Any:
        lambda_checks.check_create(self, spec)
        created = original_create(self, spec)
        fn = latest(self, spec.get("FunctionName") or "")
        if fn is not None:
            retire(fn.function_arn)  # a recreated function does not inherit environments
            prewarm(fn)
        return created

    def updater(original: Any) -> Any:
        @functools.wraps(original)
        def update(self: Any, function_name: str, qualifier: Any, body: Any) -> Any:
            lambda_checks.check_update(self, body)
            answer = original(self, function_name, qualifier, body)
            fn = latest(self, function_name)
            if fn is not None and not (isinstance(body, dict) and body.get("DryRun")):
                retire(fn.function_arn)
                prewarm(fn)
            return answer

        return update

    original_delete = LambdaBackend.delete_function

    @functools.wraps(original_delete)
    def delete_function(self: Any, function_name: str, qualifier: Any = None) -> Any:
        fn = latest(self, function_name)
        answer = original_delete(self, function_name, qualifier)
        if fn is not None and qualifier in (None, "$LATEST"):
            retire(fn.function_arn)
        return answer

    original_reset = LambdaBackend.reset

    @functools.wraps(original_reset)
    def reset(self: Any) -> None:
        lambdas = getattr(self, "_lambdas", None)
        for arn in list(getattr(lambdas, "_arns", {})):
            retire(arn)
        original_reset(self)

    LambdaBackend.create_function = create_function  # type: ignore[method-assign]
    LambdaBackend.update_function_code = updater(  # type: ignore[method-assign]
        LambdaBackend.update_function_code)
    LambdaBackend.update_function_configuration = updater(  # type: ignore[method-assign]
        LambdaBackend.update_function_configuration)
    LambdaBackend.delete_function = delete_function  # type: ignore[method-assign]
    LambdaBackend.reset = reset  # type: ignore[method-assign]


def install() -> None:
    global _installed
    if _installed:
        return
    from moto.awslambda.models import LambdaFunction
    from moto.core.responses import BaseResponse

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        inv = invoke(self, event, trigger="internal")
        return inv.payload(), inv.failed, "\n".join(inv.logs)

    def invoke_api(self: Any, body: Any, request_headers: Any,
                   response_headers: Any) -> bytes:
        kind = _header(request_headers, "X-Amz-Invocation-Type", "RequestResponse")
        if kind == "DryRun":
            return b""
        if kind == "Event":
            threading.Thread(target=invoke, args=(self, body), kwargs={"trigger": "api-async"},
                             name=f"gdlab-lambda-{self.function_name}", daemon=True).start()
            return b""
        inv = invoke(self, body, trigger="api")
        if inv.failed:
            response_headers["x-amz-function-error"] = "Unhandled"
        response_headers["x-amz-executed-version"] = "$LATEST"
        tail = "\n".join(inv.logs).encode("utf-8")[-LOG_TAIL_BYTES:]
        response_headers["x-amz-log-result"] = base64.b64encode(tail).decode("ascii")
        return inv.payload().encode("utf-8")

    LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]
    LambdaFunction.invoke = invoke_api  # type: ignore[method-assign]
    _hook_lifecycle()

    # The address clients reach the server at is where functions must call back.
    original_setup = BaseResponse.setup_class

    def setup_class(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        global _seen_endpoint
        host_url = getattr(request, "host_url", None) if hasattr(request, "environ") else None
        # In-process mock_aws requests carry AWS's own hostnames; only a server has a host.
        if host_url and ".amazonaws.com" not in host_url:
            _seen_endpoint = host_url.rstrip("/")
        return original_setup(self, request, *args, **kwargs)

    BaseResponse.setup_class = setup_class  # type: ignore[method-assign]

    from gdlab.local.server import register_route

    register_route("invocations", lambda query: invocations(query.get("function") or None))
    _installed = True
