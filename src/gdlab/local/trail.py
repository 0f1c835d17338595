"""Management events of the local cloud as CloudTrail records them: one record for every
authenticated request it serves (who signed it, from where, which call, whether it was
refused), kept in memory (the last MAX_KEPT), served on ``/_gdlab/trail`` and handed to the
subscribers (GuardDuty's CloudTrail analysis) on a worker thread, so no request waits for
an analysis.

The record follows the CloudTrail user guide's "CloudTrail record contents" and
"CloudTrail userIdentity element": ``userIdentity`` is Root for the local administrator,
IAMUser for a user's access key, AssumedRole for a role session (with
``sessionContext.sessionIssuer``, ``attributes.creationDate``, and ``ec2RoleDelivery`` "1.0"
or "2.0" when the session is an instance's, delivered by IMDSv1 or IMDSv2). EC2 error codes
carry CloudTrail's "Client." prefix.
S3 requests carry CloudTrail's eventName, requestParameters and resources, and object-level
calls are data events (see s3_trail.py).

Where a request comes from. Every client of the local cloud connects over 127.0.0.1, so
``sourceIPAddress`` is the peer address, except for requests the instance simulation makes
"from" an instance: those carry ``X-Gdlab-Source-Ip`` and ``X-Gdlab-Source-Proof``, a nonce
and an HMAC-SHA256 of the address, the request's SigV4 signature and the nonce under a secret
made at random when this module is imported. The secret never leaves the process (no route,
file or answer shows it), so only code running inside the local cloud's own process
(``from_address``) can make a proof. A proof is bound to one signature and honoured once, so
a copied pair carries over neither to another request nor to a replay of the same one, and
only a loopback peer may present it. Both headers are taken out of the request before moto
sees it; a claim without a valid proof is ignored (and logged) and the peer address recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import queue
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gdlab.local import auth
from gdlab.local.auth import Caller, current_caller

log = logging.getLogger("gdlab.local.trail")

MAX_KEPT = 2000
EVENT_VERSION = "1.08"
SOURCE_HEADER = "X-Gdlab-Source-Ip"
PROOF_HEADER = "X-Gdlab-Source-Proof"
_SOURCE_KEY = "HTTP_" + SOURCE_HEADER.upper().replace("-", "_")
_PROOF_KEY = "HTTP_" + PROOF_HEADER.upper().replace("-", "_")
_RESOLVED = "gdlab.trail.source_ip"
_RECORDED = "gdlab.trail.recorded"
_SECRET = secrets.token_bytes(32)
# eventSource where CloudTrail's differs from the signing name.
_EVENT_SOURCES = {"email": "ses.amazonaws.com"}

_lock = threading.Lock()
_records: deque[dict[str, Any]] = deque(maxlen=MAX_KEPT)
_queue: queue.Queue[dict[str, Any]] = queue.Queue()
_worker: threading.Thread | None = None
_used_proofs: set[str] = set()
_used_order: deque[str] = deque()
# Called as subscriber(record) on the worker thread for every record.
subscribers: list[Callable[[dict[str, Any]], None]] = []


# --- where a request comes from ---------------------------------------------------------
def proof(address: str, signature: str, nonce: str | None = None) -> str:
    """The proof header for a request of this signature from `address`: a fresh nonce
    (each proof is honoured once) and the HMAC that binds it to both."""
    nonce = nonce or secrets.token_hex(16)
    mac = hmac.new(_SECRET, f"{address}\n{signature}\n{nonce}".encode(), hashlib.sha256)
    return f"{nonce}.{mac.hexdigest()}"


_SIGNATURE = re.compile(r"Signature=([0-9a-f]{64})")


def from_address(client: Any, address: str) -> Any:
    """Make every request of this botocore client come "from" `address` (an instance's
    public IP, say) as far as the trail is concerned. In-process only: see the module
    docstring. Returns the client."""
    ipaddress.ip_address(address)  # a ValueError for anything but an IP address

    def add_source(request: Any, **_: Any) -> None:
        header = str(request.headers.get("Authorization") or "")
        found = _SIGNATURE.search(header) or re.search(r"X-Amz-Signature=([0-9a-f]{64})",
                                                       str(request.url))
        if found is None:
            return  # an unsigned request is refused before anything is recorded
        request.headers[SOURCE_HEADER] = address
        request.headers[PROOF_HEADER] = proof(address, found.group(1))

    client.meta.events.register("before-send", add_source)  # after signing: not signed
    return client


def resolve_source(environ: dict[str, Any]) -> str:
    """The request's source address (see the module docstring); takes the source headers
    out of the request. Idempotent."""
    if _RESOLVED in environ:
        return str(environ[_RESOLVED])
    claimed = environ.pop(_SOURCE_KEY, None)
    given = environ.pop(_PROOF_KEY, None)
    peer = str(environ.get("REMOTE_ADDR") or "127.0.0.1")
    source = peer
    if claimed is not None:
        if _valid_claim(environ, peer, str(claimed), str(given or "")):
            source = str(claimed)
        else:
            log.warning("ignored a %s claim from %s without a valid proof", SOURCE_HEADER, peer)
    environ[_RESOLVED] = source
    return source


def _valid_claim(environ: dict[str, Any], peer: str, claimed: str, given: str) -> bool:
    try:
        if not ipaddress.ip_address(peer).is_loopback:
            return False
        ipaddress.ip_address(claimed)
        signed = auth.parse_signature(environ)
    except (ValueError, auth.Refused):
        return False
    nonce, _, _mac = given.partition(".")
    if signed is None or not nonce or not hmac.compare_digest(
            given, proof(claimed, signed.signature, nonce)):
        return False
    with _lock:  # single use: a replayed request is not honoured again
        if nonce in _used_proofs:
            return False
        _used_proofs.add(nonce)
        _used_order.append(nonce)
        if len(_used_order) > MAX_KEPT:
            _used_proofs.discard(_used_order.popleft())
    return True


# --- the record ---------------------------------------------------------------------------
def _stamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def user_identity(caller: Caller) -> dict[str, Any]:
    """CloudTrail's userIdentity for the caller."""
    from gdlab.local import imds
    from gdlab.local.request_context import _iam_user, _role_id

    principal = caller.principal
    base = {"arn": caller.arn, "accountId": caller.account, "accessKeyId": caller.access_key_id}
    if principal is None:
        return {"type": "Root", "principalId": caller.account, **base}
    if principal.is_user:
        user = _iam_user(principal.account, principal.user_name)
        return {"type": "IAMUser", "principalId": str(getattr(user, "id", "") or ""), **base,
                "userName": principal.user_name}
    role_id = _role_id(principal.account, principal.role_name)
    context: dict[str, Any] = {
        "sessionIssuer": {"type": "Role", "principalId": role_id, "arn": principal.role_arn,
                          "accountId": principal.account, "userName": principal.role_name},
        "webIdFederationData": {},
        "attributes": {"creationDate": _stamp(principal.issued_at),
                       "mfaAuthenticated": "false"},
    }
    instance = imds.session_of(caller.access_key_id)
    if instance is not None:
        context["ec2RoleDelivery"] = instance.delivery
    return {"type": "AssumedRole", "principalId": f"{role_id}:{principal.session_name}",
            **base, "sessionContext": context}


