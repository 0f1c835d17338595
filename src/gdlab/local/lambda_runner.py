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

This module holds invoke, the invocation records, log writing, the lifecycle hooks and
install(); lambda_pool the environments per function, lambda_environment one environment's
process, and lambda_bootstrap the runtime that process runs.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import math
import os
import threading
import time
import uuid
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from gdlab.local import endpoint as served_at
from gdlab.local import lambda_checks, lambda_pool, patches
from gdlab.local.lambda_environment import Environment, EnvironmentDead, new_stream
from gdlab.local.lambda_pool import _acquire, _release, environments, retire, shutdown

# Callers import these from here, as before the runner was split into its parts.
__all__ = ["Environment", "EnvironmentDead", "Invocation", "clear", "endpoint",
           "environments", "install", "invocations", "invoke", "prewarm", "retire",
           "set_endpoint", "shutdown"]

log = logging.getLogger("gdlab.local.lambda_runner")

MAX_KEPT = 1000
LOG_TAIL_BYTES = 4096  # what Invoke's LogType=Tail returns

_lock = threading.Lock()
_invocations: list[Invocation] = []
_endpoint: str | None = None  # set explicitly


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
    """Where functions reach the local cloud (AWS_ENDPOINT_URL), ahead of what the server
    records as it binds (gdlab.local.endpoint); in-process mock_aws tests set it here."""
    global _endpoint
    _endpoint = url.rstrip("/") if url else None


def endpoint() -> str | None:
    """What set_endpoint set, else GDLAB_LOCAL_ENDPOINT, else the server this process runs
    (None in mock_aws mode: no function can call back)."""
    return _endpoint or os.environ.get("GDLAB_LOCAL_ENDPOINT") or served_at.current()


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


def prewarm(fn: Any) -> None:
    """Start fn's environment in the background, once the endpoint is known (see
    lambda_pool.prewarm)."""
    lambda_pool.prewarm(fn, endpoint())


def _run(fn: Any, request_id: str, payload: str
         ) -> tuple[str, dict[str, Any], list[str], bool, float | None]:
    """(log stream, outcome, output lines, timed out, when the handler got the request), on a
    warm environment if there is one.
    A request is written to exactly one environment; only one that never read it is retried."""
    if not str(fn.run_time or "").startswith("python"):
        raise RuntimeError(f"the local cloud runs Python functions only, not {fn.run_time}")
    for _attempt in range(3):
        env = _acquire(fn, endpoint())
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
        stream, output = new_stream(), []
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


def _latest(backend: Any, name: str) -> Any:
    with contextlib.suppress(Exception):
        return backend.get_function(name)
    return None


def _on_create(original: Any) -> Any:
    def create_function(self: Any, spec: dict[str, Any]) -> Any:
        lambda_checks.check_create(self, spec)
        created = original(self, spec)
        fn = _latest(self, spec.get("FunctionName") or "")
        if fn is not None:
            retire(fn.function_arn)  # a recreated function does not inherit environments
            prewarm(fn)
        return created

    return create_function


def _on_update(original: Any) -> Any:
    def update(self: Any, function_name: str, qualifier: Any, body: Any) -> Any:
        lambda_checks.check_update(self, body)
        answer = original(self, function_name, qualifier, body)
        fn = _latest(self, function_name)
        if fn is not None and not (isinstance(body, dict) and body.get("DryRun")):
            retire(fn.function_arn)
            prewarm(fn)
        return answer

    return update


def _on_delete(original: Any) -> Any:
    def delete_function(self: Any, function_name: str, qualifier: Any = None) -> Any:
        fn = _latest(self, function_name)
        answer = original(self, function_name, qualifier)
        if fn is not None and qualifier in (None, "$LATEST"):
            retire(fn.function_arn)
        return answer

    return delete_function


def _on_reset(original: Any) -> Any:
    def reset(self: Any) -> None:
        lambdas = getattr(self, "_lambdas", None)
        for arn in list(getattr(lambdas, "_arns", {})):
            retire(arn)
        original(self)

    return reset


def _hook_lifecycle() -> None:
    """Environments follow the function: started when it is created or changed, gone when
    it changes, is deleted, or its backend is reset."""
    from moto.awslambda.models import LambdaBackend

    for attribute, why, make in (
        ("create_function", "checks the spec; a new function gets fresh, warm environments",
         _on_create),
        ("update_function_code", "checks the body; new code retires the old environments",
         _on_update),
        ("update_function_configuration",
         "checks the body; a new configuration retires the old environments", _on_update),
        ("delete_function", "a deleted function's environments die with it", _on_delete),
        ("reset", "a backend reset retires every function's environments", _on_reset),
    ):
        patches.wrap(LambdaBackend, attribute, why, make)


def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
    """moto's event sources (EventBridge, SNS) invoke through this."""
    inv = invoke(self, event, trigger="internal")
    return inv.payload(), inv.failed, "\n".join(inv.logs)


def _invoke_api(self: Any, body: Any, request_headers: Any, response_headers: Any) -> bytes:
    """The Invoke API: RequestResponse, Event (in the background) or DryRun."""
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


def install() -> None:
    from moto.awslambda.models import LambdaFunction

    from gdlab.local.server import register_route

    # patch(), not wrap(): the seams keep this module's name (test_contracts checks it).
    patches.patch(LambdaFunction, "_invoke_lambda", _invoke_lambda,
                  "event sources run the function's zip in a warm environment")
    patches.patch(LambdaFunction, "invoke", _invoke_api,
                  "the Invoke API runs the function's zip in a warm environment")
    _hook_lifecycle()
    patches.once("routes", "GET /_gdlab/invocations", lambda: register_route(
        "invocations", lambda query: invocations(query.get("function") or None)))
