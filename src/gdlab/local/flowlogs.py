"""VPC Flow Logs in the local cloud: every flow the traffic simulator judges becomes a record
in the CloudWatch Logs group of each flow log that covers the interface, as AWS writes them.

moto keeps the flow logs (``ec2_backend.flow_logs``: CreateFlowLogs, DescribeFlowLogs,
DeleteFlowLogs) but never writes a record. Here, following the VPC user guide ("Flow log
records", "Publish flow logs to CloudWatch Logs"):

- A flow log covers an interface if its resource is the ENI, its subnet or its VPC, it is
  ACTIVE, its destination is ``cloud-watch-logs``, and its TrafficType (ALL, ACCEPT, REJECT)
  admits the record's action.
- Records are aggregated per interface, 5-tuple, action and aggregation window
  (MaxAggregationInterval, run faster by ``gdlab.local.clock``): packets and bytes summed,
  ``start`` the window's first packet, ``end`` the window's end.
- A window is delivered once it has closed and AWS's usual delivery latency has passed
  (scaled the same way), never before: a small daemon thread does it. Each interface has one
  log stream, ``<eni-id>-all``; an event's timestamp is the record's start (ms) and its
  message the record in the flow log's format (the default one: version 2 fields, space
  separated; custom formats get the fields the simulator knows, ``-`` for the others).
- A destination group that does not exist gets nothing, and the flow log's DeliverLogsStatus
  becomes FAILED with DeliverLogsErrorMessage "Access error" (botocore's FlowLog docs: the
  role cannot publish to CloudWatch Logs; gdlab's role has no logs:CreateLogGroup); the next
  delivery that succeeds sets it back to SUCCESS.

moto deviations corrected here: DescribeFlowLogs' ``deliver-log-status`` filter always
compared with SUCCESS (a FAILED flow log could not be found by it); FilterLogEvents matched
every event for the space-delimited patterns the VPC guide gives for flow logs
(``[version, account, eni, source, destination, srcport, destport="22", protocol="6",
packets, bytes, windowstart, windowend, action="REJECT", flowlogstatus]``) and for ``?A ?B``
/ ``-A`` term patterns; they now match as CloudWatch Logs documents ("Filter pattern
syntax": fields by position, ``...`` for any number of them, ``=`` ``!=`` with ``*``
wildcards on strings, ``< <= > >=`` on numbers; ``?`` for OR, ``-`` to exclude). Plain
words such as ``REJECT`` were already right (moto: every word must occur).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from moto.ec2.models.flow_logs import FlowLogs
from moto.logs.utils import EventMessageFilter

from gdlab.local import clock

log = logging.getLogger("gdlab.local.flowlogs")

DEFAULT_FORMAT = (
    "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} "
    "${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}"
)
# AWS: "The flow log service typically delivers logs to CloudWatch Logs in about 5 minutes"
# after the aggregation window (VPC user guide, "Flow log records", Aggregation interval).
DELIVERY_AWS_SECONDS = 300
DEFAULT_AGGREGATION_AWS_SECONDS = 600  # CreateFlowLogs' default MaxAggregationInterval
ACCESS_ERROR = "Access error"
# The version each field was introduced in ("Available fields"): a custom format's version
# is the highest among its fields; the default format is version 2.
FIELD_VERSIONS = {
    "vpc-id": 3, "subnet-id": 3, "instance-id": 3, "tcp-flags": 3, "type": 3,
    "pkt-srcaddr": 3, "pkt-dstaddr": 3, "region": 4, "az-id": 4, "sublocation-type": 4,
    "sublocation-id": 4, "pkt-src-aws-service": 5, "pkt-dst-aws-service": 5,
    "flow-direction": 5, "traffic-path": 5,
}
_FIELD = re.compile(r"\$\{([a-z0-9-]+)\}")

_lock = threading.Lock()
_windows: dict[tuple[Any, ...], Window] = {}
_wake = threading.Event()
_thread: threading.Thread | None = None
_orig_get_filter_value = FlowLogs.get_filter_value
_orig_filter_init = EventMessageFilter.__init__
_orig_filter_matches = EventMessageFilter.matches
_CONDITION = re.compile(r"^([\w.$-]+)\s*(!=|<=|>=|=|<|>)\s*(.+)$")
_TOKEN = re.compile(r'"[^"]*"|\[[^\]]*\]|\S+')


@dataclass
class Window:
    """One record in the making: a flow of one interface in one aggregation window."""

    account: str
    region: str
    flow_log_id: str
    log_group: str
    log_format: str
    fields: dict[str, Any]  # what the flow is: interface, addresses, ports, action...
    opens: float  # the window, epoch seconds
    closes: float
    packets: int = 0
    bytes: int = 0
    first: float = math.inf
    last: float = -math.inf

    @property
    def due(self) -> float:
        """When AWS would have delivered it: the window's end plus the delivery latency."""
        return self.closes + clock.local_seconds(DELIVERY_AWS_SECONDS)

    def message(self) -> str:
        values = dict(self.fields, packets=self.packets, bytes=self.bytes,
                      start=int(self.first), end=int(math.ceil(self.closes)))
        names = _FIELD.findall(self.log_format)
        values["version"] = max([2] + [FIELD_VERSIONS.get(n, 2) for n in names])
        return _FIELD.sub(lambda m: str(values.get(m.group(1), "-")), self.log_format)

    def event(self) -> dict[str, Any]:
        return {"timestamp": int(self.first * 1000), "message": self.message()}


