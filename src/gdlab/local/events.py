"""EventBridge API corrections: where moto's EventsHandler says yes too easily, answer as AWS.

- TestEventPattern is implemented (moto's handler returns an empty body), with the SAME
  matcher that delivery uses (moto's ``EventPattern``), so a pattern tested here fires the
  same way on the bus. An invalid pattern is an InvalidEventPatternException; an event that
  is not a JSON object with id, account, source, time, region and detail-type is a
  ValidationException "Parameter Event is not valid." (AWS documents ``resources`` as
  mandatory too but does not require it).
  https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_TestEventPattern.html
- PutEvents entries whose string members (Source, DetailType, Detail, ...) are not strings
  fail the whole request with SerializationException, as AWS's JSON protocol does for a
  value of the wrong type; before, a ``"Source": ["aws.guardduty"]`` slipped past the
  aws.* refusal and fired rules.
- PutEvents entries with an ``aws.*`` source are refused per entry with
  NotAuthorizedForSourceException; the others are put.
  https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html
"""

from __future__ import annotations

import functools
import json
from typing import Any

# What AWS answers, per entry, for a PutEvents entry whose source belongs to AWS.
NOT_AUTHORIZED_FOR_SOURCE = {
    "ErrorCode": "NotAuthorizedForSourceException",
    "ErrorMessage": "Not authorized for the source.",
}
# Fields TestEventPattern requires of the event (AWS's answer, not its documentation's list).
REQUIRED_EVENT_FIELDS = ("id", "account", "source", "time", "region", "detail-type")
# PutEventsRequestEntry members that the events model types as strings.
_STRING_ENTRY_MEMBERS = ("Time", "Source", "DetailType", "Detail", "EventBusName",
                         "TraceHeader")


def _serialization_error(where: str, value: Any) -> Exception:
    from moto.core.exceptions import JsonRESTError

    found = {list: "Start of list", dict: "Start of structure or map"}.get(
        type(value), f"{type(value).__name__.upper()}_VALUE")
    return JsonRESTError("SerializationException",
                         f"{found} found where not expected ({where} must be a string)")


def check_entry_types(entries: Any) -> None:
    """Raise SerializationException for the first entry member whose JSON type is wrong."""
    if not isinstance(entries, list):
        raise _serialization_error("Entries", entries)
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise _serialization_error(f"Entries[{index}]", entry)
        for member in _STRING_ENTRY_MEMBERS:
            value = entry.get(member)
            # Time is a timestamp: epoch seconds (a number) on the JSON wire.
            if member == "Time" and isinstance(value, (int, float)) and \
                    not isinstance(value, bool):
                continue
            if value is not None and not isinstance(value, str):
                raise _serialization_error(f"Entries[{index}].{member}", value)
        resources = entry.get("Resources")
        if resources is not None and (not isinstance(resources, list)
                                      or not all(isinstance(r, str) for r in resources)):
            raise _serialization_error(f"Entries[{index}].Resources", resources)


def _is_aws_source(entry: dict[str, Any]) -> bool:
    return isinstance(entry.get("Source"), str) and entry["Source"].startswith("aws.")


def _refuse_aws_sources(original: Any) -> Any:
    def put_events(self: Any) -> Any:
        entries = self._get_param("Entries") or []
        check_entry_types(entries)
        # More than 10 entries is moto's (and AWS's) ValidationException for the request.
        if len(entries) > 10 or not any(_is_aws_source(e) for e in entries):
            return original(self)
        allowed = [e for e in entries if not _is_aws_source(e)]
        accepted = iter(self.events_backend.put_events(allowed) if allowed else [])
        results = [dict(NOT_AUTHORIZED_FOR_SOURCE) if _is_aws_source(e) else next(accepted)
                   for e in entries]
        failed = len([r for r in results if "ErrorCode" in r])
        return json.dumps({"FailedEntryCount": failed, "Entries": results})

    return put_events


def event_matches(raw_pattern: str, raw_event: str) -> bool:
    """TestEventPattern's answer, with the matcher rules use when they fire."""
    from moto.core.exceptions import JsonRESTError
    from moto.events.models import EventPattern

    for member, value in (("eventPattern", raw_pattern), ("event", raw_event)):
        if value is None:
            raise JsonRESTError("ValidationException",
                                f"1 validation error detected: Value null at '{member}' "
                                "failed to satisfy constraint: Member must not be null")
        if not isinstance(value, str):
            raise _serialization_error(member[0].upper() + member[1:], value)
    pattern = EventPattern.load(raw_pattern)  # InvalidEventPatternException when invalid
    try:
        event = json.loads(raw_event)
    except ValueError:
        event = None
    if not isinstance(event, dict) or any(f not in event for f in REQUIRED_EVENT_FIELDS):
        raise JsonRESTError("ValidationException", "Parameter Event is not valid.")
    return bool(pattern.matches_event(event))


def test_event_pattern(self: Any) -> str:
    """Replacement for ``moto.events.responses.EventsHandler.test_event_pattern``."""
    result = event_matches(self._get_param("EventPattern"), self._get_param("Event"))
    return json.dumps({"Result": result})


# pytest would otherwise collect the handler above as a test wherever it is imported.
test_event_pattern.__test__ = False  # type: ignore[attr-defined]


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _without_nulls(handler: Any) -> Any:
    """moto writes absent members as null ("NextToken": null when there is no next page);
    AWS's JSON protocol leaves them out."""

    @functools.wraps(handler)
    def answer(self: Any) -> Any:
        body, headers = handler(self)
        if not isinstance(body, str) or not body.startswith("{"):
            return body, headers
        data = _drop_nulls(json.loads(body))
        for rule in data.get("Rules", []) if isinstance(data.get("Rules"), list) else []:
            rule.pop("CreatedBy", None)  # DescribeRule's member; ListRules' Rule has none
        return json.dumps(data), headers

    return answer


# Read calls whose moto answers carry null members.
NULL_FREE = ("list_rules", "describe_rule", "list_targets_by_rule", "list_event_buses",
             "describe_event_bus")


def install() -> None:
    from moto.events.responses import EventsHandler

    from gdlab.local import patches

    patches.wrap(EventsHandler, "put_events", "PutEvents refuses aws.* sources per entry",
                 _refuse_aws_sources)
    patches.patch(EventsHandler, "test_event_pattern", test_event_pattern,
                  "TestEventPattern matches as rules do and validates the event")
    for name in NULL_FREE:
        patches.wrap(EventsHandler, name, "reads leave absent members out", _without_nulls)
