"""Network traffic inside the local cloud: pings become VPC Flow Log records, judged by the
security groups of the ENIs involved, and go to the GuardDuty analyzer.

A ping from an instance leaves its primary ENI if one of the ENI's security groups has an
egress rule allowing ICMP echo to the destination; it reaches a local destination (an
Elastic IP, a public or private address of another ENI) if that ENI's groups allow it in.
Rules allow ICMP by protocol ``icmp``/``1`` (type 8 or -1) or ``-1``, with a matching CIDR
or a referenced group (group references only match traffic between private addresses, as
in a VPC). A group with no rules allows nothing, which is how the forensic group isolates.

The local cloud has no internet behind it: a packet to an address that is not in the local
cloud leaves the instance (ACCEPT) but nothing answers, and an instance without a public IP
cannot reach a public address at all. Pings return at once; ``-i`` spaces the packets' times
by the interval run through ``gdlab.local.clock`` (AWS's minute is a local second) but does
not sleep.

Each ping yields flow log records (version 2 fields) for the source ENI and, when the packets
got out, for the destination ENI (whose ``dstaddr`` is its own private address, as flow logs
show incoming traffic); records are kept for ``/_gdlab/flows``, go to the GuardDuty analyzer
at once (GuardDuty reads flow logs on its own feed) and, packet by packet, to the VPC flow
logs that cover the interfaces (``gdlab.local.flowlogs``, delivered when their windows close).

Instances also "run" their user data: a systemd unit with ``ExecStart=... ping -c N -i S IP``
and its timer (``OnBootSec``, ``OnUnitActiveSec``) run on a daemon thread until the instance
is terminated, waiting those spans through the local clock (300 s after boot is 5 local
seconds). The timer needs no SSM: an isolated instance keeps pinging, and its pings are
REJECTed.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import shlex
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gdlab.local import clock

log = logging.getLogger("gdlab.local.traffic")

ICMP = 1
ICMP_ECHO_REQUEST = 8
IP_AND_ICMP_HEADERS = 28
SIMULATED_RTT_MS = 0.5
MAX_KEPT = 5000

_lock = threading.Lock()
_flows: list[dict[str, Any]] = []
_behaviours: dict[tuple[str, str, str], Behaviour] = {}


class Unsupported(ValueError):
    """A command line the simulator cannot run faithfully."""


# --- security groups ---------------------------------------------------------------------
def _icmp_echo_allowed(rule: Any) -> bool:
    if rule.ip_protocol == "-1":
        return True
    if rule.ip_protocol != "icmp":
        return False
    icmp_type = rule.from_port
    return icmp_type in (None, -1, ICMP_ECHO_REQUEST)


def rule_matches(rule: Any, peer_ip: str, peer_groups: set[str], private: bool) -> bool:
    """Does this rule let an ICMP echo to/from peer_ip (an ENI in peer_groups) through?"""
    if not _icmp_echo_allowed(rule):
        return False
    cidr = (rule.ip_range or {}).get("CidrIp")
    if cidr:
        try:
            if ipaddress.ip_address(peer_ip) in ipaddress.ip_network(cidr, strict=False):
                return True
        except ValueError:
            return False
    group = (rule.source_group or {}).get("GroupId")
    return bool(group and private and group in peer_groups)


def allowed(groups: Iterable[Any], direction: str, peer_ip: str, peer_eni: Any,
            private: bool) -> bool:
    peer_groups = {g.id for g in peer_eni.group_set} if peer_eni is not None else set()
    for group in groups:
        rules = group.egress_rules if direction == "egress" else group.ingress_rules
        if any(rule_matches(r, peer_ip, peer_groups, private) for r in rules):
            return True
    return False


# Addresses that are not public (IANA special-purpose registry): egress to a CIDR inside
# one of these reaches no public endpoint.
NOT_PUBLIC = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4")]


def has_public_addresses(cidr: str) -> bool:
    """0.0.0.0/0, 52.0.0.0/8...: yes; 10.0.0.0/16, the VPC's own range: no."""
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    return isinstance(network, ipaddress.IPv4Network) and not any(
        network.subnet_of(block) for block in NOT_PUBLIC)


