"""The two commands the lab scenarios' attacks run on a simulated instance, for its shell
(instance_shell): ``curl`` to the instance metadata service, and ``aws`` for a few operations
(AWS_CLI, with their options as AWS CLI v2 parses them) run against the local cloud from the
instance's address. See instance_shell's docstring for what they accept."""

from __future__ import annotations

import argparse
import functools
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn
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
@dataclass(frozen=True)
class Option:
    """One CLI option: the boto3 parameter it fills, and how its value is read: "string" as
    given, "json" a structure in JSON, "shorthand" a structure in JSON or Key=Value,..."""

    param: str
    kind: str = "string"
    required: bool = False


@dataclass(frozen=True)
class Command:
    method: str  # the boto3 method
    options: dict[str, Option] = field(default_factory=dict)  # by CLI name


_BUCKET = {"--bucket": Option("Bucket", required=True)}
# (service, operation as the CLI spells it) -> its boto3 call. No general CLI emulation, and
# no ssm operation: a script runs while SSM's simulation holds its lock. `aws s3 ls` takes
# an optional s3://BUCKET[/prefix] (ListObjectsV2 under it) and lists buckets without one.
AWS_CLI = {
    ("sts", "get-caller-identity"): Command("get_caller_identity"),
    ("s3", "ls"): Command("list_buckets"),
    ("s3api", "list-buckets"): Command("list_buckets"),
    ("s3api", "list-objects-v2"): Command("list_objects_v2", {
        **_BUCKET, "--prefix": Option("Prefix")}),
    ("s3api", "get-bucket-logging"): Command("get_bucket_logging", _BUCKET),
    ("s3api", "put-bucket-logging"): Command("put_bucket_logging", {
        **_BUCKET, "--bucket-logging-status": Option("BucketLoggingStatus", "json", True)}),
    ("s3api", "get-public-access-block"): Command("get_public_access_block", _BUCKET),
    ("s3api", "put-public-access-block"): Command("put_public_access_block", {
        **_BUCKET, "--public-access-block-configuration": Option(
            "PublicAccessBlockConfiguration", "shorthand", True)}),
    ("s3api", "delete-public-access-block"): Command("delete_public_access_block", _BUCKET),
    ("ec2", "describe-instances"): Command("describe_instances"),
    ("iam", "list-roles"): Command("list_roles"),
    ("iam", "list-users"): Command("list_users"),
    ("iam", "get-user"): Command("get_user", {"--user-name": Option("UserName")}),
}
_BOTO_SERVICE = {"s3api": "s3"}
# AWS CLI v2's usage text (awscli/argparser.py), which its syntax errors begin with.
_USAGE = ("aws [options] <command> <subcommand> [<subcommand> ...] [parameters]\n"
          "To see help text, you can run:\n\n  aws help\n  aws <command> help\n"
          "  aws <command> <subcommand> help\n")
