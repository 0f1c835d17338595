"""EventBridge's Input Transformer, as a pure function.

AWS's rules ("Amazon EventBridge input transformation", EventBridge user guide):

- ``InputPathsMap`` values are JSON paths into the original event: dot notation, dashes,
  underscores, array indices and ``*`` wildcards.
- In a JSON template (one that starts with ``{`` or ``[``), a placeholder standing as a
  value is replaced by the value as JSON: strings come out quoted and escaped, objects and
  arrays as JSON. The JSON passed on is minified.
- A placeholder inside a quoted string, or anywhere in a template that is not JSON (a
  quoted string like ``"instance <instance> is in <state>"`` or plain text), is replaced by
  the bare value; EventBridge does not escape what the paths extract. Objects and arrays
  referenced inside a string lose their inner quotes so the string stays valid.
- A template that is a quoted string is delivered as written, quotes included: the guide's
  own example turns ``"instance <instance> is in <state>"`` into
  ``"instance i-0123456789 is in RUNNING"``, and SNS e-mails show those quotes.
- A path that does not resolve creates no variable: its placeholder renders as nothing in
  text and as ``null`` where a JSON value is expected.
- Reserved variables: ``aws.events.rule-name``, ``aws.events.rule-arn``,
  ``aws.events.event`` (the event without ``detail``), ``aws.events.event.json`` (the whole
  event) and ``aws.events.event.ingestion-time`` (ISO 8601).
"""

from __future__ import annotations

import json
import re
from typing import Any

_MISSING = object()
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")
_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[(\d+|\*)\]")


class PathError(ValueError):
    """An InputPathsMap entry that is not a JSON path EventBridge accepts."""


def extract(path: str, event: Any) -> Any:
    """The value at a JSON path such as ``$.detail.resource.instanceDetails.instanceId``;
    a list when the path has a wildcard; ``_MISSING`` when nothing is there."""
    if path == "$":
        return event
    if not path.startswith("$"):
        raise PathError(f"not a JSON path: {path!r}")
    rest = path[1:]
    tokens: list[str | int] = []
    pos = 0
    while pos < len(rest):
        match = _TOKEN.match(rest, pos)
        if not match or match.end() == pos:
            raise PathError(f"unsupported JSON path: {path!r}")
        name, index = match.groups()
        if name is not None:
            tokens.append(name)
        else:
            tokens.append("*" if index == "*" else int(index))
        pos = match.end()

    nodes = [event]
    wildcard = False
    for token in tokens:
        found = []
        for node in nodes:
            if token == "*":
                wildcard = True
                if isinstance(node, dict):
                    found.extend(node.values())
                elif isinstance(node, list):
                    found.extend(node)
            elif isinstance(token, int):
                if isinstance(node, list) and -len(node) <= token < len(node):
                    found.append(node[token])
            elif isinstance(node, dict) and token in node:
                found.append(node[token])
        nodes = found
    if wildcard:
        return nodes
    return nodes[0] if nodes else _MISSING


def reserved(
    event: dict[str, Any],
    rule_name: str = "",
    rule_arn: str = "",
    ingestion_time: str | None = None,
) -> dict[str, Any]:
    """The predefined variables for one event and rule."""
    without_detail = {k: v for k, v in event.items() if k != "detail"}
    return {
        "aws.events.rule-name": rule_name,
        "aws.events.rule-arn": rule_arn,
        "aws.events.event": without_detail,
        "aws.events.event.json": event,
        "aws.events.event.ingestion-time": ingestion_time or event.get("time", ""),
    }


def _as_text(value: Any) -> str:
    """A value dropped into text: bare strings, JSON for the rest, objects without quotes."""
    if value is _MISSING:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":")).replace('"', "")
    return json.dumps(value)


def _as_json(value: Any) -> str:
    if value is _MISSING:
        return "null"
    return json.dumps(value, separators=(",", ":"))


def render(
    template: str,
    paths_map: dict[str, str],
    event: dict[str, Any],
    rule_name: str = "",
    rule_arn: str = "",
    ingestion_time: str | None = None,
) -> str:
    """The text EventBridge hands to a target for this InputTransformer and event."""
    values: dict[str, Any] = reserved(event, rule_name, rule_arn, ingestion_time)
    for name, path in (paths_map or {}).items():
        if name.startswith("aws."):
            raise PathError(f"variable names cannot start with 'aws.': {name!r}")
        values[name] = extract(path, event)

    is_json = template.lstrip()[:1] in ("{", "[")
    out: list[str] = []
    in_string = False
    i = 0
    while i < len(template):
        char = template[i]
        if char == "\\" and in_string:
            out.append(template[i : i + 2])
            i += 2
            continue
        if char == '"':
            in_string = not in_string
            out.append(char)
            i += 1
            continue
        if char == "<":
            match = _PLACEHOLDER.match(template, i)
            if match and match.group(1) in values:
                value = values[match.group(1)]
                out.append(_as_json(value) if is_json and not in_string else _as_text(value))
                i = match.end()
                continue
        out.append(char)
        i += 1
    text = "".join(out)

    if is_json:
        try:
            return json.dumps(json.loads(text), separators=(",", ":"))
        except ValueError:
            # Unescaped extracted values can break the JSON; AWS passes such text on as is.
            return text
    return text
