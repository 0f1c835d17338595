"""One Cloud object builds every boto3 client gdlab uses, for AWS or for the local cloud.

Everything above this module is identical for both targets: only the endpoint and the
credentials differ.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from gdlab import __version__
from gdlab.errors import (
    ConfigError,
    PreflightError,
    UsageError,
    describe_endpoint_error,
    endpoint_hint,
    safe_url,
    shown,
)

TARGETS = ("local", "aws")
LOCAL_DEFAULT_REGION = "us-east-1"

# Every client: standard retries (throttling, 5xx) — 5 retries after the first attempt.
RETRIES = 5
# The preflight (the identity check first of all) is every command's first call: it must
# answer quickly whatever sits at the endpoint, so its calls are bounded and retried once:
# at most 2 x (connect + read) timeouts, about 25 s, instead of 6 x 60 s. Watch's polls use
# the same bounds (Cloud.bounded()): the poll loop is their retry.
BOUNDED_ATTEMPTS = 2
BOUNDED_CONNECT_TIMEOUT = 5.0
BOUNDED_READ_TIMEOUT = 12.0
# STS error codes that mean the credentials themselves were refused.
CREDENTIAL_CODES = {
    "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException",
    "AccessDenied", "AccessDeniedException", "UnrecognizedClientException",
    "InvalidAccessKeyId", "AuthFailure", "IncompleteSignature", "InvalidToken",
    "RequestExpired", "MissingAuthenticationToken",
}


@dataclass
class CloudSettings:
    target: str = "local"
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    # The id the running local cloud made at its start (target local only): a local lab
    # records it, so a command can tell when the cloud that held the lab is gone.
    local_cloud_id: str | None = None
    # Target local: the local cloud's own key (whatever AWS_* says); None: read from
    # GDLAB_HOME when the first client is made.
    local_credentials: Any = None
    # Credentials this cloud acts with instead of the usual ones (a role assumed in another
    # account: gdlab class): botocore credentials, renewing themselves (lab/accounts.py).
    credentials: Any = None

    @classmethod
    def from_env(cls, **given: Any) -> CloudSettings:
        """Options given on the command line win over the standard AWS variables."""
        target = given.get("target") or os.environ.get("GDLAB_TARGET") or "local"
        if target not in TARGETS:
            raise UsageError(f"unknown target '{target}'", "use --target local or --target aws")
        region = (
            given.get("region")
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
        )
        endpoint, source = given.get("endpoint_url"), "--endpoint-url"
        if not endpoint and target == "aws":
            endpoint, source = os.environ.get("AWS_ENDPOINT_URL"), "AWS_ENDPOINT_URL"
        if endpoint:
            validate_endpoint(endpoint, source)
        return cls(
            target=target,
            region=region,
            profile=given.get("profile") or os.environ.get("AWS_PROFILE"),
            endpoint_url=endpoint,
        )


def _home_credentials() -> Any:
    """This GDLAB_HOME's local key; without one (no local cloud ever started here) a fresh
    key nobody holds, so the preflight reports what the endpoint says to it."""
    from gdlab.lab.state import gdlab_home
    from gdlab.local.credentials import CredentialsError, generate, load

    try:
        return load(gdlab_home())
    except CredentialsError:
        return generate()


def _use_credentials(botocore_session: Any, credentials: Any) -> None:
    """Make `credentials` (botocore's, refreshable ones included) the only source the
    session resolves: its clients then share them, renewals and all."""
    from botocore.credentials import CredentialProvider, CredentialResolver

    class Given(CredentialProvider):
        METHOD = "gdlab-class-role"

        def load(self) -> Any:
            return credentials

    botocore_session.register_component("credential_provider", CredentialResolver([Given()]))


def validate_endpoint(url: str, source: str = "--endpoint-url") -> str:
    """An endpoint must be a whole http(s) URL with a host (botocore would say only
    'ValueError: Invalid endpoint')."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        ok = False
    if not ok or any(c.isspace() or not c.isprintable() for c in url):
        raise UsageError(
            f"invalid {source} '{safe_url(url)}'",
            "use a whole URL such as http://127.0.0.1:4566 or https://sts.us-east-1.amazonaws.com",
        )
    return url


_loader: Any = None


def _botocore_session() -> Any:
    """A fresh botocore session sharing one model loader: service models are parsed once per
    process, not once per Cloud (they are megabytes of JSON)."""
    import botocore.loaders
    import botocore.session

    global _loader
    if _loader is None:
        _loader = botocore.loaders.create_loader()
    session = botocore.session.get_session()
    session.register_component("data_loader", _loader)
    return session


@dataclass
class Cloud:
    """A session and its clients, for one target, region and endpoint."""

    settings: CloudSettings
    _session: Any = field(default=None, repr=False)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)
    _account: str | None = None
    # Calls made per "service.Operation", for the run summary and the benchmarks.
    api_calls: dict[str, int] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # The last raw answer a preflight call received (status, content type, first bytes).
    last_answer: dict[str, Any] | None = field(default=None, repr=False)
    # True for a view whose every client is bounded (see bounded()).
    all_bounded: bool = field(default=False, repr=False)

    @property
    def target(self) -> str:
        return self.settings.target

    @property
    def region(self) -> str:
        region = self.settings.region or self._session_obj().region_name
        if not region:
            raise ConfigError(
                "no AWS region set",
                "pass --region, or set AWS_REGION (e.g. export AWS_REGION=us-east-1)",
            )
        return region

    @property
    def endpoint_url(self) -> str | None:
        return self.settings.endpoint_url

    @property
    def is_local(self) -> bool:
        return self.settings.target == "local"

    def _session_obj(self) -> Any:
        if self._session is None:
            import boto3

            botocore_session = _botocore_session()

            if self.settings.credentials is not None:
                _use_credentials(botocore_session, self.settings.credentials)
                self._session = boto3.Session(
                    region_name=self.settings.region
                    or (LOCAL_DEFAULT_REGION if self.is_local else None),
                    botocore_session=botocore_session,
                )
            elif self.is_local:
                if self.settings.local_credentials is None:
                    self.settings.local_credentials = _home_credentials()
                self._session = boto3.Session(
                    region_name=self.settings.region or LOCAL_DEFAULT_REGION,
                    botocore_session=botocore_session,
                    **self.settings.local_credentials.boto3_kwargs(),
                )
            else:
                try:
                    self._session = boto3.Session(
                        profile_name=self.settings.profile,
                        region_name=self.settings.region,
                        botocore_session=botocore_session,
                    )
                except Exception as exc:  # botocore.exceptions.ProfileNotFound
                    raise ConfigError(
                        str(exc), "check --profile / AWS_PROFILE against ~/.aws/config"
                    ) from exc
        return self._session

    def client(self, service: str) -> Any:
        """A cached client with explicit standard retries and gdlab's user agent."""
        return self._client(service, bounded=self.all_bounded)

    def preflight_client(self, service: str) -> Any:
        """A client for the preflight's calls: short timeouts, one retry, and the last raw
        answer kept (`last_answer`) to say what came back when it is not AWS's."""
        return self._client(service, bounded=True)

    def bounded(self) -> Cloud:
        """The same cloud (session, account, call counts) whose clients all give up fast:
        for loops that poll, where the next round is the retry and an endpoint that stopped
        answering must be noticed in seconds, not after 6 x 60 s per call."""
        view = Cloud(
            self.settings,
            _session=self._session_obj(),
            _account=self._account,
            api_calls=self.api_calls,
            _lock=self._lock,
            all_bounded=True,
        )
        return view

    def _client(self, service: str, bounded: bool) -> Any:
        key = f"{service}#preflight" if bounded else service
        with self._lock:
            if key not in self._clients:
                from botocore.config import Config

                if bounded:
                    config = Config(
                        retries={"mode": "standard", "total_max_attempts": BOUNDED_ATTEMPTS},
                        user_agent_extra=f"gdlab/{__version__}",
                        connect_timeout=BOUNDED_CONNECT_TIMEOUT,
                        read_timeout=BOUNDED_READ_TIMEOUT,
                    )
                else:
                    config = Config(
                        retries={"mode": "standard", "max_attempts": RETRIES},
                        user_agent_extra=f"gdlab/{__version__}",
                        connect_timeout=5 if self.is_local else 10,
                        read_timeout=30 if self.is_local else 60,
                    )
                client = self._session_obj().client(
                    service,
                    region_name=self.region,
                    endpoint_url=self.settings.endpoint_url,
                    config=config,
                )
                client.meta.events.register("before-call", self._count_call)
                if bounded:
                    client.meta.events.register("before-parse", self._keep_answer)
                self._clients[key] = client
            return self._clients[key]

    def _keep_answer(self, response_dict: Any = None, **_: Any) -> None:
        if response_dict is not None:
            body = response_dict.get("body")
            self.last_answer = {
                "status": response_dict.get("status_code"),
                "content_type": (response_dict.get("headers") or {}).get("content-type", ""),
                "head": body[:512] if isinstance(body, (bytes, bytearray)) else b"",
                "size": len(body) if isinstance(body, (bytes, bytearray)) else None,
            }

    def _count_call(self, model: Any, **_: Any) -> None:
        key = f"{model.service_model.service_name}.{model.name}"
        with self._lock:  # clients are used from setup's threads
            self.api_calls[key] = self.api_calls.get(key, 0) + 1

    @property
    def api_call_count(self) -> int:
        return sum(self.api_calls.values())

    @property
    def account(self) -> str:
        """The account id, from STS GetCallerIdentity (also proves the credentials work and
        that the endpoint speaks AWS); bounded in time whatever the endpoint does."""
        if self._account is None:
            self._account = self._identity()
        return self._account

    def _identity(self) -> str:
        from botocore.exceptions import ClientError, NoCredentialsError

        sts = self.preflight_client("sts")
        where = self.endpoint_url or sts.meta.endpoint_url
        self.last_answer = None
        started = time.monotonic()
        try:
            identity = sts.get_caller_identity()
        except NoCredentialsError as exc:
            raise ConfigError(
                "no AWS credentials found",
                "set AWS_PROFILE or run 'aws configure' (or use --target local)",
            ) from exc
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code") or "")
            if code and not code.isdigit():  # an AWS error, from AWS or a faithful emulator
                if code in CREDENTIAL_CODES and self.is_local:
                    raise ConfigError(
                        f"the local cloud at {safe_url(where)} refused gdlab's key ({code})",
                        "use the local cloud of this GDLAB_HOME (leave out --endpoint-url), "
                        "or 'gdlab local stop' and retry",
                    ) from exc
                if code in CREDENTIAL_CODES:
                    raise ConfigError(
                        f"AWS credentials were rejected ({code})",
                        "refresh them (aws sso login / aws configure) and retry",
                    ) from exc
                message = shown(exc.response.get("Error", {}).get("Message") or "", 160)
                raise ConfigError(
                    f"STS at {safe_url(where)} could not check the credentials: {code}"
                    + (f": {message}" if message else ""),
                    "retry in a minute; " + endpoint_hint(where, self.is_local),
                ) from exc
            raise self._not_aws(where) from exc
        except Exception as exc:  # noqa: BLE001 - whatever the endpoint did, one line
            known = describe_endpoint_error(
                exc, where, within=time.monotonic() - started, local=self.is_local
            )
            if self.last_answer and not _is_connection_error(exc):
                raise self._not_aws(where) from exc  # it answered: say what, not the body
            if known is None:
                raise
            raise ConfigError(*known) from exc
        account = identity.get("Account") if isinstance(identity, dict) else None
        if not isinstance(account, str) or not re.fullmatch(r"\d{12}", account):
            raise self._not_aws(where)
        return account

    def _not_aws(self, where: str | None) -> ConfigError:
        """The endpoint answered, but not as AWS STS does: say what came back, not the body."""
        answer = self.last_answer or {}
        status = answer.get("status")
        what = what_came_back(answer)
        kind = shown(answer.get("content_type") or "", 40)
        if status and status >= 400:
            line = f"it answered HTTP {status}" + (f" with {what}" if what else "")
        elif status:
            line = f"it sent {what or 'an answer without an account id'} (HTTP {status}"
            line += f", {kind})" if kind else ")"
        else:
            line = "its answer has no account id"
        return ConfigError(
            f"the endpoint {safe_url(where)} did not answer as AWS STS does: {line}",
            endpoint_hint(where, self.is_local),
        )

    def partition(self) -> str:
        region = self.region
        if region.startswith("cn-"):
            return "aws-cn"
        if region.startswith("us-gov-"):
            return "aws-us-gov"
        return "aws"

    def arn(self, service: str, resource: str, region: bool = True) -> str:
        where = self.region if region else ""
        return f"arn:{self.partition()}:{service}:{where}:{self.account}:{resource}"

    def preflight(self, eips_needed: int = 1) -> dict[str, Any]:
        """Checks made before any create: region, credentials, Elastic IP headroom."""
        region = self.region
        account = self.account
        ec2 = self.preflight_client("ec2")
        attrs = ec2.describe_account_attributes(AttributeNames=["vpc-max-elastic-ips"])
        limit = None
        for attr in attrs.get("AccountAttributes", []):
            if attr["AttributeName"] == "vpc-max-elastic-ips":
                limit = int(attr["AttributeValues"][0]["AttributeValue"])
        in_use = len(ec2.describe_addresses().get("Addresses", []))
        if limit is not None and in_use + eips_needed > limit:
            raise PreflightError(
                f"Elastic IP quota exhausted in {region}: {in_use} of {limit} in use, "
                f"the lab needs {eips_needed}",
                "release an unused Elastic IP or request a quota increase, then retry",
            )
        return {"account": account, "region": region, "eips_in_use": in_use, "eip_limit": limit}


def _is_connection_error(exc: BaseException) -> bool:
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    return isinstance(exc, (BotoConnectionError, HTTPClientError))


def what_came_back(answer: dict[str, Any]) -> str:
    """'an HTML page', 'JSON', '6,000 bytes that are not XML'... from a raw answer's first
    bytes and content type; never the bytes themselves."""
    head = bytes(answer.get("head") or b"")
    size = answer.get("size")
    kind = (answer.get("content_type") or "").lower()
    start = head.lstrip()[:64].lower()
    if not size:
        return "an empty body" if size == 0 else ""
    if "html" in kind or start.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if "json" in kind or start[:1] in (b"{", b"["):
        return "JSON"
    if start.startswith(b"<"):
        return "XML that is not an STS answer"
    try:
        head.decode("utf-8")
        return f"{size:,} bytes of text that is not XML"
    except UnicodeDecodeError:
        return f"{size:,} bytes that are not text"
