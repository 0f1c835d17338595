"""A scenario is a folder: scenarios/<name>/ holds the toml, the rule pattern, the e-mail
template, the user data, the responder's code and scenario.py, which says which of gdlab's
building blocks its lab is made of. This module finds, loads and checks them."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from gdlab.errors import GdlabError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_SCENARIO = "compromised-ec2"
# Every scenario's lab has these; a step that names more (the forensic groups, say) finds its
# name in [names] too, or the scenario fails to load (checked against its steps).
REQUIRED_NAMES = (
    "compromised_instance",
    "malicious_instance",
    "vpc",
    "threat_list",
    "topic",
    "function",
    "rule",
)
# AWS's longest names: Lambda functions and EventBridge rules 64 characters, SNS topics 256.
NAME_LIMITS = {"function": 64, "rule": 64, "topic": 256}
# How long verify waits for flow-log records, when a scenario's [timeouts] does not say.
FLOW_LOGS_LOCAL_SECONDS, FLOW_LOGS_AWS_SECONDS = 30, 900


class ScenarioError(GdlabError):
    """A scenario's files are missing or malformed."""


def scenarios_root() -> Path:
    """The installed wheel carries gdlab/scenarios; a source checkout has ./scenarios."""
    packaged = Path(__file__).resolve().parent / "scenarios"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "scenarios"


@dataclass(frozen=True)
class Behaviour:
    action: str
    target: str
    count: int
    interval_seconds: int
    every_seconds: int
    start_delay_seconds: int


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    description: str
    finding_type: str
    severity: float
    names: dict[str, str]
    vpc_cidr: str
    subnet_cidr: str
    instance_type: str
    ami_parameter: str
    behaviour: Behaviour | None  # what the compromised instance does on its own, if anything
    watch_local_seconds: int
    watch_aws_seconds: int
    flow_logs_local_seconds: int
    flow_logs_aws_seconds: int
    path: Path
    # Every finding type the scenario's incident raises (the first is `finding_type`).
    finding_types: tuple[str, ...] = ()

    def check_names(self, lab: str) -> None:
        """UsageError when the lab id makes a name longer than AWS allows for it."""
        for key, limit in NAME_LIMITS.items():
            if key in self.names and len(name := self.name_for(key, lab)) > limit:
                room = limit - len(self.names[key].replace("{lab}", ""))
                raise UsageError(
                    f"lab id {lab} makes the {key} name {name} {len(name)} characters long; "
                    f"AWS allows {limit}",
                    f"choose a --lab of at most {room} characters for scenario {self.name}")

    def name_for(self, key: str, lab: str) -> str:
        if key not in self.names:
            raise ScenarioError(f"{self.path / 'scenario.toml'}: missing 'names.{key}', which "
                                "a step of its lab names")
        return self.names[key].format(lab=lab)

    @property
    def event_pattern(self) -> dict[str, Any]:
        return _read_json(self.path / "event-pattern.json")

    @property
    def notification(self) -> dict[str, Any]:
        """InputPathsMap and InputTemplate of the rule's SNS target."""
        return _read_json(self.path / "notification.json")

    def module(self) -> ModuleType:
        """The scenario's scenario.py, imported once."""
        return _module(self.path)

    @property
    def responder_dir(self) -> Path:
        return self.path / "responder"

    def render_user_data(self, lab: str, target_ip: str) -> str | None:
        """The compromised instance's user data, or None for a scenario without one."""
        file = self.path / "user-data.sh"
        if not file.is_file():
            return None
        template = file.read_text()
        values: dict[str, object] = {"lab": lab, "target_ip": target_ip}
        if self.behaviour is not None:
            b = self.behaviour
            values.update(count=b.count, interval_seconds=b.interval_seconds,
                          every_seconds=b.every_seconds,
                          start_delay_seconds=b.start_delay_seconds)
        for key, value in values.items():
            template = template.replace("{" + key + "}", str(value))
        return template


