"""Who is calling: every AWS request to the local cloud is authenticated as AWS does it,
with Signature Version 4 (AWS General Reference, "Create a signed AWS API request"), before
moto sees it.

Known keys: the local administrator's (credentials.py), the temporary keys the local STS
issued (AssumeRole, and the Lambda execution-role sessions), and the active access keys of
the local IAM users. Anything else is refused with the error the service gives on AWS. The
caller found here is what authorization (enforce.py) evaluates policies for."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

from gdlab.local.credentials import LocalCredentials
from gdlab.local.request_context import Principal

ALGORITHM = "AWS4-HMAC-SHA256"
_AUTH_HEADER = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<headers>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})\s*$")
_HEX64 = re.compile(r"[0-9a-f]{64}")
# AWS refuses a signature whose time is off by more than this (S3 allows 15 minutes).
MAX_SKEW = timedelta(minutes=5)
MAX_SKEW_S3 = timedelta(minutes=15)


@dataclass(frozen=True)
class Caller:
    access_key_id: str
    arn: str
    account: str
    # A role session or an IAM user, whose identity policies decide each request; None:
    # the local administrator (the account's root).
    principal: Principal | None = None


# The caller of the request this thread serves (werkzeug serves each request on its own
# thread); unset for moto calls made inside the cloud, which no policy governs.
current_caller: ContextVar[Caller | None] = ContextVar("gdlab_caller", default=None)


class Refused(Exception):
    """The request is not authenticated. `kind` selects the service's error for it."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(kind)
        self.kind = kind
        self.detail = detail


# --- the keys the local cloud knows -----------------------------------------------------
@dataclass(frozen=True)
class _Key:
    secret: str
    caller: Caller
    session_token: str | None = None
    expires: datetime | None = None


def _sts_sessions(access_key_id: str) -> _Key | None:
    from moto.sts.models import sts_backends

    for by_partition in list(sts_backends.values()):
        for backend in list(by_partition.values()):
            for session in list(getattr(backend, "assumed_roles", [])):
                if session.access_key_id != access_key_id:
                    continue
                role_name = session.role_arn.rsplit("/", 1)[-1]
                account = session.role_arn.split(":")[4] or session.account_id
                arn = f"arn:aws:sts::{account}:assumed-role/{role_name}/{session.session_name}"
                issued = getattr(session, "gdlab_issued_at", None) or datetime.now(UTC)
                principal = Principal(account=account, arn=arn, role_name=role_name,
                                      role_arn=session.role_arn,
                                      session_name=session.session_name, issued_at=issued)
                expires = session.expiration.replace(tzinfo=UTC)
                return _Key(session.secret_access_key, Caller(access_key_id, arn, account,
                                                              principal),
                            session.session_token, expires)
    return None


def _iam_user_keys(access_key_id: str) -> _Key | None:
    from moto.iam.models import iam_backends

    for account, by_partition in list(iam_backends.items()):
        for backend in list(by_partition.values()):
            for user in list(backend.users.values()):
                for key in user.access_keys:
                    if key.access_key_id == access_key_id and key.status == "Active":
                        principal = Principal.user(account, user.arn, user.name)
                        return _Key(key.secret_access_key,
                                    Caller(access_key_id, user.arn, account, principal))
    return None


def find_key(access_key_id: str, admin: LocalCredentials) -> _Key | None:
    if hmac.compare_digest(access_key_id, admin.access_key_id):
        return _Key(admin.secret_access_key, Caller(access_key_id, admin.arn, admin.account))
    return _sts_sessions(access_key_id) or _iam_user_keys(access_key_id)


# --- Signature Version 4 ----------------------------------------------------------------
@dataclass(frozen=True)
class Signed:
    access_key_id: str
    date: str  # yyyymmdd of the scope
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str  # yyyymmddThhmmssZ
    presigned: bool = False
    expires_seconds: int | None = None

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


def _query_pairs(query: str) -> list[tuple[str, str]]:
    pairs = []
    for part in query.split("&") if query else []:
        key, _, value = part.partition("=")
        pairs.append((unquote(key), unquote(value)))
    return pairs


