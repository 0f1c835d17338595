"""Make the compromised instance misbehave on demand: a ping to the malicious Elastic IP
through SSM RunCommand, and the wait for its result."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Protocol

from gdlab.errors import GdlabError, Timeout, UsageError
from gdlab.lab.awsutil import error_code
from gdlab.lab.steps import LabContext

TERMINAL = {
    "Success",
    "Failed",
    "Cancelled",
    "TimedOut",
    "DeliveryTimedOut",
    "Undeliverable",
    "ExecutionTimedOut",
    "Terminated",
    "InvalidPlatform",
    "AccessDenied",
}
# A handful of pings make the flow GuardDuty needs; `gdlab trigger --count` has the same cap.
MAX_PINGS = 100
PING_EXECUTION_SECONDS = 60
UNDELIVERED = {"DeliveryTimedOut", "Undeliverable", "Terminated", "InvalidPlatform", "Cancelled"}


@dataclass
class PingResult:
    command_id: str
    instance_id: str
    target_ip: str
    command: str
    status: str
    detail: str  # StatusDetails: why it ended, e.g. DeliveryTimedOut
    exit_code: int | None
    output: str
    error_output: str
    seconds: float
    # The instance's own timer set the incident off first: it is already isolated, and SSM
    # (cut by the isolation) could not run a ping anyway. Nothing was sent.
    already_isolated: bool = False

    @property
    def delivered(self) -> bool:
        """The command reached the instance and ran (whatever the ping's own outcome)."""
        if self.already_isolated:
            return False
        return self.detail not in UNDELIVERED and self.status != "Pending"

    @property
    def set_off(self) -> bool:
        """The incident is under way: this ping ran, or the instance's own pings came first."""
        return self.delivered or self.already_isolated

    @property
    def finished(self) -> bool:
        """SSM reported an end (not still Pending or InProgress at our deadline)."""
        return self.status in TERMINAL

    @property
    def replies(self) -> bool:
        """True when at least one echo reply came back."""
        return self.status == "Success" and self.exit_code == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "delivered": self.delivered,
            "finished": self.finished,
            "replies": self.replies,
        }

    # --- what any trigger result tells (TriggerResult) ---
    def already_happened(self) -> str | None:
        if not self.already_isolated:
            return None
        return (f"{self.instance_id} is already isolated: its own timer pinged "
                f"{self.target_ip} first, so no ping was sent")

    def headline(self) -> str:
        return f"{self.command} on {self.instance_id} via SSM (command {self.command_id})"

    def output_text(self) -> str:
        return (self.output or self.error_output).strip()

    def failure(self) -> tuple[str, str] | None:
        """Why the incident was not set off, and what to do (None: it was)."""
        if self.set_off:
            return None
        return (f"SSM did not run the ping ({self.detail or self.status})",
                "check 'aws ssm describe-instance-information' and retry 'gdlab trigger'")


class TriggerResult(Protocol):
    """What a scenario's trigger() returns: its JSON, whether the incident is now under way,
    and the lines gdlab shows for it."""

    status: str
    seconds: float

    @property
    def delivered(self) -> bool: ...

    @property
    def set_off(self) -> bool: ...

    def to_dict(self) -> dict[str, Any]: ...

    def already_happened(self) -> str | None: ...

    def headline(self) -> str: ...

    def output_text(self) -> str: ...

    def failure(self) -> tuple[str, str] | None: ...


def set_off(ctx: LabContext, count: int = 3) -> TriggerResult:
    """Set the lab's incident off as its scenario does (its scenario.py `trigger()`)."""
    from gdlab.scenario import ScenarioError

    make = getattr(ctx.scenario.module(), "trigger", None)
    if not callable(make):
        raise ScenarioError(f"scenario {ctx.scenario.name}: scenario.py has no trigger()")
    return make(ctx, count)


class LabNotReady(GdlabError):
    """The lab lacks what trigger needs."""


def _pause(ctx: LabContext, attempt: int) -> None:
    """Backoff with jitter: fast on the local cloud, gentle on AWS's rate limits."""
    base, cap = (0.02, 0.3) if ctx.cloud.is_local else (2.0, 15.0)
    time.sleep(min(cap, base * (1.6**attempt)) * (0.6 + random.random() * 0.4))


def wait_until_managed(ctx: LabContext, instance_id: str, deadline_seconds: float) -> dict:
    """SSM must know the instance and see it Online before it can run a command."""
    ssm = ctx.cloud.client("ssm")
    started = time.monotonic()
    attempt = 0
    status = "not registered"
    while True:
        info = ssm.describe_instance_information(
            Filters=[{"Key": "InstanceIds", "Values": [instance_id]}]
        )["InstanceInformationList"]
        if info:
            status = info[0].get("PingStatus", "?")
            if status == "Online":
                return info[0]
        if time.monotonic() - started > deadline_seconds:
            raise Timeout(
                f"instance {instance_id} is not Online in SSM after {deadline_seconds:.0f}s "
                f"(status: {status})",
                "the SSM agent needs outbound HTTPS and the instance profile; "
                "a new instance takes a few minutes — retry 'gdlab trigger'",
            )
        _pause(ctx, attempt)
        attempt += 1


