"""The shape a lab's state file must have before gdlab trusts it.

A state file is written by gdlab, but anything can change it afterwards: an editor, a bad
disk, a hostile process. Loading checks every field's type and every closed set of values,
and that the lab id inside is the file's own (validated) name, so a file can never steer
gdlab to a path or a target it did not choose."""

from __future__ import annotations

from typing import Any

# "isolated", "revoked", "disabled", "restored": the responder answered (by scenario).
PHASES = ("setting-up", "ready", "triggered", "detected", "isolated", "revoked", "disabled",
          "restored", "verified", "torn-down")
TARGETS = ("local", "aws")
OWNERSHIPS = ("created", "adopted", "shared")
STATUSES = ("pending", "created", "deleted")
KINDS = ("info", "error")

_OPTIONAL_TEXT = ("endpoint", "account", "local_cloud")
_REQUIRED_TEXT = ("lab", "scenario", "target", "region", "phase", "created_at", "updated_at")


def problems(data: Any, lab: str) -> list[str]:
    """What is wrong with a parsed state file named `<lab>.json`; empty when it is sound."""
    if not isinstance(data, dict):
        return [f"the file holds {_kind(data)}, not an object"]
    found: list[str] = []
    for name in _REQUIRED_TEXT:
        if not isinstance(data.get(name), str) or not data.get(name):
            found.append(f"'{name}' must be a non-empty string, not {_kind(data.get(name))}")
    for name in _OPTIONAL_TEXT:
        if data.get(name) is not None and not isinstance(data[name], str):
            found.append(f"'{name}' must be a string or null, not {_kind(data[name])}")
    if isinstance(data.get("lab"), str) and data["lab"] != lab:
        found.append(f"'lab' says {data['lab']!r} but the file is named {lab}.json")
    for name, allowed in (("target", TARGETS), ("phase", PHASES)):
        if isinstance(data.get(name), str):
            _one_of(found, data, name, allowed)
    if not isinstance(data.get("options", {}), dict):
        found.append(f"'options' must be an object, not {_kind(data['options'])}")
    found += _list_of(data, "resources", _resource_problems)
    found += _list_of(data, "timeline", _event_problems)
    return found


def _resource_problems(item: dict[str, Any]) -> list[str]:
    found = []
    for name in ("key", "type"):
        if not isinstance(item.get(name), str) or not item.get(name):
            found.append(f"'{name}' must be a non-empty string")
    for name in ("id", "name"):
        if item.get(name) is not None and not isinstance(item[name], str):
            found.append(f"'{name}' must be a string or null")
    _one_of(found, item, "ownership", OWNERSHIPS, default="created")
    _one_of(found, item, "status", STATUSES, default="pending")
    if not isinstance(item.get("attrs", {}), dict):
        found.append("'attrs' must be an object")
    return found


def _event_problems(item: dict[str, Any]) -> list[str]:
    found = []
    for name in ("time", "message"):
        if not isinstance(item.get(name), str):
            found.append(f"'{name}' must be a string")
    if item.get("phase") is not None:
        _one_of(found, item, "phase", PHASES)
    _one_of(found, item, "kind", KINDS, default="info")
    return found


def _list_of(data: dict[str, Any], name: str, check: Any) -> list[str]:
    items = data.get(name, [])
    if not isinstance(items, list):
        return [f"'{name}' must be a list, not {_kind(items)}"]
    found = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            found.append(f"{name}[{index}] must be an object, not {_kind(item)}")
            continue
        found += [f"{name}[{index}]: {problem}" for problem in check(item)]
    return found


def _one_of(
    found: list[str], data: dict[str, Any], name: str, allowed: tuple[str, ...], default=None
) -> None:
    value = data.get(name, default)
    if isinstance(value, str) and value not in allowed:
        found.append(f"'{name}' is {value!r}, not one of {', '.join(allowed)}")
    elif value is not None and not isinstance(value, str):
        found.append(f"'{name}' must be one of {', '.join(allowed)}, not {_kind(value)}")
    elif value is None and default is not None:
        found.append(f"'{name}' must be one of {', '.join(allowed)}, not null")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )
