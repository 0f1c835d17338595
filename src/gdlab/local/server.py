"""The local cloud's HTTP server: moto's WSGI app with gdlab's extensions installed, behind a
thin wrapper that answers gdlab's own routes under /_gdlab/ and turns every emulator gap
into a 4xx with a clear message (botocore retries 500s, which would duplicate deliveries).

Run it in the foreground with `python -m gdlab.local.server --port N`, in the background
through gdlab.local.daemon, or inside this process with InProcessServer."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from gdlab.local import auth
from gdlab.local import endpoint as served_at
from gdlab.local.credentials import LocalCredentials
from gdlab.local.credentials import generate as generate_credentials

log = logging.getLogger("gdlab.local.server")

PREFIX = "/_gdlab/"
# Services whose errors botocore reads as XML even without a form body (rest-xml protocol).
XML_SERVICES = {"s3", "route53", "cloudfront"}

_routes: dict[str, Callable[[dict[str, Any]], Any]] = {}
# Answered unsigned: how a home finds its own cloud (it tells no lab's data).
OPEN_ROUTES = {"status"}
# cloud_id: made at each start, so a lab can tell the cloud that holds it from a later one;
# home: the resolved GDLAB_HOME a daemon serves (None in-process), how a home recognises
# its own cloud when its server.json is lost.
_state: dict[str, Any] = {"started_at": None, "started_epoch": None, "cloud_id": None,
                          "home": None}


def new_cloud_id() -> str:
    return "lc-" + secrets.token_hex(4)


def register_route(name: str, fn: Callable[[dict[str, Any]], Any]) -> None:
    """Answer GET /_gdlab/<name> with fn(query) as JSON. Query values are strings (a list when
    the parameter is repeated)."""
    if not name or "/" in name:
        raise ValueError(f"invalid route name {name!r}")
    _routes[name] = fn


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def finding_count() -> int:
    if not _state.get("ready"):
        return 0  # moto is still loading: nothing can have been found yet
    from gdlab.local import guardduty

    return sum(b.finding_count() for b in guardduty.all_backends())


def _status(query: dict[str, Any]) -> dict[str, Any]:
    return {
        "running": True,
        "started_at": _state["started_at"],
        "started_epoch": _state["started_epoch"],
        "pid": os.getpid(),
        "cloud_id": _state["cloud_id"],
        "home": _state["home"],
        "findings": finding_count(),
        "ready": bool(_state.get("ready")),
    }


register_route("status", _status)


class RouteError(Exception):
    """A /_gdlab/ route refuses the request: 400 with the message."""


class GdlabApp:
    """WSGI wrapper around moto's dispatcher. Every AWS request is authenticated first
    (auth.py): the caller is known to moto's handlers through auth.current_caller."""

    def __init__(self, inner: Any = None, credentials: LocalCredentials | None = None):
        self.inner = inner
        # The local administrator's key; without one (an app built by hand) a fresh key
        # that nobody holds: every request is refused rather than answered.
        self.credentials = credentials or generate_credentials()
        self.load_error: str | None = None
        self.ready = threading.Event()
        if inner is not None:
            self._set_ready()

    def _set_ready(self) -> None:
        _state["ready"] = True
        self.ready.set()

    def load(self) -> None:
        """Import moto and install the extensions (about a second); requests wait for it."""
        try:
            self.inner = _build_inner()
        except Exception as exc:  # noqa: BLE001 - reported on every request instead
            log.error("the local cloud failed to load:\n%s", traceback.format_exc())
            self.load_error = f"{type(exc).__name__}: {exc}"
        finally:
            self._set_ready()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(PREFIX):
            name = path[len(PREFIX):]
            if name.strip("/") not in _routes:
                self.ready.wait()  # the extensions register their routes as moto loads
            if name.strip("/") in _routes and name.strip("/") not in OPEN_ROUTES:
                refused = self._refuse_route(environ)
                if refused is not None:
                    return self._gdlab_answer(start_response, "403 Forbidden",
                                              {"error": refused})
            return self._gdlab(name, environ, start_response)
        self.ready.wait()
        if self.inner is None:
            return self._aws_error(environ, start_response, "GdlabLocalError",
                                   f"the gdlab local cloud failed to load: {self.load_error}")
        try:
            caller = auth.authenticate(environ, self.credentials)
        except auth.Refused as refused:
            log.info("refused %s %s: %s %s", environ.get("REQUEST_METHOD"), path,
                     refused.kind, refused.detail)
            status, headers, data = auth.refusal(environ, refused)
            start_response(status, headers)
            return [data]
        token = auth.current_caller.set(caller)
        try:
            return self._moto(environ, start_response, path)
        finally:
            auth.current_caller.reset(token)

    def _moto(self, environ: dict[str, Any], start_response: Any, path: str) -> Iterable[bytes]:
        # Hold the status line until moto has answered, so its gaps can be rewritten.
        held: list[Any] = []

        def hold(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
            held[:] = [status, headers, exc_info]
            return lambda data: None  # flask never uses the legacy write()

        try:
            body = self.inner(environ, hold)
        except NotImplementedError as exc:
            log.warning("unsupported request %s %s: %s", environ.get("REQUEST_METHOD"), path, exc)
            message = f"the gdlab local cloud does not support this request: {exc}"
            return self._aws_error(environ, start_response, "GdlabLocalUnsupported", message)
        except Exception as exc:  # noqa: BLE001 - never a 500, see module docstring
            log.error("request %s %s failed:\n%s", environ.get("REQUEST_METHOD"), path,
                      traceback.format_exc())
            message = f"the gdlab local cloud failed on this request: {type(exc).__name__}: {exc}"
            return self._aws_error(environ, start_response, "GdlabLocalError", message)
        status, headers, exc_info = held
        content_type = dict((k.lower(), v) for k, v in headers).get("content-type", "")
        if status.startswith("404") and content_type.startswith("text/html"):
            # flask's own page for a path no moto service routes: no AWS error at all
            _close(body)
            message = (f"the gdlab local cloud has no route for "
                       f"{environ.get('REQUEST_METHOD')} {path}")
            return self._aws_error(environ, start_response, "GdlabLocalUnsupported", message)
        if status.startswith("500"):
            status = "400 Bad Request"  # moto answers 500 for some gaps; botocore retries 500
        start_response(status, headers, exc_info)
        return body

    @staticmethod
    def _aws_error(environ: dict[str, Any], start_response: Any, code: str,
                   message: str) -> list[bytes]:
        """An error every botocore protocol parser reads: JSON for JSON protocols, the
        query-style XML envelope otherwise."""
        content_type = environ.get("CONTENT_TYPE", "") or ""
        auth = environ.get("HTTP_AUTHORIZATION", "")
        scope = auth.split("Credential=", 1)[-1].split(",", 1)[0].split("/")
        service = scope[3] if len(scope) > 3 else ""
        xml = "x-www-form-urlencoded" in content_type or service in XML_SERVICES
        if not xml:
            body = json.dumps({"__type": code, "message": message}).encode()
            headers = [("Content-Type", "application/x-amz-json-1.1"),
                       ("x-amzn-ErrorType", code)]
        else:
            body = (
                f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
                f"<Message>{escape(message)}</Message></Error>"
                "<RequestId>gdlab-local</RequestId></ErrorResponse>"
            ).encode()
            headers = [("Content-Type", "text/xml"), ("x-amzn-ErrorType", code)]
        headers.append(("Content-Length", str(len(body))))
        start_response("400 Bad Request", headers)
        return [body]

    def _refuse_route(self, environ: dict[str, Any]) -> str | None:
        """Why a request for one of gdlab's own routes is refused (None: it is not). They
        show the lab's mail, invocations and traffic: the local administrator's only."""
        try:
            caller = auth.authenticate(environ, self.credentials)
        except auth.Refused as refused:
            return (f"sign /_gdlab/ requests with the local cloud's own key "
                    f"(gdlab local env): {refused.kind}")
        if caller.principal is not None or not caller.arn.endswith(":root"):
            return f"{caller.arn} may not read gdlab's own routes"
        return None

    @staticmethod
    def _gdlab_answer(start_response: Any, status: str, payload: Any) -> list[bytes]:
        body = json.dumps(payload, default=str).encode()
        start_response(status, [("Content-Type", "application/json"),
                                ("Content-Length", str(len(body)))])
        return [body]

    @staticmethod
    def _gdlab(name: str, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        query = {
            key: values[0] if len(values) == 1 else values
            for key, values in parse_qs(environ.get("QUERY_STRING", "")).items()
        }
        fn = _routes.get(name.strip("/"))
        if fn is None:
            status, payload = "404 Not Found", {
                "error": f"no gdlab route '{name}'", "routes": sorted(_routes)}
        else:
            try:
                status, payload = "200 OK", fn(query)
            except (RouteError, ValueError, KeyError, LookupError) as exc:
                status, payload = "400 Bad Request", {"error": str(exc)}
            except Exception as exc:  # noqa: BLE001 - a route's bug must not look transient
                log.error("route %s failed:\n%s", name, traceback.format_exc())
                status, payload = "400 Bad Request", {"error": f"{type(exc).__name__}: {exc}"}
        return GdlabApp._gdlab_answer(start_response, status, payload)


def _close(body: Any) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()


def _build_inner() -> Any:
    from gdlab.local import extensions

    extensions.install()
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return DomainDispatcherApplication(create_backend_app)


def build_app(credentials: LocalCredentials | None = None) -> GdlabApp:
    """moto's dispatcher, with gdlab's extensions installed first."""
    return GdlabApp(_build_inner(), credentials)


def _moto_handler() -> type:
    """moto's request handler (it keeps S3's underscored metadata headers), made quiet.
    Importing it loads much of moto, so the daemon does that only for AWS requests."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class QuietMotoHandler(MotoRequestHandler):
        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            return None

    return QuietMotoHandler


def _make_server(host: str, port: int, credentials: LocalCredentials, lazy: bool = False,
                 home: str | None = None) -> Any:
    from werkzeug.serving import WSGIRequestHandler, make_server

    moto_handler: list[type] = []
    moto_lock = threading.Lock()

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            return None

        def make_environ(self) -> dict[str, Any]:
            if self.path.startswith(PREFIX):
                return super().make_environ()  # gdlab's own routes need nothing of moto
            app.ready.wait()  # moto is imported by the loading thread, never by two at once
            with moto_lock:
                if not moto_handler:
                    moto_handler.append(_moto_handler())
            self.__class__ = moto_handler[0]  # same layout: this request is moto's from here
            return self.make_environ()

    # lazy: bind and answer /_gdlab/status at once, load moto in a thread (the daemon's
    # start returns sooner; AWS requests wait for the load).
    app = GdlabApp(credentials=credentials) if lazy else build_app(credentials)
    server = make_server(host, port, app, threaded=True, request_handler=QuietHandler)
    served_at.serving(server.server_address)  # known once bound (port 0: the system's pick)
    _state.update(started_at=_now_iso(), started_epoch=time.time(), cloud_id=new_cloud_id(),
                  home=home)
    if lazy:
        threading.Thread(target=app.load, name="gdlab-load-moto", daemon=True).start()
    return server


def serve(port: int, host: str = "127.0.0.1", home: str | None = None) -> None:
    """Run the local cloud in the foreground until SIGTERM or Ctrl-C. `home`: the GDLAB_HOME
    it serves (the daemon passes it), answered resolved on /_gdlab/status."""
    os.environ.setdefault("MOTO_PORT", str(port))  # moto builds some URLs (SQS...) from it
    from pathlib import Path

    from gdlab.lab.state import gdlab_home
    from gdlab.local.credentials import load_or_create

    resolved = str(Path(home).expanduser().resolve()) if home else None
    # The cloud's own credentials (made at its first start); nothing else signs for it.
    credentials = load_or_create(Path(resolved) if resolved else gdlab_home())
    server = _make_server(host, port, credentials, lazy=True, home=resolved)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    from gdlab.local.warmup import warm

    threading.Thread(target=warm, name="gdlab-warm", daemon=True, args=(
        served_at.url_for(server.server_address), region, credentials)).start()

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    log.info("gdlab local cloud %s listening on http://%s:%s (pid %s)", _state["cloud_id"],
             host, port, os.getpid())
    try:
        with contextlib.suppress(KeyboardInterrupt, SystemExit):  # Ctrl-C or SIGTERM: stop
            server.serve_forever()
    finally:
        served_at.stopped(server.server_address)
        server.server_close()
        log.info("gdlab local cloud stopped")


class InProcessServer:
    """The local cloud in a thread of this process (the tests use it; commands use the daemon).

    with InProcessServer() as server:
        boto3.client("ec2", endpoint_url=server.endpoint, ...)
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1",
                 credentials: LocalCredentials | None = None):
        """`credentials`: the administrator's key it accepts; by default the key of this
        process's GDLAB_HOME (made there if it has none), as the daemon of that home has."""
        self.host = host
        self.credentials = credentials
        self.requested_port = port
        self.port: int | None = None
        self.cloud_id: str | None = None  # made at each start, as the daemon's server does
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        if self.port is None:
            raise RuntimeError("the server is not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> InProcessServer:
        if self._server is not None:
            return self
        if self.credentials is None:
            from gdlab.lab.state import gdlab_home
            from gdlab.local.credentials import load_or_create

            self.credentials = load_or_create(gdlab_home())
        self._server = _make_server(self.host, self.requested_port, self.credentials)
        self.port = self._server.server_address[1]
        self.cloud_id = _state["cloud_id"]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="gdlab-local-cloud", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        served_at.stopped(self._server.server_address)  # no function calls a stopped cloud
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> InProcessServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m gdlab.local.server", description="Run gdlab's local cloud."
    )
    from gdlab.local.daemon import default_port

    parser.add_argument("--port", type=int, default=default_port())
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--home", default=None, help="The GDLAB_HOME this cloud serves.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        serve(args.port, args.host, args.home)
    except OSError as exc:
        sys.stderr.write(f"cannot listen on {args.host}:{args.port}: {exc}\n")
        sys.exit(1)


if __name__ == "__main__":
    # Run the imported module, not this __main__ copy: the extensions register their
    # /_gdlab/ routes with gdlab.local.server, and that table is the one that must serve.
    from gdlab.local import server as imported

    imported.main()