def run_script(ctx: LabContext, instance_id: str, commands: list[str], comment: str,
               deadline_seconds: float, execution_seconds: int = 60) -> tuple[str, dict]:
    """Run a shell script on an instance with SSM's AWS-RunShellScript; (command id, the
    invocation as GetCommandInvocation last answered it, Status "Pending" if never seen)."""
    from botocore.exceptions import ClientError

    started = time.monotonic()
    ssm = ctx.cloud.client("ssm")
    sent = ssm.send_command(
        InstanceIds=[instance_id],
        DocumentName="AWS-RunShellScript",
        Comment=comment,
        # A script takes seconds: a short executionTimeout bounds how long an agent that
        # cannot be reached (isolation cuts it) leaves the command Pending — SSM gives up
        # after TimeoutSeconds + executionTimeout (AWS "Understanding command statuses").
        Parameters={"commands": commands, "executionTimeout": [str(execution_seconds)]},
        TimeoutSeconds=60 if ctx.cloud.is_local else 120,
    )["Command"]
    command_id = sent["CommandId"]
    attempt = 0
    while True:
        try:
            invocation = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
        except ClientError as exc:
            # Right after SendCommand the invocation may not exist yet.
            if error_code(exc) != "InvocationDoesNotExist":
                raise
            invocation = {"Status": "Pending"}
        if invocation.get("Status", "Pending") in TERMINAL:
            return command_id, invocation
        if time.monotonic() - started > deadline_seconds:
            return command_id, invocation
        _pause(ctx, attempt)
        attempt += 1


def ping(
    ctx: LabContext,
    count: int = 3,
    deadline_seconds: float | None = None,
    wait_online: bool = True,
) -> PingResult:
    """Send `ping -c count <EIP>` from the compromised instance and wait for the result."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_PINGS:
        raise UsageError(f"the ping count must be 1 to {MAX_PINGS}, not {count!r:.20}")
    instance = ctx.state.live("instance-compromised")
    eip = ctx.attr("eip", "public_ip")
    if not instance or not eip:
        raise LabNotReady(
            f"lab {ctx.lab} has no compromised instance or Elastic IP",
            f"run 'gdlab setup --lab {ctx.lab}' first",
        )
    if deadline_seconds is None:
        deadline_seconds = 30.0 if ctx.cloud.is_local else 600.0
    if wait_online:
        wait_until_managed(ctx, instance.id, deadline_seconds)
    started = time.monotonic()
    command = f"ping -c {count} -i 1 {eip}"
    command_id, invocation = run_script(
        ctx, instance.id, [command], f"gdlab {ctx.lab}: ping the malicious Elastic IP",
        deadline_seconds, execution_seconds=PING_EXECUTION_SECONDS)
    status = invocation.get("Status", "Pending")
    code = invocation.get("ResponseCode")
    # The wire says "DeliveryTimedOut"; the docs write "Delivery Timed Out".
    detail = str(invocation.get("StatusDetails") or status).replace(" ", "")
    return PingResult(
        command_id=command_id,
        instance_id=instance.id,
        target_ip=eip,
        command=command,
        status=status,
        detail=detail,
        exit_code=code if isinstance(code, int) and code >= 0 else None,
        output=invocation.get("StandardOutputContent", ""),
        error_output=invocation.get("StandardErrorContent", ""),
        seconds=time.monotonic() - started,
    )


def wait_threat_list_active(ctx: LabContext, deadline_seconds: float) -> None:
    """GuardDuty matches traffic only against ACTIVE lists: a ping sent while the list is
    still ACTIVATING (minutes on AWS) would raise no finding."""
    from gdlab.lab.observe import threat_list_name, threat_list_status

    started = time.monotonic()
    attempt = 0
    while True:
        status = threat_list_status(ctx)
        if status == "ACTIVE":
            return
        if status in ("ERROR", "DELETED", "INACTIVE", None):
            raise LabNotReady(
                f"the threat list {threat_list_name(ctx)} is {status or 'missing'}",
                "GuardDuty cannot use it: check the list file in the lab's bucket and "
                "'aws guardduty get-threat-intel-set', or rerun 'gdlab setup'",
            )
        if time.monotonic() - started > deadline_seconds:
            raise Timeout(
                f"the threat list is still {status} after {deadline_seconds:.0f}s",
                "GuardDuty activates lists in a few minutes; retry 'gdlab trigger' shortly",
            )
        _pause(ctx, attempt)
        attempt += 1


def _already_isolated(ctx: LabContext) -> PingResult | None:
    from gdlab.lab.observe import eni_groups, is_isolated

    instance = ctx.state.live("instance-compromised")
    if instance is None or not is_isolated(ctx, eni_groups(ctx)):
        return None
    eip = ctx.attr("eip", "public_ip") or ""
    ctx.state.event(
        f"trigger: {instance.id} is already isolated (its own timer pinged {eip} first); "
        "no ping sent"
    )
    return PingResult(
        command_id="",
        instance_id=instance.id,
        target_ip=eip,
        command="",
        status="Skipped",
        detail="AlreadyIsolated",
        exit_code=None,
        output="",
        error_output="",
        seconds=0.0,
        already_isolated=True,
    )


def trigger(ctx: LabContext, count: int = 3) -> PingResult:
    """Ping the malicious EIP through SSM, unless the instance's own timer (it pings every
    minute, as the workshop's did) already set the incident off and it is isolated."""
    wait_threat_list_active(ctx, 30.0 if ctx.cloud.is_local else 900.0)
    early = _already_isolated(ctx)
    if early is not None:
        return early
    result = ping(ctx, count=count)
    if not result.delivered:
        # The timer's ping may have won the race: the responder isolated the instance while
        # this one was on its way, and isolation cuts the SSM agent too.
        late = _already_isolated(ctx)
        if late is not None:
            return late
    # A later phase (detected, isolated...) is not undone by another ping.
    advance = result.delivered and ctx.state.phase in ("ready", "triggered")
    ctx.state.event(
        f"triggered: {result.command} from {result.instance_id} -> {result.detail}"
        f" (command {result.command_id})",
        phase="triggered" if advance else None,
        kind="info" if result.delivered else "error",
    )
    return result