def _tcp_out(rule: Any, port: int) -> bool:
    if rule.ip_protocol not in ("-1", "tcp", "6"):
        return False
    if rule.ip_protocol != "-1" and not (
        rule.from_port is not None and rule.to_port is not None
        and rule.from_port <= port <= rule.to_port
    ):
        return False
    return has_public_addresses((rule.ip_range or {}).get("CidrIp") or "")


def egress_allows_tcp_out(instance: Any, port: int) -> bool:
    """Does a security group of one of the instance's ENIs let TCP to `port` of public
    addresses out (how the SSM agent reaches SSM's endpoints on 443)?"""
    return any(_tcp_out(rule, port) for eni in instance.nics.values()
               for group in eni.group_set for rule in group.egress_rules)


# --- ping ------------------------------------------------------------------------------
@dataclass
class PingResult:
    destination: str
    count: int
    interval: float
    size: int
    transmitted: int
    received: int
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 0 if self.received else 1

    def output(self, quiet: bool = False) -> str:
        """What Linux (iputils) ping prints for this run."""
        dst, lines = self.destination, []
        lines.append(f"PING {dst} ({dst}) {self.size}({self.size + IP_AND_ICMP_HEADERS}) "
                      "bytes of data.")
        if not quiet:
            for seq in range(1, self.received + 1):
                lines.append(f"{self.size + 8} bytes from {dst}: icmp_seq={seq} ttl=63 "
                             f"time={SIMULATED_RTT_MS:.3f} ms")
        lost = round(100 * (self.transmitted - self.received) / self.transmitted)
        elapsed = int(round((self.transmitted - 1) * self.interval * 1000))
        lines += ["", f"--- {dst} ping statistics ---",
                  f"{self.transmitted} packets transmitted, {self.received} received, "
                  f"{lost}% packet loss, time {elapsed}ms"]
        if self.received:
            rtt = f"{SIMULATED_RTT_MS:.3f}"
            lines.append(f"rtt min/avg/max/mdev = {rtt}/{rtt}/{rtt}/0.000 ms")
        return "\n".join(lines) + "\n"


def _record(account: str, eni: Any, src: str, dst: str, packets: int, size: int, start: int,
            end: int, action: str) -> dict[str, Any]:
    return {
        "version": 2, "account-id": account, "interface-id": eni.id,
        "srcaddr": src, "dstaddr": dst, "srcport": 0, "dstport": 0, "protocol": ICMP,
        "packets": packets, "bytes": packets * (size + IP_AND_ICMP_HEADERS),
        "start": start, "end": end, "action": action, "log-status": "OK",
    }


def _locate(ec2: Any, address: str, vpc_id: str) -> tuple[Any, bool]:
    """(ENI answering at address, reached by its private address) or (None, False)."""
    for eni in list(ec2.enis.values()):
        if eni.public_ip == address:
            return eni, False
    for eni in list(ec2.enis.values()):
        if eni.private_ip_address == address and eni.subnet.vpc_id == vpc_id:
            return eni, True
    return None, False


def packet_times(count: int, interval: float, first: float | None = None) -> list[float]:
    """When each of `count` echo requests leaves (epoch seconds): `interval` AWS seconds
    apart, run through the local clock."""
    start = time.time() if first is None else first
    step = clock.local_seconds(interval)
    return [start + n * step for n in range(count)]


def simulate_ping(instance: Any, destination: str, count: int, interval: float = 1.0,
                  size: int = 56) -> PingResult:
    """Send `count` echo requests from the instance's primary ENI; records are analyzed and
    counted into the flow logs that cover the ENIs."""
    ec2 = instance.ec2_backend
    account = ec2.account_id
    eni = instance.nics[0]
    times = packet_times(count, interval)
    now, end = int(times[0]), int(times[-1])
    try:
        dst_ip = ipaddress.ip_address(destination)
    except ValueError:
        raise Unsupported(f"ping: {destination}: Name or service not known") from None
    if not isinstance(dst_ip, ipaddress.IPv4Address):
        raise Unsupported("the local cloud simulates IPv4 pings only")

    peer, private = _locate(ec2, destination, eni.subnet.vpc_id)
    egress = allowed(eni.group_set, "egress", destination, peer, private)
    records = [_record(account, eni, eni.private_ip_address, destination, count, size, now,
                       end, "ACCEPT" if egress else "REJECT")]
    received = 0
    if egress and peer is not None:
        source = eni.private_ip_address if private else eni.public_ip
        if source is not None:
            ingress = allowed(peer.group_set, "ingress", source, eni, private)
            records.append(_record(account, peer, source, peer.private_ip_address, count,
                                   size, now, end, "ACCEPT" if ingress else "REJECT"))
            running = peer.instance is not None and peer.instance.state == "running"
            if ingress and running:
                received = count
    result = PingResult(destination, count, interval, size, count, received, records)
    _keep(instance.id, records)

    from gdlab.local import analyzer, flowlogs

    for record, who, direction in zip(records, (eni, peer), ("egress", "ingress"),
                                      strict=False):
        flowlogs.capture(ec2, who, record, times, direction)
    analyzer.analyze(account, ec2.region_name, records)
    return result


