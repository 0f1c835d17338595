"""The local cloud's outbox: what SNS would have e-mailed, and every message published.

moto's delivery to ``email`` / ``email-json`` subscriptions does nothing, so nobody could
see the lab's notification. Here every such delivery is kept and served at
``/_gdlab/outbox`` (``?topic=ARN`` filters). Every publish, whatever the subscriptions, is
also kept at ``/_gdlab/published`` so a lab without an e-mail subscription can still prove
its messages went out.

AWS only e-mails confirmed subscriptions (the recipient clicks a link first). The local
cloud has no inbox to click in: moto creates subscriptions already confirmed
(``PendingConfirmation`` false) and the outbox treats them that way.

Each publish also counts ``AWS/SNS NumberOfMessagesPublished`` (dimension ``TopicName``)
in moto's CloudWatch, as AWS does, so the metric-based evidence works locally too.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from typing import Any

# AWS's subject for e-mail deliveries of messages published without one.
DEFAULT_SUBJECT = "AWS Notification Message"
SENDER = "no-reply@sns.amazonaws.com"
# Bounded so a long-running local cloud does not grow without limit.
MAX_KEPT = 5000

_lock = threading.Lock()
_emails: list[dict[str, Any]] = []
_published: list[dict[str, Any]] = []


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _keep(store: list[dict[str, Any]], item: dict[str, Any]) -> None:
    with _lock:
        store.append(item)
        del store[:-MAX_KEPT]


def emails(topic: str | None = None) -> list[dict[str, Any]]:
    """E-mails delivered so far, oldest first, optionally for one topic ARN."""
    with _lock:
        return [dict(e) for e in _emails if topic is None or e["topic_arn"] == topic]


def published(topic: str | None = None) -> list[dict[str, Any]]:
    """Every message published so far, oldest first, optionally for one topic ARN."""
    with _lock:
        return [dict(p) for p in _published if topic is None or p["topic_arn"] == topic]


def clear() -> None:
    with _lock:
        _emails.clear()
        _published.clear()


def _route_outbox(query: dict[str, Any]) -> list[dict[str, Any]]:
    return emails(_one(query.get("topic")))


def _route_published(query: dict[str, Any]) -> list[dict[str, Any]]:
    return published(_one(query.get("topic")))


def _one(value: Any) -> str | None:
    if isinstance(value, list):
        return value[0] if value else None
    return value or None


def _sender(topic: Any) -> str:
    name = getattr(topic, "display_name", "") or topic.name
    return f"{name} <{SENDER}>"


def install() -> None:
    from moto.sns.models import Subscription, Topic

    from gdlab.local import patches

    original_topic_publish = Topic.publish
    original_sub_publish = Subscription.publish

    def topic_publish(self: Any, message: str, subject: str | None = None, *args: Any,
                      **kwargs: Any) -> str:
        message_id = original_topic_publish(self, message, subject, *args, **kwargs)
        _keep(_published, {
            "topic_arn": self.arn,
            "message_id": message_id,
            "subject": subject,
            "body": message,
            "time": _now(),
        })
        from gdlab.local.delivery import put_metric

        put_metric(self.account_id, self.sns_backend.region_name, "AWS/SNS",
                   "NumberOfMessagesPublished", {"TopicName": self.name})
        return message_id

    def sub_publish(self: Any, message: str, message_id: str, subject: str | None = None,
                    message_attributes: dict[str, Any] | None = None, *args: Any,
                    **kwargs: Any) -> None:
        original_sub_publish(self, message, message_id, subject, message_attributes,
                             *args, **kwargs)
        if self.protocol not in ("email", "email-json"):
            return
        matcher = self._filter_policy_matcher
        if matcher is not None and not matcher.matches(message_attributes, message):
            return
        if kwargs.get("message_structure") == "json":
            message = self._parse_message_structure(message, self.protocol)
        if self.protocol == "email-json":
            body = json.dumps(self.get_post_data(message, message_id, subject), indent=2)
        else:
            body = message
        _keep(_emails, {
            "to": self.endpoint,
            "from": _sender(self.topic),
            "subject": subject or DEFAULT_SUBJECT,
            "body": body,
            "time": _now(),
            "topic_arn": self.topic.arn,
            "message_id": message_id,
            "protocol": self.protocol,
            "subscription_arn": self.arn,
        })

    patches.patch(Topic, "publish", topic_publish,
                  "the outbox keeps every published message; SNS metrics count it")
    patches.patch(Subscription, "publish", sub_publish,
                  "e-mail subscriptions deliver to the local outbox")

    from gdlab.local.server import register_route

    def routes() -> None:
        register_route("outbox", _route_outbox)
        register_route("published", _route_published)

    patches.once("routes", "GET /_gdlab/outbox and /_gdlab/published", routes)
