"""SSM Run Command inside the local cloud: AWS-RunShellScript commands really "run" on lab
instances through the traffic simulator, and only while the SSM agent can reach SSM.

moto records SendCommand and reports every invocation as Success with empty output. Here:

- The agent needs HTTPS out to SSM's public endpoints: an instance reaches SSM while one of
  its ENIs' groups lets TCP 443 (or all traffic) out to a CIDR with public addresses in it
  (no VPC endpoints, routes or NAT are modelled). It reports at launch and then every 5
  minutes (5 local seconds, ``gdlab.local.clock``); its first report that gets out
  registers it, a later one that cannot makes it ConnectionLost, the next that can Online.
- SendCommand targets registered, running instances with an instance profile, else
  ``InvalidInstanceId``. An agent that cannot reach SSM does not get the command: it stays
  Pending, runs if the agent gets out in time, else ends TimedOut / DeliveryTimedOut
  (ResponseCode -1) after TimeoutSeconds + executionTimeout (scaled), as "Understanding
  command statuses" documents.
- The commands run in order, like ``bash`` without ``-e``, in the instance shell
  (``gdlab.local.instance_shell``: ``set -e``, ``;``, ``&&``, ``||``, variables and
  ``$(...)``): ``ping`` becomes flow records and real ping output; ``curl`` reaches the
  instance metadata service; ``aws`` makes a few calls from the instance's address;
  ``echo``, ``true``, ``false``, ``sleep`` (instant), comments and ``set`` are understood.
  Anything else fails the invocation with a message naming what the local cloud cannot
  simulate — never a fake success.
- The invocation (GetCommandInvocation, ListCommandInvocations) and the command
  (ListCommands, with DeliveryTimedOutCount) report Pending, Success, Failed or TimedOut,
  the response code, stdout and stderr.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from moto.core.exceptions import ServiceException

from gdlab.local import clock, traffic

log = logging.getLogger("gdlab.local.ssm")

RUN_SHELL = "AWS-RunShellScript"
PLUGIN = "aws:runShellScript"
AGENT_VERSION = "3.3.1957.0"
HTTPS = 443
LINUX_AMIS = (("al2023", "Amazon Linux", "2023"), ("amzn2", "Amazon Linux", "2"),
              ("amzn", "Amazon Linux AMI", ""))  # (in the AMI name, PlatformName, version)
# Systems Manager user guide, "Troubleshooting managed node availability": once registered,
# "the managed node must be available to the service, which is confirmed by the service
# sending a signal every five minutes to check the instance's health". A node that misses
# it is ConnectionLost; the next check that gets through makes it Online.
REPORT_AWS_SECONDS = 300
# "Understanding command statuses": not received by the agent within TimeoutSeconds + the
# document's executionTimeout (3600 s each by default for AWS-RunShellScript): Delivery Timed Out.
DEFAULT_EXECUTION_TIMEOUT = 3600
# The agent polls for messages all the time; the local cloud offers pending ones this often.
DELIVERY_RETRY_AWS_SECONDS = 10

_lock = threading.RLock()
_wake = threading.Event()
_thread: threading.Thread | None = None
_agents: dict[tuple[str, str, str], Agent] = {}
_pending: dict[str, Any] = {}  # command id -> moto Command with Pending invocations
_orig: dict[str, Any] = {}


class InvalidInstanceId(ServiceException):
    code = "InvalidInstanceId"


# --- the shell ---------------------------------------------------------------------------
def run_script(instance: Any, commands: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of the commands, as bash would run them on the instance:
    instance_shell interprets them (variables, $(...), curl to IMDS, aws, and the rest)."""
    from gdlab.local import instance_shell

    return instance_shell.Shell(instance).run(commands)


# --- managed instances ---------------------------------------------------------------------
def _instances(account: str, region: str) -> list[Any]:
    from moto.ec2.models import ec2_backends

    # (the regions' own `in` counts every region moto knows, made or not)
    if account not in ec2_backends or region not in ec2_backends[account].keys():  # noqa: SIM118
        return []  # gone with a reset: never make a backend from a background thread
    ec2 = ec2_backends[account][region]
    return [i for r in list(ec2.reservations.values()) for i in list(r.instances)]