# --- which flow logs see an interface ---------------------------------------------------
def covering(ec2: Any, eni: Any, action: str) -> list[Any]:
    """The flow logs of this EC2 backend that record `action` traffic of the ENI."""
    resources = {eni.id, eni.subnet.id, eni.subnet.vpc_id}
    return [
        fl for fl in list(ec2.flow_logs.values())
        if fl.resource_id in resources
        and getattr(fl, "flow_log_status", "ACTIVE") == "ACTIVE"
        and (fl.log_destination_type or "cloud-watch-logs") == "cloud-watch-logs"
        and (fl.traffic_type or "ALL") in ("ALL", action)
    ]


def window_seconds(flow_log: Any) -> float:
    interval = flow_log.max_aggregation_interval or DEFAULT_AGGREGATION_AWS_SECONDS
    return clock.local_seconds(int(interval))


def _flow_fields(ec2: Any, eni: Any, record: dict[str, Any], direction: str) -> dict[str, Any]:
    instance = eni.instance
    return {
        "account-id": record.get("account-id", ec2.account_id),
        "interface-id": eni.id,
        "srcaddr": record["srcaddr"], "dstaddr": record["dstaddr"],
        "srcport": record["srcport"], "dstport": record["dstport"],
        "protocol": record["protocol"], "action": record["action"],
        "log-status": "OK", "vpc-id": eni.subnet.vpc_id, "subnet-id": eni.subnet.id,
        "instance-id": instance.id if instance is not None else "-",
        "tcp-flags": 0, "type": "IPv4", "pkt-srcaddr": record["srcaddr"],
        "pkt-dstaddr": record["dstaddr"], "region": ec2.region_name,
        "flow-direction": direction,
    }


