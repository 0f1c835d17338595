"""Runs inside each execution environment: the Lambda runtime's part, for Python handlers.

Started by lambda_environment as ``[sys.executable, <this file>]`` with the function's own
environment only (PATH, PYTHONPATH = the task root, Lambda's variables, the role session), so
it imports nothing but the standard library: no gdlab, no moto, no boto3 unless the handler
does. Init imports the handler once; then one request per line on a private copy of stdin,
each answered by a line starting with the sentinel on a private copy of stdout (after the
handler's own output, which shares the pipe).
"""

import contextlib
import importlib
import json
import logging
import os
import resource
import sys
import threading
import time
import traceback

# The request being served, for the log records' request id column.
request_id = ""


def watch_parent(parent: int) -> None:
    # The local cloud died without killing us (SIGKILL): do not outlive it.
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


class LambdaFormatter(logging.Formatter):
    converter = time.gmtime

    def format(self, record):
        record.aws_request_id = request_id
        return super().format(record).replace("\n", "\r")


class Context:
    """The handler's context object, as Lambda's Python runtime passes it.
    https://docs.aws.amazon.com/lambda/latest/dg/python-context.html"""

    identity = None
    client_context = None

    def __init__(self, aws_request_id, deadline):
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        self.invoked_function_arn = os.environ["_GDLAB_FUNCTION_ARN"]
        self.memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.aws_request_id = aws_request_id
        self._deadline = deadline

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.time()) * 1000))


def peak_kb():
    # VmHWM starts afresh at exec; ru_maxrss can carry the forking parent's size.
    # No /proc (not Linux): fall back to ru_maxrss.
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def error(kind, message, trace=None):
    body = {"errorMessage": message, "errorType": kind, "requestId": request_id,
            "stackTrace": trace or []}
    line = f"[ERROR] {kind}: {message}"
    if trace:
        line += "\rTraceback (most recent call last):\r" + "".join(trace).replace("\n", "\r")
    sys.stdout.write(line.rstrip("\r") + "\n")
    return {"error": body}


def init():
    """(handler, None) or (None, (errorType, errorMessage)) as Lambda reports a failed init."""
    module_name, _, function_name = os.environ["_HANDLER"].rpartition(".")
    module_name = module_name.replace("/", ".")
    sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        return None, ("Runtime.ImportModuleError",
                      f"Unable to import module '{module_name}': {exc}")
    fn = getattr(module, function_name, None)
    if fn is None:
        return None, ("Runtime.HandlerNotFound",
                      f"Handler '{function_name}' missing on module '{module_name}'")
    return fn, None


def main():
    global request_id
    # Started as a file, Python put this file's directory first on sys.path: the handler
    # must not find gdlab's modules there. The working directory (the task root) goes
    # there instead, as `python -c` has it.
    if sys.path and sys.path[0] == os.path.dirname(os.path.realpath(__file__)):
        sys.path[0] = ""
    sentinel = os.environ.pop("_GDLAB_SENTINEL").encode()
    requests = os.fdopen(os.dup(0), "rb")
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # the protocol is not the handler's to read
    threading.Thread(target=watch_parent, args=(os.getppid(),), daemon=True).start()

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(LambdaFormatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)

    def answer(body):
        sys.stdout.flush()
        sys.stderr.flush()
        answers.write(b"\n" + sentinel + b" " + json.dumps(body).encode() + b"\n")
        answers.flush()

    def finish(outcome):
        outcome["max_rss_kb"] = peak_kb()
        answer(outcome)

    fn, init_error = init()
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
            # The first frame is this loop's, not the handler's.
            frames = traceback.format_tb(exc.__traceback__)[1:]
            finish(error(type(exc).__name__, str(exc), frames))
            continue
        try:
            finish({"result": json.dumps(value)})
        except TypeError as exc:
            finish(error("Runtime.MarshalError", f"Unable to marshal response: {exc}"))


if __name__ == "__main__":
    main()