def record(environ: dict[str, Any], caller: Caller, service: str, operation: str,
           error_code: str | None = None, error_message: str | None = None,
           s3: dict[str, Any] | None = None) -> dict[str, Any]:
    """Record one authenticated request; returns the record. `s3`: what s3_trail.details
    found (eventName, managementEvent, requestParameters, resources)."""
    try:
        signed = auth.parse_signature(environ)
    except auth.Refused:
        signed = None
    region = signed.region if signed is not None else ""
    entry: dict[str, Any] = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": user_identity(caller),
        "eventTime": _stamp(),
        "eventSource": _EVENT_SOURCES.get(service, f"{service}.amazonaws.com"),
        "eventName": s3["eventName"] if s3 else operation,
        "awsRegion": region,
        "sourceIPAddress": resolve_source(environ),
        "userAgent": str(environ.get("HTTP_USER_AGENT") or ""),
    }
    if s3:
        entry["requestParameters"] = s3["requestParameters"]
    if error_code:
        entry["errorCode"] = f"Client.{error_code}" if service == "ec2" and \
            not error_code.startswith(("Client.", "Server.")) else error_code
        if error_message:
            entry["errorMessage"] = error_message
    management = s3["managementEvent"] if s3 else True
    entry.update({"requestID": str(uuid.uuid4()), "eventID": str(uuid.uuid4()),
                  "eventType": "AwsApiCall", "managementEvent": management,
                  "recipientAccountId": caller.account,
                  "eventCategory": "Management" if management else "Data"})
    if s3 and s3.get("resources"):
        entry["resources"] = [dict(r, accountId=caller.account) if r["type"].endswith(
            "Bucket") else r for r in s3["resources"]]
    with _lock:
        _records.append(entry)
    _publish(entry)
    return entry


