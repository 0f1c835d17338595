"""Endpoints that do not speak AWS: an HTML page, random bytes, HTTP 500s, a server that
never answers, a port where nothing listens. The preflight says in one line what came back
and where, never dumps a body, and gives up in bounded time (tiny servers on free 127.0.0.1
ports, each stopping by itself)."""

from __future__ import annotations

import http.server
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from gdlab import cloud as cloud_module
from gdlab.cloud import Cloud, CloudSettings, what_came_back
from gdlab.errors import ConfigError, describe

LIFETIME = 60.0  # no test server outlives this, whatever happens to the test


def answering(status: int, content_type: str | None, body: bytes) -> Callable:
    def handle(request: http.server.BaseHTTPRequestHandler) -> None:
        request.send_response(status)
        if content_type:
            request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    return handle


def http_server(handle: Callable) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            handle(self)

        do_GET = do_POST  # noqa: N815

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    timer = threading.Timer(LIFETIME, server.shutdown)
    timer.daemon = True
    timer.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        timer.cancel()
        server.shutdown()
        server.server_close()


def silent_server() -> Iterator[str]:
    """Accepts connections and never answers; stops after LIFETIME or with the test."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        deadline = time.monotonic() + LIFETIME
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                held.append(sock.accept()[0])
            except OSError:  # the accept timeout included
                continue
        for conn in held:
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        sock.close()


HTML = answering(200, "text/html", b"<!DOCTYPE html><html><body>" + b"x" * 6000 + b"</body></html>")
# Random bytes behind a byte that is never text, whitespace or the start of JSON or XML:
# bare urandom began with "{", "[" or "<" in about one run of a hundred.
RANDOM = answering(200, "application/octet-stream", b"\xff" + os.urandom(5999))
ERROR_500_HTML = answering(500, "text/html", b"<html><body>Internal Server Error</body></html>")
ERROR_500_TEXT = answering(500, "text/plain", b"oops")
JSON = answering(200, "application/json", b'{"hello": "world"}')
OTHER_XML = answering(200, "text/xml", b'<?xml version="1.0"?><Hello><World>1</World></Hello>')
EMPTY = answering(200, None, b"")


@pytest.fixture
def endpoint(request, free_port) -> Iterator[str]:
    """A misbehaving endpoint, chosen by the test's parameter."""
    kind = request.param
    if kind == "silent":
        yield from silent_server()
    elif kind == "closed":
        yield f"http://127.0.0.1:{free_port}"  # nothing listens there
    else:
        yield from http_server(globals()[kind])


@pytest.fixture
def quick(monkeypatch):
    """Small timeouts so a never-answering endpoint costs a second, not 25."""
    monkeypatch.setattr(cloud_module, "BOUNDED_READ_TIMEOUT", 0.5)
    monkeypatch.setattr(cloud_module, "BOUNDED_CONNECT_TIMEOUT", 0.5)


CASES = [
    ("HTML", "it sent an HTML page (HTTP 200, text/html)"),
    ("RANDOM", "it sent 6,000 bytes that are not text (HTTP 200, application/octet-stream)"),
    ("ERROR_500_HTML", "it answered HTTP 500 with an HTML page"),
    ("ERROR_500_TEXT", "it answered HTTP 500 with 4 bytes of text that is not XML"),
    ("JSON", "it sent JSON (HTTP 200, application/json)"),
    ("OTHER_XML", "it sent XML that is not an STS answer (HTTP 200, text/xml)"),
    ("EMPTY", "did not answer as AWS STS does"),
    ("silent", "did not answer within"),
    ("closed", "nothing listens at"),
]


def one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("endpoint, expected", CASES, indirect=["endpoint"])
def test_account_says_what_the_endpoint_did(endpoint, expected, quick):
    cloud = Cloud(CloudSettings(target="aws", region="us-east-1", endpoint_url=endpoint))
    with pytest.raises(ConfigError) as raised:
        cloud.account  # noqa: B018
    line, code = describe(raised.value)
    assert code == 1
    assert expected in line
    assert f"the endpoint {endpoint} " in line or f"at {endpoint} " in line
    assert "check --endpoint-url / AWS_ENDPOINT_URL" in line
    assert "gdlab local status" not in line  # the target is aws: not gdlab's local cloud
    assert len(line) < 300 and "\\x" not in line and "<html" not in line.lower()


@pytest.mark.parametrize("endpoint, expected", CASES, indirect=["endpoint"])
def test_cli_preflight_gives_one_line(run_cli, gdlab_home, endpoint, expected, quick):
    code, out, err = run_cli("--target", "aws", "--endpoint-url", endpoint, "setup", "--yes")
    line = one_line(err)
    assert code == 1
    assert expected in line and endpoint in line
    assert len(line) < 300
    assert not (gdlab_home / "labs").exists() or not list((gdlab_home / "labs").glob("*.json"))


@pytest.mark.parametrize("endpoint", ["HTML", "closed"], indirect=True)
def test_local_target_with_a_bad_endpoint(run_cli, gdlab_home, endpoint, quick):
    code, _, err = run_cli("--endpoint-url", endpoint, "setup")
    line = one_line(err)
    assert code == 1 and endpoint in line
    assert "'gdlab local status' shows the local cloud" in line
    assert not (gdlab_home / "local").exists()  # no local cloud was started for it


