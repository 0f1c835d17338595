"""Runs deployed Lambda functions for real, in a subprocess, instead of moto's Docker path.

``LambdaFunction._invoke_lambda`` and ``LambdaFunction.invoke`` (the seams every moto
invocation goes through: the Invoke API, EventBridge, SNS) run the function's zip
(``code_bytes``) with ``sys.executable``:

- the zip is extracted to a fresh temporary task root, first on ``sys.path``;
- the environment is the function's variables plus what Lambda sets (AWS_REGION,
  AWS_DEFAULT_REGION, AWS_LAMBDA_FUNCTION_NAME, ..., credentials) and ``AWS_ENDPOINT_URL``
  pointing back at the local cloud, so boto3 inside the handler talks to it;
- the function's ``Timeout`` is enforced;
- output goes to CloudWatch Logs ``/aws/lambda/<name>``, stream
  ``YYYY/MM/DD/[$LATEST]<hex>``, in Lambda's format: ``START``, the handler's lines (logging
  records as ``[LEVEL]\\t<time>\\t<request id>\\t<message>``), ``[ERROR]`` on an unhandled
  exception, ``END`` and ``REPORT`` with the measured duration and peak memory.

The Invoke API answers with the handler's JSON result, or ``X-Amz-Function-Error:
Unhandled`` and Lambda's error payload ``{errorMessage, errorType, stackTrace}``. Every
invocation is kept in memory and listed at ``/_gdlab/invocations`` (``?function=NAME``).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger("gdlab.local.lambda_runner")

MAX_KEPT = 1000
LOG_TAIL_BYTES = 4096  # what Invoke's LogType=Tail returns

_lock = threading.Lock()
_invocations: list[Invocation] = []
_endpoint: str | None = None  # set explicitly
_seen_endpoint: str | None = None  # where clients reached the server
_installed = False

# Runs inside the subprocess: the Lambda runtime's part, for Python handlers.
BOOTSTRAP = r'''
import json, logging, os, resource, sys, time, traceback

request_id = os.environ["_GDLAB_REQUEST_ID"]
result_path = os.environ.pop("_GDLAB_RESULT")
deadline = time.time() + float(os.environ["AWS_LAMBDA_FUNCTION_TIMEOUT"])


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
    aws_request_id = request_id
    log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
    log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
    identity = None
    client_context = None

    @staticmethod
    def get_remaining_time_in_millis():
        return max(0, int((deadline - time.time()) * 1000))


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


def finish(outcome):
    outcome["max_rss_kb"] = peak_kb()
    with open(result_path, "w") as out:
        json.dump(outcome, out)


def error(kind, message, trace=None):
    body = {"errorMessage": message, "errorType": kind, "requestId": request_id,
            "stackTrace": trace or []}
    line = f"[ERROR] {kind}: {message}"
    if trace:
        line += "\rTraceback (most recent call last):\r" + "".join(trace).replace("\n", "\r")
    sys.stdout.write(line.rstrip("\r") + "\n")
    sys.stdout.flush()
    finish({"error": body})


module_name, _, function_name = os.environ["_HANDLER"].rpartition(".")
module_name = module_name.replace("/", ".")
sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
try:
    import importlib
    module = importlib.import_module(module_name)
except Exception as exc:
    error("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}")
    sys.exit(0)
fn = getattr(module, function_name, None)
if fn is None:
    error("Runtime.HandlerNotFound",
          f"Handler '{function_name}' missing on module '{module_name}'")
    sys.exit(0)
event = json.loads(sys.stdin.read() or "{}")
try:
    value = fn(event, Context())
except Exception as exc:
    frames = traceback.format_tb(exc.__traceback__)[1:]
    error(type(exc).__name__, str(exc), frames)
    sys.exit(0)
sys.stdout.flush()
try:
    finish({"result": json.dumps(value)})
except TypeError as exc:
    error("Runtime.MarshalError", f"Unable to marshal response: {exc}")
'''


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


def _environment(fn: Any, task_root: str, request_id: str, stream: str,
                 result_path: str) -> dict[str, str]:
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
        # The local cloud accepts any credentials; these are the function role's stand-in.
        "AWS_ACCESS_KEY_ID": "gdlablocal",
        "AWS_SECRET_ACCESS_KEY": "gdlablocal",
        "AWS_SESSION_TOKEN": "gdlablocal",
        "_GDLAB_REQUEST_ID": request_id,
        "_GDLAB_FUNCTION_ARN": fn.function_arn,
        "_GDLAB_RESULT": result_path,
    })
    url = endpoint()
    if url:
        env["AWS_ENDPOINT_URL"] = url
    return env


def _write_logs(fn: Any, stream: str, lines: list[tuple[int, str]]) -> None:
    from moto.logs.models import logs_backends

    logs = logs_backends[fn.account_id][fn.region]
    group = f"/aws/lambda/{fn.function_name}"
    if group not in logs.groups:
        logs.create_log_group(group, {})
    logs.create_log_stream(group, stream)
    events = [{"timestamp": ts, "message": message} for ts, message in lines]
    logs.put_log_events(group, stream, events)


def invoke(fn: Any, payload: Any, trigger: str = "api") -> Invocation:
    """Run the function once, synchronously; logs and the invocation record are kept."""
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8")
    if payload is None or payload == "":
        payload = "{}"
    if not isinstance(payload, str):
        payload = json.dumps(payload)
    request_id = str(uuid.uuid4())
    today = datetime.now(timezone.utc)
    stream = f"{today:%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
    inv = Invocation(function=fn.function_name, function_arn=fn.function_arn,
                     request_id=request_id, time=_now_iso(), trigger=trigger,
                     payload_summary=_summary(payload),
                     log_group=f"/aws/lambda/{fn.function_name}", log_stream=stream)
    with _lock:
        _invocations.append(inv)
        del _invocations[:-MAX_KEPT]

    lines: list[tuple[int, str]] = []

    def emit(message: str) -> None:
        lines.append((int(time.time() * 1000), message))

    emit(f"START RequestId: {request_id} Version: $LATEST")
    started = time.monotonic()
    outcome: dict[str, Any] = {}
    timed_out = False
    with tempfile.TemporaryDirectory(prefix="gdlab-lambda-") as work:
        task_root = os.path.join(work, "task")
        result_path = os.path.join(work, "result.json")
        try:
            if not str(fn.run_time or "").startswith("python"):
                raise RuntimeError(f"the local cloud runs Python functions only, not "
                                   f"{fn.run_time}")
            with zipfile.ZipFile(io.BytesIO(fn.code_bytes)) as archive:
                archive.extractall(task_root)
            proc = subprocess.run(
                [sys.executable, "-c", BOOTSTRAP], input=payload.encode("utf-8"),
                capture_output=True, cwd=task_root, timeout=float(fn.timeout),
                env=_environment(fn, task_root, request_id, stream, result_path),
            )
            # Bytes, not text mode: universal newlines would turn "\r" into "\n".
            output = (proc.stdout + proc.stderr).decode("utf-8", "replace")
            if Path(result_path).exists():
                outcome = json.loads(Path(result_path).read_text())
            else:
                outcome = {"error": {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"RequestId: {request_id} Error: Runtime exited with "
                                    f"error: exit status {proc.returncode}",
                }}
        except subprocess.TimeoutExpired as exc:
            timed_out = True
            raw = exc.stdout or b""
            output = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            message = f"{_now_iso()} {request_id} Task timed out after {float(fn.timeout):.2f}" \
                      " seconds"
            outcome = {"error": {"errorMessage": message}}
        except (zipfile.BadZipFile, RuntimeError, OSError) as exc:
            output = ""
            outcome = {"error": {"errorMessage": str(exc),
                                 "errorType": "Runtime.InvalidEntrypoint"}}
            emit(f"[ERROR] Runtime.InvalidEntrypoint: {exc}")
    # Only "\n" ends a log event: Lambda keeps "\r" inside one (multi-line records).
    for line in output.split("\n"):
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