def _keep(instance_id: str, records: list[dict[str, Any]]) -> None:
    with _lock:
        for record in records:
            _flows.append({"instance": instance_id, **record})
        del _flows[:-MAX_KEPT]


def flows(instance: str | None = None) -> list[dict[str, Any]]:
    with _lock:
        return [dict(f) for f in _flows if instance in (None, f["instance"])]


def parse_ping(argv: list[str]) -> dict[str, Any]:
    """Options of iputils ping the simulator understands; anything else is refused."""
    options: dict[str, Any] = {"count": None, "interval": 1.0, "size": 56, "quiet": False}
    args = list(argv[1:])
    target = None
    while args:
        arg = args.pop(0)
        if arg in ("-c", "-i", "-s", "-W", "-w") or (
            len(arg) > 2 and arg[:2] in ("-c", "-i", "-s", "-W", "-w") and arg[2].isdigit()
        ):
            flag, value = (arg, args.pop(0) if args else None) if len(arg) == 2 else (
                arg[:2], arg[2:])
            if value is None:
                raise Unsupported(f"ping: option requires an argument -- '{flag[1]}'")
            try:
                number = float(value)
            except ValueError:
                raise Unsupported(f"ping: invalid argument: '{value}'") from None
            if flag == "-c":
                options["count"] = int(number)
            elif flag == "-i":
                options["interval"] = number
            elif flag == "-s":
                options["size"] = int(number)
            elif flag == "-w" and options["count"] is None:
                options["count"] = max(1, int(number / options["interval"]))
        elif arg in ("-q", "-n", "-4"):
            options["quiet"] = options["quiet"] or arg == "-q"
        elif arg.startswith("-"):
            raise Unsupported(f"the local cloud does not simulate ping option {arg}")
        elif target is None:
            target = arg
        else:
            raise Unsupported(f"ping: unexpected argument {arg}")
    if target is None:
        raise Unsupported("ping: usage error: Destination address required")
    if not options["count"] or options["count"] < 1:
        raise Unsupported("ping without -c runs forever; the local cloud needs -c COUNT")
    options["target"] = target
    return options


def run_ping(instance: Any, argv: list[str]) -> tuple[int, str]:
    options = parse_ping(argv)
    result = simulate_ping(instance, options["target"], options["count"], options["interval"],
                           options["size"])
    return result.exit_code, result.output(options["quiet"])


# --- the instance's own behaviour (user data) ----------------------------------------------
_SPAN_UNITS = {
    "us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3, "s": 1, "sec": 1, "second": 1,
    "seconds": 1, "m": 60, "min": 60, "minute": 60, "minutes": 60, "h": 3600, "hr": 3600,
    "hour": 3600, "hours": 3600, "d": 86400, "day": 86400, "days": 86400,
}


def parse_timespan(text: str) -> float:
    """systemd time span: '300', '5min', '1min 30s', '2h'."""
    total, found = 0.0, False
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text.strip().lower()):
        if unit and unit not in _SPAN_UNITS:
            raise ValueError(f"unknown time unit {unit!r} in {text!r}")
        total += float(number) * _SPAN_UNITS.get(unit or "s", 1)
        found = True
    if not found:
        raise ValueError(f"not a time span: {text!r}")
    return total


@dataclass
class Schedule:
    argv: list[str]
    boot_delay: float
    every: float