def records(access_key_id: str | None = None, event_name: str | None = None,
            source_ip: str | None = None) -> list[dict[str, Any]]:
    with _lock:
        kept = [json.loads(json.dumps(r)) for r in _records]
    return [r for r in kept
            if access_key_id in (None, r["userIdentity"].get("accessKeyId"))
            and event_name in (None, r["eventName"])
            and source_ip in (None, r["sourceIPAddress"])]


def clear() -> None:
    with _lock:
        _records.clear()


# --- subscribers ------------------------------------------------------------------------
def _publish(entry: dict[str, Any]) -> None:
    global _worker
    if not subscribers:
        return
    with _lock:
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_work, name="gdlab-trail", daemon=True)
            _worker.start()
    _queue.put(json.loads(json.dumps(entry)))


def _work() -> None:
    while True:
        entry = _queue.get()
        try:
            for subscriber in list(subscribers):
                try:
                    subscriber(entry)
                except Exception:  # noqa: BLE001 - one subscriber must not stop the others
                    log.exception("trail subscriber %r failed", subscriber)
        finally:
            _queue.task_done()


def drain(timeout: float = 10.0) -> bool:
    """Wait until every record so far reached the subscribers; False on timeout."""
    deadline = time.monotonic() + timeout
    while _queue.unfinished_tasks:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


# --- reading moto's answer ----------------------------------------------------------------
_XML_CODE = re.compile(r"<Code>([^<]+)</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")


def error_of(result: Any) -> tuple[str | None, str | None]:
    """(error code, message) of moto's (status, headers, body) answer; (None, None) when it
    succeeded."""
    try:
        status, headers, body = result
        status = int(status)
    except (TypeError, ValueError):
        return None, None
    if status < 400:
        return None, None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    # The code the client reads: x-amzn-ErrorType first, as botocore's parsers take it.
    lowered = {str(k).lower(): v for k, v in dict(headers or {}).items()}
    raw_header = lowered.get("x-amzn-errortype")
    code = str(raw_header).split(":", 1)[0] if raw_header else None
    message = None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        raw = data.get("__type") or data.get("code") or data.get("Code")
        code = code or (str(raw).rsplit("#", 1)[-1] if raw else None)
        message = data.get("message") or data.get("Message")
    else:
        found = _XML_CODE.search(text)
        code = code or (found.group(1) if found else None)
        found_message = _XML_MESSAGE.search(text)
        message = found_message.group(1) if found_message else None
    return code or f"HTTP{status}", (str(message) if message else None)


# --- hooks into moto ----------------------------------------------------------------------
def _signing_service(environ: dict[str, Any], response: Any) -> str:
    try:
        signed = auth.parse_signature(environ)
    except auth.Refused:
        signed = None
    return signed.service if signed is not None else str(
        getattr(response, "service_name", "") or "")