@cache
def _module(path: Path) -> ModuleType:
    file = path / "scenario.py"
    if not file.is_file():
        raise ScenarioError(f"scenario file missing: {file}")
    name = "gdlab_scenario_" + path.name.replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ScenarioError(f"{file} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and typing look their module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ScenarioError(f"{file} failed to load: {type(exc).__name__}: {exc}") from exc
    if not callable(getattr(module, "steps", None)):
        raise ScenarioError(f"{file} has no steps() function")
    return module


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ScenarioError(f"scenario file missing: {path}") from exc
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{path} is not valid JSON: {exc}") from exc


def list_scenarios() -> list[Scenario]:
    root = scenarios_root()
    return [load(p.name) for p in sorted(root.iterdir()) if (p / "scenario.toml").is_file()]


@cache
def load(name: str = DEFAULT_SCENARIO) -> Scenario:
    root = scenarios_root()
    path = root / name
    if not (path / "scenario.toml").is_file():
        known = sorted(p.name for p in root.iterdir() if (p / "scenario.toml").is_file())
        raise UsageError(
            f"unknown scenario '{name}'",
            f"choose one of: {', '.join(known)} (gdlab scenarios lists them)",
        )
    try:
        raw = tomllib.loads((path / "scenario.toml").read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path / 'scenario.toml'} is not valid TOML: {exc}") from exc
    return _validate(raw, path)


def _behaviour(raw: dict[str, Any], where: Path, need: Any) -> Behaviour:
    """[behaviour]: what the compromised instance does on its own (only pings, today)."""
    table = need(raw, "behaviour", dict)
    behaviour = Behaviour(
        action=need(table, "action", str, "behaviour."),
        target=need(table, "target", str, "behaviour."),
        count=need(table, "count", int, "behaviour."),
        interval_seconds=need(table, "interval_seconds", int, "behaviour."),
        every_seconds=need(table, "every_seconds", int, "behaviour."),
        start_delay_seconds=need(table, "start_delay_seconds", int, "behaviour."),
    )
    if behaviour.action != "ping":
        raise ScenarioError(f"{where}: behaviour.action '{behaviour.action}' is not supported")
    if behaviour.target != "malicious_eip":
        raise ScenarioError(f"{where}: behaviour.target must be 'malicious_eip'")
    if not 1 <= behaviour.count <= 100 or behaviour.every_seconds < 1:
        raise ScenarioError(f"{where}: behaviour.count must be 1-100 and every_seconds >= 1")
    return behaviour


def _validate(raw: dict[str, Any], path: Path) -> Scenario:
    where = path / "scenario.toml"

    def need(table: dict[str, Any], key: str, kind: type, prefix: str = "") -> Any:
        if key not in table:
            raise ScenarioError(f"{where}: missing '{prefix}{key}'")
        value = table[key]
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ScenarioError(f"{where}: '{prefix}{key}' must be a {kind.__name__}")
        return value

    names = need(raw, "names", dict)
    for key in REQUIRED_NAMES:
        need(names, key, str, "names.")
    behaviour = _behaviour(raw, where, need) if "behaviour" in raw else None
    network = need(raw, "network", dict)
    instances = need(raw, "instances", dict)
    timeouts = need(raw, "timeouts", dict)

    def optional(key: str, default: int) -> int:
        return need(timeouts, key, int, "timeouts.") if key in timeouts else default

    severity = need(raw, "severity", float)
    if not 0 < severity < 10:
        raise ScenarioError(f"{where}: severity must be between 0 and 10")
    finding_type = need(raw, "finding_type", str)
    finding_types = raw.get("finding_types", [finding_type])
    if not isinstance(finding_types, list) or not finding_types or finding_types[0] != \
            finding_type or not all(isinstance(t, str) for t in finding_types):
        raise ScenarioError(f"{where}: finding_types must be a list of strings that starts "
                            "with finding_type")
    for kind in finding_types:
        if "/" not in kind or ":" not in kind:
            raise ScenarioError(f"{where}: finding type '{kind}' is not a GuardDuty type")
    scenario = Scenario(
        name=need(raw, "name", str),
        title=need(raw, "title", str),
        description=need(raw, "description", str).strip(),
        finding_type=finding_type,
        severity=severity,
        names=dict(names),
        vpc_cidr=need(network, "vpc_cidr", str, "network."),
        subnet_cidr=need(network, "subnet_cidr", str, "network."),
        instance_type=need(instances, "instance_type", str, "instances."),
        ami_parameter=need(instances, "ami_parameter", str, "instances."),
        behaviour=behaviour,
        watch_local_seconds=need(timeouts, "watch_local_seconds", int, "timeouts."),
        watch_aws_seconds=need(timeouts, "watch_aws_seconds", int, "timeouts."),
        flow_logs_local_seconds=optional("flow_logs_local_seconds", FLOW_LOGS_LOCAL_SECONDS),
        flow_logs_aws_seconds=optional("flow_logs_aws_seconds", FLOW_LOGS_AWS_SECONDS),
        path=path,
        finding_types=tuple(finding_types),
    )
    if scenario.name != path.name:
        raise ScenarioError(f"{where}: name '{scenario.name}' differs from its folder")
    try:
        scenario.check_names("gd-000000")  # the shape of a generated lab id
    except UsageError as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    for extra in ("event-pattern.json", "notification.json", "scenario.py"):
        if not (path / extra).is_file():
            raise ScenarioError(f"scenario file missing: {path / extra}")
    pattern_types = scenario.event_pattern.get("detail", {}).get("type", [])
    for kind in scenario.finding_types:
        if kind not in pattern_types:
            raise ScenarioError(
                f"{path / 'event-pattern.json'} does not match the finding type "
                f"{kind}: the rule would never fire for it"
            )
    return scenario