def _instance(account: str, region: str, instance_id: str) -> Any:
    return next((i for i in _instances(account, region) if i.id == instance_id), None)


def managed(instance: Any) -> bool:
    """Running, with an instance profile: the agent runs and has credentials."""
    ec2 = instance.ec2_backend
    return instance.state == "running" and (
        instance.id in ec2.iam_instance_profile_associations
        or bool(getattr(instance, "iam_instance_profile", None))
    )


def reaches_ssm(instance: Any) -> bool:
    """Can the agent open HTTPS to SSM's public endpoints right now?"""
    return managed(instance) and traffic.egress_allows_tcp_out(instance, HTTPS)


@dataclass
class Agent:
    """The SSM agent of one instance, as the service sees it: it reports when it starts and
    then every REPORT_AWS_SECONDS; the first report that gets out registers it."""

    key: tuple[str, str, str]
    registered: bool = False
    online: bool = False
    last_ping: float | None = None
    next_report: float = 0.0

    def report(self, instance: Any, now: float) -> None:
        out = reaches_ssm(instance)
        self.registered = self.registered or out
        self.online, self.last_ping = out, now if out else self.last_ping
        period = clock.local_seconds(REPORT_AWS_SECONDS)
        due = (self.next_report or now) + period
        self.next_report = due if due > now else now + period  # missed ones are not replayed


def agent_of(instance: Any) -> Agent:
    """The instance's agent; made, reporting at once, the first time it is seen (when its
    instance profile is associated, so at launch for the lab's instances)."""
    ec2 = instance.ec2_backend
    key = (ec2.account_id, ec2.region_name, instance.id)
    with _lock:
        agent = _agents.get(key)
        if agent is None:
            agent = _agents[key] = Agent(key)
            agent.report(instance, time.time())
            _start_thread()
        return agent


def _tick(now: float) -> float | None:
    """Run the reports and deliveries that are due; returns when the next one is."""
    with _lock:
        due = [a for a in _agents.values() if a.next_report <= now]
    for agent in due:
        instance = _instance(*agent.key)
        with _lock:
            if instance is None or instance.state == "terminated":
                _agents.pop(agent.key, None)
            else:
                agent.report(instance, now)
    for command in list(_pending.values()):
        settle(command, now)
    with _lock:
        wakes = [a.next_report for a in _agents.values()]
        if _pending:
            wakes.append(now + clock.local_seconds(DELIVERY_RETRY_AWS_SECONDS))
    return min(wakes, default=None)


def _loop() -> None:
    while True:
        try:
            wake = _tick(time.time())
        except Exception:  # noqa: BLE001 - the agents must outlive any one failure
            log.exception("SSM agent simulation failed")
            wake = time.time() + 1.0
        _wake.wait(None if wake is None else max(0.01, wake - time.time()))
        _wake.clear()


def _start_thread() -> None:
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_loop, name="gdlab-ssm-agents", daemon=True)
            _thread.start()
    _wake.set()


def _platform(instance: Any) -> tuple[str, str, str]:
    """(PlatformType, PlatformName, PlatformVersion) from the instance's AMI."""
    ec2 = instance.ec2_backend
    image = ec2.amis.get(instance.image_id) if hasattr(ec2, "amis") else None
    name = (getattr(image, "name", "") or "").lower()
    if getattr(image, "platform", None) == "windows" or "windows" in name:
        return "Windows", getattr(image, "name", "Windows"), ""
    for mark, platform, version in LINUX_AMIS:
        if mark in name:
            return "Linux", platform, version
    return "Linux", getattr(image, "name", None) or "Linux", ""


