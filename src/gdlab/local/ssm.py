"""SSM Run Command inside the local cloud: AWS-RunShellScript commands really "run" on lab
instances through the traffic simulator.

moto records SendCommand and reports every invocation as Success with empty output. Here:

- SendCommand only targets managed instances, as SSM does: running instances with an IAM
  instance profile (the SSM agent needs one); others raise ``InvalidInstanceId``.
- Each line of ``commands`` runs in order, like ``bash`` without ``-e`` (``set -e`` is
  honoured; ``;``, ``&&`` and ``||`` too): ``ping`` becomes flow records and real ping
  output; ``echo``, ``true``, ``false``, ``sleep`` (instant), comments and ``set`` are
  understood. Anything else fails the invocation with a message naming what the local
  cloud cannot simulate — never a fake success.
- The invocation (GetCommandInvocation, ListCommandInvocations) and the command
  (ListCommands) report Success or Failed, the response code, stdout and stderr.
- DescribeInstanceInformation lists managed instances as Online, PlatformType Linux.
"""

from __future__ import annotations

import datetime as dt
import shlex
from typing import Any

from moto.core.exceptions import ServiceException

RUN_SHELL = "AWS-RunShellScript"
PLUGIN = "aws:runShellScript"
AGENT_VERSION = "3.3.1957.0"

_installed = False


class InvalidInstanceId(ServiceException):
    code = "InvalidInstanceId"


class Failure(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


# --- the shell ---------------------------------------------------------------------------
def _split(line: str) -> list[tuple[str, list[str]]]:
    """A command line as (operator before it, argv) pairs; operators: ';', '&&', '||'."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    parts: list[tuple[str, list[str]]] = []
    operator, argv = ";", []
    for token in lexer:
        if token in (";", "&&", "||"):
            if argv:
                parts.append((operator, argv))
            operator, argv = token, []
        elif set(token) <= set(";&|"):
            raise Failure(127, f"the local cloud does not simulate shell syntax '{token}'")
        else:
            argv.append(token)
    if argv:
        parts.append((operator, argv))
    return parts


def run_script(instance: Any, commands: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of the commands, as bash would run them on the instance."""
    from gdlab.local import traffic

    out: list[str] = []
    errexit = False
    status = 0
    lines = [line for block in commands for line in str(block).splitlines()]
    for number, line in enumerate(lines, start=1):
        try:
            parts = _split(line)
        except ValueError as exc:
            return 2, "".join(out), f"bash: line {number}: syntax error: {exc}\n"
        except Failure as exc:
            return exc.code, "".join(out), f"{exc}\nfailed to run commands: exit status " \
                                           f"{exc.code}\n"
        for operator, argv in parts:
            if operator == "&&" and status != 0 or operator == "||" and status == 0:
                continue
            name = argv[0]
            if name == "set":
                flags = [a for a in argv[1:] if a.startswith(("-", "+"))]
                for flag in flags:
                    if "e" in flag:
                        errexit = flag.startswith("-")
                status = 0
            elif name == "echo":
                text = argv[1:]
                newline = "\n"
                if text and text[0] == "-n":
                    text, newline = text[1:], ""
                out.append(" ".join(text) + newline)
                status = 0
            elif name in ("true", ":", "sleep"):
                status = 0
            elif name == "false":
                status = 1
            elif name.rsplit("/", 1)[-1] == "ping":
                try:
                    status, text = traffic.run_ping(instance, argv)
                except traffic.Unsupported as exc:
                    message = f"gdlab local cloud: cannot simulate '{line.strip()}': {exc}"
                    out.append(message + "\n")
                    return 2, "".join(out), f"{message}\nfailed to run commands: exit " \
                                            "status 2\n"
                out.append(text)
            else:
                message = (f"gdlab local cloud: cannot simulate '{line.strip()}': the local "
                           "cloud runs ping, echo, true, false, sleep and set only")
                out.append(message + "\n")
                return 127, "".join(out), f"{message}\nfailed to run commands: exit " \
                                          "status 127\n"
            if status != 0 and errexit and operator != "||":
                break
        if status != 0 and errexit:
            break
    err = f"failed to run commands: exit status {status}\n" if status else ""
    return status, "".join(out), err


# --- managed instances ---------------------------------------------------------------------
def _instances(account: str, region: str) -> list[Any]:
    from moto.ec2.models import ec2_backends

    ec2 = ec2_backends[account][region]
    return [i for r in ec2.reservations.values() for i in r.instances]


def managed(instance: Any) -> bool:
    ec2 = instance.ec2_backend
    return instance.state == "running" and (
        instance.id in ec2.iam_instance_profile_associations
        or bool(getattr(instance, "iam_instance_profile", None))
    )


def _platform(instance: Any) -> tuple[str, str, str]:
    """(PlatformType, PlatformName, PlatformVersion) from the instance's AMI."""
    ec2 = instance.ec2_backend
    image = ec2.amis.get(instance.image_id) if hasattr(ec2, "amis") else None
    name = (getattr(image, "name", "") or "").lower()
    if getattr(image, "platform", None) == "windows" or "windows" in name:
        return "Windows", getattr(image, "name", "Windows"), ""
    if "al2023" in name:
        return "Linux", "Amazon Linux", "2023"
    if "amzn2" in name:
        return "Linux", "Amazon Linux", "2"
    if "amzn" in name:
        return "Linux", "Amazon Linux AMI", ""
    return "Linux", getattr(image, "name", None) or "Linux", ""


def instance_information(account: str, region: str, filters: list[dict[str, Any]] | None
                         ) -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.timezone.utc)
    rows = []
    for instance in _instances(account, region):
        if not managed(instance):
            continue
        platform_type, platform_name, version = _platform(instance)
        row = {
            "InstanceId": instance.id,
            "PingStatus": "Online",
            "LastPingDateTime": now,
            "AgentVersion": AGENT_VERSION,
            "IsLatestVersion": True,
            "PlatformType": platform_type,
            "PlatformName": platform_name,
            "PlatformVersion": version,
            "ResourceType": "EC2Instance",
            "IPAddress": instance.private_ip,
            "ComputerName": f"ip-{instance.private_ip.replace('.', '-')}.ec2.internal",
            "SourceId": instance.id,
            "SourceType": "AWS::EC2::Instance",
        }
        tags = {t["key"]: t["value"] for t in instance.get_tags()}
        if all(_filter_ok(row, tags, f) for f in filters or []):
            rows.append(row)
    return rows