def capture(ec2: Any, eni: Any, record: dict[str, Any], times: list[float],
            direction: str = "egress") -> int:
    """Count the record's packets, sent at `times` (epoch seconds, one per packet), into the
    windows of every flow log that covers the ENI. Returns how many flow logs saw them."""
    flow_logs = covering(ec2, eni, str(record["action"]))
    if not flow_logs or not times:
        return 0
    per_packet = int(record["bytes"]) // max(1, int(record["packets"]))
    fields = _flow_fields(ec2, eni, record, direction)
    flow = tuple(fields[k] for k in ("srcaddr", "dstaddr", "srcport", "dstport", "protocol",
                                     "action"))
    with _lock:
        for fl in flow_logs:
            width = window_seconds(fl)
            for moment in times:
                index = math.floor(moment / width)
                key = (ec2.account_id, ec2.region_name, fl.id, eni.id, flow, index)
                window = _windows.get(key)
                if window is None:
                    window = _windows[key] = Window(
                        ec2.account_id, ec2.region_name, fl.id, fl.log_group_name,
                        fl.log_format or DEFAULT_FORMAT, fields, index * width,
                        (index + 1) * width)
                window.packets += 1
                window.bytes += per_packet
                window.first = min(window.first, moment)
                window.last = max(window.last, moment)
    _start_flusher()
    _wake.set()
    return len(flow_logs)


def pending() -> list[Window]:
    """Windows captured but not delivered yet, oldest first."""
    with _lock:
        return sorted(_windows.values(), key=lambda w: (w.opens, w.first))


# --- delivery -----------------------------------------------------------------------------
def flush(now: float | None = None) -> int:
    """Deliver every window that is due at `now` (epoch seconds; default: the time now).
    Returns how many records were written."""
    moment = time.time() if now is None else now
    with _lock:
        due = [(k, w) for k, w in _windows.items() if w.due <= moment]
        for key, _ in due:
            del _windows[key]
    by_flow_log: dict[tuple[str, str, str], list[Window]] = {}
    for _, window in due:
        by_flow_log.setdefault((window.account, window.region, window.flow_log_id),
                               []).append(window)
    written = 0
    for (account, region, flow_log_id), windows in by_flow_log.items():
        try:
            written += _deliver(account, region, flow_log_id, windows)
        except Exception:  # noqa: BLE001 - one flow log's trouble must not stop the others
            log.exception("could not deliver flow log %s", flow_log_id)
    return written


def _deliver(account: str, region: str, flow_log_id: str, windows: list[Window]) -> int:
    from moto.ec2.models import ec2_backends
    from moto.logs.models import logs_backends

    # (the regions' own `in` counts every region moto knows, made or not)
    if account not in ec2_backends or region not in ec2_backends[account].keys():  # noqa: SIM118
        return 0  # gone with a reset: never make a backend from the delivery thread
    flow_log = ec2_backends[account][region].flow_logs.get(flow_log_id)
    if flow_log is None:
        return 0  # deleted: AWS stops publishing
    logs = logs_backends[account][region]
    if flow_log.log_group_name not in logs.groups:
        flow_log.deliver_logs_status = "FAILED"
        flow_log.deliver_logs_error_message = ACCESS_ERROR
        return 0
    by_stream: dict[str, list[Window]] = {}
    for window in windows:
        by_stream.setdefault(f"{window.fields['interface-id']}-all", []).append(window)
    written = 0
    for stream, stream_windows in sorted(by_stream.items()):
        logs.ensure_log_stream(flow_log.log_group_name, stream)
        events = [w.event() for w in sorted(stream_windows, key=lambda w: w.first)]
        logs.put_log_events(flow_log.log_group_name, stream, events)
        written += len(events)
    flow_log.deliver_logs_status = "SUCCESS"
    flow_log.deliver_logs_error_message = None
    return written


def _next_due() -> float | None:
    with _lock:
        return min((w.due for w in _windows.values()), default=None)


def _flusher() -> None:
    while True:
        due = _next_due()
        timeout = None if due is None else max(0.0, due - time.time())
        _wake.wait(timeout)
        _wake.clear()
        try:
            flush()
        except Exception:  # noqa: BLE001 - the thread must outlive any one delivery
            log.exception("flow-log delivery failed")


def _start_flusher() -> None:
    global _thread
    with _lock:
        if _thread is not None and _thread.is_alive():
            return
        _thread = threading.Thread(target=_flusher, name="gdlab-flow-logs", daemon=True)
        _thread.start()


def reset() -> None:
    """Forget what has not been delivered (tests)."""
    with _lock:
        _windows.clear()


