"""The two commands of the credential-exfiltration attack on a simulated instance, for its
shell (instance_shell): ``curl`` to the instance metadata service, and ``aws`` for a few
operations run against the local cloud from the instance's address. See instance_shell's
docstring for what they accept."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from gdlab.local import imds
from gdlab.local.instance_shell import Failure, Shell

IMDS_HOST = "169.254.169.254"
# curl's exit codes (curl(1) "EXIT CODES"): 7 "Failed to connect to host", 22 "HTTP page not
# retrieved" (an error status with --fail).
CURL_COULDNT_CONNECT, CURL_HTTP_ERROR = 7, 22
# AWS CLI v2 return codes (AWS CLI user guide, "Command line return codes"): 252 the command
# syntax was invalid, 253 the environment or configuration was invalid (no credentials),
# 254 the service returned an error, 255 any other failure (no connection, say).
CLI_SYNTAX, CLI_CONFIG, CLI_SERVICE, CLI_OTHER = 252, 253, 254, 255
# (service, operation as the CLI spells it) -> boto3 method. No general CLI emulation, and
# no ssm operation: a script runs while SSM's simulation holds its lock.
AWS_CLI = {
    ("sts", "get-caller-identity"): "get_caller_identity",
    ("s3", "ls"): "list_buckets",
    ("s3api", "list-buckets"): "list_buckets",
    ("ec2", "describe-instances"): "describe_instances",
    ("iam", "list-roles"): "list_roles",
}
_BOTO_SERVICE = {"s3api": "s3"}
# --- curl (to the instance metadata service only) --------------------------------------------
_CURL_FLAGS = {"-s": "silent", "--silent": "silent", "-S": "show", "--show-error": "show",
               "-f": "fail", "--fail": "fail", "-L": "", "--location": ""}
_CURL_VALUES = {"-X": "method", "--request": "method", "-H": "header", "--header": "header"}


def curl(shell: Shell, argv: list[str], text: str) -> int:
    opts: dict[str, Any] = {"silent": False, "show": False, "fail": False, "method": "GET"}
    headers: dict[str, str] = {}
    urls: list[str] = []
    args = iter(argv[1:])
    for arg in args:
        if arg in _CURL_VALUES:
            value = next(args, None)
            if value is None:
                shell.err.append(f"curl: option {arg}: requires parameter\n")
                return 2
            if _CURL_VALUES[arg] == "method":
                opts["method"] = value.upper()
            else:
                name, _, given = value.partition(":")
                headers[name.strip().lower()] = given.strip()
                if not given.strip():  # curl(1) -H: "Name:" with no value sends no header
                    headers.pop(name.strip().lower())
        elif arg in _CURL_FLAGS or re.fullmatch(r"-[sSfL]+", arg):
            for flag in [arg] if arg in _CURL_FLAGS else [f"-{c}" for c in arg[1:]]:
                if _CURL_FLAGS[flag]:
                    opts[_CURL_FLAGS[flag]] = True
        elif arg.startswith("-"):
            raise Failure(2, f"gdlab local cloud: cannot simulate '{text}': curl option "
                             f"{arg} (it runs -s, -S, -f, -L, -X and -H)", echo=True)
        else:
            urls.append(arg)
    if not urls:
        shell.err.append("curl: no URL specified!\n")
        return 2
    status = 0
    for url in urls:
        status = _curl_one(shell, url, opts, headers, text)
    return status


def _curl_one(shell: Shell, url: str, opts: dict[str, Any], headers: dict[str, str],
              text: str) -> int:
    loud = not opts["silent"] or opts["show"]  # -s hides curl's errors, -S shows them again
    parts = urlsplit(url if "://" in url else "http://" + url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    refused = f"curl: (7) Failed to connect to {host} port {port} after 0 ms: " \
              "Couldn't connect to server\n"
    if (host, port, parts.scheme) != (IMDS_HOST, 80, "http"):
        if loud:
            shell.err.append(refused)
        if host != IMDS_HOST:
            shell.err.append(f"gdlab local cloud: cannot simulate '{text}': the local cloud "
                             f"has no internet; curl reaches only the instance metadata "
                             f"service (http://{IMDS_HOST})\n")
        return CURL_COULDNT_CONNECT
    path = parts.path or "/"
    try:
        if opts["method"] == "PUT" and path == "/latest/api/token":
            body = imds.token(shell.instance.id,
                              headers.get("x-aws-ec2-metadata-token-ttl-seconds"))
        elif opts["method"] == "GET":
            body = imds.get(shell.instance.id, path, headers.get("x-aws-ec2-metadata-token"))
        else:  # the simulated IMDS serves the token PUT and GETs only
            raise _MethodNotAllowed()
    except imds.Unreachable:
        if loud:
            shell.err.append(refused)
        return CURL_COULDNT_CONNECT
    except imds.ImdsError as exc:
        if opts["fail"]:
            if loud:
                shell.err.append(f"curl: (22) The requested URL returned error: "
                                 f"{exc.status}\n")
            return CURL_HTTP_ERROR
        body = _error_page(exc.status, exc.reason)
    shell.out.append(body)
    return 0


class _MethodNotAllowed(imds.ImdsError):
    status, reason = 405, "Method Not Allowed"


def _error_page(status: int, reason: str) -> str:
    """The body IMDS answers an error with (a small XHTML page)."""
    return ('<?xml version="1.0" encoding="iso-8859-1"?>\n'
            '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"\n'
            '\t"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
            '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n'
            f' <head>\n  <title>{status} - {reason}</title>\n </head>\n'
            f' <body>\n  <h1>{status} - {reason}</h1>\n </body>\n</html>\n')


# --- aws (a few operations, against the local cloud) -----------------------------------------
def aws(shell: Shell, argv: list[str], env: dict[str, str], text: str) -> int:
    positional, region, args = [], None, iter(argv[1:])
    for arg in args:
        if arg == "--region" or arg.startswith("--region="):
            region = arg.partition("=")[2] or next(args, None)
        elif arg == "--output" and next(args, None) == "json" or arg == "--no-cli-pager":
            continue
        elif arg.startswith("-"):
            raise Failure(127, f"gdlab local cloud: cannot simulate '{text}': aws option "
                               f"{arg}", echo=True)
        else:
            positional.append(arg)
    if len(positional) < 2 or not region and "--region" in argv:
        shell.err.append("usage: aws [options] <command> <subcommand> [<subcommand> ...] "
                         "[parameters]\naws: error: the following arguments are required: "
                         "command, operation\n")
        return CLI_SYNTAX
    key = (positional[0], positional[1])
    if key not in AWS_CLI or len(positional) > 2:
        known = ", ".join(" ".join(k) for k in AWS_CLI)
        raise Failure(127, f"gdlab local cloud: cannot simulate '{text}': aws runs {known} "
                           "only", echo=True)
    credentials = _credentials(shell, env)
    if credentials is None:
        return CLI_CONFIG
    service = _BOTO_SERVICE.get(key[0], key[0])
    region = region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or \
        shell.instance.ec2_backend.region_name  # awscli's region chain ends with IMDS's
    from gdlab.local import lambda_runner, trail

    endpoint = lambda_runner.endpoint()
    if endpoint is None:
        shell.err.append(f'\nCould not connect to the endpoint URL: "https://{service}.'
                         f'{region}.amazonaws.com/"\ngdlab local cloud: no local cloud server '
                         "runs in this process for the instance to call\n")
        return CLI_OTHER
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.session.Session().client(
        service, region_name=region, endpoint_url=endpoint, **credentials,
        config=Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=5,
                      read_timeout=60))
    trail.from_address(client, address_of(shell.instance))
    try:
        response = getattr(client, AWS_CLI[key])()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        shell.err.append(f"\nAn error occurred ({error.get('Code')}) when calling the "
                         f"{exc.operation_name} operation: {error.get('Message', '')}\n")
        return CLI_SERVICE
    except BotoCoreError as exc:
        shell.err.append(f"\n{exc}\n")
        return CLI_OTHER
    response.pop("ResponseMetadata", None)
    if key == ("s3", "ls"):  # the high-level s3 command prints a listing, not JSON
        shell.out.extend(f"{b['CreationDate'].astimezone(UTC):%Y-%m-%d %H:%M:%S} "
                         f"{b['Name']}\n" for b in response.get("Buckets", []))
    elif response:
        shell.out.append(json.dumps(response, indent=4, ensure_ascii=False,
                                    default=_json_default) + "\n")
    return 0


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _credentials(shell: Shell, env: dict[str, str]) -> dict[str, str] | None:
    """The CLI's credentials: the environment's, else the instance profile's through
    IMDSv2; None (with the CLI's error on stderr) when there are none."""
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if key or secret:
        if not (key and secret):
            missing = "AWS_SECRET_ACCESS_KEY" if key else "AWS_ACCESS_KEY_ID"
            shell.err.append(f"\nPartial credentials found in env, missing: {missing}\n")
            return None
        found = {"aws_access_key_id": key, "aws_secret_access_key": secret}
        if env.get("AWS_SESSION_TOKEN"):
            found["aws_session_token"] = env["AWS_SESSION_TOKEN"]
        return found
    try:
        token = imds.token(shell.instance.id, imds.MAX_TTL)
        role = imds.get(shell.instance.id, imds.CREDENTIALS_PATH, token)
        given = json.loads(imds.get(shell.instance.id, imds.CREDENTIALS_PATH + role, token))
    except (imds.ImdsError, imds.Unreachable):
        shell.err.append('\nUnable to locate credentials. You can configure credentials by '
                         'running "aws configure".\n')
        return None
    return {"aws_access_key_id": given["AccessKeyId"],
            "aws_secret_access_key": given["SecretAccessKey"],
            "aws_session_token": given["Token"]}


def address_of(instance: Any) -> str:
    """Where the instance's requests come from: its public IP, else its private IP."""
    nics = sorted(getattr(instance, "nics", {}).items()) if isinstance(
        getattr(instance, "nics", None), dict) else []
    for _index, eni in nics:
        if getattr(eni, "public_ip", None):
            return str(eni.public_ip)
    return str(instance.private_ip)