def _observe(response: Any, run: Callable[[], Any], operation: Callable[[], str],
             request: Any = None, s3: Callable[[], dict[str, Any]] | None = None) -> Any:
    """Run moto's handler and record the request it served, once per request. The WSGI
    environ is the request's (moto's normalized Request wraps the server's environ)."""
    caller = current_caller.get()
    request = request or getattr(response, "normalized_request", None)
    environ = getattr(request, "environ", None)
    if caller is None or not isinstance(environ, dict) or environ.get(_RECORDED):
        return run()
    environ[_RECORDED] = True
    resolve_source(environ)
    try:
        result = run()
    except Exception as exc:
        _safe_record(environ, caller, response, operation, *_exception_error(exc), s3=s3)
        raise
    code, message = error_of(result)
    _safe_record(environ, caller, response, operation, code, message, s3=s3)
    return result


def _exception_error(exc: Exception) -> tuple[str, str]:
    """(code, message) of an error raised through moto's handler (moto's RESTError keeps
    the code in error_type; werkzeug's `code` is the HTTP status)."""
    code = getattr(exc, "error_type", None) or getattr(exc, "code", None)
    if not isinstance(code, str) or not code:
        code = type(exc).__name__
    message = getattr(exc, "message", None) or str(exc)
    return code, str(message)


def _safe_record(environ: dict[str, Any], caller: Caller, response: Any,
                 operation: Callable[[], str], code: str | None, message: str | None,
                 s3: Callable[[], dict[str, Any]] | None = None) -> None:
    try:
        record(environ, caller, _signing_service(environ, response), str(operation()),
               code, message, s3() if s3 is not None else None)
    except Exception:  # noqa: BLE001 - the trail must never fail the request it records
        log.exception("could not record a request")


def install() -> None:
    """Wrap moto's handlers (over enforce.py's, so its refusals are recorded) and register the
    route and GuardDuty's analysis of the trail, through gdlab.local.patches."""
    from moto.core.responses import BaseResponse
    from moto.s3.responses import S3Response

    from gdlab.local import patches, server
    from gdlab.local.guardduty import api_call_analysis, credentials_analysis

    def wrap_call_action(current: Any) -> Any:
        def call_action(self: Any) -> Any:
            return _observe(self, lambda: current(self), self._get_action)

        return call_action

    patches.wrap(BaseResponse, "call_action",
                 "CloudTrail records every authenticated request, refused or served",
                 wrap_call_action, stack=True)
    for name in ("bucket_response", "key_response"):  # S3 answers outside call_action
        patches.wrap(S3Response, name, "CloudTrail records every authenticated S3 request",
                     _s3_wrapper(name), stack=True)

    def register() -> None:
        server.register_route("trail", _route)
        for analyze in (credentials_analysis.analyze, api_call_analysis.analyze):
            if analyze not in subscribers:
                subscribers.append(analyze)

    patches.once("trail", "GET /_gdlab/trail and GuardDuty's analysis of it", register)


def _s3_wrapper(name: str) -> Callable[[Any], Any]:
    from gdlab.local import s3_trail

    def make(current: Any) -> Any:
        def handler(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            full_url = str(args[0] if args else kwargs.get("full_url") or request.url)
            return _observe(self, lambda: current(self, request, *args, **kwargs),
                            lambda: str((getattr(self, "data", None) or {}).get("Action")
                                        or name), request,
                            lambda: s3_trail.details(self, request, full_url,
                                                     name == "key_response"))

        return handler

    return make


def _route(query: dict[str, Any]) -> dict[str, Any]:
    """GET /_gdlab/trail[?access_key_id=&event_name=&source_ip=]: {"Records": [...]}, oldest
    first, as a CloudTrail log file holds them."""
    return {"Records": records(query.get("access_key_id"), query.get("event_name"),
                               query.get("source_ip"))}