# Global options of the real CLI that gdlab does not simulate (--region, --output json and
# --no-cli-pager it does).
_GLOBAL_UNSIMULATED = {
    "--debug", "--endpoint-url", "--no-verify-ssl", "--no-paginate", "--query", "--profile",
    "--version", "--color", "--no-sign-request", "--ca-bundle", "--cli-read-timeout",
    "--cli-connect-timeout", "--cli-binary-format", "--no-cli-auto-prompt", "--cli-auto-prompt"}
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
    words, region, args = [], None, iter(argv[1:])
    for arg in args:
        if arg == "--region" or arg.startswith("--region="):
            region = arg.partition("=")[2] or next(args, None)
        elif arg == "--output" and next(args, None) == "json" or arg == "--no-cli-pager":
            continue
        elif arg.split("=", 1)[0] in _GLOBAL_UNSIMULATED or arg.startswith("-") and \
                len(words) < 2:
            raise Failure(127, f"gdlab local cloud: cannot simulate '{text}': aws option "
                               f"{arg}", echo=True)
        else:
            words.append(arg)
    if len(words) < 2 or not region and "--region" in argv:
        shell.err.append("usage: aws [options] <command> <subcommand> [<subcommand> ...] "
                         "[parameters]\naws: error: the following arguments are required: "
                         "command, operation\n")
        return CLI_SYNTAX
    key = (words[0], words[1])
    if key not in AWS_CLI:
        known = ", ".join(" ".join(k) for k in AWS_CLI)
        raise Failure(127, f"gdlab local cloud: cannot simulate '{text}': aws runs {known} "
                           "only", echo=True)
    service = _BOTO_SERVICE.get(key[0], key[0])
    try:
        method, params = _parameters(key, AWS_CLI[key], words[2:], text)
    except _CliError as exc:
        shell.err.append(f"\n{exc}\n")
        return CLI_SYNTAX
    credentials = _credentials(shell, env)
    if credentials is None:
        return CLI_CONFIG
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
    from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

    client = boto3.session.Session().client(
        service, region_name=region, endpoint_url=endpoint, **credentials,
        config=Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=5,
                      read_timeout=60))
    trail.from_address(client, address_of(shell.instance))
    try:
        if key == ("s3", "ls") and method == "list_objects_v2":
            return _s3_listing(shell, client, params)
        if client.can_paginate(method):  # the CLI's default: every page, merged
            response = client.get_paginator(method).paginate(**params).build_full_result()
        else:
            response = getattr(client, method)(**params)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        shell.err.append(f"\nAn error occurred ({error.get('Code')}) when calling the "
                         f"{exc.operation_name} operation: {error.get('Message', '')}\n")
        return CLI_SERVICE
    except ParamValidationError as exc:
        shell.err.append(f"\n{exc}\n")
        return CLI_SYNTAX
    except BotoCoreError as exc:
        shell.err.append(f"\n{exc}\n")
        return CLI_OTHER
    response.pop("ResponseMetadata", None)
    if key == ("s3", "ls"):  # the high-level s3 command prints a listing, not JSON
        shell.out.extend(f"{_listed_time(b['CreationDate'])} {b['Name']}\n"
                         for b in response.get("Buckets", []))
    elif response:  # the CLI prints nothing for an empty answer (PutBucketLogging's)
        shell.out.append(json.dumps(response, indent=4, ensure_ascii=False,
                                    default=_json_default) + "\n")
    return 0