def parse_signature(environ: dict[str, Any]) -> Signed | None:
    """The request's SigV4 signature (header or presigned query); None when it has none."""
    header = environ.get("HTTP_AUTHORIZATION")
    query_text = environ.get("QUERY_STRING", "")
    if (header or "").startswith("AWS ") or ("AWSAccessKeyId=" in query_text
                                             and "Signature=" in query_text):
        raise Refused("sigv2")  # Signature Version 2: regions since 2014 accept only SigV4
    if header:
        found = _AUTH_HEADER.match(header.strip())
        if not found:
            raise Refused("malformed", "the Authorization header is not a SigV4 signature")
        parts = found["credential"].split("/")
        amz_date = environ.get("HTTP_X_AMZ_DATE", "")
        presigned, expires = False, None
        headers, signature = found["headers"], found["signature"]
    else:
        query = dict(_query_pairs(environ.get("QUERY_STRING", "")))
        if "X-Amz-Credential" not in query and "X-Amz-Signature" not in query:
            return None
        if query.get("X-Amz-Algorithm") != ALGORITHM or not _HEX64.fullmatch(
                query.get("X-Amz-Signature", "")):
            raise Refused("malformed", "the presigned URL is not a SigV4 signature")
        parts = query.get("X-Amz-Credential", "").split("/")
        amz_date, headers = query.get("X-Amz-Date", ""), query.get("X-Amz-SignedHeaders", "")
        signature, presigned = query["X-Amz-Signature"], True
        try:
            expires = int(query.get("X-Amz-Expires", "0"))
        except ValueError:
            raise Refused("malformed", "X-Amz-Expires is not a number") from None
    if len(parts) != 5 or parts[4] != "aws4_request" or not parts[0]:
        raise Refused("malformed", "the credential scope is not key/date/region/service/"
                                   "aws4_request")
    return Signed(parts[0], parts[1], parts[2], parts[3], tuple(headers.split(";")),
                  signature, amz_date, presigned, expires)


def _header_value(environ: dict[str, Any], name: str) -> str:
    if name == "host":
        raw = environ.get("HTTP_HOST", "")
    elif name in ("content-type", "content-length"):
        raw = environ.get(name.upper().replace("-", "_"), "")
    else:
        raw = environ.get("HTTP_" + name.upper().replace("-", "_"), "")
    return " ".join(str(raw).split())  # trimmed, inner runs of spaces made one


def _canonical_uri(environ: dict[str, Any], service: str) -> str:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or \
        quote(environ.get("PATH_INFO", "/"))
    path = raw.split("?", 1)[0] or "/"
    if path.startswith(("http://", "https://")):  # an absolute request-target
        path = "/" + path.split("/", 3)[-1] if path.count("/") >= 3 else "/"
    if service == "s3":
        return path  # S3 signs the path as sent, neither normalized nor encoded again
    from botocore.utils import normalize_url_path

    # Every other service: dot segments removed, then each segment URI-encoded again.
    return quote(normalize_url_path(path), safe="/~")