# --- moto corrections -----------------------------------------------------------------------
def _get_filter_value(self: Any, filter_name: str, method_name: str | None = None) -> Any:
    """DescribeFlowLogs' deliver-log-status filter compares with the flow log's status."""
    if filter_name == "deliver-log-status":
        return self.deliver_logs_status
    return _orig_get_filter_value(self, filter_name, method_name)


def _field_test(text: str) -> Any:
    """One field of a space-delimited pattern: a name, or name OP value."""
    if text == "...":
        return "..."
    found = _CONDITION.match(text)
    if found is None:
        return (lambda value: True) if re.fullmatch(r"[\w.$-]+", text) else None
    _, op, raw = found.groups()
    quoted = raw.startswith('"') and raw.endswith('"') and len(raw) > 1
    wanted = raw[1:-1] if quoted else raw.strip()
    if op in ("=", "!="):
        shape = re.compile("^" + ".*".join(map(re.escape, wanted.split("*"))) + "$")
        try:  # numbers compare as numbers: 6 = 6.0
            number = None if quoted else float(wanted)
        except ValueError:
            number = None

        def equal(value: str) -> bool:
            try:
                same = float(value) == number if number is not None else None
            except ValueError:
                same = None
            return bool(shape.match(value)) if same is None else same

        return equal if op == "=" else (lambda value: not equal(value))
    try:
        limit = float(wanted)
    except ValueError:
        return None
    compare = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__}[op]

    def numeric(value: str) -> bool:
        try:
            return compare(float(value), limit)
        except ValueError:
            return False

    return numeric


def pattern_matcher(pattern: str) -> Any:
    """A matcher for the patterns moto gets wrong (space-delimited, ?OR and -exclude terms),
    or None to leave the pattern to moto."""
    text = (pattern or "").strip()
    if text.startswith("[") and text.endswith("]"):
        tests = [_field_test(f.strip()) for f in re.split(r',(?=(?:[^"]*"[^"]*")*[^"]*$)',
                                                          text[1:-1])]
        if any(t is None for t in tests) or "||" in text or "&&" in text:
            return None

        def fits(at: int, fields: list[str]) -> bool:
            if at == len(tests):
                return not fields
            if tests[at] == "...":
                return any(fits(at + 1, fields[n:]) for n in range(len(fields) + 1))
            return bool(fields) and tests[at](fields[0]) and fits(at + 1, fields[1:])

        return lambda message: fits(0, [t.strip('"[]') for t in _TOKEN.findall(message)])
    terms = [t.strip('"') for t in _TOKEN.findall(text)]
    if not any(t[:1] in "?-" and len(t) > 1 for t in terms):
        return None
    anyof = [t[1:] for t in terms if t.startswith("?")]
    never = [t[1:] for t in terms if t.startswith("-")]
    every = [t for t in terms if t[:1] not in "?-"]
    return lambda message: (all(t in message for t in every)
                            and (not anyof or any(t in message for t in anyof))
                            and not any(t in message for t in never))


def _filter_init(self: Any, pattern: str) -> None:
    _orig_filter_init(self, pattern)
    self.gdlab_matcher = pattern_matcher(pattern)


def _filter_matches(self: Any, message: str) -> bool:
    matcher = getattr(self, "gdlab_matcher", None)
    return matcher(message) if matcher is not None else _orig_filter_matches(self, message)


def install() -> None:
    """Correct moto's flow logs (idempotent); delivery starts with the first record."""
    from gdlab.local import patches

    patches.patch(FlowLogs, "get_filter_value", _get_filter_value,
                  "deliver-log-status compares with the flow log's status")
    patches.patch(EventMessageFilter, "__init__", _filter_init,
                  "CloudWatch Logs filter patterns match as AWS matches them")
    patches.patch(EventMessageFilter, "matches", _filter_matches,
                  "CloudWatch Logs filter patterns match as AWS matches them")