@pytest.mark.parametrize("endpoint", ["silent"], indirect=True)
def test_preflight_is_bounded_by_few_short_tries(endpoint, monkeypatch):
    """The identity check is tried at most BOUNDED_ATTEMPTS times with its own short
    timeouts (the default clients retry 6 times with 60 s reads: 361 s)."""
    monkeypatch.setattr(cloud_module, "BOUNDED_READ_TIMEOUT", 0.3)
    cloud = Cloud(CloudSettings(target="aws", region="us-east-1", endpoint_url=endpoint))
    sts = cloud.preflight_client("sts")
    assert sts.meta.config.read_timeout == 0.3
    assert sts.meta.config.connect_timeout == cloud_module.BOUNDED_CONNECT_TIMEOUT
    assert sts.meta.config.retries["total_max_attempts"] == cloud_module.BOUNDED_ATTEMPTS == 2
    with pytest.raises(ConfigError, match="did not answer within"):
        cloud.account  # noqa: B018
    assert cloud.api_calls == {"sts.GetCallerIdentity": 1}


def test_a_working_endpoint_still_answers(mocked_aws):
    cloud = Cloud(CloudSettings(target="aws", region="us-east-1"))
    assert cloud.account == "123456789012"
    assert cloud.preflight()["account"] == "123456789012"


def test_credentials_rejected_stays_a_credentials_error():
    from botocore.exceptions import ClientError

    cloud = Cloud(CloudSettings(target="aws", region="us-east-1"))
    sts = cloud.preflight_client("sts")

    def refuse(**_):
        raise ClientError({"Error": {"Code": "InvalidClientTokenId", "Message": "bad"},
                           "ResponseMetadata": {"HTTPStatusCode": 403}}, "GetCallerIdentity")

    sts.get_caller_identity = refuse
    with pytest.raises(ConfigError, match=r"credentials were rejected \(InvalidClientTokenId\)"):
        cloud.account  # noqa: B018


def test_bounded_view_shares_the_cloud_but_not_its_clients(mocked_aws):
    cloud = Cloud(CloudSettings(target="aws", region="us-east-1"))
    view = cloud.bounded()
    view.client("sts").get_caller_identity()
    assert cloud.api_calls == {"sts.GetCallerIdentity": 1}  # counted once, in the parent
    assert view.client("sts").meta.config.retries["total_max_attempts"] == 2
    assert cloud.client("sts").meta.config.retries["total_max_attempts"] == 6
    assert view.region == cloud.region and view.target == cloud.target


@pytest.mark.parametrize(
    "answer, expected",
    [
        ({"size": 0, "head": b""}, "an empty body"),
        ({"size": 10, "head": b"  <HTML><b>", "content_type": ""}, "an HTML page"),
        ({"size": 2, "head": b"[]"}, "JSON"),
        ({"size": 3000, "head": b"plain words"}, "3,000 bytes of text that is not XML"),
        ({"size": 4, "head": b"\xff\xfe\x00\x81"}, "4 bytes that are not text"),
    ],
)
def test_what_came_back(answer, expected):
    assert what_came_back(answer) == expected


def test_user_and_password_in_the_endpoint_are_not_shown(quick, free_port):
    port = free_port
    url = f"http://someone:s3cret@127.0.0.1:{port}"
    cloud = Cloud(CloudSettings(target="aws", region="us-east-1", endpoint_url=url))
    with pytest.raises(ConfigError) as raised:
        cloud.account  # noqa: B018
    line = describe(raised.value)[0]
    assert "s3cret" not in line and f"http://127.0.0.1:{port}" in line


@pytest.mark.parametrize("url", ["foo", "http://", "127.0.0.1:4566", "ftp://x", "http://[::1",
                                 "http://a b", "http://h:99999", "http://u:s3cret@h:x"])
def test_an_endpoint_that_is_not_a_url_is_a_usage_error(run_cli, gdlab_home, url):
    code, _, err = run_cli("--target", "aws", "--endpoint-url", url, "setup", "--yes")
    line = one_line(err)
    assert code == 2
    assert line.startswith("error: invalid --endpoint-url '")
    assert "use a whole URL such as http://127.0.0.1:4566" in line
    assert "s3cret" not in line and "ValueError" not in line


def test_aws_endpoint_url_from_the_environment_is_checked_too(run_cli, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "nope")
    code, _, err = run_cli("--target", "aws", "setup", "--yes")
    assert code == 2 and "invalid AWS_ENDPOINT_URL 'nope'" in one_line(err)


def test_given_credentials_act_instead_of_the_home_ones(local_server):
    """A cloud made with an assumed role's credentials (a class's member account) acts as that
    role, on the local target as on AWS."""
    import boto3

    keys = local_server.credentials.boto3_kwargs()
    org = boto3.client("organizations", region_name="us-east-1",
                       endpoint_url=local_server.endpoint, **keys)
    org.create_organization(FeatureSet="ALL")
    member = org.create_account(Email="m@example.com", AccountName="m")[
        "CreateAccountStatus"]["AccountId"]
    issued = boto3.client("sts", region_name="us-east-1", endpoint_url=local_server.endpoint,
                          **keys).assume_role(
        RoleArn=f"arn:aws:iam::{member}:role/OrganizationAccountAccessRole",
        RoleSessionName="gdlab-class-c")["Credentials"]
    from botocore.credentials import Credentials

    cloud = Cloud(CloudSettings(
        target="local", region="eu-west-1", endpoint_url=local_server.endpoint,
        local_cloud_id=local_server.cloud_id, credentials=Credentials(
            issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"])))
    assert cloud.account == member
    assert cloud.client("sts").get_caller_identity()["Arn"].endswith("/gdlab-class-c")
    assert cloud.client("ec2").meta.region_name == "eu-west-1"