def instance_information(account: str, region: str, filters: list[dict[str, Any]] | None
                         ) -> list[dict[str, Any]]:
    rows = []
    for instance in _instances(account, region):
        agent = agent_of(instance) if managed(instance) else None
        if agent is None or not agent.registered:
            continue  # a node SSM has never heard from is not listed
        platform_type, platform_name, version = _platform(instance)
        row = {
            "InstanceId": instance.id,
            "PingStatus": "Online" if agent.online else "ConnectionLost",
            "LastPingDateTime": dt.datetime.fromtimestamp(
                agent.last_ping or time.time(), tz=dt.timezone.utc), "AgentVersion": AGENT_VERSION,
            "IsLatestVersion": True, "PlatformType": platform_type,
            "PlatformName": platform_name, "PlatformVersion": version,
            "ResourceType": "EC2Instance", "IPAddress": instance.private_ip,
            "ComputerName": f"ip-{instance.private_ip.replace('.', '-')}.ec2.internal",
            "SourceId": instance.id, "SourceType": "AWS::EC2::Instance",
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
def delivery_deadline(command: Any) -> float:
    """When an undelivered invocation times out: TimeoutSeconds plus the document's
    executionTimeout after the request, through the local clock."""
    given = (command.parameters or {}).get("executionTimeout")
    raw = str(given[0]) if given else ""
    execution = int(raw) if raw.isdigit() else DEFAULT_EXECUTION_TIMEOUT
    requested = command.requested_date_time.replace(tzinfo=dt.timezone.utc)  # moto: UTC
    return requested.timestamp() + clock.local_seconds(int(command.timeout_seconds) + execution)


def _record(invocation: dict[str, Any], status: str, details: str, code: int = -1,
            times: tuple[str, str, str] = ("", "", ""), out: str = "", err: str = "") -> None:
    """Set an invocation's outcome; an undelivered one has no times, output or code (-1)."""
    invocation.update({
        "PluginName": PLUGIN, "ResponseCode": code, "ExecutionStartDateTime": times[0],
        "ExecutionEndDateTime": times[1], "ExecutionElapsedTime": times[2], "Status": status,
        "StatusDetails": details, "StandardOutputContent": out, "StandardErrorContent": err})


def _run(command: Any, invocation: dict[str, Any], instance: Any) -> None:
    params = command.parameters or {}
    start = dt.datetime.now(dt.timezone.utc)
    if command.document_name != RUN_SHELL:
        code, stdout = 1, (f"gdlab local cloud: cannot simulate document "
                           f"{command.document_name}; it runs {RUN_SHELL} only\n")
        stderr = stdout
    else:
        code, stdout, stderr = run_script(instance, params.get("commands") or [])
    end = dt.datetime.now(dt.timezone.utc)
    status = "Success" if code == 0 else "Failed"
    times = (start.isoformat(timespec="milliseconds"), end.isoformat(timespec="milliseconds"),
             f"PT{(end - start).total_seconds():.3f}S")
    _record(invocation, status, status, code, times, stdout, stderr)


def settle(command: Any, now: float | None = None) -> None:
    """Deliver what can be delivered now, time out what has waited too long, and sum the
    invocations up on the command."""
    moment = time.time() if now is None else now
    with _lock:
        for invocation in command.invocations:
            if invocation.get("Status") != "Pending":
                continue
            instance = _instance(command.account_id, command.backend_region,
                                 invocation["InstanceId"])
            if instance is not None and reaches_ssm(instance):
                _run(command, invocation, instance)
            elif moment >= delivery_deadline(command):
                _record(invocation, "TimedOut", "DeliveryTimedOut")
        statuses = [i.get("Status") for i in command.invocations]
        done = [s for s in statuses if s != "Pending"]
        errors, timed_out = statuses.count("Failed"), statuses.count("TimedOut")
        command.error_count, command.completed_count = errors, len(done)
        command.delivery_timed_out_count = timed_out
        if len(done) < len(statuses):
            command.status = command.status_details = "InProgress" if done else "Pending"
            _pending[command.command_id] = command
            return
        _pending.pop(command.command_id, None)
        command.status, command.status_details = ("Failed", "Failed") if errors else (
            ("TimedOut", "DeliveryTimedOut") if timed_out else ("Success", "Success"))


def execute(command: Any) -> None:
    """Hand the command to each instance's agent: it runs where the agent reaches SSM and
    waits (Pending) where it does not."""
    with _lock:
        for invocation in command.invocations:
            _record(invocation, "Pending", "Pending")
        settle(command)
    if command.command_id in _pending:
        _start_thread()


def invocation_entry(command: Any, invocation: dict[str, Any], details: bool) -> dict[str, Any]:
    status = {"Status": invocation["Status"], "StatusDetails": invocation["StatusDetails"]}
    entry: dict[str, Any] = {
        "CommandId": command.command_id, "InstanceId": invocation["InstanceId"],
        "Comment": command.comment, "DocumentName": command.document_name,
        "DocumentVersion": "$DEFAULT", "RequestedDateTime": command.requested_date_time,
        **status, "StandardOutputUrl": "", "StandardErrorUrl": "", "CommandPlugins": [],
    }
    if details:
        plugin = {
            "Name": invocation.get("PluginName", PLUGIN), **status,
            "ResponseCode": invocation.get("ResponseCode", 0),
            "Output": invocation.get("StandardOutputContent", "")[:2500],
            "StandardOutputUrl": "", "StandardErrorUrl": "",
        }
        for key, name in (("ResponseStartDateTime", "ExecutionStartDateTime"),
                          ("ResponseFinishDateTime", "ExecutionEndDateTime")):
            if invocation.get(name):
                plugin[key] = dt.datetime.fromisoformat(invocation[name])
        entry["CommandPlugins"] = [plugin]
    return entry


def install() -> None:
    from moto.core.responses import ActionResult
    from moto.ec2.models.iam_instance_profile import IamInstanceProfileAssociationBackend
    from moto.ssm.models import Command, SimpleSystemManagerBackend
    from moto.ssm.responses import SimpleSystemManagerResponse

    from gdlab.local import patches

    def send_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        # moto extends the caller's list in place; keep what was asked for.
        instance_ids = list(kwargs.get("instance_ids") or [])
        by_id = {i.id: i for i in _instances(self.account_id, self.region_name)}
        bad = [i for i in instance_ids
               if i not in by_id or not managed(by_id[i]) or not agent_of(by_id[i]).registered]
        if bad:
            raise InvalidInstanceId(
                f"Instances [[{', '.join(bad)}]] not in a valid state for account "
                f"{self.account_id}"
            )
        command = _orig["send_command"](self, *args, **kwargs)
        if not kwargs.get("targets"):
            # moto adds every instance of the region when Targets is empty.
            command.instance_ids = list(dict.fromkeys(instance_ids))
            command.invocations = [command.invocation_response(i, PLUGIN)
                                   for i in command.instance_ids]
            command.target_count = len(command.instance_ids)
        execute(command)
        return command

    def list_commands(self: Any, *args: Any, **kwargs: Any) -> Any:
        commands = _orig["list_commands"](self, *args, **kwargs)
        for command in commands:
            settle(command)
        return commands

    def get_command_invocation(self: Any, command_id: str, *args: Any, **kwargs: Any) -> Any:
        for command in _orig["list_commands"](self, command_id, None):
            settle(command)
        return _orig["get_command_invocation"](self, command_id, *args, **kwargs)

    def response_object(self: Any) -> dict[str, Any]:
        response = _orig["response_object"](self)
        response["DeliveryTimedOutCount"] = getattr(self, "delivery_timed_out_count", 0)
        return response

    def associate(self: Any, instance_id: str, *args: Any, **kwargs: Any) -> Any:
        association = _orig["associate"](self, instance_id, *args, **kwargs)
        instance = _instance(self.account_id, self.region_name, instance_id)
        if instance is not None:
            agent_of(instance)  # with credentials, the agent registers if it gets out
        return association

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

    ran = "commands run through the agent and report how they ended"
    for key, owner, name, patch, why in (
        ("send_command", SimpleSystemManagerBackend, "send_command", send_command, ran),
        ("list_commands", SimpleSystemManagerBackend, "list_commands", list_commands, ran),
        ("get_command_invocation", SimpleSystemManagerBackend, "get_command_invocation",
         get_command_invocation, ran),
        ("response_object", Command, "response_object", response_object,
         "a command counts its DeliveryTimedOut invocations"),
        ("associate", IamInstanceProfileAssociationBackend, "associate_iam_instance_profile",
         associate, "an instance given a profile gets an SSM agent"),
    ):
        patches.patch(owner, name, patch, why)
        _orig[key] = patches.original(owner, name)  # moto's, however often install() runs
    for name, patch in (("list_command_invocations", list_command_invocations),
                        ("describe_instance_information", describe_instance_information)):
        patches.patch(SimpleSystemManagerResponse, name, patch, f"{name} (moto has none)", add=True)