class _CliError(Exception):
    """A command line the CLI itself refuses (exit code 252); the message as it prints it."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # the CLI raises instead of exiting
        raise _CliError(f"{self.format_usage()}\n{self.prog}: error: {message}\n")


def _parameters(key: tuple[str, str], command: Command, words: list[str],
                text: str) -> tuple[str, dict[str, Any]]:
    """The boto3 method and parameters of the command line's options, as the CLI parses
    them (argparse)."""
    parser = _Parser(prog="aws", usage=_USAGE, add_help=False)
    for name, option in command.options.items():
        parser.add_argument(name, dest=option.param, required=option.required)
    if key == ("s3", "ls"):
        parser.add_argument("paths", nargs="?", default="s3://")
    parsed, unknown = parser.parse_known_args(words)
    if unknown:
        unsimulated = [w for w in unknown if w.split("=", 1)[0] in _known_options(key)]
        if unsimulated:
            raise Failure(127, f"gdlab local cloud: cannot simulate '{text}': aws option "
                               f"{unsimulated[0]}", echo=True)
        raise _CliError(f"usage: {_USAGE}\nUnknown options: {', '.join(unknown)}\n")
    values = vars(parsed)
    if key == ("s3", "ls"):
        path = values.pop("paths")
        bucket, _, prefix = path.removeprefix("s3://").partition("/")
        if not bucket:
            return "list_buckets", {}
        return "list_objects_v2", {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
    params: dict[str, Any] = {}
    for name, option in command.options.items():
        value = values.get(option.param)
        if value is None:
            continue
        if option.kind == "string":
            params[option.param] = value
        elif value.lstrip().startswith("{"):  # a structure given as JSON
            try:
                params[option.param] = json.loads(value)
            except ValueError as exc:
                raise _CliError(f"Error parsing parameter '{name}': Invalid JSON: {exc}\n"
                                f"JSON received: {value}") from exc
        elif option.kind == "shorthand":
            params[option.param] = _shorthand(key, command.method, option.param, name, value,
                                              text)
        else:
            raise Failure(127, f"gdlab local cloud: cannot simulate '{text}': {name} in "
                               "shorthand syntax (give it as JSON)", echo=True)
    return command.method, params


_SHORTHAND_KEY = re.compile(r"[A-Za-z0-9\-_.#/:]*")


def _shorthand(key: tuple[str, str], method: str, param: str, name: str, value: str,
               text: str) -> dict[str, Any]:
    """Flat shorthand syntax, Key=Value,Key=Value; booleans and numbers typed by the service
    model, as the CLI types them (anything else is left as given, for botocore to refuse)."""
    if any(c in value for c in "[]{}'\"\\"):
        raise Failure(127, f"gdlab local cloud: cannot simulate '{text}': {name} beyond "
                           "flat Key=Value,Key=Value shorthand (give it as JSON)", echo=True)
    members = _input_members(_BOTO_SERVICE.get(key[0], key[0]), method, param)
    parsed: dict[str, Any] = {}
    at = 0  # where the pair starts in the whole value, for the CLI's caret
    for n, pair in enumerate(value.split(",")):
        field = _SHORTHAND_KEY.match(pair)
        member = field.group() if field else ""
        rest = pair[len(member):]
        if not rest.lstrip().startswith("="):
            if n:  # "a=b,c" makes a list value, which no option here takes
                raise Failure(127, f"gdlab local cloud: cannot simulate '{text}': {name} "
                                   "with a list value", echo=True)
            where = at + len(member) + len(rest) - len(rest.lstrip())
            actual = value[where] if where < len(value) else "EOF"
            raise _CliError(f"Error parsing parameter '{name}': Expected: '=', received: "
                            f"'{actual}' for input:\n{value}\n{' ' * where}^")
        if member in parsed:
            raise _CliError(f"Error parsing parameter '{name}': Second instance of key "
                            f'"{member}" encountered for input:\n{value}\n{" " * at}^\n'
                            'This is often because there is a preceding "," instead of a '
                            "space.")
        given = rest.lstrip()[1:].strip()
        kind = members.get(member, "string")
        if kind == "boolean" and given.lower() in ("true", "false"):
            parsed[member] = given.lower() == "true"
        elif kind in ("integer", "long") and given.lstrip("-").isdigit():
            parsed[member] = int(given)
        else:
            parsed[member] = given
        at += len(pair) + 1
    return parsed


@functools.cache
def _service_model(service: str) -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


def _input_members(service: str, method: str, param: str) -> dict[str, str]:
    """The type of each member of an operation's structure parameter."""
    from botocore import xform_name

    model = _service_model(service)
    operation = next(o for o in model.operation_names if xform_name(o) == method)
    shape = model.operation_model(operation).input_shape.members[param]
    return {n: m.type_name for n, m in shape.members.items()}


def _known_options(key: tuple[str, str]) -> set[str]:
    """Options the real CLI takes for this command (so one gdlab does not simulate is named
    as such, not refused as a typo): the operation's input members, as the CLI spells them."""
    if key == ("s3", "ls"):
        return {"--recursive", "--page-size", "--human-readable", "--summarize",
                "--request-payer"}
    from botocore import xform_name

    model = _service_model(_BOTO_SERVICE.get(key[0], key[0]))
    operation = next(o for o in model.operation_names
                     if xform_name(o, "-") == key[1])
    shape = model.operation_model(operation).input_shape
    members = shape.members if shape is not None else {}
    return {"--" + xform_name(m, "-") for m in members} | {
        "--cli-input-json", "--cli-input-yaml", "--generate-cli-skeleton", "--max-items",
        "--starting-token", "--page-size", "--no-paginate"}


def _s3_listing(shell: Shell, client: Any, params: dict[str, Any]) -> int:
    """`aws s3 ls s3://BUCKET[/prefix]`: its prefixes (PRE) and objects under the prefix, as
    the CLI prints them; exit code 1 when a prefix was given and nothing is under it."""
    empty = True
    for page in client.get_paginator("list_objects_v2").paginate(**params):
        for prefix in page.get("CommonPrefixes", []):
            empty = False
            shell.out.append(f"{'PRE':>30} {prefix['Prefix'].split('/')[-2]}/\n")
        for item in page.get("Contents", []):
            empty = False
            shell.out.append(f"{_listed_time(item['LastModified'])} {item['Size']:>10} "
                             f"{item['Key'].split('/')[-1]}\n")
    return 1 if empty and params["Prefix"] else 0


def _listed_time(value: datetime) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S}"  # the instance's clock runs in UTC


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