def _canonical_query(environ: dict[str, Any], presigned: bool) -> str:
    pairs = _query_pairs(environ.get("QUERY_STRING", ""))
    if presigned:
        pairs = [(k, v) for k, v in pairs if k != "X-Amz-Signature"]
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def read_body(environ: dict[str, Any]) -> bytes:
    """The request body, read once and put back for moto."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    if environ.get("wsgi.input_terminated"):
        body = stream.read()
    else:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = stream.read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _payload_hash(environ: dict[str, Any], signed: Signed, body: bytes) -> str:
    declared = environ.get("HTTP_X_AMZ_CONTENT_SHA256")
    if signed.presigned and signed.service == "s3":
        return declared or "UNSIGNED-PAYLOAD"
    actual = hashlib.sha256(body).hexdigest()
    if declared and _HEX64.fullmatch(declared):
        if declared != actual:
            raise Refused("content-hash", "x-amz-content-sha256 does not match the body")
        return declared
    # UNSIGNED-PAYLOAD and the STREAMING-* forms are signed as the literal value (a chunked
    # upload's seed signature is checked; its chunk signatures are not).
    return declared or actual


def _signing_key(secret: str, signed: Signed) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (signed.date, signed.region, signed.service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def expected_signature(environ: dict[str, Any], signed: Signed, secret: str,
                       body: bytes) -> str:
    canonical_headers = "".join(f"{name}:{_header_value(environ, name)}\n"
                                for name in signed.signed_headers)
    canonical_request = "\n".join([
        environ.get("REQUEST_METHOD", "GET").upper(),
        _canonical_uri(environ, signed.service),
        _canonical_query(environ, signed.presigned),
        canonical_headers,
        ";".join(signed.signed_headers),
        _payload_hash(environ, signed, body),
    ])
    string_to_sign = "\n".join([ALGORITHM, signed.amz_date, signed.scope,
                                hashlib.sha256(canonical_request.encode()).hexdigest()])
    return hmac.new(_signing_key(secret, signed), string_to_sign.encode(),
                    hashlib.sha256).hexdigest()


def _check_time(signed: Signed, now: datetime) -> None:
    try:
        moment = datetime.strptime(signed.amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise Refused("malformed", "X-Amz-Date is missing or not yyyymmddThhmmssZ") from None
    if signed.amz_date[:8] != signed.date:
        raise Refused("signature", "the credential scope's date is not the request's")
    if signed.presigned:
        if now > moment + timedelta(seconds=signed.expires_seconds or 0):
            raise Refused("url-expired")
        return
    skew = MAX_SKEW_S3 if signed.service == "s3" else MAX_SKEW
    if abs(now - moment) > skew:
        raise Refused("skew", f"Signature expired: {signed.amz_date} is now earlier than "
                              f"{(now - skew):%Y%m%dT%H%M%SZ}")


def authenticate(environ: dict[str, Any], admin: LocalCredentials,
                 now: datetime | None = None) -> Caller:
    """The caller who signed this request, or Refused."""
    signed = parse_signature(environ)
    if signed is None:
        raise Refused("missing")
    body = read_body(environ)
    now = now or datetime.now(UTC)
    _check_time(signed, now)
    key = find_key(signed.access_key_id, admin)
    if key is None:
        raise Refused("unknown-key")
    token = environ.get("HTTP_X_AMZ_SECURITY_TOKEN") or dict(
        _query_pairs(environ.get("QUERY_STRING", ""))).get("X-Amz-Security-Token")
    if key.session_token is not None:
        if not token or not hmac.compare_digest(token, key.session_token):
            raise Refused("bad-token")
        if key.expires is not None and now >= key.expires:
            raise Refused("expired-token")
    elif token:
        raise Refused("bad-token")  # a long-term key signs without a session token
    if not hmac.compare_digest(signed.signature,
                               expected_signature(environ, signed, key.secret, body)):
        raise Refused("signature")
    return key.caller


# --- AWS's answers ----------------------------------------------------------------------
_SIGNATURE_TEXT = ("The request signature we calculated does not match the signature you "
                   "provided. Check your AWS Secret Access Key and signing method. Consult "
                   "the service documentation for details.")
_TOKEN_TEXT = "The security token included in the request is invalid."
# kind -> (JSON protocols, query protocol): error code, HTTP status, message.
_ERRORS: dict[str, tuple[tuple[str, int, str], tuple[str, int, str]]] = {
    "missing": (("MissingAuthenticationTokenException", 403, "Missing Authentication Token"),
                ("MissingAuthenticationToken", 403, "Request is missing Authentication Token")),
    "malformed": (("IncompleteSignatureException", 400, "The request signature is malformed"),
                  ("IncompleteSignature", 400, "The request signature is malformed")),
    "unknown-key": (("UnrecognizedClientException", 403, _TOKEN_TEXT),
                    ("InvalidClientTokenId", 403, _TOKEN_TEXT)),
    "bad-token": (("UnrecognizedClientException", 403, _TOKEN_TEXT),
                  ("InvalidClientTokenId", 403, _TOKEN_TEXT)),
    "expired-token": (("ExpiredTokenException", 403,
                       "The security token included in the request is expired"),
                      ("ExpiredToken", 403,
                       "The security token included in the request is expired")),
    "signature": (("InvalidSignatureException", 403, _SIGNATURE_TEXT),
                  ("SignatureDoesNotMatch", 403, _SIGNATURE_TEXT)),
    "content-hash": (("InvalidSignatureException", 403, _SIGNATURE_TEXT),
                     ("SignatureDoesNotMatch", 403, _SIGNATURE_TEXT)),
    "skew": (("InvalidSignatureException", 403, "Signature expired"),
             ("SignatureDoesNotMatch", 403, "Signature expired")),
    "url-expired": (("InvalidSignatureException", 403, "Signature expired"),
                    ("SignatureDoesNotMatch", 403, "Signature expired")),
    "sigv2": (("IncompleteSignatureException", 400, "Only AWS4-HMAC-SHA256 is accepted"),
              ("IncompleteSignature", 400, "Only AWS4-HMAC-SHA256 is accepted")),
}
_S3_ERRORS = {
    "missing": ("AccessDenied", 403, "Access Denied"),
    "malformed": ("AuthorizationHeaderMalformed", 400,
                  "The authorization header that you provided is not valid."),
    "unknown-key": ("InvalidAccessKeyId", 403,
                    "The AWS Access Key Id you provided does not exist in our records."),
    "bad-token": ("InvalidToken", 400, "The provided token is malformed or otherwise invalid."),
    "expired-token": ("ExpiredToken", 400, "The provided token has expired."),
    "signature": ("SignatureDoesNotMatch", 403,
                  "The request signature we calculated does not match the signature you "
                  "provided. Check your key and signing method."),
    "content-hash": ("XAmzContentSHA256Mismatch", 400,
                     "The provided 'x-amz-content-sha256' header does not match what was "
                     "computed."),
    "skew": ("RequestTimeTooSkewed", 403,
             "The difference between the request time and the current time is too large."),
    "url-expired": ("AccessDenied", 403, "Request has expired"),
    "sigv2": ("InvalidRequest", 400, "The authorization mechanism you have provided is not "
                                     "supported. Please use AWS4-HMAC-SHA256."),
}
# Query-protocol services (XML errors) by signing name; the rest answer in JSON.
_QUERY_SERVICES = {"iam", "sts", "sns", "cloudformation", "autoscaling", "rds", "ses",
                   "elasticloadbalancing", "elasticache", "redshift"}
_STATUS_TEXT = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}


def service_of(environ: dict[str, Any]) -> str:
    header = environ.get("HTTP_AUTHORIZATION", "")
    scope = header.split("Credential=", 1)[-1].split(",", 1)[0] if header else dict(
        _query_pairs(environ.get("QUERY_STRING", ""))).get("X-Amz-Credential", "")
    parts = scope.split("/")
    if len(parts) > 3:
        return parts[3]
    # No SigV4 scope: a plain GET/PUT/HEAD without an operation header or form is S3's.
    content_type = environ.get("CONTENT_TYPE", "") or ""
    if not environ.get("HTTP_X_AMZ_TARGET") and "x-www-form-urlencoded" not in content_type \
            and "json" not in content_type:
        return "s3"
    return ""


def refusal(environ: dict[str, Any], refused: Refused) -> tuple[str, list[tuple[str, str]],
                                                                 bytes]:
    """(status line, headers, body) of the service's answer to an unauthenticated request."""
    service = service_of(environ)
    request_id = str(uuid.uuid4())
    content_type = environ.get("CONTENT_TYPE", "") or ""
    if service == "s3":
        code, status, text = _S3_ERRORS[refused.kind]
        body = ('<?xml version="1.0" encoding="UTF-8"?>'
                f"<Error><Code>{code}</Code><Message>{escape(text)}</Message>"
                f"<RequestId>{request_id}</RequestId></Error>")
        kind = "application/xml"
    elif service == "ec2":
        # EC2 gives AuthFailure for any credential it cannot validate.
        code, status = ("RequestExpired", 400) if refused.kind == "skew" else ("AuthFailure",
                                                                               401)
        text = ("Request has expired." if refused.kind == "skew"
                else "AWS was not able to validate the provided access credentials")
        body = ('<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
                f"<Code>{code}</Code><Message>{escape(text)}</Message></Error></Errors>"
                f"<RequestID>{request_id}</RequestID></Response>")
        kind = "text/xml"
    elif service in _QUERY_SERVICES or "x-www-form-urlencoded" in content_type:
        code, status, text = _ERRORS[refused.kind][1]
        body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
                f"<Message>{escape(text)}</Message></Error>"
                f"<RequestId>{request_id}</RequestId></ErrorResponse>")
        kind = "text/xml"
    else:
        code, status, text = _ERRORS[refused.kind][0]
        body = json.dumps({"__type": code, "message": text})
        kind = "application/x-amz-json-1.1"
    data = body.encode()
    headers = [("Content-Type", kind), ("x-amzn-ErrorType", code),
               ("x-amzn-RequestId", request_id), ("Content-Length", str(len(data)))]
    return f"{status} {_STATUS_TEXT[status]}", headers, data
