"""Raw wire responses held to botocore's service models.

boto3 parses leniently (unknown keys are dropped, an ISO string is accepted where AWS sends
epoch seconds, nulls vanish), so a local API can look right through boto3 and still break
the AWS CLI, the other SDKs or a hand-written client. These helpers check the body as it
left the server:

    calls = capture_raw(client)
    client.test_event_pattern(...)
    operation, status, body = calls[-1]
    assert_wire_shape("events", operation, body)

JSON protocols (json, rest-json) are checked fully: member names (locationName for
rest-json), no nulls, required members, types, enums, timestamp format, base64 blobs,
tagged unions. XML protocols (query, ec2, rest-xml) are checked on element names, required
members, enums and scalar text (integer, boolean, timestamp); XML has no nulls.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from xml.etree import ElementTree

__all__ = ["capture_raw", "assert_wire_shape", "wire_mismatches", "parse_raw_body"]

# Members bound to the HTTP envelope, not the body (botocore parsers' KNOWN_LOCATIONS).
_ENVELOPE_LOCATIONS = ("header", "headers", "statusCode")
_JSON_PROTOCOLS = ("json", "rest-json")
_XML_PROTOCOLS = ("query", "ec2", "rest-xml")
_NAMESPACE = re.compile(r"^\{.*\}")


@functools.cache
def _service_model(service: str) -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


def parse_raw_body(protocol: str, body: bytes | str) -> Any:
    """The raw body as the protocol sends it: a dict for JSON (an empty body is {}), an
    Element for XML, the bytes themselves when they are neither."""
    raw = body.encode("utf-8") if isinstance(body, str) else (body or b"")
    if protocol in _XML_PROTOCOLS:
        return ElementTree.fromstring(raw) if raw.strip() else None
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def capture_raw(client: Any) -> list[tuple[str, int, Any]]:
    """Record (operation name, HTTP status, parsed raw body) for every response `client`
    receives, before botocore parses it. Returns the list it appends to."""
    calls: list[tuple[str, int, Any]] = []
    protocol = client.meta.service_model.resolved_protocol

    def record(operation_model: Any = None, response_dict: Any = None, **_: Any) -> None:
        if operation_model is None or response_dict is None:
            return
        calls.append((operation_model.name, response_dict.get("status_code", 0),
                      parse_raw_body(protocol, response_dict.get("body") or b"")))

    client.meta.events.register("before-parse", record)
    return calls


def assert_wire_shape(service: str, operation: str, body: Any) -> None:
    """Raise AssertionError listing every way `body` (a raw response of `operation`: a
    parsed JSON dict, an XML Element, or the raw bytes/str) differs from botocore's
    output shape, each with its path."""
    problems = wire_mismatches(service, operation, body)
    if problems:
        raise AssertionError(f"{service}.{operation} wire shape:\n  " + "\n  ".join(problems))


def wire_mismatches(service: str, operation: str, body: Any) -> list[str]:
    model = _service_model(service)
    protocol = model.resolved_protocol
    output = model.operation_model(operation).output_shape
    if isinstance(body, (bytes, str)):
        body = parse_raw_body(protocol, body)
    problems: list[str] = []
    if protocol in _JSON_PROTOCOLS:
        _check_json_output(output, body, protocol, problems)
    elif protocol in _XML_PROTOCOLS:
        _check_xml_output(output, body, protocol, operation, problems)
    else:
        problems.append(f"protocol {protocol!r} is not supported by wire_shapes")
    return problems


# --- JSON --------------------------------------------------------------------------------
def _check_json_output(output: Any, body: Any, protocol: str, problems: list[str]) -> None:
    if output is None:
        if body not in ({}, b""):
            problems.append(f"$: the operation has no output, got {body!r}")
        return
    payload = output.serialization.get("payload")
    if payload:
        # rest-json: the body IS the payload member; a blob/string payload is not JSON.
        shape = output.members[payload]
        if shape.type_name in ("structure", "union", "map", "list"):
            _json_value(shape, body, "$", protocol, problems)
        return
    _json_value(output, body, "$", protocol, problems)


def _json_value(shape: Any, value: Any, path: str, protocol: str, problems: list[str]) -> None:
    kind = shape.type_name
    if value is None:
        problems.append(f"{path}: null (AWS omits a member rather than sending null)")
        return
    if shape.metadata.get("document"):
        return  # a document member holds any JSON
    if kind == "structure":
        _json_structure(shape, value, path, protocol, problems)
    elif kind == "list":
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {_kind(value)}")
            return
        for index, item in enumerate(value):
            _json_value(shape.member, item, f"{path}[{index}]", protocol, problems)
    elif kind == "map":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map, got {_kind(value)}")
            return
        for key, item in value.items():
            _scalar(shape.key, key, f"{path}.<key {key!r}>", protocol, problems)
            _json_value(shape.value, item, f"{path}[{key!r}]", protocol, problems)
    else:
        _scalar(shape, value, path, protocol, problems)


def _json_structure(shape: Any, value: Any, path: str, protocol: str,
                    problems: list[str]) -> None:
    if not isinstance(value, dict):
        problems.append(f"{path}: expected an object ({shape.name}), got {_kind(value)}")
        return
    members = _body_members(shape)
    for key, item in value.items():
        if key == "__type" and (shape.metadata.get("exception") or shape.is_tagged_union):
            continue
        if key not in members:
            problems.append(f"{path}: unknown member {key!r} for {shape.name} "
                            f"(known: {', '.join(sorted(members)) or 'none'})")
            continue
        _json_value(members[key], item, f"{path}.{key}", protocol, problems)
    for name in shape.required_members:
        member = shape.members[name]
        if member.serialization.get("location") in _ENVELOPE_LOCATIONS:
            continue
        if member.serialization.get("name", name) not in value:
            problems.append(f"{path}: missing required member "
                            f"{member.serialization.get('name', name)!r} of {shape.name}")
    if shape.is_tagged_union:
        set_members = [k for k, v in value.items() if k != "__type" and v is not None]
        if len(set_members) != 1:
            problems.append(f"{path}: union {shape.name} must have exactly one member set, "
                            f"got {set_members}")


def _body_members(shape: Any) -> dict[str, Any]:
    """Wire name -> member shape, for members carried in the body."""
    return {member.serialization.get("name", name): member
            for name, member in shape.members.items()
            if member.serialization.get("location") not in _ENVELOPE_LOCATIONS
            and not member.serialization.get("eventheader")}


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def _timestamp_format(shape: Any, protocol: str) -> str:
    # AWS protocol defaults: JSON protocols send epoch seconds, XML ones ISO-8601
    # (https://smithy.io/2.0/spec/protocol-traits.html#timestampformat-trait).
    default = "unixTimestamp" if protocol in _JSON_PROTOCOLS else "iso8601"
    return shape.serialization.get("timestampFormat") or default


def _scalar(shape: Any, value: Any, path: str, protocol: str, problems: list[str]) -> None:
    """A JSON scalar against its shape."""
    kind = shape.type_name
    if kind == "string":
        if not isinstance(value, str):
            problems.append(f"{path}: expected a string, got {_kind(value)} {value!r}")
        elif shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} is not one of {shape.name} {list(shape.enum)}")
    elif kind in ("integer", "long", "short", "byte"):
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{path}: expected an integer, got {_kind(value)} {value!r}")
    elif kind in ("float", "double"):
        # AWS JSON may send NaN/Infinity as strings for floats.
        if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
            return
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            problems.append(f"{path}: expected a number, got {_kind(value)} {value!r}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{path}: expected a boolean, got {_kind(value)} {value!r}")
    elif kind == "timestamp":
        _timestamp(shape, value, path, protocol, problems)
    elif kind == "blob" and (not isinstance(value, str) or not _is_base64(value)):
        problems.append(f"{path}: expected a base64 string (blob), got {value!r}")


def _timestamp(shape: Any, value: Any, path: str, protocol: str, problems: list[str]) -> None:
    fmt = _timestamp_format(shape, protocol)
    if fmt == "unixTimestamp":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            problems.append(f"{path}: expected epoch seconds (a number), got {value!r}")
    elif fmt == "iso8601":
        if not isinstance(value, str) or not _is_iso8601(value):
            problems.append(f"{path}: expected an ISO-8601 timestamp string, got {value!r}")
    elif fmt == "rfc822" and (not isinstance(value, str) or not _is_rfc822(value)):
        problems.append(f"{path}: expected an RFC 822 timestamp string, got {value!r}")


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _is_iso8601(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in text


def _is_rfc822(text: str) -> bool:
    try:
        parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return False
    return True


# --- XML ---------------------------------------------------------------------------------
def _tag(element: Any) -> str:
    return _NAMESPACE.sub("", element.tag)


def _check_xml_output(output: Any, root: Any, protocol: str, operation: str,
                      problems: list[str]) -> None:
    if root is None:
        if output is not None and output.members and protocol != "rest-xml":
            problems.append("$: empty body")
        return
    if not isinstance(root, ElementTree.Element):
        problems.append(f"$: expected an XML document, got {root!r}")
        return
    if protocol in ("query", "ec2"):
        expected_root = f"{operation}Response"
        if _tag(root) != expected_root:
            problems.append(f"$: root element <{_tag(root)}>, expected <{expected_root}>")
    if output is None:
        return
    node, allowed_extra = root, set()
    if protocol == "query":
        allowed_extra = {"ResponseMetadata"}
        wrapper = output.serialization.get("resultWrapper")
        if wrapper:
            found = [child for child in root if _tag(child) == wrapper]
            if not found:
                problems.append(f"$: missing <{wrapper}>")
                return
            extra = [_tag(c) for c in root if _tag(c) not in (wrapper, "ResponseMetadata")]
            if extra:
                problems.append(f"$: unexpected elements {extra} beside <{wrapper}>")
            node, allowed_extra = found[0], set()
    elif protocol == "ec2":
        allowed_extra = {"requestId"}
    elif protocol == "rest-xml" and output.serialization.get("payload"):
        payload = output.members[output.serialization["payload"]]
        if payload.type_name != "structure":
            return
        output = payload
    _xml_structure(output, node, f"<{_tag(node)}>", protocol, problems, allowed_extra)


def _xml_name(member: Any, name: str) -> str:
    if member.type_name == "list" and member.serialization.get("flattened"):
        return member.member.serialization.get("name") or member.serialization.get("name", name)
    return member.serialization.get("name", name)


def _xml_structure(shape: Any, node: Any, path: str, protocol: str, problems: list[str],
                   allowed_extra: set[str] = frozenset()) -> None:
    members = {_xml_name(m, n): m for n, m in shape.members.items()
               if m.serialization.get("location") not in _ENVELOPE_LOCATIONS
               and not m.serialization.get("xmlAttribute")}
    seen: dict[str, list[Any]] = {}
    for child in node:
        seen.setdefault(_tag(child), []).append(child)
    for tag, children in seen.items():
        if tag in allowed_extra:
            continue
        member = members.get(tag)
        if member is None:
            problems.append(f"{path}: unknown element <{tag}> for {shape.name}")
            continue
        flattened = member.type_name in ("list", "map") and member.serialization.get("flattened")
        if flattened:
            _xml_collection(member, children, f"{path}.{tag}", protocol, problems)
            continue
        if len(children) > 1:
            problems.append(f"{path}: <{tag}> appears {len(children)} times")
        _xml_value(member, children[0], f"{path}.{tag}", protocol, problems)
    for name in shape.required_members:
        member = shape.members[name]
        if member.serialization.get("location") in _ENVELOPE_LOCATIONS:
            continue
        if _xml_name(member, name) not in seen and not member.serialization.get("xmlAttribute"):
            problems.append(f"{path}: missing required <{_xml_name(member, name)}> "
                            f"of {shape.name}")


def _xml_collection(shape: Any, items: list[Any], path: str, protocol: str,
                    problems: list[str]) -> None:
    """The entries of a list or map (the children of its wrapper, or the repeated
    elements of a flattened one)."""
    if shape.type_name == "list":
        for index, item in enumerate(items):
            _xml_value(shape.member, item, f"{path}[{index}]", protocol, problems)
        return
    key_name = shape.key.serialization.get("name") or "key"
    value_name = shape.value.serialization.get("name") or "value"
    for index, entry in enumerate(items):
        tags = [_tag(c) for c in entry]
        if sorted(tags) != sorted([key_name, value_name]):
            problems.append(f"{path}[{index}]: map entry has {tags}, "
                            f"expected <{key_name}> and <{value_name}>")
        for child in entry:
            target = shape.key if _tag(child) == key_name else shape.value
            _xml_value(target, child, f"{path}[{index}].{_tag(child)}", protocol, problems)


def _xml_value(shape: Any, node: Any, path: str, protocol: str, problems: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        _xml_structure(shape, node, path, protocol, problems)
    elif kind == "list":
        entry = shape.member.serialization.get("name", "member")
        wrong = [_tag(c) for c in node if _tag(c) != entry]
        if wrong:
            problems.append(f"{path}: list entries must be <{entry}>, got {sorted(set(wrong))}")
        _xml_collection(shape, [c for c in node if _tag(c) == entry], path, protocol, problems)
    elif kind == "map":
        entries = [c for c in node if _tag(c) == "entry"]
        if len(entries) != len(node):
            problems.append(f"{path}: map entries must be <entry>")
        _xml_collection(shape, entries, path, protocol, problems)
    else:
        _xml_scalar(shape, (node.text or "").strip(), path, protocol, problems)


def _xml_scalar(shape: Any, text: str, path: str, protocol: str, problems: list[str]) -> None:
    kind = shape.type_name
    if kind == "string" and shape.enum and text not in shape.enum:
        problems.append(f"{path}: {text!r} is not one of {shape.name} {list(shape.enum)}")
    elif kind in ("integer", "long", "short", "byte") and not re.fullmatch(r"-?\d+", text):
        problems.append(f"{path}: expected an integer, got {text!r}")
    elif kind in ("float", "double"):
        try:
            float(text)
        except ValueError:
            problems.append(f"{path}: expected a number, got {text!r}")
    elif kind == "boolean" and text not in ("true", "false"):
        problems.append(f"{path}: expected true or false, got {text!r}")
    elif kind == "timestamp":
        fmt = _timestamp_format(shape, protocol)
        if fmt == "unixTimestamp":
            try:
                float(text)
            except ValueError:
                problems.append(f"{path}: expected epoch seconds, got {text!r}")
        elif fmt == "rfc822" and not _is_rfc822(text):
            problems.append(f"{path}: expected an RFC 822 timestamp, got {text!r}")
        elif fmt == "iso8601" and not _is_iso8601(text):
            problems.append(f"{path}: expected an ISO-8601 timestamp, got {text!r}")
    elif kind == "blob" and not _is_base64(text):
        problems.append(f"{path}: expected base64 (blob), got {text!r}")