def parse_user_data(script: str) -> Schedule | None:
    """The ping service and timer a user-data script installs, if any."""
    exec_start = re.search(r"^ExecStart=(.*ping\b.*)$", script, re.MULTILINE)
    if not exec_start:
        return None
    argv = shlex.split(exec_start.group(1))
    argv[0] = "ping"
    boot = re.search(r"^OnBootSec=(.+)$", script, re.MULTILINE)
    every = re.search(r"^OnUnitActiveSec=(.+)$", script, re.MULTILINE)
    if not every:
        return None
    parse_ping(argv)  # refuse now what could never run
    return Schedule(argv, parse_timespan(boot.group(1)) if boot else 0.0,
                    parse_timespan(every.group(1)))


class Behaviour:
    """A daemon thread running an instance's ping timer until the instance is gone."""

    def __init__(self, ec2: Any, instance_id: str, schedule: Schedule):
        self.ec2 = ec2
        self.instance_id = instance_id
        self.schedule = schedule
        self.stop = threading.Event()
        self.runs = 0
        self.thread = threading.Thread(target=self._loop, daemon=True,
                                       name=f"gdlab-behaviour-{instance_id}")

    def _instance(self) -> Any:
        for reservation in list(self.ec2.reservations.values()):  # others add to it
            for instance in list(reservation.instances):
                if instance.id == self.instance_id:
                    return instance
        return None

    def _loop(self) -> None:
        # systemd's spans are AWS time; the local clock runs them faster.
        wait = clock.local_seconds(self.schedule.boot_delay)
        while not self.stop.wait(wait):
            instance = self._instance()
            if instance is None or instance.state in ("terminated", "shutting-down"):
                return
            wait = clock.local_seconds(self.schedule.every)
            if instance.state != "running":
                continue
            try:
                run_ping(instance, self.schedule.argv)
                self.runs += 1
            except Exception:  # the timer keeps going, as systemd would
                log.exception("behaviour of %s failed", self.instance_id)


def start_behaviour(instance: Any) -> Behaviour | None:
    data = getattr(instance, "user_data", None)
    if not data:
        return None
    try:
        script = data.decode() if hasattr(data, "decode") else str(data)
        schedule = parse_user_data(script)
    except (ValueError, UnicodeDecodeError) as exc:
        log.warning("user data of %s cannot be simulated: %s", instance.id, exc)
        return None
    if schedule is None:
        return None
    ec2 = instance.ec2_backend
    key = (ec2.account_id, ec2.region_name, instance.id)
    with _lock:
        if key in _behaviours:
            return _behaviours[key]
        behaviour = Behaviour(ec2, instance.id, schedule)
        _behaviours[key] = behaviour
    behaviour.thread.start()
    return behaviour


def behaviour_of(account: str, region: str, instance_id: str) -> Behaviour | None:
    with _lock:
        return _behaviours.get((account, region, instance_id))


def stop_behaviour(account: str, region: str, instance_id: str) -> None:
    with _lock:
        behaviour = _behaviours.pop((account, region, instance_id), None)
    if behaviour is not None:
        behaviour.stop.set()


def install() -> None:
    from moto.ec2.models.instances import InstanceBackend

    from gdlab.local import patches

    original_run = InstanceBackend.run_instances
    original_terminate = InstanceBackend.terminate_instances

    def run_instances(self: Any, *args: Any, **kwargs: Any) -> Any:
        reservation = original_run(self, *args, **kwargs)
        for instance in reservation.instances:
            start_behaviour(instance)
        return reservation

    def terminate_instances(self: Any, instance_ids: list[str], *args: Any,
                            **kwargs: Any) -> Any:
        result = original_terminate(self, instance_ids, *args, **kwargs)
        for instance_id in instance_ids:
            stop_behaviour(self.account_id, self.region_name, instance_id)
        return result

    # on top of gdlab.local.ec2's RunInstances correction
    patches.patch(InstanceBackend, "run_instances", run_instances,
                  "a launched instance starts its traffic behaviour", stack=True)
    patches.patch(InstanceBackend, "terminate_instances", terminate_instances,
                  "a terminated instance stops its traffic behaviour")

    from gdlab.local.server import register_route

    def route_flows(query: dict[str, Any]) -> list[dict[str, Any]]:
        return flows(query.get("instance") or None)

    patches.once("routes", "GET /_gdlab/flows", lambda: register_route("flows", route_flows))