def _filter_ok(row: dict[str, Any], tags: dict[str, str], flt: dict[str, Any]) -> bool:
    key = flt.get("Key") or flt.get("key") or ""
    values = flt.get("Values") or flt.get("valueSet") or []
    fields = {"InstanceIds": "InstanceId", "PingStatus": "PingStatus",
              "PlatformTypes": "PlatformType", "ResourceType": "ResourceType",
              "AgentVersion": "AgentVersion"}
    if key.startswith("tag:"):
        return tags.get(key[4:]) in values
    if key.startswith("tag-key"):
        return any(v in tags for v in values)
    field = fields.get(key)
    return field is None or str(row.get(field)) in values


# --- running a command ---------------------------------------------------------------------
def execute(command: Any) -> None:
    """Run the command on each of its instances and record the outcomes on it."""
    account, region = command.account_id, command.backend_region
    by_id = {i.id: i for i in _instances(account, region)}
    params = command.parameters or {}
    commands = params.get("commands") or params.get("Commands") or []
    errors = 0
    for position, invocation in enumerate(list(command.invocations)):
        instance = by_id.get(invocation["InstanceId"])
        start = dt.datetime.now(dt.timezone.utc)
        if command.document_name != RUN_SHELL:
            code, stdout = 1, ""
            stderr = (f"gdlab local cloud: cannot simulate document {command.document_name}; "
                      f"it runs {RUN_SHELL} only\n")
            stdout = stderr
        elif instance is None or not managed(instance):
            code, stdout, stderr = 1, "", "the instance is not connected to SSM\n"
        else:
            code, stdout, stderr = run_script(instance, commands)
        end = dt.datetime.now(dt.timezone.utc)
        status = "Success" if code == 0 else "Failed"
        errors += code != 0
        elapsed = (end - start).total_seconds()
        invocation.update({
            "PluginName": PLUGIN,
            "ResponseCode": code,
            "ExecutionStartDateTime": start.isoformat(timespec="milliseconds"),
            "ExecutionEndDateTime": end.isoformat(timespec="milliseconds"),
            "ExecutionElapsedTime": f"PT{elapsed:.3f}S",
            "Status": status,
            "StatusDetails": status,
            "StandardOutputContent": stdout,
            "StandardErrorContent": stderr,
        })
        command.invocations[position] = invocation
    command.error_count = errors
    command.completed_count = len(command.invocations)
    command.status = command.status_details = "Failed" if errors else "Success"


