"""Typed errors the core raises; the CLI turns each into one readable line and an exit code.

`describe` also turns what the core does not raise itself into such a line: botocore's
errors when an endpoint does not speak AWS (or does not answer), and the OS's errors (a full
disk, a read-only or unwritable folder), never with a body dump or a traceback."""

from __future__ import annotations

import errno
import os
import re
from typing import Any


class GdlabError(Exception):
    """A failure the user can act on. `exit_code` 1 for failures, 2 for bad usage."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class UsageError(GdlabError):
    """The command line itself is wrong (bad lab id, unknown scenario, bad e-mail...)."""

    exit_code = 2


class ConfigError(GdlabError):
    """Region, credentials or endpoint missing or unusable."""


class PreflightError(GdlabError):
    """The account cannot take the lab (quota, limits)."""


class LabNotFound(GdlabError):
    """No state file and no tagged resources for the lab."""


class StepFailed(GdlabError):
    """A setup/teardown step failed; the journal keeps what was done."""


class Timeout(GdlabError):
    """A deadline passed while waiting on the cloud."""


class Interrupted(GdlabError):
    """A signal (Ctrl-C, SIGTERM, SIGHUP) stopped the work; the journal says what is left."""

    exit_code = 130


class LabBusy(GdlabError):
    """Another gdlab command holds the lab's lock."""


class DamagedState(LabNotFound):
    """A lab's state file cannot be trusted (bad JSON, wrong types, a name that disagrees)."""

    def __init__(self, message: str, hint: str | None = None, reason: str = ""):
        super().__init__(message, hint)
        self.reason = reason or message


class LabCloudGone(GdlabError):
    """A local lab's resources lived in a local cloud that is no longer running."""


# --- turning anything into one line ------------------------------------------------------
# No line says more than this: a response body or a huge repr never reaches the user.
MAX_LINE = 600
MAX_RAW = 240
ENDPOINT_HINT = "check --endpoint-url / AWS_ENDPOINT_URL"
LOCAL_HINT = "'gdlab local status' shows the local cloud"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shown(text: Any, limit: int = 80) -> str:
    """A value as it may appear in a one-line message: control characters (a newline in an
    e-mail address, say) written as escapes, and at most `limit` characters."""
    text = str(text)
    text = _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """Whitespace runs (newlines included) become one space; at most `limit` characters."""
    return shown(" ".join(str(text).split()), limit)


def safe_url(url: str | None) -> str:
    """An endpoint as it may be shown: no user:password part, no lone trailing slash,
    bounded length."""
    if not url:
        return "the endpoint"
    url = re.sub(r"^([A-Za-z][\w+.-]*://)[^/?#]*@", r"\1", str(url))
    if re.fullmatch(r"[A-Za-z][\w+.-]*://[^/?#]+/", url):
        url = url[:-1]
    return shown(url, 120)


def endpoint_hint(url: str | None, local: bool | None = None) -> str:
    """What to check when an endpoint misbehaves: AWS's own endpoints are reached through the
    network; anything else was chosen with --endpoint-url, or is the local cloud (`local`:
    the target is local; None: guess from the host)."""
    if not url:
        return f"retry; if it goes on, check the network and {ENDPOINT_HINT.split(' ', 1)[1]}"
    host = ""
    if url:
        from urllib.parse import urlsplit

        try:
            host = urlsplit(url).hostname or ""
        except ValueError:
            host = ""
    if host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn"):
        return "check the network, proxy settings (HTTPS_PROXY) and --region"
    if local or (local is None and host in ("127.0.0.1", "localhost", "::1")):
        return f"{ENDPOINT_HINT}; {LOCAL_HINT}"
    return ENDPOINT_HINT


