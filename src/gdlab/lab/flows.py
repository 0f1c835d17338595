"""Flow-log evidence: the lab VPC's flow log read back from CloudWatch Logs, the same way on
AWS and on the local cloud, to prove that isolation blocks the compromised instance.

Records are in the default format (version 2), one per interface, 5-tuple, action and
aggregation window (AWS: "Flow log records", "Default format"):
`version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes
start end action log-status`; a window with no traffic is `... - - - NODATA`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from gdlab.lab.awsutil import error_code
from gdlab.lab.steps import LabContext

FIELDS = (
    "version", "account-id", "interface-id", "srcaddr", "dstaddr", "srcport", "dstport",
    "protocol", "packets", "bytes", "start", "end", "action", "log-status",
)
ICMP = 1
# ICMP is always tracked by security groups: an echo flow already under way when the groups
# change can go on being accepted until it idles out, and its packets may land in the next
# aggregation window. ACCEPTs that start within two windows of isolation are that flow, not
# a hole: 120 s on AWS (60-second windows); a window is read from the records themselves, so
# the local cloud's faster clock (1-second windows) gets 2 s.
TRACKED_GRACE_WINDOWS = 2
WINDOW_SECONDS = 60  # the lab's flow log aggregates per minute (MaxAggregationInterval)


def tracked_grace(records: list[FlowRecord]) -> int:
    """How long after isolation an ACCEPT is still the tracked flow: two of the windows the
    records show (at most AWS's), at least one second."""
    window = max((r.end - r.start for r in records), default=WINDOW_SECONDS)
    return TRACKED_GRACE_WINDOWS * max(1, min(window, WINDOW_SECONDS))
ISOLATED_AT_TAG = "gdlab:isolated-at"


@dataclass(frozen=True)
class FlowRecord:
    interface: str
    src: str
    dst: str
    protocol: int
    packets: int
    start: int
    end: int
    action: str

    @classmethod
    def parse(cls, line: str) -> FlowRecord | None:
        """A default-format record, or None for anything else (NODATA, SKIPDATA, other
        formats): a record gdlab cannot read proves nothing."""
        parts = line.split()
        if len(parts) != len(FIELDS) or parts[0] != "2" or parts[13] != "OK":
            return None
        try:
            return cls(
                interface=parts[2],
                src=parts[3],
                dst=parts[4],
                protocol=int(parts[7]),
                packets=int(parts[8]),
                start=int(parts[10]),
                end=int(parts[11]),
                action=parts[12],
            )
        except ValueError:
            return None


def group_name(ctx: LabContext) -> str:
    from gdlab.lab.steps.flowlogs import flow_log_group_name

    return flow_log_group_name(ctx)


def read_records(ctx: LabContext, since: int) -> list[FlowRecord]:
    """Every readable record of the lab's flow log whose window starts at `since` (epoch
    seconds) or later; none while the group or its streams do not exist yet."""
    from botocore.exceptions import ClientError

    logs = ctx.cloud.client("logs")
    found: list[FlowRecord] = []
    kwargs: dict[str, Any] = {"logGroupName": group_name(ctx), "startTime": since * 1000}
    try:
        while True:
            page = logs.filter_log_events(**kwargs)
            found += [r for e in page.get("events", []) if (r := FlowRecord.parse(e["message"]))]
            token = page.get("nextToken")
            if not token or token == kwargs.get("nextToken"):
                return found
            kwargs["nextToken"] = token
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return found
        raise


def isolated_at(ctx: LabContext) -> datetime | None:
    """When the responder isolated the instance, from the tag it leaves on it."""
    instance = ctx.state.live("instance-compromised")
    if not instance:
        return None
    reservations = ctx.cloud.client("ec2").describe_instances(InstanceIds=[instance.id])
    for reservation in reservations["Reservations"]:
        for found in reservation["Instances"]:
            for tag in found.get("Tags", []):
                if tag["Key"] == ISOLATED_AT_TAG:
                    try:
                        at = datetime.fromisoformat(tag["Value"].replace("Z", "+00:00"))
                    except ValueError:
                        return None
                    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)
    return None


@dataclass
class FlowEvidence:
    status: str  # pass | fail | inconclusive
    evidence: str


Waiting = Callable[[str, float, float], None]  # (what, seconds waited, seconds allowed)


def prove_blocked(
    ctx: LabContext,
    enis: list[str],
    eip: str,
    since: datetime,
    deadline_seconds: float,
    waiting: Waiting | None = None,
    poll_seconds: float = 5.0,
) -> FlowEvidence:
    """REJECTed ICMP from the instance's interfaces to the EIP after `since`, and no ACCEPT
    of traffic to it: pass. Waits for delivery up to the deadline, telling `waiting`."""
    started = time.monotonic()
    since_s = int(since.timestamp())
    what = (
        f"flow-log records of ICMP from {', '.join(enis)} to {eip} after "
        f"{since:%H:%M:%S} UTC in {group_name(ctx)}"
    )
    while True:
        records = [r for r in read_records(ctx, since_s - 60) if r.interface in enis]
        to_eip = [r for r in records if r.dst == eip]
        grace = tracked_grace(records)
        holes = [r for r in to_eip if r.action == "ACCEPT" and r.start > since_s + grace]
        if holes:
            first = holes[0]
            return FlowEvidence(
                "fail",
                f"{len(holes)} ACCEPT record(s) of traffic to {eip} after isolation, first "
                f"{_when(first.start)} from {first.interface} (protocol {first.protocol}, "
                f"{first.packets} packet(s))",
            )
        rejected = [
            r for r in to_eip if r.action == "REJECT" and r.protocol == ICMP and r.start >= since_s
        ]
        if rejected:
            packets = sum(r.packets for r in rejected)
            return FlowEvidence(
                "pass",
                f"{len(rejected)} REJECT record(s), {packets} ICMP packet(s) from "
                f"{rejected[0].interface} to {eip} between {_when(rejected[0].start)} and "
                f"{_when(rejected[-1].end)}; no ACCEPT to it after isolation",
            )
        waited = time.monotonic() - started
        if waited >= deadline_seconds:
            seen = f"{len(records)} record(s) of its interfaces" if records else "no record"
            return FlowEvidence(
                "inconclusive",
                f"no REJECT of ICMP to {eip} after isolation arrived within "
                f"{_span(deadline_seconds)} ({seen}); the instance pings on its own timer, "
                "so a later 'gdlab verify' may see it",
            )
        if waiting is not None:
            waiting(what, waited, deadline_seconds)
        time.sleep(min(poll_seconds, max(0.05, deadline_seconds - waited)))


def _span(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def _when(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%H:%M:%S UTC")