def invocation_entry(command: Any, invocation: dict[str, Any], details: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "CommandId": command.command_id,
        "InstanceId": invocation["InstanceId"],
        "Comment": command.comment,
        "DocumentName": command.document_name,
        "DocumentVersion": "$DEFAULT",
        "RequestedDateTime": command.requested_date_time,
        "Status": invocation["Status"],
        "StatusDetails": invocation["StatusDetails"],
        "StandardOutputUrl": "",
        "StandardErrorUrl": "",
        "CommandPlugins": [],
    }
    if details:
        entry["CommandPlugins"] = [{
            "Name": invocation.get("PluginName", PLUGIN),
            "Status": invocation["Status"],
            "StatusDetails": invocation["StatusDetails"],
            "ResponseCode": invocation.get("ResponseCode", 0),
            "ResponseStartDateTime": dt.datetime.fromisoformat(
                invocation["ExecutionStartDateTime"]),
            "ResponseFinishDateTime": dt.datetime.fromisoformat(
                invocation["ExecutionEndDateTime"]),
            "Output": invocation.get("StandardOutputContent", "")[:2500],
            "StandardOutputUrl": "",
            "StandardErrorUrl": "",
        }]
    return entry


def install() -> None:
    global _installed
    if _installed:
        return
    from moto.core.responses import ActionResult
    from moto.ssm.models import SimpleSystemManagerBackend
    from moto.ssm.responses import SimpleSystemManagerResponse

    original_send = SimpleSystemManagerBackend.send_command

    def send_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        # moto extends the caller's list in place; keep what was asked for.
        instance_ids = list(kwargs.get("instance_ids") or [])
        by_id = {i.id: i for i in _instances(self.account_id, self.region_name)}
        bad = [i for i in instance_ids if i not in by_id or not managed(by_id[i])]
        if bad:
            raise InvalidInstanceId(
                f"Instances [[{', '.join(bad)}]] not in a valid state for account "
                f"{self.account_id}"
            )
        command = original_send(self, *args, **kwargs)
        if not kwargs.get("targets"):
            # moto adds every instance of the region when Targets is empty.
            command.instance_ids = list(dict.fromkeys(instance_ids))
            command.invocations = [command.invocation_response(i, PLUGIN)
                                   for i in command.instance_ids]
            command.target_count = len(command.instance_ids)
        execute(command)
        return command

    def list_command_invocations(self: Any) -> ActionResult:
        command_id = self._get_param("CommandId")
        instance_id = self._get_param("InstanceId")
        details = bool(self._get_param("Details", False))
        commands = self.ssm_backend.list_commands(command_id, instance_id)
        rows = [invocation_entry(c, inv, details) for c in commands for inv in c.invocations
                if instance_id in (None, inv["InstanceId"])]
        return ActionResult({"CommandInvocations": rows})

    def describe_instance_information(self: Any) -> ActionResult:
        filters = (self._get_param("Filters") or []) + (
            self._get_param("InstanceInformationFilterList") or [])
        rows = instance_information(self.current_account, self.region, filters)
        return ActionResult({"InstanceInformationList": rows})

    SimpleSystemManagerBackend.send_command = send_command  # type: ignore[method-assign]
    SimpleSystemManagerResponse.list_command_invocations = list_command_invocations
    SimpleSystemManagerResponse.describe_instance_information = describe_instance_information
    _installed = True