def _cause(exc: BaseException) -> str:
    """The low-level reason inside a botocore connection error, in plain words."""
    inner = getattr(exc, "kwargs", {}).get("error")
    text = str(inner or exc)
    if "refused" in text.lower():
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text or (
        "getaddrinfo failed" in text
    ) or "Temporary failure in name resolution" in text:
        return "its host name does not resolve"
    if "Network is unreachable" in text:
        return "the network is unreachable"
    if "reset by peer" in text:
        return "the connection was reset"
    match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    return one_line(match.group(1), 80).rstrip(". ").lower() if match else ""


def _parse_reason(exc: BaseException) -> str:
    """ResponseParserError's reason without the body it quotes ('Unable to parse response
    (syntax error: line 1, column 0), invalid XML received...: b'...')."""
    first = str(exc).split("\n", 1)[0]
    match = re.search(r"Unable to parse response \((.*)\), invalid", first)
    return one_line(match.group(1) if match else "no reason given", 80)


def describe_endpoint_error(exc: BaseException, endpoint: str | None = None,
                            within: float | None = None,
                            local: bool | None = None) -> tuple[str, str] | None:
    """(what happened, what to do) for an endpoint that did not answer as AWS does, or None
    when `exc` is not such an error. `endpoint` names it (as the user gave it; else the
    error's own URL); `within` is how long gdlab waited, when known; `local` as for
    endpoint_hint."""
    try:
        from botocore import exceptions as bce
        from botocore.parsers import ResponseParserError
    except ImportError:  # pragma: no cover
        return None
    url = endpoint or getattr(exc, "kwargs", {}).get("endpoint_url")
    where = safe_url(url)
    the = f"the endpoint {where}" if url else "the endpoint"
    hint = endpoint_hint(url, local)
    waited = f" within {within:.0f} s" if within is not None else " in time"
    if isinstance(exc, bce.ConnectTimeoutError):
        return f"cannot connect to {where}{waited}", f"is it up and reachable? {hint}"
    if isinstance(exc, bce.ReadTimeoutError):
        return f"{the} did not answer{waited}", f"is it up? {hint}"
    if isinstance(exc, bce.ConnectionClosedError):
        return f"{the} closed the connection without answering", hint
    if isinstance(exc, bce.SSLError):
        return f"TLS failed with {where}: {_cause(exc) or 'certificate not accepted'}", (
            f"{hint}; AWS_CA_BUNDLE names a custom CA"
        )
    if isinstance(exc, bce.ProxyConnectionError):
        proxy = safe_url(getattr(exc, "kwargs", {}).get("proxy_url"))
        return f"cannot connect to the proxy {proxy}", "check HTTPS_PROXY / HTTP_PROXY"
    if isinstance(exc, bce.EndpointConnectionError):
        cause = _cause(exc)
        if cause == "connection refused":
            return f"nothing listens at {where} (connection refused)", f"is it up? {hint}"
        return f"cannot reach {where}" + (f": {cause}" if cause else ""), hint
    if isinstance(exc, ResponseParserError):
        return (f"{the} did not answer as AWS does: its answer is not readable "
                f"as AWS's ({_parse_reason(exc)})", hint)
    if isinstance(exc, bce.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code") or "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if not code or code.isdigit():  # botocore found no AWS error code in the answer
            headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            kind = headers.get("content-type")
            op = getattr(exc, "operation_name", None)
            return (f"{the} did not answer as AWS does: it answered HTTP "
                    f"{status or code or '?'}" + (f" ({shown(kind, 40)})" if kind else "")
                    + (f" to {op}" if op else ""), hint)
        return None
    if isinstance(exc, (bce.HTTPClientError, bce.ConnectionError)):
        cause = _cause(exc)
        return f"the connection to {where} failed" + (f": {cause}" if cause else ""), hint
    return None


# errno -> what to do, for the OS errors a user can fix; {path} and {folder} are filled in.
_OS_ADVICE = {
    errno.ENOSPC: "free some space on the disk holding {folder} and retry",
    errno.EDQUOT: "free some space (your disk quota) under {folder} and retry",
    errno.EROFS: "make {folder} writable or set GDLAB_HOME to a writable folder",
    errno.EACCES: "make {folder} writable for this user or set GDLAB_HOME to a writable folder",
    errno.EPERM: "make {folder} writable for this user or set GDLAB_HOME to a writable folder",
    errno.ENOTDIR: "{blocker} is a file, not a folder: move it away or set GDLAB_HOME to a folder",
    errno.EISDIR: "{path} is a folder where gdlab expects a file: move it away and retry",
    errno.ENOENT: "{folder} does not exist: create it or set GDLAB_HOME to a folder that does",
    errno.EMFILE: "too many files are open: close some programs and retry",
    errno.ENAMETOOLONG: "set GDLAB_HOME to a shorter path",
    errno.ELOOP: "{path} is a symbolic link loop: remove it or set GDLAB_HOME elsewhere",
}


def describe_os_error(exc: OSError) -> str:
    """'cannot use PATH: no space left on device — free some space...' for any OSError."""
    reason = (exc.strerror or (os.strerror(exc.errno) if exc.errno else "") or
              type(exc).__name__).rstrip(".")
    reason = reason[:1].lower() + reason[1:]
    path = exc.filename
    if path is None:
        line = f"a system call failed: {reason}"
        if exc.errno == errno.ENOSPC:
            line += " — free some disk space and retry"
        return one_line(line + " (rerun with --debug for details)")
    path_text = shown(os.fsdecode(path) if isinstance(path, bytes) else path, 160)
    target = f"{path_text} -> {shown(exc.filename2, 160)}" if exc.filename2 else path_text
    folder = shown(os.path.dirname(path_text.rstrip("/")) or path_text, 160)
    advice = _OS_ADVICE.get(exc.errno or -1, "check {path} and retry (rerun with --debug)")
    blocker = _file_in_the_way(path_text) if exc.errno == errno.ENOTDIR else None
    return one_line(f"cannot use {target}: {reason} — "
                    + advice.format(path=path_text, folder=folder,
                                    blocker=shown(blocker or "a part of that path", 160)))


def _file_in_the_way(path: str) -> str | None:
    """For ENOTDIR: the closest existing ancestor of `path` that is not a folder."""
    current = os.path.abspath(path)
    if os.path.lexists(current) and not os.path.isdir(current):
        return current
    while True:
        parent = os.path.dirname(current)
        if parent == current:
            return None
        if os.path.lexists(parent):
            return parent if not os.path.isdir(parent) else None
        current = parent


def describe(exc: BaseException) -> tuple[str, int]:
    """One readable line and an exit code for any exception reaching the CLI edge."""
    if isinstance(exc, GdlabError):
        return one_line(str(exc)), exc.exit_code
    try:
        from botocore.exceptions import (
            ClientError,
            NoCredentialsError,
            NoRegionError,
        )
    except ImportError:  # pragma: no cover
        return _raw(exc), 1
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials found — set AWS_PROFILE or run 'aws configure'", 1
    if isinstance(exc, NoRegionError):
        return "no AWS region set — pass --region or set AWS_REGION", 1
    endpoint = describe_endpoint_error(exc)
    if endpoint is not None:
        what, hint = endpoint
        return one_line(f"{what} — {hint}"), 1
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        op = getattr(exc, "operation_name", "call")
        message = shown(" ".join(str(err.get("Message") or "").split()), MAX_RAW)
        return one_line(f"AWS {op} failed: {err.get('Code')}: {message}"), 1
    # botocore's timeouts are OSErrors too (through requests): they were handled above.
    if isinstance(exc, OSError):
        return describe_os_error(exc), 1
    return _raw(exc), 1


def _raw(exc: BaseException) -> str:
    """The last resort: the exception's type and a bounded, single-line text."""
    text = one_line(str(exc), MAX_RAW)
    return f"{type(exc).__name__}: {text} (rerun with --debug for details)" if text else (
        f"{type(exc).__name__} (rerun with --debug for details)")
